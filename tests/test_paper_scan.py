"""Scanned paper forms, round trip: forms printed through the server, marked as a person would (ticks,
crosses, a corrected mark, two ticks on one question, a faint mark, handwriting), one page turned 1.5°
with noise and a shift, one fed upside down, the A5 page fed sideways (turned 90° and a little more), one
page with its QR code smudged, scanned at 200 dpi into a PDF and a folder
of images; read by `feedback paper read` and by the upload at `/manage/entry/scans`. Every page read
with confidence is stored with exactly the answers drawn (wrong: 0); every other page waits in the
review queue with its reason, where a person confirms it (in Chromium), types a serial or discards it.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from PIL import Image

from feedback import paper_forms, paper_layout, paper_pages, paper_review, paper_scan
from feedback.paper_layout import FormLayout, form_layout
from feedback_plugins.templates import register_survey_templates
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    FEEDBACK,
    Org,
    Server,
    auth_header,
    axe_violations,
    connect,
    poll_until,
    rows,
    run_cli,
    save_screenshot,
    source_env,
)
from tests.manage_helpers import add_user, csrf_token, sign_in
from tests.paper_marks import FAINT_PEN, Pen, answer_box, as_pdf, date_boxes, render_pages, scanned

pytestmark = BOTH_BACKENDS

TEMPLATES = {survey.slug: survey for survey in register_survey_templates()}
CRITERIA = ["service_time", "waiting_time", "staff_courtesy", "premises", "information"]  # vash_kontrol
PASSWORD = "correct horse 1"
SECRET = "test-secret"  # the test servers' FEEDBACK_SECRET, given to the command line too


@dataclass
class Drawn:
    """One scanned page: what the person meant, and what the reader should make of it."""

    serial: str
    answers: dict[str, Any]
    day: str
    queued: str | None = None  # the reason expected, None: stored by itself
    meant: dict[str, Any] = field(default_factory=dict)  # the answers a reviewer would confirm


@dataclass
class Scans:
    pdf: Path
    folder: Path
    pages: list[Drawn]
    unit_of: dict[str, str]


def _print(server: Server, org: Org, token: str, count: int, paper: str) -> bytes:
    reply = httpx.get(
        f"{server.url}/api/v1/touchpoints/{token}/paper-forms.pdf",
        params={"count": count, "paper": paper},
        headers=auth_header(org.tokens["admin"]),
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return reply.content


def _serial_of(image: Image.Image) -> str:
    located = paper_scan.locate(np.asarray(image), "print")
    assert located.serial, "a clean print's QR code reads"
    return located.serial


def _layout(slug: str, paper: str) -> FormLayout:
    return form_layout(TEMPLATES[slug], paper, datetime.now(UTC).year)


def _today(tz: str) -> datetime:
    return datetime.now(ZoneInfo(tz))


def _mark_ratings(pen: Pen, layout: FormLayout, answers: dict[str, int], cross: bool = False) -> None:
    for key, value in answers.items():
        (pen.cross if cross else pen.tick)(answer_box(layout, key, value))


def _mark_date(pen: Pen, layout: FormLayout, day: datetime, cross: bool = False) -> None:
    for box in date_boxes(layout, day.day, day.month, day.year):
        (pen.cross if cross else pen.tick)(box)


@pytest.fixture(scope="module")
def scans(server: Server, shared_org: Org, tmp_path_factory: pytest.TempPathFactory) -> Scans:
    """Eight forms of post B (Ваш контроль, A4) and one of unit A1 (CSAT, A5), printed, marked, scanned."""
    folder = tmp_path_factory.mktemp("scans")
    b_pdf = _print(server, shared_org, "tp-b", 8, "A4")
    a_pdf = _print(server, shared_org, "tp-a1", 1, "A5")
    b_pages, a_pages = render_pages(b_pdf), render_pages(a_pdf)
    b_layout, a_layout = _layout("vash_kontrol", "A4"), _layout("csat", "A5")
    b_day, a_day = _today("Asia/Sakhalin"), _today("Asia/Ho_Chi_Minh")
    drawn: list[Drawn] = []
    images: list[Image.Image] = []

    def page(serial: str, image: Image.Image, answers: dict, day: datetime, queued: str | None = None, meant=None):
        drawn.append(Drawn(serial, answers, day.date().isoformat(), queued, meant or answers))
        images.append(image)

    plan = [
        {"service_time": 5, "waiting_time": 4, "staff_courtesy": 5, "premises": 3, "information": 4},
        {"service_time": 2, "waiting_time": 1, "staff_courtesy": 3, "premises": 2, "information": 1},
        {"service_time": 4, "waiting_time": 4, "staff_courtesy": 4, "premises": 5, "information": 5},
        {"service_time": 3, "waiting_time": 5, "staff_courtesy": 2, "premises": 4, "information": 3},
        {"service_time": 1, "waiting_time": 2, "staff_courtesy": 1, "premises": 1, "information": 2},
        {"service_time": 5, "waiting_time": 5, "staff_courtesy": 4, "premises": 4, "information": 5},
        {"service_time": 4, "waiting_time": 3, "staff_courtesy": 5, "premises": 2, "information": 4},
        {"service_time": 3, "waiting_time": 3, "staff_courtesy": 3, "premises": 3, "information": 3},
    ]
    for index, image in enumerate(b_pages):
        serial, pen, answers = _serial_of(image), Pen(image), plan[index]
        _mark_date(pen, b_layout, b_day, cross=index == 1)
        _mark_ratings(pen, b_layout, answers, cross=index == 1)
        if index == 2:  # a corrected answer: 1 filled out, the 4 beside it ticked
            pen.fill(answer_box(b_layout, "waiting_time", 1))
            page(serial, image, answers, b_day)
        elif index == 3:  # a second tick on one question: which one is meant, a person decides
            pen.tick(answer_box(b_layout, "staff_courtesy", 4))
            page(serial, image, answers, b_day, "two_ticks:staff_courtesy", {**answers, "staff_courtesy": 4})
        elif index == 4:  # a faint pencil mark beside a clear tick
            pen.tick(answer_box(b_layout, "premises", 5), colour=FAINT_PEN)
            page(serial, image, answers, b_day, "faint:premises")
        elif index == 5:  # the scan: turned, shifted, noisy
            page(serial, scanned(image, degrees=1.5, shift_mm=(2.5, -1.8), noise=14), answers, b_day)
        elif index == 6:  # coffee on the QR code
            pen.smudge(b_layout.qr)
            page(serial, image, answers, b_day, "no_qr")
        elif index == 7:  # a comment written by hand: the reviewer types it in
            pen.write(b_layout.question("comment").writing)
            page(serial, image, answers, b_day, "handwriting:comment", {**answers, "comment": "Долго ждал"})
        elif index == 0:  # fed upside down (and a little askew): the QR code says where the top is
            page(serial, scanned(image, degrees=180.6, noise=8), answers, b_day)
        else:
            page(serial, image, answers, b_day)
    # CSAT: a low rating with the reasons for it, several boxes ticked.
    image = a_pages[0]
    serial, pen = _serial_of(image), Pen(image)
    _mark_date(pen, a_layout, a_day)
    pen.tick(answer_box(a_layout, "overall", 2))
    pen.cross(answer_box(a_layout, "reasons", "waiting_time"))
    pen.tick(answer_box(a_layout, "reasons", "information"))
    # The A5 sheet fed sideways through the scanner, turned a little more, with noise.
    sideways = scanned(image.transpose(Image.Transpose.ROTATE_90), degrees=-1.2, shift_mm=(1.5, 2.0), noise=10)
    page(serial, sideways, {"overall": 2, "reasons": ["waiting_time", "information"]}, a_day)

    pdf = folder / "scans.pdf"
    pdf.write_bytes(as_pdf(images))
    pages_folder = folder / "pages"
    pages_folder.mkdir()
    for index, image in enumerate(images):  # zlib's quickest level: a scan's size is not under test here
        image.save(pages_folder / f"page-{index + 1:02d}.png", compress_level=1)
    return Scans(pdf, pages_folder, drawn, {"tp-b": "B", "tp-a1": "A1"})


def stored_answers(org: Org, serial: str) -> dict[str, Any] | None:
    found = rows(
        org,
        "SELECT answers, day, channel, entered_by, survey_version FROM responses WHERE id = ?",
        (paper_forms.response_id(SECRET, serial),),
    )
    if not found:
        return None
    row = found[0]
    return {**row, "answers": json.loads(row["answers"])}


def queue(org: Org) -> list[dict]:
    return rows(org, "SELECT id, serial, status, reasons, unit, resolved_by, note FROM paper_scans ORDER BY id")


@pytest.fixture(scope="module")
def read_by_cli(scans: Scans, shared_org: Org) -> dict:
    result = run_cli("paper", "read", "--db", str(shared_org.db), str(scans.pdf), env={"FEEDBACK_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.postgres_covered_elsewhere
def test_the_command_line_stores_what_is_sure_and_queues_the_rest_with_nothing_wrong(
    scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    summary = read_by_cli
    expected_queue = [page for page in scans.pages if page.queued]
    assert summary["pages"] == len(scans.pages) == 9
    assert summary["stored"] == len(scans.pages) - len(expected_queue) == 5
    assert (summary["duplicates"], summary["conflicts"], summary["refused"]) == (0, [], [])
    queued = {entry["serial"]: entry["reasons"] for entry in summary["queued"]}
    for page in expected_queue:
        if page.queued == "no_qr":
            assert queued[None] == ["no_qr"]  # the page whose code was not read has no serial yet
        else:
            assert queued[page.serial] == [page.queued], (page.serial, queued[page.serial])
    wrong = []
    for page in scans.pages:
        stored = stored_answers(shared_org, page.serial)
        if page.queued:
            assert stored is None, f"{page.serial} was stored though it was queued"
            continue
        assert stored is not None, f"{page.serial} was not stored"
        if stored["answers"] != page.answers or stored["day"] != page.day:
            wrong.append((page.serial, stored, page.answers, page.day))
        assert stored["channel"] == "paper" and stored["entered_by"].startswith("cli:")
    assert wrong == []


def test_the_same_pages_again_from_a_folder_store_nothing_twice(
    scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    result = run_cli("paper", "read", "--db", str(shared_org.db), str(scans.folder), env={"FEEDBACK_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["pages"], summary["stored"], summary["duplicates"]) == (9, 0, 5)
    by_serial = {entry["serial"]: entry["review"] for entry in read_by_cli["queued"] if entry["serial"]}
    again = {entry["serial"]: entry["review"] for entry in summary["queued"] if entry["serial"]}
    assert again == by_serial  # a form's page waits once in the queue
    assert len([row for row in queue(shared_org) if row["serial"]]) == len(by_serial)


def test_unreadable_input_exits_2_naming_the_file(tmp_path: Path) -> None:
    # Every file is checked before the database is opened: any file stands in for it here.
    database = tmp_path / "feedback.db"
    database.touch()
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "page-1.png").write_bytes(b"not a picture")
    result = run_cli("paper", "read", "--db", str(database), str(tmp_path / "scans"))
    assert result.returncode == 2 and "page-1.png" in result.stderr, result.stderr


def test_the_upload_refuses_forms_of_other_units_and_keeps_the_queue_to_the_subtree(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    add_user(shared_org.db, "boris", PASSWORD, "manager", "B")
    with httpx.Client(base_url=server.url, timeout=120) as client:
        sign_in(client, server, "boris", PASSWORD)
        token = csrf_token(client, "/manage/entry/scans")
        reply = client.post(
            "/manage/entry/scans",
            data={"_csrf_token": token},
            files=[("files", ("scans.pdf", scans.pdf.read_bytes(), "application/pdf"))],
        )
        listing = client.get("/manage/entry/review")
        api = client.get("/api/v1/paper-scans")
        junk = client.post(
            "/manage/entry/scans", data={"_csrf_token": token}, files=[("files", ("notes.txt", b"hello", "text/plain"))]
        )
        unsigned = client.post("/manage/entry/scans", files=[("files", ("scans.pdf", b"%PDF-", "application/pdf"))])
        large = b"%PDF-" + bytes(paper_review.MAX_UPLOAD_BYTES)
        too_large = client.post(
            "/manage/entry/scans",
            data={"_csrf_token": token},
            files=[("files", ("large.pdf", large, "application/pdf"))],
        )
    assert reply.status_code == 200, reply.text[:2000]
    page = reply.text
    # B's four sure pages were stored by the command line before; A1's CSAT page is not boris's to read.
    assert 'id="summary-pages">9<' in page and 'id="summary-stored">0<' in page
    assert 'id="summary-duplicates">4<' in page and 'id="summary-refused">1<' in page
    assert 'id="summary-queued">4<' in page
    assert listing.status_code == 200
    # A form's page waits once (the command line's three); the smudged page, whose serial is unknown, is
    # boris's own in his unit: the command line's (no unit) is one he cannot see.
    waiting = api.json()
    assert api.status_code == 200 and len(waiting) == 4 and {row["status"] for row in waiting} == {"waiting"}
    assert all(row["unit"] == "B" for row in waiting)
    assert sorted(bool(row["serial"]) for row in waiting) == [False, True, True, True]
    for row in waiting:
        assert f'href="/manage/entry/review/{row["id"]}"' in listing.text
    assert junk.status_code == 400 and "notes.txt" in junk.text
    assert unsigned.status_code == 403
    assert too_large.status_code == 413 and "50 MB" in too_large.text
    # Another unit's manager sees none of B's pages.
    other = httpx.get(f"{server.url}/api/v1/paper-scans", headers=auth_header(shared_org.tokens["manager_a1"]))
    assert other.status_code == 200 and other.json() == []


def _waiting_with(org: Org, reason: str) -> dict:
    for row in queue(org):
        if row["status"] == "waiting" and reason in json.loads(row["reasons"])[0]:
            return row
    raise AssertionError(f"no waiting page with {reason}: {queue(org)}")


def test_a_person_confirms_a_queued_page_with_a_correction_in_chromium(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org, browser, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the page is the same on both databases; its store path is tested by the next tests")
    add_user(shared_org.db, "vera", PASSWORD, "manager", "B")
    row = _waiting_with(shared_org, "two_ticks")
    meant = next(page for page in scans.pages if page.serial == row["serial"])
    context = browser.new_context(bypass_csp=True)  # axe-core is injected into the pages
    page = context.new_page()
    try:
        sign_in(page, server, "vera", PASSWORD)
        for path in ("/manage/entry/scans", "/manage/entry/review"):
            page.goto(f"{server.url}{path}")
            assert axe_violations(page) == [], path
        page.goto(f"{server.url}/manage/entry/review/{row['id']}")
        assert axe_violations(page) == []
        flagged = page.locator("fieldset.scan-uncertain")
        assert flagged.count() == 1 and flagged.get_attribute("id") == "question-staff_courtesy"
        assert page.locator("#scan-image").evaluate("img => img.naturalWidth") > 500
        # The other answers come proposed as read; the person picks the answer meant on the doubtful one.
        assert page.locator("input[name='q.service_time'][value='3']").is_checked()
        assert page.locator("#occurred-on").input_value() == meant.day
        page.check("input[name='q.staff_courtesy'][value='4']")
        ARTIFACTS.mkdir(exist_ok=True)
        save_screenshot(page, ARTIFACTS / "paper-scan-review.png")
        with page.expect_navigation():
            page.click("#confirm-button")
        assert "done=stored" in page.url
        assert page.locator("#review-done").is_visible()
    finally:
        context.close()
    stored = stored_answers(shared_org, row["serial"])
    assert stored is not None and stored["answers"] == meant.meant and stored["day"] == meant.day
    assert stored["entered_by"] == "vera"
    closed = next(item for item in queue(shared_org) if item["id"] == row["id"])
    assert (closed["status"], closed["resolved_by"]) == ("stored", "vera")
    audit = rows(
        shared_org,
        "SELECT action, actor_id FROM audit_log WHERE kind = 'paper_scan' AND record_id = ?",
        (str(row["id"]),),
    )
    assert audit == [{"action": "confirm", "actor_id": "vera"}]


def test_a_typed_serial_reads_a_page_whose_qr_code_was_smudged(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    row = _waiting_with(shared_org, "no_qr")
    assert row["serial"] is None and row["unit"] is None  # read by the command line: nobody's unit yet
    add_user(shared_org.db, "root2", PASSWORD, "admin")
    smudged = next(page for page in scans.pages if page.queued == "no_qr")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        sign_in(client, server, "root2", PASSWORD)
        token = csrf_token(client, f"/manage/entry/review/{row['id']}")
        wrong = client.post(
            f"/manage/entry/review/{row['id']}/serial", data={"_csrf_token": token, "serial": "ABCDE-FGHJ"}
        )
        reply = client.post(
            f"/manage/entry/review/{row['id']}/serial", data={"_csrf_token": token, "serial": smudged.serial.lower()}
        )
        assert reply.status_code == 303, reply.text[:1000]
        shown = client.get(f"/manage/entry/review/{row['id']}")
        # The page is read again with that form's layout: every answer drawn is proposed.
        proposed = client.get("/api/v1/paper-scans").json()
        item = next(found for found in proposed if found["id"] == row["id"])
        assert item["serial"] == smudged.serial and item["unit"] == "B"
        assert item["proposed"]["answers"] == smudged.answers and item["proposed"]["occurred_on"] == smudged.day
        form = {"_csrf_token": token, "occurred_on": smudged.day}
        form.update({f"q.{key}": str(value) for key, value in smudged.answers.items()})
        stored = client.post(f"/manage/entry/review/{row['id']}", data=form)
    assert wrong.status_code == 400 and "review-error" in wrong.text
    assert 'name="q.service_time"' in shown.text
    assert stored.status_code == 303 and "done=stored" in stored.headers["location"]
    found = stored_answers(shared_org, smudged.serial)
    assert found is not None and found["answers"] == smudged.answers


@pytest.mark.postgres_covered_elsewhere
def test_a_call_sheets_serial_is_no_printed_form_to_read_against(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    sheet = httpx.post(
        f"{server.url}/api/v1/touchpoints/tp-b/call-sheets",
        json={},
        headers=auth_header(shared_org.tokens["admin"]),
        timeout=30,
    )
    assert sheet.status_code == 201, sheet.text
    serial = sheet.json()["serial"]
    [record] = rows(shared_org, "SELECT * FROM paper_forms WHERE serial = ?", (serial,))
    assert record["paper"] == "call"
    # A page whose code names a call sheet (a copied or forged code): an unknown serial, queued.
    gray = np.asarray(Image.open(scans.folder / "page-01.png").convert("L"))
    located = paper_scan.locate(gray, "page-01.png")
    reading = paper_scan.read_located(located, record, TEMPLATES["vash_kontrol"], (date.min, date.max))
    assert reading.reasons == [paper_scan.UNKNOWN_SERIAL] and reading.form is None
    # Typed for a queued page, it is refused naming the serial, and the page still waits.
    row = next(item for item in queue(shared_org) if item["status"] == "waiting")
    add_user(shared_org.db, "root3", PASSWORD, "admin")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        sign_in(client, server, "root3", PASSWORD)
        token = csrf_token(client, f"/manage/entry/review/{row['id']}")
        typed = client.post(f"/manage/entry/review/{row['id']}/serial", data={"_csrf_token": token, "serial": serial})
    assert typed.status_code == 400 and "review-error" in typed.text, typed.text[:1000]
    assert next(item for item in queue(shared_org) if item["id"] == row["id"]) == row


def test_a_page_is_discarded_with_a_reason_and_a_decided_page_stays_decided(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    add_user(shared_org.db, "dina", PASSWORD, "manager", "B")
    row = _waiting_with(shared_org, "faint")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        sign_in(client, server, "dina", PASSWORD)
        token = csrf_token(client, f"/manage/entry/review/{row['id']}")
        no_reason = client.post(f"/manage/entry/review/{row['id']}/discard", data={"_csrf_token": token, "reason": " "})
        done = client.post(
            f"/manage/entry/review/{row['id']}/discard", data={"_csrf_token": token, "reason": "A test print"}
        )
        again = client.post(f"/manage/entry/review/{row['id']}/discard", data={"_csrf_token": token, "reason": "Twice"})
    assert no_reason.status_code == 400
    assert done.status_code == 303 and "done=discarded" in done.headers["location"]
    assert again.status_code == 409
    closed = next(item for item in queue(shared_org) if item["id"] == row["id"])
    assert (closed["status"], closed["resolved_by"], closed["note"]) == ("discarded", "dina", "A test print")
    assert stored_answers(shared_org, row["serial"]) is None
    audit = rows(
        shared_org, "SELECT action FROM audit_log WHERE kind = 'paper_scan' AND record_id = ?", (str(row["id"]),)
    )
    assert audit == [{"action": "discard"}]


def _upload(server: Server, user: str, *paths: Path) -> str:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        sign_in(client, server, user, PASSWORD)
        files = [("files", (path.name, path.read_bytes(), "image/png")) for path in paths]
        reply = client.post(
            "/manage/entry/scans", data={"_csrf_token": csrf_token(client, "/manage/entry/scans")}, files=files
        )
    assert reply.status_code == 200, reply.text[:2000]
    return reply.text


def test_a_discarded_form_scanned_again_waits_anew_and_an_image_waits_once_per_unit(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    faint = next(page for page in scans.pages if page.queued == "faint:premises")
    index = scans.pages.index(faint)
    [discarded] = [row for row in queue(shared_org) if row["serial"] == faint.serial]
    assert discarded["status"] == "discarded"  # by the test before
    page = _upload(server, "dina", scans.folder / f"page-{index + 1:02d}.png")
    assert 'id="summary-queued">1<' in page
    again = [row for row in queue(shared_org) if row["serial"] == faint.serial]
    assert [(row["id"], row["status"]) for row in again] == [
        (discarded["id"], "discarded"),
        (again[1]["id"], "waiting"),
    ]
    assert again[1]["id"] > discarded["id"] and json.loads(again[1]["reasons"]) == ["faint:premises"]
    # Scanned once more while that page waits: it is that page.
    _upload(server, "dina", scans.folder / f"page-{index + 1:02d}.png")
    assert [row["id"] for row in queue(shared_org) if row["serial"] == faint.serial] == [row["id"] for row in again]
    # A page decided while decided pages kept their keys (a database from before) gives its key up too.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        sign_in(client, server, "dina", PASSWORD)
        token = csrf_token(client, f"/manage/entry/review/{again[1]['id']}")
        done = client.post(f"/manage/entry/review/{again[1]['id']}/discard", data={"_csrf_token": token, "reason": "x"})
    assert done.status_code == 303
    conn = connect(shared_org.db)
    try:
        with conn:
            conn.execute("UPDATE paper_scans SET digest = ? WHERE id = ?", (f"serial:{faint.serial}", again[1]["id"]))
    finally:
        conn.close()
    _upload(server, "dina", scans.folder / f"page-{index + 1:02d}.png")
    third = [row["status"] for row in queue(shared_org) if row["serial"] == faint.serial]
    assert third == ["discarded", "discarded", "waiting"]
    # The smudged page (no serial read) uploaded in another unit is that unit's own page, not B's.
    smudged = scans.pages.index(next(page for page in scans.pages if page.queued == "no_qr"))
    add_user(shared_org.db, "anna", PASSWORD, "manager", "A1")
    page = _upload(server, "anna", scans.folder / f"page-{smudged + 1:02d}.png")
    assert 'id="summary-queued">1<' in page
    headers = auth_header(shared_org.tokens["manager_a1"])
    mine = httpx.get(f"{server.url}/api/v1/paper-scans", params={"status": "waiting"}, headers=headers).json()
    assert [(row["unit"], row["serial"], row["uploaded_by"]) for row in mine] == [("A1", None, "anna")]
    unknown = [row for row in queue(shared_org) if row["serial"] is None and row["status"] == "waiting"]
    # anna's, boris's and the command line's (no unit; it read the folder's PNG, another image than the PDF's)
    assert sorted(row["unit"] or "" for row in unknown) == ["", "A1", "B"]


def _pdf(*sizes_pt: tuple[float, float]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=sizes_pt[0])
    for size in sizes_pt:
        pdf.add_page(format=size)
    return bytes(pdf.output())


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _unreadable(data: bytes, name: str) -> paper_pages.UnreadableInput:
    """The error reading every page of the file gives (check_file passing or not)."""
    with pytest.raises(paper_pages.UnreadableInput) as caught:
        paper_pages.check_file(data, name)
        list(paper_pages.file_pages(data, name))
    return caught.value


def test_files_that_hold_no_scanned_page_are_unreadable_never_a_server_error() -> None:
    page = Image.new("L", (400, 560), 255)
    # A decompression bomb (PIL's own limit), and an image over our pixel limit, both small files.
    assert _unreadable(_png(Image.new("1", (14000, 14000))), "bomb.png").name == "bomb.png"
    assert "pixels" in _unreadable(_png(Image.new("1", (8000, 8000))), "huge.png").why
    # A strip no form fits on (it broke the reader's resizing), as an image and as a PDF page.
    assert _unreadable(_png(Image.new("L", (1, 8000), 255)), "strip.png").name == "strip.png"
    assert _unreadable(_pdf((10, 4000)), "strip.pdf").name == "strip.pdf p. 1"
    # Formats no scanner writes are not decoded at all.
    gif = io.BytesIO()
    page.save(gif, format="GIF")
    assert _unreadable(gif.getvalue(), "page.gif").name == "page.gif"
    # A TIFF whose second page is damaged: the first is read, the second named.
    tiff = io.BytesIO()
    page.save(tiff, format="TIFF", save_all=True, append_images=[page.copy()], compression="tiff_deflate")
    damaged = bytearray(tiff.getvalue())
    with Image.open(io.BytesIO(bytes(damaged))) as opened:
        opened.seek(1)
        start = opened.tag_v2[273][0]  # the second page's first strip
    damaged[start : start + 20] = b"\xab" * 20
    assert paper_pages.check_file(bytes(damaged), "two.tif") == 2
    read = paper_pages.image_pages(bytes(damaged), "two.tif")
    assert next(read)[0] == "two.tif p. 1"
    with pytest.raises(paper_pages.UnreadableInput) as caught:
        next(read)
    assert caught.value.name == "two.tif p. 2"
    # A large PDF page is rendered no larger than the reader reads; too many pages are refused whole.
    [(_, big)] = list(paper_pages.file_pages(_pdf((4000, 5600)), "poster.pdf"))
    assert max(big.shape) <= paper_pages.MAX_SIDE
    many = _pdf(*[(595, 842)] * (paper_pages.MAX_PAGES + 1))
    with pytest.raises(paper_pages.TooManyPages):
        paper_pages.check_file(many, "many.pdf")


def test_the_upload_refuses_too_many_pages_and_a_rating_no_ascii_number(
    server: Server, scans: Scans, read_by_cli: dict, shared_org: Org
) -> None:
    add_user(shared_org.db, "root4", PASSWORD, "admin")
    row = next(item for item in queue(shared_org) if item["status"] == "waiting" and item["serial"])
    half = _pdf(*[(595, 842)] * (paper_pages.MAX_PAGES // 2 + 1))
    with httpx.Client(base_url=server.url, timeout=120) as client:
        sign_in(client, server, "root4", PASSWORD)
        token = csrf_token(client, "/manage/entry/scans")
        too_many = client.post(
            "/manage/entry/scans",
            data={"_csrf_token": token},
            files=[("files", ("one.pdf", half, "application/pdf")), ("files", ("two.pdf", half, "application/pdf"))],
        )
        form = {"_csrf_token": token, "occurred_on": "2026-01-01", "q.service_time": "\u00b2"}
        superscript = client.post(f"/manage/entry/review/{row['id']}", data=form)
    assert too_many.status_code == 400 and f"more than {paper_pages.MAX_PAGES} pages" in too_many.text
    assert superscript.status_code == 400 and "review-error" in superscript.text, superscript.text[:1000]
    assert next(item for item in queue(shared_org) if item["id"] == row["id"]) == row


def test_every_reason_a_page_waits_for_has_words_on_the_pages() -> None:
    from feedback.web.manage import scan_pages

    assert set(scan_pages.REASONS) == {*paper_scan.PAGE_REASONS, *paper_scan.QUESTION_REASONS}


def _settle_one_shift_at_a_time(sheet: paper_scan.Sheet, boxes: list) -> tuple[int, int, float]:
    """What `Sheet.settle` must find, written as the plain loop: each shift in turn, each box's frame
    ring measured from the page's table of dark pixels."""

    def frame(rect: Any, dx: int, dy: int) -> float:
        outer = sheet._px(paper_scan._grow(rect, 0.4), dx, dy)
        inner = sheet._px(paper_scan._grow(rect, -0.4), dx, dy)
        ring = (outer[2] - outer[0]) * (outer[3] - outer[1]) - (inner[2] - inner[0]) * (inner[3] - inner[1])
        return (sheet._sum(sheet.dark, *outer) - sheet._sum(sheet.dark, *inner)) / ring if ring > 0 else 0.0

    reach = round(sheet.scale)
    best = (0, 0, -1.0)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            score = sum(frame(box.rect, dx, dy) for box in boxes) / max(1, len(boxes))
            nearer = abs(dx) + abs(dy) < abs(best[0]) + abs(best[1])
            if score > best[2] + 1e-9 or (score > best[2] - 1e-9 and nearer):
                best = (dx, dy, score)
    return best


def test_settling_boxes_on_their_frames_finds_what_trying_each_shift_in_turn_finds() -> None:
    """`Sheet.settle` measures every shift at once: the same shift and score as the plain loop, exactly,
    on pages of dark blocks and noise with boxes anywhere, across the page's edges and of no size too."""
    rng = np.random.default_rng(7)
    for trial in range(120):
        scale = (8.0, 4.0, 6.0)[trial % 3]
        height, width = rng.integers(40, 300, size=2)
        page = np.full((height, width), 255, np.uint8)
        for _ in range(rng.integers(0, 30)):
            x, y, w, h = rng.integers(0, width), rng.integers(0, height), *rng.integers(1, 30, size=2)
            page[y : y + h, x : x + w] = rng.integers(0, 200)
        page = np.clip(page + rng.normal(0, (0, 10, 40)[trial % 3], page.shape), 0, 255).astype(np.uint8)
        sheet = paper_scan.Sheet(page, scale)
        boxes = [
            paper_layout.Box(rect=rect, value=index, label=rect)
            for index in range(rng.integers(0, 12))
            for rect in [
                paper_layout.Rect(*rng.uniform(-5, (width / scale + 2, height / scale + 2)), *rng.uniform(0, 8, 2))
            ]
        ]
        assert sheet.settle(boxes) == _settle_one_shift_at_a_time(sheet, boxes), trial


def test_the_histogram_percentile_is_numpys() -> None:
    """`paper_scan.percentile` gives the very float `np.percentile` gives (the reader's thresholds hang on it)."""
    rng = np.random.default_rng(11)
    for trial in range(1500):
        shape = tuple(rng.integers(1, 50, size=2))
        image = (
            rng.integers(0, 256, shape, dtype=np.uint8)
            if trial % 3 == 0
            else np.clip(rng.normal(rng.uniform(0, 255), rng.uniform(0, 60), shape), 0, 255).astype(np.uint8)
        )
        for q in (0, 10, 33.3, 50, 90, 99.5, 100):
            assert paper_scan.percentile(image, q) == float(np.percentile(image, q)), (trial, q)


def test_a_batch_killed_mid_read_and_read_again_stores_every_page_once(scans: Scans, shared_org: Org, org: Org) -> None:
    """SIGKILL `feedback paper read` once its first chunk of pages is stored, then run it again: the module's
    nine pages (eight in the first chunk), read into a fresh database holding their forms' records."""
    serials = [page.serial for page in scans.pages]
    records = rows(shared_org, f"SELECT * FROM paper_forms WHERE serial IN ({', '.join('?' * len(serials))})", serials)
    conn = connect(org.db)
    try:
        with conn:
            paper_forms.register(conn, records)
    finally:
        conn.close()
    sure = [page for page in scans.pages if not page.queued]

    def stored() -> list[dict]:
        return rows(org, "SELECT id FROM responses WHERE channel = 'paper'")

    command = [*FEEDBACK, "paper", "read", "--db", str(org.db), str(scans.pdf)]
    env = source_env({"FEEDBACK_SECRET": SECRET})
    reading = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(stored, timeout=60, what="the first chunk stored")
        reading.send_signal(signal.SIGKILL)
    finally:
        reading.kill()
        reading.wait(30)
    assert reading.returncode == -signal.SIGKILL  # killed, not finished: the ninth page was not stored yet
    before = {row["id"] for row in stored()}
    assert 0 < len(before) < len(sure)
    if org.backend == "sqlite":  # the killed process had the file open for writing
        assert rows(org, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    again = run_cli("paper", "read", "--db", str(org.db), str(scans.pdf), env={"FEEDBACK_SECRET": SECRET})
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["duplicates"], summary["stored"]) == (len(before), len(sure) - len(before))
    assert (summary["conflicts"], summary["refused"]) == ([], [])
    after = stored()
    assert len(after) == len({row["id"] for row in after}) == len(sure) and before <= {row["id"] for row in after}
    for page in sure:
        found = stored_answers(org, page.serial)
        assert found is not None and (found["answers"], found["day"]) == (page.answers, page.day), page.serial
    # Each page that waits for a person waits once, whether it was queued before the kill or after it.
    waiting = [row for row in queue(org) if row["status"] == "waiting"]
    assert sorted(json.loads(row["reasons"])[0] for row in waiting) == sorted(p.queued for p in scans.pages if p.queued)
