"""Keyed entry of paper forms and hotline calls, through the one ingest path, on both backends:
`POST /api/v1/paper-entries` (201 stored, 200 the same entry again, 409 other answers kept for review,
400 naming the field, 404 for an unknown serial and for another subtree's form alike, 403 for a role
that may not key), the form's own survey version, the date of service as the response's day (never clock
skew), who keyed it, the actions a bad rating opens, both decisions on a second entry (the rates after
"take the second" are what a fresh computation gives), a hotline call with a consented call-back
number; and, in Chromium, twenty five-question forms keyed by keyboard alone, with keys and time counted.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from feedback import audit, audit_seals, audit_verify, organisation, paper_forms, surveys
from feedback.db import connect_writer
from feedback.rollup_rebuild import rebuild
from feedback.store import dialect
from feedback.store import organisation as organisation_store
from feedback.store.responses import ROLLUP_MEASURES
from feedback_plugins.templates import HAOCHAPING
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    ROOT,
    Org,
    Server,
    auth_header,
    axe_violations,
    connect,
    org_on,
    rows,
    save_screenshot,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS
PASSWORD = "correct horse 1"
SECRET = "test-secret"  # the test servers' FEEDBACK_SECRET
ZONES = {"A": "Asia/Ho_Chi_Minh", "A1": "Asia/Ho_Chi_Minh", "A1a": "Asia/Ho_Chi_Minh", "B": "Asia/Sakhalin"}
VASH = ("service_time", "waiting_time", "staff_courtesy", "premises", "information")


def local_day(unit: str, days_ago: int = 0) -> str:
    return (datetime.now(ZoneInfo(ZONES[unit])).date() - timedelta(days=days_ago)).isoformat()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, backend: str):
    org = org_on(backend, tmp_path_factory.mktemp("entry"))
    add_user(org.db, "mai", PASSWORD, "manager", "A1")
    add_user(org.db, "boris", PASSWORD, "manager", "B")
    server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    yield org, server
    server.stop()


def print_forms(
    org: Org, touchpoint: str, count: int = 1, *, days_ago: int = 5, survey: str | None = None, version: int = 1
) -> list[str]:
    """Register `count` printed forms of a touchpoint (as the printing does), printed `days_ago` days ago."""
    units = {"tp-a": "A", "tp-a1": "A1", "tp-a1a": "A1a", "tp-b": "B"}
    surveys_of = {"tp-a": "csat", "tp-a1": "csat", "tp-a1a": "haochaping", "tp-b": "vash_kontrol"}
    langs = {"tp-a": "en", "tp-a1": "vi", "tp-a1a": "zh", "tp-b": "ru"}
    forms = paper_forms.new_forms(
        touchpoint=touchpoint,
        unit=units[touchpoint],
        survey=survey or surveys_of[touchpoint],
        survey_version=version,
        lang=langs[touchpoint],
        paper="A4",
        count=count,
        printed_by="printer",
        now=datetime.now(UTC) - timedelta(days=days_ago),
    )
    conn = connect(org.db)
    try:
        with conn:
            paper_forms.register(conn, forms)
    finally:
        conn.close()
    return [form["serial"] for form in forms]


def post(server: Server, token: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/paper-entries", json=body, headers=auth_header(token), timeout=30)


def response_row(org: Org, serial: str) -> dict | None:
    found = rows(org, "SELECT * FROM responses WHERE id = ?", (paper_forms.response_id(SECRET, serial),))
    return found[0] if found else None


# -- the API --------------------------------------------------------------------------------------------


def test_a_keyed_form_is_stored_once_with_its_date_its_clerk_and_no_clock_skew(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    day = local_day("A1", 3)
    token = org.tokens["manager_a1"]
    body = {"serial": serial.replace("-", "").lower(), "answers": {"overall": 4}, "occurred_on": day}
    first = post(server, token, body)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == paper_forms.response_id(SECRET, serial)
    assert first.json()["serial"] == serial
    again = post(server, token, {**body, "serial": serial})
    assert again.status_code == 200 and again.json() == first.json()
    row = response_row(org, serial)
    assert row is not None
    assert (row["channel"], row["day"], row["entered_by"], row["survey_version"]) == ("paper", day, "lan", 1)
    noon = datetime.combine(date.fromisoformat(day), datetime.min.time().replace(hour=12), ZoneInfo(ZONES["A1"]))
    assert datetime.fromisoformat(row["occurred_at"]) == noon
    assert "clock_skew" not in msgspec.json.decode(row["flags"])
    assert len(rows(org, "SELECT id FROM responses WHERE id = ?", (row["id"],))) == 1
    # Counted for the day written on the form.
    counted = rows(org, "SELECT n, satisfied FROM rollups WHERE touchpoint = 'tp-a1' AND day = ?", (day,))
    assert counted == [{"n": 1, "satisfied": 1}]
    rate = httpx.get(
        f"{server.url}/api/v1/satisfaction",
        params={"unit": "A1", "from": day, "to": day},
        headers=auth_header(token),
        timeout=30,
    ).json()
    assert rate["total"]["n"] == 1
    # The export names who keyed it.
    export = httpx.get(
        f"{server.url}/api/v1/exports/responses.csv",
        params={"unit": "A1", "from": day, "to": day},
        headers=auth_header(token),
        timeout=30,
    )
    [exported] = [r for r in csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))) if r["id"] == row["id"]]
    assert (exported["entered_by"], exported["channel"]) == ("lan", "paper")
    # The form as the screen loads it says it was entered.
    loaded = httpx.get(f"{server.url}/api/v1/paper-forms/{serial}", headers=auth_header(token), timeout=30).json()
    assert loaded["entered"] is True and loaded["entry"]["receipt"] == first.json()["receipt"]
    assert loaded["entry"]["occurred_on"] == day and loaded["survey"]["slug"] == "csat"


def test_an_id_guessed_from_a_blank_forms_serial_does_not_block_its_entry(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    keyed_id = paper_forms.response_id(SECRET, serial)
    # What anyone could derive from the serial printed on a blank form (the former public uuid5 ids).
    guessed = str(uuid.uuid5(uuid.UUID("6f0e7d2a-4b7c-5e1f-9a3d-2c8b1e5f7a90"), serial))
    assert keyed_id != guessed and uuid.UUID(keyed_id).version == 8
    assert paper_forms.response_id("another installation's secret", serial) != keyed_id
    public = httpx.post(
        f"{server.url}/api/v1/responses",
        json={"id": guessed, "touchpoint": "tp-a1", "answers": {"overall": 1}},
        timeout=30,
    )
    assert public.status_code == 201, public.text
    keyed = post(
        server, org.tokens["manager_a1"], {"serial": serial, "answers": {"overall": 5}, "occurred_on": local_day("A1")}
    )
    assert keyed.status_code == 201, keyed.text
    assert keyed.json()["id"] == keyed_id
    row = response_row(org, serial)
    assert row is not None and row["entered_by"] == "lan" and msgspec.json.decode(row["answers"]) == {"overall": 5}


def test_other_answers_are_kept_for_review_and_change_nothing(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    token = org.tokens["manager_a1"]
    day = local_day("A1", 1)
    assert post(server, token, {"serial": serial, "answers": {"overall": 5}, "occurred_on": day}).status_code == 201
    before = response_row(org, serial)
    other = {"serial": serial, "answers": {"overall": 1}, "occurred_on": day}
    kept = post(server, token, other)
    assert kept.status_code == 409, kept.text
    assert kept.json()["field"] == "answers" and kept.json()["detail"].startswith("answers:")
    review = kept.json()["review"]
    assert post(server, token, other).json()["review"] == review  # the same second entry is kept once
    assert response_row(org, serial) == before
    [waiting] = rows(org, "SELECT * FROM paper_entry_conflicts WHERE id = ?", (review,))
    assert (waiting["status"], waiting["serial"], waiting["entered_by"]) == ("waiting", serial, "lan")
    assert msgspec.json.decode(waiting["answers"]) == {"overall": 1}
    # A different date is other content too.
    moved = post(server, token, {"serial": serial, "answers": {"overall": 5}, "occurred_on": local_day("A1", 2)})
    assert moved.status_code == 409 and moved.json()["review"] != review


def test_each_bad_field_is_named(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1", days_ago=2)
    [call] = [httpx_call_sheet(server, org.tokens["manager_a1"], "tp-a1")["serial"]]
    token = org.tokens["manager_a1"]
    good = {"serial": serial, "answers": {"overall": 4}, "occurred_on": local_day("A1")}
    wrong_check = serial[:-1] + ("2" if serial[-1] != "2" else "3")
    cases = [
        ({**good, "serial": "not a serial"}, "serial"),
        ({**good, "serial": wrong_check}, "serial"),
        ({**good, "answers": {"overall": 9}}, "answers.overall"),
        ({**good, "answers": {"nonsense": 1}}, "answers.nonsense"),
        ({**good, "answers": {}}, "answers.overall"),
        ({**good, "occurred_on": local_day("A1", 4)}, "occurred_on"),  # before the form was printed
        ({**good, "occurred_on": local_day("A1", -2)}, "occurred_on"),  # in the future
        ({**good, "occurred_on": "5.3.2026"}, "occurred_on"),
        ({**good, "channel": "fax"}, "channel"),
        ({**good, "contact": "+84 90 000 0000"}, "consent"),
        ({**good, "serial": call}, "channel"),  # a call sheet is a hotline entry
        ({key: value for key, value in good.items() if key != "occurred_on"}, "occurred_on"),
    ]
    for body, field in cases:
        reply = post(server, token, body)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["field"] == field, (body, reply.json())
        assert reply.json()["detail"].startswith(field), reply.json()
    assert response_row(org, serial) is None


def test_forms_of_another_subtree_look_unknown_and_viewers_may_not_key(served) -> None:
    org, server = served
    [serial_b] = print_forms(org, "tp-b")
    never_printed = paper_forms.new_serial()
    body = {"answers": {key: 4 for key in VASH}, "occurred_on": local_day("B")}
    outside = post(server, org.tokens["manager_a1"], {**body, "serial": serial_b})
    unknown = post(server, org.tokens["manager_a1"], {**body, "serial": never_printed})
    assert outside.status_code == unknown.status_code == 404
    assert outside.json()["detail"] == unknown.json()["detail"].replace(never_printed, serial_b)
    assert outside.json()["field"] == "serial"
    read = httpx.get(f"{server.url}/api/v1/paper-forms/{serial_b}", headers=auth_header(org.tokens["manager_a1"]))
    assert read.status_code == 404
    viewer = post(server, org.tokens["viewer_b"], {**body, "serial": serial_b})
    assert viewer.status_code == 403 and viewer.json()["field"] == "role"
    assert response_row(org, serial_b) is None
    assert post(server, org.tokens["admin"], {**body, "serial": serial_b}).status_code == 201


def test_the_qr_text_a_handheld_scanner_types_names_the_form(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    token = org.tokens["manager_a1"]
    typed = paper_forms.qr_payload(serial, "csat", 1)
    assert typed == f"FBP1:{serial}:csat:1"
    loaded = httpx.get(
        f"{server.url}/api/v1/paper-forms/{quote(typed, safe='')}", headers=auth_header(token), timeout=30
    )
    assert loaded.status_code == 200, loaded.text
    form = loaded.json()
    assert (form["serial"], form["survey"]["slug"], form["entered"]) == (serial, "csat", False)
    stored = post(server, token, {"serial": typed, "answers": {"overall": 5}, "occurred_on": local_day("A1", 1)})
    assert stored.status_code == 201, stored.text
    assert stored.json()["serial"] == serial and stored.json()["id"] == paper_forms.response_id(SECRET, serial)
    again = post(server, token, {"serial": serial, "answers": {"overall": 5}, "occurred_on": local_day("A1", 1)})
    assert again.status_code == 200  # the same form, however its serial came in
    # A QR text whose serial's check symbol fails is no serial.
    other = "Z" if serial[-1] != "Z" else "Y"
    body = {"serial": f"FBP1:{serial[:-1]}{other}:csat:1", "answers": {"overall": 5}, "occurred_on": local_day("A1")}
    broken = post(server, token, body)
    assert broken.status_code == 400 and broken.json()["field"] == "serial", broken.text


def test_a_form_of_a_touchpoint_retired_before_its_date_of_service_is_gone(served) -> None:
    org, server = served
    zone = ZoneInfo(ZONES["A1"])
    retired = datetime.combine(datetime.now(zone).date() - timedelta(days=2), datetime.min.time(), zone)
    retired = retired.replace(hour=13)  # the afternoon of two days ago, after that day's noon
    conn = connect(org.db)
    try:
        with conn:
            organisation.add_touchpoint(conn, "A1", "Old hall", "csat", token="tp-old")
            forms = paper_forms.new_forms(
                touchpoint="tp-old",
                unit="A1",
                survey="csat",
                survey_version=1,
                lang="vi",
                paper="A4",
                count=3,
                printed_by="printer",
                now=datetime.now(UTC) - timedelta(days=6),
            )
            paper_forms.register(conn, forms)
            # As `organisation.retire_touchpoint` does (audited), two days ago rather than now.
            with audit.tracked(conn, "touchpoint", "tp-old", "retire"):
                assert organisation_store.retire_touchpoint(conn, "tp-old", retired.astimezone(UTC).isoformat())
    finally:
        conn.close()
    server.app.state.catalog.invalidate()
    token = org.tokens["manager_a1"]
    before, that_day, after = (form["serial"] for form in forms)
    # A form is dated noon of its day of service: given before the retirement, it is taken.
    kept = post(server, token, {"serial": before, "answers": {"overall": 4}, "occurred_on": local_day("A1", 3)})
    assert kept.status_code == 201, kept.text
    same_day = post(server, token, {"serial": that_day, "answers": {"overall": 4}, "occurred_on": local_day("A1", 2)})
    assert same_day.status_code == 201, same_day.text
    gone = post(server, token, {"serial": after, "answers": {"overall": 4}, "occurred_on": local_day("A1", 1)})
    assert gone.status_code == 410 and gone.json()["field"] == "touchpoint", gone.text
    assert response_row(org, after) is None and response_row(org, before) is not None


def test_a_form_keeps_the_version_it_was_printed_with(served) -> None:
    org, server = served
    [old] = print_forms(org, "tp-a1a")
    conn = connect(org.db)
    try:
        with conn:
            speed = msgspec.structs.replace(HAOCHAPING.questions[0], key="speed", primary=False)
            version = surveys.publish(
                conn, msgspec.structs.replace(HAOCHAPING, questions=[*HAOCHAPING.questions, speed])
            )
    finally:
        conn.close()
    server.app.state.catalog.invalidate()
    assert version >= 2
    in_force = httpx.get(f"{server.url}/api/v1/touchpoints/tp-a1a/survey", timeout=30).json()
    assert in_force["version"] == version
    token = org.tokens["manager_a1"]
    day = local_day("A1a")
    # The new version's question is not on the old form; the old form needs only its own.
    refused = post(server, token, {"serial": old, "answers": {"overall": 3, "speed": 3}, "occurred_on": day})
    assert refused.status_code == 400 and refused.json()["field"] == "answers.speed"
    stored = post(server, token, {"serial": old, "answers": {"overall": 3}, "occurred_on": day})
    assert stored.status_code == 201, stored.text
    assert response_row(org, old)["survey_version"] == 1
    loaded = httpx.get(f"{server.url}/api/v1/paper-forms/{old}", headers=auth_header(token), timeout=30).json()
    assert loaded["survey"]["version"] == 1 and "speed" not in [q["key"] for q in loaded["survey"]["questions"]]


def test_a_bad_rating_opens_the_same_action_as_through_the_api(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    token = org.tokens["manager_a1"]
    keyed = post(server, token, {"serial": serial, "answers": {"overall": 1}, "occurred_on": local_day("A1")})
    assert keyed.status_code == 201
    online = httpx.post(
        f"{server.url}/api/v1/responses", json={"touchpoint": "tp-a1", "answers": {"overall": 1}}, timeout=30
    ).json()
    found = {
        row["response_id"]: row
        for row in rows(org, "SELECT response_id, kind, unit, touchpoint, status, title FROM actions")
        if row["response_id"] in (keyed.json()["id"], online["id"])
    }
    assert set(found) == {keyed.json()["id"], online["id"]}
    shape = {k: v for k, v in found[keyed.json()["id"]].items() if k != "response_id"}
    assert shape == {k: v for k, v in found[online["id"]].items() if k != "response_id"}


def test_many_forms_at_once_each_get_their_result(served) -> None:
    org, server = served
    first, second = print_forms(org, "tp-a1", 2)
    token = org.tokens["manager_a1"]
    day = local_day("A1")
    items = [
        {"serial": first, "answers": {"overall": 5}, "occurred_on": day},
        {"serial": second, "answers": {"overall": 7}, "occurred_on": day},
        {"serial": first, "answers": {"overall": 2}, "occurred_on": day},
        {"serial": paper_forms.new_serial(), "answers": {"overall": 2}, "occurred_on": day},
    ]
    reply = post(server, token, {"items": items})
    assert reply.status_code == 200, reply.text
    results = reply.json()["items"]
    assert [r["status"] for r in results] == ["stored", "rejected", "conflict", "rejected"]
    assert results[1]["error"]["field"] == "answers.overall" and results[1]["error"]["status_code"] == 400
    assert results[2]["error"]["status_code"] == 409 and results[2]["error"]["review"] > 0
    assert results[3]["error"]["status_code"] == 404
    assert post(server, token, {"items": items[:1]}).json()["items"][0]["status"] == "duplicate"


# -- deciding on a second entry ------------------------------------------------------------------------------


def measures(org: Org, table: str, key: str, day_from: str, day_to: str) -> dict:
    """The non-empty rows of a rollup table over some days."""
    cols = ", ".join(ROLLUP_MEASURES) if table != "rollup_indicators" else "n, sum"
    found = rows(org, f"SELECT {key}, {cols} FROM {table} WHERE day BETWEEN ? AND ?", (day_from, day_to))
    return {
        tuple(row[k.strip()] for k in key.split(",")): tuple(round(float(row[m]), 6) for m in cols.split(", "))
        for row in found
        if any(row[m] for m in cols.split(", "))
    }


def fresh(org: Org, day_from: str, day_to: str) -> dict[str, dict]:
    """What a rebuild of those days from the stored responses gives (in a transaction rolled back)."""
    conn = connect_writer(str(org.db))
    try:
        dialect.of(conn).begin_write(conn)
        rebuild(conn, day_from, day_to)
        found = {}
        for table, key in TABLES:
            cols = ", ".join(ROLLUP_MEASURES) if table != "rollup_indicators" else "n, sum"
            cursor = conn.execute(f"SELECT {key}, {cols} FROM {table} WHERE day BETWEEN ? AND ?", (day_from, day_to))
            names = [d[0] for d in cursor.description]
            width = len(key.split(","))
            found[table] = {
                tuple(row[:width]): tuple(round(float(v), 6) for v in row[width:])
                for row in (tuple(r) for r in cursor.fetchall())
                if any(row[width:])
            }
            assert names
        conn.execute("ROLLBACK")
        return found
    finally:
        conn.close()


TABLES = (
    ("rollups", "unit, day, service, touchpoint"),
    ("rollups_unit_day", "unit, day"),
    ("heatmap_rollups", "unit, day, hour"),
    ("rollup_indicators", "unit, day, service, touchpoint, indicator"),
)


def decide(server: Server, user: str, review: int, how: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client, server, user, PASSWORD)
        token = csrf_token(client, "/manage/entry/conflicts")
        page = client.get("/manage/entry/conflicts")
        assert f'id="review-{review}"' in page.text
        return client.post(f"/manage/entry/conflicts/{review}/{how}", data={"_csrf_token": token})


@pytest.mark.postgres_covered_elsewhere
def test_a_person_keeps_the_first_entry(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    token = org.tokens["manager_a1"]
    day = local_day("A1", 1)
    assert post(server, token, {"serial": serial, "answers": {"overall": 4}, "occurred_on": day}).status_code == 201
    before = response_row(org, serial)
    review = post(server, token, {"serial": serial, "answers": {"overall": 2}, "occurred_on": day}).json()["review"]
    reply = decide(server, "mai", review, "keep-first")
    assert reply.status_code == 303 and reply.headers["location"].endswith("done=kept_first")
    assert response_row(org, serial) == before
    [decided] = rows(org, "SELECT status, resolved_by FROM paper_entry_conflicts WHERE id = ?", (review,))
    assert decided == {"status": "kept_first", "resolved_by": "mai"}
    assert decide_again(server, review).status_code == 409  # decided once


def decide_again(server: Server, review: int) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client, server, "mai", PASSWORD)
        token = csrf_token(client, "/manage/entry/conflicts")
        return client.post(f"/manage/entry/conflicts/{review}/take-second", data={"_csrf_token": token})


def test_taking_the_second_entry_replaces_the_stored_one_and_its_rates(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    token = org.tokens["manager_a1"]
    first_day, second_day = local_day("A1", 4), local_day("A1", 3)
    body = {"serial": serial, "answers": {"overall": 5, "comment": "Rất nhanh QXWZ"}, "occurred_on": first_day}
    assert post(server, token, body).status_code == 201
    before = response_row(org, serial)
    # Another form of the day it moves to; both days sealed before the change.
    [neighbour] = print_forms(org, "tp-a1")
    assert (
        post(server, token, {"serial": neighbour, "answers": {"overall": 4}, "occurred_on": second_day}).status_code
        == 201
    )
    assert seal(org, first_day) and seal(org, second_day)
    second = {"serial": serial, "answers": {"overall": 1, "reasons": ["waiting_time"]}, "occurred_on": second_day}
    reply = post(server, org.tokens["admin"], second)
    assert reply.status_code == 409, reply.text
    review = reply.json()["review"]
    assert decide(server, "mai", review, "take-second").status_code == 303
    after = response_row(org, serial)
    assert (after["id"], after["receipt"], after["server_time"]) == (
        before["id"],
        before["receipt"],
        before["server_time"],
    )
    assert msgspec.json.decode(after["answers"]) == {"overall": 1, "reasons": ["waiting_time"]}
    assert (after["day"], after["level"], after["entered_by"]) == (second_day, 1, "root")
    # Rollups: what a rebuild from the stored responses gives, on both days.
    rebuilt = fresh(org, first_day, second_day)
    for table, key in TABLES:
        assert measures(org, table, key, first_day, second_day) == rebuilt[table], table
    assert rows(org, "SELECT n FROM rollups WHERE touchpoint = 'tp-a1' AND day = ?", (first_day,)) in ([], [{"n": 0}])
    # The change is logged (digests only), the bad rating opened its action, the old comment left the search.
    logged = rows(org, "SELECT action FROM audit_log WHERE kind = 'response' AND record_id = ?", (before["id"],))
    assert [row["action"] for row in logged] == ["entry_taken"]
    assert rows(org, "SELECT count(*) AS n FROM actions WHERE response_id = ?", (before["id"],))[0]["n"] == 1
    if org.backend == "sqlite":
        hits = rows(org, "SELECT count(*) AS n FROM comment_search WHERE comment_search MATCH '\"QXWZ\"'")
    else:
        hits = rows(org, "SELECT count(*) AS n FROM comment_search WHERE body ILIKE '%QXWZ%'")
    assert hits[0]["n"] == 0
    # The seals still verify: the response left its first day through a logged change.
    assert audit_verify.verify_database(str(org.db)).days >= 2


@pytest.mark.postgres_covered_elsewhere
def test_a_decided_second_entry_keeps_no_copy_of_its_contact(served) -> None:
    org, server = served
    token = org.tokens["manager_a1"]
    day = local_day("A1", 1)
    decisions = {}
    for decision in ("take-second", "keep-first"):
        [serial] = print_forms(org, "tp-a1")
        assert post(server, token, {"serial": serial, "answers": {"overall": 4}, "occurred_on": day}).status_code == 201
        second = {"serial": serial, "answers": {"overall": 5}, "occurred_on": day, "contact": "+84 90 555 0101"}
        reply = post(server, token, {**second, "consent": True})
        assert reply.status_code == 409, reply.text
        review = reply.json()["review"]
        assert decide(server, "mai", review, decision).status_code == 303
        decisions[decision] = (review, response_row(org, serial))
    for review, _ in decisions.values():
        assert rows(org, "SELECT contact FROM paper_entry_conflicts WHERE id = ?", (review,)) == [{"contact": None}]
    taken = decisions["take-second"][1]
    assert rows(org, "SELECT contact FROM contacts WHERE response_id = ?", (taken["id"],)) == [
        {"contact": "+84 90 555 0101"}
    ]


def seal(org: Org, day: str) -> int | None:
    """Seal what unit A1 holds of a day so far, as the daily job does once the day has closed."""
    conn = connect_writer(str(org.db))
    try:
        dialect.of(conn).begin_write(conn)
        seq = audit_seals.seal_day(conn, "A1", day, datetime.now(UTC).isoformat())
        conn.execute("COMMIT")
        return seq
    finally:
        conn.close()


# -- the hotline ------------------------------------------------------------------------------------------------


def httpx_call_sheet(server: Server, token: str, touchpoint: str, lang: str | None = None) -> dict:
    reply = httpx.post(
        f"{server.url}/api/v1/touchpoints/{touchpoint}/call-sheets",
        json={"lang": lang} if lang else {},
        headers=auth_header(token),
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_a_hotline_call_with_a_consented_call_back_number(served) -> None:
    org, server = served
    token = org.tokens["manager_a1"]
    sheet = httpx_call_sheet(server, token, "tp-a1", "ru")
    assert (sheet["paper"], sheet["lang"], sheet["entered"], sheet["survey"]["slug"]) == ("call", "ru", False, "csat")
    assert sheet["touchpoint"]["token"] == "tp-a1" and sheet["printed_on"] == sheet["today"] == local_day("A1")
    body = {"serial": sheet["serial"], "answers": {"overall": 2}, "occurred_on": sheet["today"], "channel": "hotline"}
    refused = post(server, token, {**body, "contact": "+84 91 234 5678"})
    assert refused.status_code == 400 and refused.json()["field"] == "consent"
    stored = post(server, token, {**body, "contact": "+84 91 234 5678", "consent": True})
    assert stored.status_code == 201, stored.text
    row = response_row(org, sheet["serial"])
    assert (row["channel"], row["lang"], row["entered_by"]) == ("hotline", "ru", "lan")
    [contact] = rows(org, "SELECT contact FROM contacts WHERE response_id = ?", (row["id"],))
    assert contact["contact"] == "+84 91 234 5678"
    # A level-2 rating opens the same action any channel's would.
    assert rows(org, "SELECT count(*) AS n FROM actions WHERE response_id = ?", (row["id"],))[0]["n"] == 1
    # Another subtree's touchpoint takes no call from this token; a language the survey lacks is refused.
    other = httpx.post(f"{server.url}/api/v1/touchpoints/tp-b/call-sheets", json={}, headers=auth_header(token))
    assert other.status_code == 403
    bad = httpx.post(
        f"{server.url}/api/v1/touchpoints/tp-a1/call-sheets", json={"lang": "xx"}, headers=auth_header(token)
    )
    assert bad.status_code == 400 and bad.json()["field"] == "lang"


def test_the_signed_in_screen_posts_with_its_csrf_token(served) -> None:
    org, server = served
    [serial] = print_forms(org, "tp-a1")
    body = {"serial": serial, "answers": {"overall": 3}, "occurred_on": local_day("A1")}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client, server, "mai", PASSWORD)
        page = client.get("/manage/entry")
        assert page.status_code == 200 and 'src="/static/entry.js"' in page.text
        token = csrf_token(client, "/manage/entry/conflicts")
        without = client.post("/api/v1/paper-entries", json=body)
        assert without.status_code == 403 and without.json()["field"] == "csrf"
        assert response_row(org, serial) is None
        stored = client.post("/api/v1/paper-entries", json=body, headers={"x-csrftoken": token})
        assert stored.status_code == 201, stored.text
    assert response_row(org, serial)["entered_by"] == "mai"


# -- the screen, by keyboard alone -------------------------------------------------------------------------------


FORMS = 20
COMMENT = "Долго ждали"  # one form carries a comment, typed in full


def test_twenty_forms_keyed_by_keyboard_alone(served, browser, backend: str) -> None:
    """Ваш контроль's form: five criteria, then a comment and a call-back contact, both mostly left blank."""
    if backend != "sqlite":
        pytest.skip("the screen does not depend on the database: keyed once, on SQLite")
    org, server = served
    serials = print_forms(org, "tp-b", FORMS)
    day = local_day("B", 1)
    typed_day = day[8:10] + day[5:7] + day[0:4]
    expected = {serial: [(n + i) % 5 + 1 for i in range(5)] for n, serial in enumerate(serials)}
    context = browser.new_context(locale="ru-RU", bypass_csp=True)  # axe is injected
    try:
        page = context.new_page()
        sign_in(page, server, "boris", PASSWORD, next_path="/manage/entry")
        page.goto(f"{server.url}/manage/entry?lang=ru")
        page.wait_for_function("document.activeElement && document.activeElement.id === 'entry-serial'")
        assert_accessible(page)
        keys = 0  # every key but the comment's own text
        started = time.monotonic()
        for n, serial in enumerate(serials):
            code = serial.replace("-", "")
            if n == 1:  # a handheld scanner reads the QR code: it types the code's text and Enter itself
                page.keyboard.type(paper_forms.qr_payload(serial, "vash_kontrol", 1))
                keys -= len(code)  # one press of the scanner's trigger instead of the ten symbols
            else:
                page.keyboard.type(code)
            page.keyboard.press("Enter")
            for digit in expected[serial]:
                page.keyboard.press(str(digit))
            if n == 2:
                page.keyboard.type(COMMENT)
            page.keyboard.press("Enter")  # the comment (Enter alone: none)
            page.keyboard.press("Enter")  # the call-back contact: none
            keys += len(code) + 1 + 5 + 2
            if n == 0:  # the first form's date is typed; the next ones keep it
                page.keyboard.type(typed_day)
                keys += len(typed_day)
            page.keyboard.press("Enter")  # on the date: save, and back to the serial
            keys += 1
        page.wait_for_function(f"document.getElementById('entry-count').textContent === '{FORMS}'", timeout=60_000)
        seconds = time.monotonic() - started
        assert page.evaluate("document.activeElement.id") == "entry-serial"
        # A form loaded again: its questions on screen, and word that it was entered before.
        page.keyboard.type(serials[0])
        page.keyboard.press("Enter")
        page.wait_for_function("document.activeElement && document.activeElement.id === 'q-service_time'")
        assert "квитанция" in page.inner_text("#entry-status").lower()
        assert_accessible(page)
        save_screenshot(page, ARTIFACTS / "manage_entry.png")
    finally:
        context.close()
    stored = {
        row["id"]: row
        for row in rows(org, "SELECT id, answers, day, channel, entered_by FROM responses WHERE channel = 'paper'")
    }
    for n, (serial, digits) in enumerate(expected.items()):
        row = stored[paper_forms.response_id(SECRET, serial)]
        answers = dict(zip(VASH, digits, strict=True)) | ({"comment": COMMENT} if n == 2 else {})
        assert msgspec.json.decode(row["answers"]) == answers, serial
        assert (row["day"], row["entered_by"]) == (day, "boris")
    # Ten serial symbols, Enter, five digits, Enter past the comment and the contact, Enter on the kept date:
    # 19 keys (the first form adds the date's eight digits, the scanned one takes ten fewer), well within
    # 15 s for a trained clerk.
    assert keys == FORMS * 19 + 8 - 10
    assert keys / FORMS <= 25
    print(f"\nkeyed {FORMS} Ваш контроль forms: {keys / FORMS:.1f} keys and {seconds / FORMS:.2f} s per form")


def test_a_hotline_call_from_the_screen(served, browser, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the screen does not depend on the database: checked once, on SQLite")
    org, server = served
    context = browser.new_context(locale="vi-VN", bypass_csp=True)
    try:
        page = context.new_page()
        sign_in(page, server, "mai", PASSWORD, next_path="/manage/entry?channel=hotline")
        page.goto(f"{server.url}/manage/entry?channel=hotline&lang=vi")
        page.select_option("#call-touchpoint", "tp-a1")
        page.select_option("#call-lang", "ru")
        page.focus("#call-start")
        page.keyboard.press("Enter")
        page.wait_for_function("document.activeElement && document.activeElement.id === 'q-overall'")
        greeting = page.inner_text("#entry-script-greeting")
        assert "Здравствуйте" in greeting and page.get_attribute("#entry-script-greeting", "lang") == "ru"
        assert_accessible(page)
        save_screenshot(page, ARTIFACTS / "manage_entry_hotline.png")
        page.keyboard.press("2")  # overall: dissatisfied, so the reasons are asked
        page.keyboard.press("1")  # reasons: the first option ticked
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")  # no comment
        page.keyboard.type("+7 914 000 11 22")
        page.keyboard.press("Enter")
        page.keyboard.press("1")  # consent, and the last field: the call is saved
        page.wait_for_function("document.getElementById('entry-count').textContent === '1'")
        assert page.evaluate("document.activeElement.id") == "call-start"
    finally:
        context.close()
    [row] = rows(
        org,
        "SELECT id, answers, lang, channel, entered_by FROM responses WHERE channel = 'hotline' AND entered_by = 'mai'",
    )
    assert msgspec.json.decode(row["answers"]) == {"overall": 2, "reasons": ["waiting_time"]}
    assert row["lang"] == "ru"
    assert rows(org, "SELECT contact FROM contacts WHERE response_id = ?", (row["id"],)) == [
        {"contact": "+7 914 000 11 22"}
    ]


def assert_accessible(page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    serious = axe_violations(page)
    assert serious == []


# -- texts ----------------------------------------------------------------------------------------------------------


def test_every_text_of_entry_is_in_the_four_languages() -> None:
    sources = [
        (ROOT / "feedback" / "web" / "templates" / "manage" / "entry.html", "jinja2.ext:babel_extract"),
        (ROOT / "feedback" / "web" / "templates" / "manage" / "entry_conflicts.html", "jinja2.ext:babel_extract"),
        (ROOT / "feedback" / "web" / "manage" / "entry_pages.py", "python"),
    ]
    ids: set[str] = {"Paper entry"}  # the manager nav's link
    for path, method in sources:
        ids |= {message for _, message, _, _ in extract_from_file(method, str(path), keywords={"_": None, "N_": None})}
    assert len(ids) > 60
    for folder in ("vi", "ru", "zh_Hans", "en"):
        po = ROOT / "feedback" / "locales" / folder / "LC_MESSAGES" / "manage_entry.po"
        with po.open("rb") as handle:
            messages = {m.id: m.string for m in read_po(handle) if m.id}
        assert not sorted(ids - set(messages)), folder
        if folder == "en":
            continue  # English is the message ids themselves
        missing = sorted(i for i in ids if not messages[i])
        assert not missing, (folder, missing)
        for message_id, text in messages.items():
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(message_id)), (folder, message_id)


PLACEHOLDER = re.compile(r"%\((\w+)\)s")
