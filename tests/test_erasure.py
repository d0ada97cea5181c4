"""Erasure on request: a citizen's comment and contact from the receipt page (with a confirmation step),
a manager's erasure of a response's personal data with a reason (API and manager app); the rating and
the rollups stay, the log keeps who, when and why but never the erased content, and exports, search and
pages show the marker. Backups are owner-only."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from babel.messages.pofile import read_po
from playwright.sync_api import Browser

from feedback.backup import backup, restore
from feedback.erasure import MARKER
from feedback.web.receipt_page import confirmation
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    Org,
    auth_header,
    axe_violations,
    make_org,
    rows,
    run_cli,
    save_screenshot,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

SECRET = "test-secret"  # what the test servers sign with (tests.conftest.Server)
SECRET_ENV = {"FEEDBACK_SECRET": SECRET}
TEXT = re.compile(r"""_\((['"])(.+?)\1\)""")  # a text a template translates


def in_two_days() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


def respond(url: str, touchpoint: str = "tp-a1", level: int = 4, **extra) -> dict:
    body = {"touchpoint": touchpoint, "answers": {"overall": level, **extra.pop("answers", {})}, **extra}
    reply = httpx.post(f"{url}/api/v1/responses", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()


def found(org: Org, word: str) -> int:
    """Responses the comment search finds for a word (FTS5 on SQLite, the pg_trgm table on PostgreSQL)."""
    if org.backend == "sqlite":
        return rows(org, "SELECT count(*) AS n FROM comment_search WHERE comment_search MATCH ?", (f'"{word}"',))[0][
            "n"
        ]
    return rows(org, "SELECT count(*) AS n FROM comment_search WHERE body ILIKE ?", (f"%{word}%",))[0]["n"]


def rollups(org: Org) -> list[dict]:
    return rows(org, "SELECT * FROM rollups ORDER BY unit, day, service, touchpoint")


def export(url: str, token: str, unit: str = "A1") -> tuple[str, list[dict]]:
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    params = {"unit": unit, "from": (today - timedelta(days=2)).isoformat(), "to": today.isoformat()}
    reply = httpx.get(f"{url}/api/v1/exports/responses.csv", params=params, headers=auth_header(token), timeout=30)
    assert reply.status_code == 200, reply.text
    text = reply.content.decode("utf-8-sig")
    return text, list(csv.DictReader(io.StringIO(text)))


def erase(url: str, token: str | None, response_id: str, body) -> httpx.Response:
    headers = auth_header(token) if token else {}
    return httpx.post(f"{url}/api/v1/responses/{response_id}/erasure", json=body, headers=headers, timeout=10)


@BOTH_BACKENDS
def test_a_manager_erases_a_responses_personal_data_with_a_reason(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_jobs="0")
    comment = "Nhân viên quầy 1 nói chuyện thiếu tôn trọng ZKWV"
    private = {
        "answers": {"comment": comment, "contact": "ba.lan@example.org"},
        "case_ref": "HS-0042",
        "officer": "NV07",
    }
    mine = respond(server.url, **private)["id"]
    b_response = httpx.post(
        f"{server.url}/api/v1/responses",
        json={
            "touchpoint": "tp-b",
            "answers": dict.fromkeys(("service_time", "waiting_time", "staff_courtesy", "premises", "information"), 5),
        },
        timeout=10,
    ).json()["id"]
    sealed = run_cli("tick", "--db", str(org.db), "--job", "audit.seal", "--now", in_two_days(), env=SECRET_ENV)
    assert sealed.returncode == 0, sealed.stderr  # today's responses sealed: the erasure must keep them verifiable
    before, counted = rows(org, "SELECT * FROM responses WHERE id = ?", (mine,))[0], rollups(org)
    assert found(org, "ZKWV") == 1
    manager, viewer = org.tokens["manager_a1"], org.tokens["viewer_b"]

    assert erase(server.url, None, mine, {"reason": "asked"}).status_code == 401
    assert erase(server.url, viewer, b_response, {"reason": "asked"}).status_code == 403  # viewers never erase
    assert erase(server.url, manager, b_response, {"reason": "asked"}).status_code == 404  # another subtree
    assert erase(server.url, manager, "no-such-response", {"reason": "asked"}).status_code == 404
    for body, field in (({}, "reason"), ({"reason": "  "}, "reason"), ({"reason": 5}, "reason"), ([], "reason")):
        reply = erase(server.url, manager, mine, body)
        assert reply.status_code == 400 and reply.json()["field"] == field, reply.text
        assert reply.json()["detail"].startswith(field)
    reply = erase(server.url, manager, mine, {"reason": "asked", "fields": ["rating"]})
    assert reply.status_code == 400 and reply.json()["field"] == "fields"
    assert rows(org, "SELECT * FROM responses WHERE id = ?", (mine,))[0] == before  # nothing changed so far

    reply = erase(server.url, manager, mine, {"reason": "The respondent asked by phone"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"id": mine, "erased": ["comment", "contact", "case_ref"]}
    after = rows(org, "SELECT * FROM responses WHERE id = ?", (mine,))[0]
    assert json.loads(after["answers"]) == {**json.loads(before["answers"]), "comment": MARKER}
    assert (after["case_ref"], after["officer"], after["level"]) == (None, "NV07", before["level"])
    assert rows(org, "SELECT * FROM contacts WHERE response_id = ?", (mine,)) == []
    assert rollups(org) == counted
    assert found(org, "ZKWV") == 0
    text, exported = export(server.url, org.tokens["admin"])
    [row] = [r for r in exported if r["id"] == mine]
    assert (row["comment"], row["erased"], row["case_ref"], row["officer"]) == (
        MARKER,
        "comment;contact;case_ref",
        "",
        "NV07",
    )
    assert "ZKWV" not in text and "ba.lan" not in text
    [entry] = rows(org, "SELECT * FROM audit_log WHERE kind = 'erasure'")
    assert (entry["record_id"], entry["action"], entry["unit"], entry["actor_kind"]) == (mine, "erase", "A1", "token")
    assert json.loads(entry["change"])["after"] == {
        "fields": ["comment", "contact", "case_ref"],
        "reason": "The respondent asked by phone",
    }
    assert (
        rows(org, "SELECT count(*) AS n FROM audit_log WHERE kind = 'response' AND record_id = ?", (mine,))[0]["n"] == 1
    )
    log = " ".join(r["change"] for r in rows(org, "SELECT change FROM audit_log"))
    assert "ZKWV" not in log and "ba.lan" not in log and "HS-0042" not in log

    # Asked again: nothing is left, nothing changes, nothing more is logged; the officer code when asked.
    assert erase(server.url, manager, mine, {"reason": "again"}).json()["erased"] == ["comment", "contact", "case_ref"]
    assert len(rows(org, "SELECT seq FROM audit_log WHERE kind = 'erasure'")) == 1
    reply = erase(server.url, org.tokens["admin"], mine, {"reason": "staff code too", "fields": ["officer"]})
    assert reply.json()["erased"] == ["comment", "contact", "case_ref", "officer"]
    assert rows(org, "SELECT officer FROM responses WHERE id = ?", (mine,))[0]["officer"] is None
    verified = run_cli("audit", "verify", "--db", str(org.db), env=SECRET_ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_an_erasure_post_needs_a_fresh_confirmation_from_the_page(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_jobs="0")
    given = respond(server.url, answers={"comment": "Please call me back", "contact": "0901234567"})
    other = respond(server.url, answers={"comment": "Another one"})
    receipt, url = given["receipt"], f"{server.url}/r/{given['receipt']}/erase"
    stale = confirmation(SECRET, receipt, int(time.time()) - 7200)
    for token in ("", "123.abc", confirmation(SECRET, other["receipt"]), stale, confirmation("other secret", receipt)):
        reply = httpx.post(url, data={"confirm": token}, follow_redirects=False)
        assert reply.status_code == 403, token
        assert rows(org, "SELECT erased FROM responses WHERE id = ?", (given["id"],))[0]["erased"] is None
    assert httpx.post(f"{server.url}/r/AAAA-BBBB/erase", data={"confirm": stale}).status_code == 404
    reply = httpx.post(url + "?lang=ru", data={"confirm": confirmation(SECRET, receipt)}, follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == f"/r/{receipt}?lang=ru"
    stored = rows(org, "SELECT answers, erased FROM responses WHERE id = ?", (given["id"],))[0]
    assert json.loads(stored["erased"]) == ["comment", "contact"]
    assert json.loads(stored["answers"])["comment"] == MARKER
    assert rows(org, "SELECT * FROM contacts") == []
    [entry] = rows(org, "SELECT * FROM audit_log WHERE kind = 'erasure'")
    # The actor is a digest of the receipt: the log keeps no receipt, so nothing in it leads from a
    # receipt to its responses once they are gone (whoever holds the receipt can still find its entries).
    digest = hashlib.sha256(receipt.encode()).hexdigest()[:16]
    assert (entry["actor_kind"], entry["actor_id"]) == ("citizen", f"receipt:{digest}")
    assert not rows(org, "SELECT seq FROM audit_log WHERE actor_id LIKE ? OR change LIKE ?", (f"%{receipt}%",) * 2)
    assert json.loads(entry["change"])["after"]["fields"] == ["comment", "contact"]
    assert rows(org, "SELECT erased FROM responses WHERE id = ?", (other["id"],))[0]["erased"] is None


def test_a_citizen_erases_their_comment_and_contact_in_the_browser(tmp_path, start_server, browser: Browser) -> None:
    org = make_org(tmp_path / "feedback.db")
    add_user(org.db, "mai", "correct horse 1", "manager", "A1")
    server = start_server(org.db, feedback_jobs="0")
    given = respond(server.url, answers={"comment": "Chờ ở quầy quá lâu QWPL", "contact": "ba.nguyen@example.org"})
    staff = httpx.Client(base_url=server.url)
    sign_in(staff, server, "mai", "correct horse 1")
    assert given["receipt"] in staff.get("/manage/units/A1/responses", params={"q": "QWPL"}).text
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 360, "height": 800}, bypass_csp=True)  # to inject axe
    page = context.new_page()
    try:
        page.goto(f"{server.url}/r/{given['receipt']}?lang=vi")
        page.get_by_role("link", name="Xóa góp ý và thông tin liên hệ của tôi").click()
        page.wait_for_url(f"**/r/{given['receipt']}/erase?lang=vi")
        assert page.locator("h1").inner_text() == "Xóa góp ý và thông tin liên hệ của bạn?"
        assert rows(org, "SELECT erased FROM responses")[0]["erased"] is None  # the first step erases nothing
        assert axe_violations(page) == []
        save_screenshot(page, ARTIFACTS / "receipt-erase-vi-360.png")
        with page.expect_navigation():
            page.get_by_role("button", name="Có, xóa đi").click()
        assert page.url.endswith(f"/r/{given['receipt']}?lang=vi")
        assert "Góp ý và thông tin liên hệ của bạn đã được xóa." in page.locator(".erased-note").inner_text()
        assert page.get_by_role("link", name="Xóa góp ý và thông tin liên hệ của tôi").count() == 0
        assert axe_violations(page) == []
        page.goto(f"{server.url}/r/{given['receipt']}?lang=en")  # and so it stays, in every language
        assert "Your comment and contact have been erased." in page.locator(".erased-note").inner_text()
    finally:
        context.close()
    stored = rows(org, "SELECT answers, level, erased FROM responses")[0]
    assert json.loads(stored["answers"]) == {"overall": 4, "comment": MARKER}
    assert (stored["level"], json.loads(stored["erased"])) == (4, ["comment", "contact"])
    assert rows(org, "SELECT * FROM contacts") == []
    text, exported = export(server.url, org.tokens["admin"])
    assert exported[0]["comment"] == MARKER and "QWPL" not in text and "ba.nguyen" not in text
    assert "No responses match." in staff.get("/manage/units/A1/responses", params={"q": "QWPL"}).text
    listed = staff.get("/manage/units/A1/responses", params={"q": given["receipt"], "lang": "ru"}).text
    assert '<em class="dash-erased">удалено</em>' in listed and "QWPL" not in listed


def test_the_erase_button_in_the_manager_app(org: Org, start_server) -> None:
    add_user(org.db, "mai", "correct horse 1", "manager", "A1")
    add_user(org.db, "vy", "correct horse 2", "viewer", "A1")
    server = start_server(org.db, feedback_jobs="0")
    given = respond(server.url, answers={"comment": "Bảng hướng dẫn khó đọc XKCD"}, case_ref="HS-9", officer="NV3")
    viewer = httpx.Client(base_url=server.url)
    sign_in(viewer, server, "vy", "correct horse 2")
    assert f"/manage/responses/{given['id']}/erase" not in viewer.get("/manage/units/A1/responses").text
    assert viewer.get(f"/manage/responses/{given['id']}/erase").status_code == 403
    staff = httpx.Client(base_url=server.url)
    sign_in(staff, server, "mai", "correct horse 1")
    assert f'href="/manage/responses/{given["id"]}/erase"' in staff.get("/manage/units/A1/responses").text
    form_path = f"/manage/responses/{given['id']}/erase"
    token = csrf_token(staff, form_path)
    refused = staff.post(form_path, data={"_csrf_token": token, "fields": ["comment", "case_ref"], "reason": ""})
    assert refused.status_code == 400 and "Give the reason for the erasure." in refused.text
    assert staff.post(form_path, data={"fields": ["comment"], "reason": "asked"}).status_code == 403  # no CSRF token
    assert rows(org, "SELECT erased FROM responses")[0]["erased"] is None
    done = staff.post(
        form_path, data={"_csrf_token": token, "fields": ["comment", "case_ref"], "reason": "Asked at the counter"}
    )
    assert done.status_code == 303
    listed = staff.get(done.headers["location"])
    assert "The personal data of the response was erased." in listed.text and "XKCD" not in listed.text
    stored = rows(org, "SELECT answers, case_ref, officer, erased FROM responses")[0]
    assert (json.loads(stored["answers"])["comment"], stored["case_ref"], stored["officer"]) == (MARKER, None, "NV3")
    [entry] = rows(org, "SELECT * FROM audit_log WHERE kind = 'erasure'")
    assert (entry["actor_kind"], entry["actor_id"]) == ("user", "mai")
    assert json.loads(entry["change"])["after"] == {"fields": ["comment", "case_ref"], "reason": "Asked at the counter"}
    assert staff.get("/manage/responses/no-such-id/erase").status_code == 404


def test_backups_and_restores_are_owner_only(org: Org, tmp_path) -> None:
    previous = os.umask(0o022)  # what most systems hand a new file: readable by everyone
    try:
        made = backup(str(org.db), tmp_path / "backups")
        restored = restore(Path(made["file"]), str(tmp_path / "back.db"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(made["file"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(restored["restored"]).st_mode) == 0o600


def test_every_text_of_erasure_is_in_the_four_languages() -> None:
    root = Path(__file__).resolve().parent.parent / "feedback"
    pages = ("receipt_erase.html", "manage/response_erase.html", "receipt.html")
    asked = {text for page in pages for _quote, text in TEXT.findall((root / "web/templates" / page).read_text())}
    with (root / "locales/en/LC_MESSAGES/privacy.po").open("rb") as handle:
        asked |= {message.id for message in read_po(handle) if message.id}
    for locale in ("vi", "ru", "zh_Hans"):
        known = set()
        for po in (root / "locales" / locale / "LC_MESSAGES").glob("*.po"):
            with po.open("rb") as handle:
                known |= {message.id for message in read_po(handle) if message.id and message.string}
        assert sorted(asked - known) == [], locale
