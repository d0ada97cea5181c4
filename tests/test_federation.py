"""Reporting upward between installations: a parent and two children, three real servers on 127.0.0.1.

The children are paired with `feedback federation invite` / `join`, take responses through their own public
API over several days, and report each closed day with `feedback tick --job federation.report`. The link is
cut for a day (the parent stopped): the run fails, says so, and loses nothing; once the parent is back, the
next run catches every missed day up. Then the parent's rates over each child's subtree, and over its own
units the children hang under, must equal what the children themselves answer: n, satisfied, rate, ci95.
The parent is on each backend; the children on SQLite files.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedback import federation, federation_child
from feedback.catalog import load_snapshot
from feedback.db import open_database
from feedback.rates import wilson
from feedback.store import federation as federation_store
from tests.conftest import (
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    connect,
    default_plugins,
    make_org,
    rows,
    run_cli,
    run_cli_together,
)

pytestmark = BOTH_BACKENDS

SECRET_ENV = {"FEEDBACK_SECRET": "test-secret"}
ZONES = (ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("Asia/Sakhalin"))  # the zones of make_org's units
VASH_KEYS = ("service_time", "waiting_time", "staff_courtesy", "premises", "information")
# What a report must never carry, as a key anywhere in it.
PERSONAL_KEYS = {"answers", "comment", "comments", "contact", "contacts", "officer", "case_ref", "receipt", "owner"}
COMMENT = "Cán bộ Nguyễn Văn Bình rất chậm"
OFFICER = "OFF-4471"
PHONE = "+84 90 555 0101"
# Each child hangs under one of the parent's units; its responses: (touchpoint, levels) per day back.
CHILDREN = {
    "north": ("A1", {"tp-a1": [5, 4, 2], "tp-a": [5, 5], "tp-b": [4, 1]}),
    "south": ("B", {"tp-a1": [3, 5], "tp-b": [5, 5, 5, 2], "tp-a1a": [4]}),
}
DAYS_BACK = range(2, 8)  # on closed days in every zone of the children's units


@dataclass
class Child:
    org: Org
    server: Server
    hangs_under: str
    code: str = ""
    id: str = ""


@dataclass
class Federation:
    parent: Org
    server: Server
    children: dict[str, Child] = field(default_factory=dict)

    def admin(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{self.server.url}{path}", params=params, headers=auth_header(self.parent.tokens["admin"]))


def closed_through(now: datetime) -> date:
    """The last day that has ended in every zone of the children's units (as the job counts)."""
    return min(now.astimezone(zone).date() for zone in ZONES) - timedelta(days=1)


def respond(server: Server, touchpoint: str, level: int, days_ago: int, **extra: Any) -> None:
    """A rating through the child's public API, given `days_ago` days back at noon in Ho Chi Minh City."""
    moment = datetime.combine(datetime.now(ZONES[0]).date() - timedelta(days=days_ago), clock(12), ZONES[0])
    if touchpoint == "tp-b":
        answers: dict[str, Any] = {key: level for key in VASH_KEYS}
    elif touchpoint == "tp-a1a":
        answers = {"overall": level}
    else:
        answers = {"overall": level, **extra.pop("answers", {})}
    body = {"touchpoint": touchpoint, "answers": answers, "submitted_at": moment.isoformat(), **extra}
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=30)
    assert reply.status_code == 201, reply.text


def run_all(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Commands of `feedback` run at the same time (each a process of its own), with the servers' secret."""
    return run_cli_together(*commands, env=SECRET_ENV)


def tick_children(fed: Federation, now: datetime | None = None) -> list[subprocess.CompletedProcess]:
    moment = ["--now", now.isoformat()] if now else []
    return run_all(
        *(("tick", "--db", str(c.org.db), "--job", "federation.report", *moment) for c in fed.children.values())
    )


def link_of(child: Child) -> dict[str, Any]:
    """What `feedback federation status` shows of the child's link (read here, not in a process of its own)."""
    db = open_database(str(child.org.db))
    try:
        found = federation_child.link_status(db.conn)
    finally:
        db.close()
    assert found is not None
    return found


def day_with_figures(fed: Federation, child: Child) -> str:
    """The latest day the child reported ratings on."""
    return rows(fed.parent, "SELECT max(day) AS day FROM federation_rollups WHERE child = ?", (child.id,))[0]["day"]


def restart(server: Server) -> Server:
    """A new server over the same database on the same address (the children know the parent by it)."""
    again = Server(server.db, env=dict(server.env))
    again.port, again.url = server.port, server.url
    return again.start()


@pytest.fixture(scope="module")
def fed(shared_org: Org, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    folder = tmp_path_factory.mktemp("children")
    servers: list[Server] = []
    # Jobs only when a test runs them: each run is one the test can see.
    parent = Server(shared_org.db, env={"FEEDBACK_JOBS": "0"}).start()
    servers.append(parent)
    result = Federation(shared_org, parent)
    try:
        for name, (unit, ratings) in CHILDREN.items():
            org = make_org(folder / f"{name}.db")
            server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
            servers.append(server)
            result.children[name] = Child(org, server, unit)
            for days_ago in DAYS_BACK:
                for touchpoint, levels in ratings.items():
                    for level in levels[: 1 + days_ago % len(levels)]:
                        respond(server, touchpoint, level, days_ago)
            # What a report must leave behind: a comment, a contact, an officer, a case reference.
            respond(
                server, "tp-a1", 1, 3, answers={"comment": COMMENT, "contact": PHONE}, officer=OFFICER, case_ref="HS-77"
            )
        # The parent's own ratings, at the units the children hang under.
        for days_ago in DAYS_BACK:
            respond(parent, "tp-a1", 5 if days_ago % 2 else 2, days_ago)
            respond(parent, "tp-b", 4, days_ago)
        yield result
    finally:
        for server in (result.server, *servers[1:]):
            server.stop()


@pytest.fixture(scope="module")
def paired(fed: Federation) -> Federation:
    """Both children paired: a code printed by the parent's command, taken by each child's."""
    invites = run_all(
        *(("federation", "invite", "--db", str(fed.parent.db), "--unit", c.hangs_under) for c in fed.children.values())
    )
    for child, invite in zip(fed.children.values(), invites, strict=True):
        assert invite.returncode == 0, invite.stderr
        child.code = invite.stdout.strip().splitlines()[-1]
        assert "valid until" in invite.stderr
    joins = run_all(
        *(
            ("federation", "join", "--db", str(c.org.db), "--parent", fed.server.url, "--code", c.code)
            for c in fed.children.values()
        )
    )
    for child, joined in zip(fed.children.values(), joins, strict=True):
        assert joined.returncode == 0, joined.stderr
        answer = json.loads(joined.stdout)
        assert answer["unit"] == child.hangs_under and answer["units"] == ["A", "B"]
        child.id = answer["child"]
    return fed


# -- pairing ----------------------------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_pairing_stores_the_child_and_its_key_and_a_used_code_is_refused(paired: Federation) -> None:
    fed = paired
    children = {row["id"]: row for row in rows(fed.parent, "SELECT * FROM federation_children")}
    for child in fed.children.values():
        stored = children[child.id]
        assert stored["unit"] == child.hangs_under and json.loads(stored["roots"]) == ["A", "B"]
        link = rows(child.org, "SELECT * FROM federation_link")[0]
        assert link["public_key"] == stored["public_key"] and link["child_id"] == child.id
        # The private key is kept encrypted under the installation's secret, never in the clear.
        key = federation.unseal_private_key(link["private_key"], "test-secret")
        assert key is not None and federation.public_key_text(key) == stored["public_key"]
        assert federation.unseal_private_key(link["private_key"], "another-secret") is None
        # The code is spent: a second child with it is refused, and the code is stored hashed only.
        again = httpx.post(
            f"{fed.server.url}/api/v1/federation/join",
            json={"code": child.code, "public_key": link["public_key"], "name": "again", "units": ["A"]},
        )
        assert again.status_code == 404 and again.json()["field"] == "code", again.text
    codes = rows(fed.parent, "SELECT code_hash, used_at, child FROM federation_invites")
    assert {row["child"] for row in codes} == {c.id for c in fed.children.values()}
    assert all(row["used_at"] and len(row["code_hash"]) == 64 for row in codes)
    assert not any(c.code.replace("-", "") in json.dumps(codes) for c in fed.children.values())
    # A child already paired does not pair again by mistake.
    north = fed.children["north"]
    twice = run_cli(
        "federation", "join", "--db", str(north.org.db), "--parent", fed.server.url, "--code", "X" * 20, env=SECRET_ENV
    )
    assert twice.returncode == 2 and "--force" in twice.stderr
    # Only an http(s) parent, and a refused join leaves the link as it was.
    elsewhere = run_cli(
        "federation",
        "join",
        "--db",
        str(north.org.db),
        "--parent",
        "ftp://127.0.0.1/",
        "--code",
        "X",
        "--force",
        env=SECRET_ENV,
    )
    assert elsewhere.returncode == 1 and "parent:" in elsewhere.stderr
    status = run_cli("federation", "status", "--db", str(north.org.db), env=SECRET_ENV)
    shown = json.loads(status.stdout)["parent"]
    assert shown["child"] == north.id and shown["parent_url"] == fed.server.url
    assert "private_key" not in shown and "BEGIN" not in status.stdout


@pytest.mark.postgres_covered_elsewhere
def test_wrong_codes_are_limited_per_client_before_any_is_checked(org: Org, start_server) -> None:
    server = start_server(org.db)
    db = open_database(str(org.db))
    try:
        with db.conn:
            code, _expires = federation.create_invite(db.conn, "A")
    finally:
        db.close()
    key = federation.public_key_text(federation.new_private_key())

    def join(code: str) -> httpx.Response:
        body = {"code": code, "public_key": key, "name": "child", "units": ["A"]}
        return httpx.post(f"{server.url}/api/v1/federation/join", json=body, timeout=30)

    assert join("not-a-code").status_code == 404
    for _ in range(federation.JOIN_GUESSES - 1):
        assert join("ABCDE-FGHJK-LMNPQ-RSTUV").status_code == 404
    refused = join(code)  # the right code, but the client has had its guesses: never checked
    assert refused.status_code == 429 and refused.json()["field"] == "code"
    assert rows(org, "SELECT used_at FROM federation_invites")[0]["used_at"] is None
    bad_key = httpx.post(
        f"{server.url}/api/v1/federation/join", json={"code": code, "public_key": "xx", "name": "c", "units": ["A"]}
    )
    assert bad_key.status_code in (400, 429)


# -- reports: the outage and the catch-up -------------------------------------------------------------------------


def test_reports_catch_up_after_the_link_is_cut_and_the_parent_rates_equal_the_childrens(paired: Federation) -> None:
    fed = paired
    now = datetime.now(UTC)
    early = now - timedelta(days=4)
    for done in tick_children(fed, early):
        assert done.returncode == 0, done.stderr
    for child in fed.children.values():
        link = link_of(child)
        assert link["acknowledged_through"] == closed_through(early).isoformat() and link["last_error"] is None
    sent_before = {name: link_of(child)["acknowledged_days"] for name, child in fed.children.items()}

    # The link is cut for a day: the run fails, says why, and marks nothing sent.
    fed.server.stop()
    for done in tick_children(fed, now - timedelta(days=2)):
        assert done.returncode != 0 and "federation.report" in done.stderr
    for name, child in fed.children.items():
        link = link_of(child)
        assert "cannot be reached" in link["last_error"]
        assert link["acknowledged_days"] == sent_before[name]
        assert link["acknowledged_through"] == closed_through(early).isoformat()

    # Back again: the next run sends every missed day, in order.
    fed.server = restart(fed.server)
    for done in tick_children(fed):
        assert done.returncode == 0, done.stderr
    last = closed_through(now).isoformat()
    for child in fed.children.values():
        link = link_of(child)
        assert link["acknowledged_through"] == last and link["last_error"] is None
        days = [
            row["day"] for row in rows(fed.parent, "SELECT day FROM federation_reports WHERE child = ?", (child.id,))
        ]
        first = min(days)
        assert days == federation_child.days_between(date.fromisoformat(first), date.fromisoformat(last))
    listed = {item["child"]: item for item in fed.admin("/api/v1/federation/children").json()}
    assert {item["as_of"] for item in listed.values()} == {last}

    assert_parent_rates_equal_childrens(fed, last)


def same_rate(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    for key in ("n", "satisfied", "rate", "sufficient", "dissatisfied", "levels", "suspect"):
        assert mine[key] == theirs[key], (key, mine, theirs)
    assert mine["ci95"] == pytest.approx(theirs["ci95"]) and mine["mean_score"] == pytest.approx(theirs["mean_score"])


def rates_of(fed: Federation, server: Server, org: Org, unit: str, last: str, by: str = "unit") -> dict[str, Any]:
    first = (date.fromisoformat(last) - timedelta(days=12)).isoformat()
    reply = httpx.get(
        f"{server.url}/api/v1/satisfaction",
        params={"unit": unit, "from": first, "to": last, "by": by},
        headers=auth_header(org.tokens["admin"]),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def assert_parent_rates_equal_childrens(fed: Federation, last: str) -> None:
    for child in fed.children.values():
        totals = []
        for root in ("A", "B"):
            own = rates_of(fed, child.server, child.org, root, last)
            theirs = rates_of(fed, fed.server, fed.parent, f"{child.id}:{root}", last)
            same_rate(theirs["total"], own["total"])
            assert theirs["reported"] == [
                {"child": child.id, "name": "Agency A, Пост Б", "unit": child.hangs_under, "as_of": last}
            ]
            # Day by day and unit by unit too.
            own_days = rates_of(fed, child.server, child.org, root, last, by="day")
            their_days = rates_of(fed, fed.server, fed.parent, f"{child.id}:{root}", last, by="day")
            assert [r["key"] for r in their_days["rows"]] == [r["key"] for r in own_days["rows"]]
            for mine, theirs_row in zip(own_days["rows"], their_days["rows"], strict=True):
                same_rate(theirs_row, mine)
            totals.append(own["total"])
        # The parent's unit the child hangs under: its own responses and the child's aggregates together.
        under = rates_of(fed, fed.server, fed.parent, child.hangs_under, last)
        reported = [row for row in under["rows"] if "reported" in row]
        assert {row["key"] for row in reported} == {f"{child.id}:A", f"{child.id}:B"}
        for row, own_total in zip(sorted(reported, key=lambda r: r["key"]), totals, strict=True):
            same_rate(row, own_total)
            assert row["reported"] == {"child": child.id, "name": "Agency A, Пост Б", "as_of": last}
        own_rows = [row for row in under["rows"] if "reported" not in row]
        assert own_rows, "the parent's own responses at the unit"
        n = sum(row["n"] for row in under["rows"])
        satisfied = sum(row["satisfied"] for row in under["rows"])
        assert under["total"]["n"] == n and under["total"]["satisfied"] == satisfied
        assert under["total"]["rate"] == pytest.approx(satisfied / n)
        assert under["total"]["ci95"] == pytest.approx(list(wilson(satisfied, n)))
        # And one level up (A above A1): the child's whole tree rolls into the unit it hangs under.
        if child.hangs_under == "A1":
            above = rates_of(fed, fed.server, fed.parent, "A", last)
            row = next(r for r in above["rows"] if r["key"] == "A1")
            same_rate(row, under["total"])
    units = {item["code"]: item for item in fed.admin("/api/v1/units").json()}
    north = fed.children["north"]
    assert units[f"{north.id}:A"]["parent"] == "A1" and units[f"{north.id}:A1"]["parent"] == f"{north.id}:A"
    assert units[f"{north.id}:A1"]["reported"] == {"child": north.id, "name": "Agency A, Пост Б", "as_of": last}
    assert units[f"{north.id}:A1"]["names"] == {"vi": "Đơn vị A1", "en": "Unit A1"}
    assert "reported" not in units["A1"]


def test_no_response_comment_contact_or_officer_crosses(paired: Federation) -> None:
    fed = paired
    for child in fed.children.values():
        db = open_database(str(child.org.db))
        try:
            snapshot = load_snapshot(db.conn, default_plugins())
            link = federation_store.link(db.conn)
            bodies = [
                federation_child.report_content(db.conn, snapshot, child.id, ["A", "B"], day, datetime.now(UTC))
                for day in federation_store.acknowledged(db.conn)
            ]
        finally:
            db.close()
        assert link is not None and len(bodies) >= len(DAYS_BACK)
        for body in bodies:
            assert not (keys_of(body) & PERSONAL_KEYS), keys_of(body) & PERSONAL_KEYS
            text = json.dumps(body, ensure_ascii=False)
            for secret in (COMMENT, OFFICER, PHONE, "HS-77"):
                assert secret not in text
        assert any(body["rollups"] for body in bodies)
    # Nor does anything of them reach the parent's database.
    for table in ("federation_reports", "federation_rollups", "units", "audit_log"):
        text = json.dumps(rows(fed.parent, f"SELECT * FROM {table}"), ensure_ascii=False, default=str)
        for secret in (COMMENT, OFFICER, PHONE, "HS-77"):
            assert secret not in text, (table, secret)


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(keys_of(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(item) for item in value))
    return set()


# -- reports: signatures, replays, the child's own tree -----------------------------------------------------------


def signed_report(fed: Federation, child: Child, day: str, change=None, key=None, sent_at: str | None = None):
    """(body, headers) of the child's real report of `day`, signed with its own key (or `key`), optionally
    changed first."""
    db = open_database(str(child.org.db))
    try:
        snapshot = load_snapshot(db.conn, default_plugins())
        content = federation_child.report_content(db.conn, snapshot, child.id, ["A", "B"], day, datetime.now(UTC))
        sealed = federation_store.link(db.conn)["private_key"]
    finally:
        db.close()
    if change is not None:
        change(content)
    own_key = federation.unseal_private_key(sealed, "test-secret")
    body, signature, _ = federation_child.signed_body(content, key or own_key, sent_at or datetime.now(UTC).isoformat())
    return body, {federation.CHILD_HEADER: child.id, federation.SIGNATURE_HEADER: signature}


def post_report(fed: Federation, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{fed.server.url}/api/v1/federation/reports",
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def stored_days(fed: Federation) -> list[dict[str, Any]]:
    return rows(fed.parent, "SELECT child, day, content_hash, sent_at FROM federation_reports ORDER BY child, day")


def test_forged_or_unsigned_reports_are_refused_and_nothing_is_stored(paired: Federation) -> None:
    fed = paired
    north = fed.children["north"]
    day = day_with_figures(fed, north)
    before, rollups_before = stored_days(fed), rows(fed.parent, "SELECT * FROM federation_rollups")

    def inflate(content: dict[str, Any]) -> None:
        content["rollups"].append({**content["rollups"][0], "n": 999, "satisfied": 999})

    forged_body, forged = signed_report(fed, north, day, inflate, key=federation.new_private_key())
    assert post_report(fed, forged_body, forged).status_code == 403
    body, headers = signed_report(fed, north, day)
    tampered = body.replace(b'"satisfied":', b'"satisfied": ', 1)  # the same report, other bytes
    assert post_report(fed, tampered, headers).status_code == 403
    assert post_report(fed, body, {federation.CHILD_HEADER: north.id}).status_code == 401
    assert post_report(fed, body, {**headers, federation.CHILD_HEADER: "nobody"}).status_code == 401
    south = fed.children["south"]
    assert post_report(fed, body, {**headers, federation.CHILD_HEADER: south.id}).status_code == 403
    assert stored_days(fed) == before and rows(fed.parent, "SELECT * FROM federation_rollups") == rollups_before


def test_a_replayed_report_is_stored_once_and_a_corrected_day_replaces(paired: Federation) -> None:
    fed = paired
    north = fed.children["north"]
    day, last = day_with_figures(fed, north), link_of(north)["acknowledged_through"]
    before = stored_days(fed)
    audit_before = len(rows(fed.parent, "SELECT seq FROM audit_log"))
    body, headers = signed_report(fed, north, day)
    for _ in range(2):
        again = post_report(fed, body, headers)
        assert again.status_code == 200 and again.json()["status"] == "unchanged", again.text
    assert stored_days(fed) == before
    assert len(rows(fed.parent, "SELECT seq FROM audit_log")) == audit_before

    def correct(content: dict[str, Any]) -> None:
        content["rollups"][0]["n"] += 1
        content["rollups"][0]["l5"] += 1
        content["rollups"][0]["satisfied"] += 1

    older = datetime.now(UTC).isoformat()
    corrected_body, corrected = signed_report(fed, north, day, correct)
    replaced = post_report(fed, corrected_body, corrected)
    assert replaced.status_code == 200 and replaced.json()["status"] == "replaced", replaced.text
    stored = [row for row in stored_days(fed) if row["child"] == north.id and row["day"] == day]
    assert len(stored) == 1 and stored[0]["content_hash"] == replaced.json()["content_hash"]
    # A report of the day older than the one stored does not undo the correction.
    stale_body, stale = signed_report(fed, north, day, sent_at=older)
    assert post_report(fed, stale_body, stale).status_code == 409
    # The child's own figures again (as its job would send them after a correction), and all is as before.
    body, headers = signed_report(fed, north, day)
    assert post_report(fed, body, headers).json()["status"] == "replaced"
    assert_parent_rates_equal_childrens(fed, last)
    entries = rows(
        fed.parent,
        "SELECT action FROM audit_log WHERE kind = 'federation_report' AND record_id = ? ORDER BY seq",
        (f"{north.id}/{day}",),
    )
    assert [e["action"] for e in entries][-2:] == ["replaced", "replaced"]


def test_a_report_outside_the_childs_own_tree_is_refused(paired: Federation) -> None:
    fed = paired
    north = fed.children["north"]
    day = day_with_figures(fed, north)
    before = stored_days(fed)

    def other_root(content: dict[str, Any]) -> None:
        content["units"].append({"code": "X", "name": "X", "parent": None, "lang": "en", "tz": "UTC"})

    def unknown_unit(content: dict[str, Any]) -> None:
        content["rollups"].append({**content["rollups"][0], "unit": "ELSEWHERE"})

    def extra_field(content: dict[str, Any]) -> None:
        content["rollups"][0]["officer"] = OFFICER

    for change, field_name in ((other_root, "units"), (unknown_unit, "rollups"), (extra_field, "rollups")):
        body, headers = signed_report(fed, north, day, change)
        refused = post_report(fed, body, headers)
        assert refused.status_code == 400 and refused.json()["field"].startswith(field_name), refused.text
    assert stored_days(fed) == before


def test_a_signed_report_with_impossible_counts_or_moments_is_refused(paired: Federation) -> None:
    """The child's own key signs it, yet its figures cannot come from responses: satisfied above n would make a
    share above 1 (and the Wilson interval a square root of a negative) on the parent's pages."""
    fed = paired
    north = fed.children["north"]
    day = day_with_figures(fed, north)
    before = stored_days(fed)

    def changed(**fields: Any):
        def change(content: dict[str, Any]) -> None:
            content["rollups"][0].update({key: value(content["rollups"][0]) for key, value in fields.items()})

        return change

    def moved(day_: str):
        def change(content: dict[str, Any]) -> None:
            content["day"] = day_

        return change

    beyond = (datetime.now(UTC) + timedelta(hours=14, days=1)).date()
    cases = [
        (changed(satisfied=lambda row: row["n"] + 1), None, "rollups"),
        (changed(dissatisfied=lambda row: row["n"] - row["satisfied"] + 1), None, "rollups"),
        (changed(l5=lambda row: row["l5"] + 1), None, "rollups"),  # the levels no longer add up to n
        (changed(n=lambda row: row["n"] + 1), None, "rollups"),
        (changed(score_sum=lambda row: 100.0 * row["score_n"] + 1), None, "rollups"),
        (changed(score_sum=lambda row: -1.0), None, "rollups"),
        (moved(day.replace("-", "")), None, "day"),  # 20260101: not the strict form
        (moved(date.fromisoformat(day).strftime("%G-W%V-%u")), None, "day"),  # an ISO week date
        (moved(beyond.isoformat()), None, "day"),
        (None, (datetime.now(UTC) + timedelta(minutes=10)).isoformat(), "sent_at"),
        (None, day, "sent_at"),  # a day, not a time
    ]
    for change, sent_at, field_name in cases:
        body, headers = signed_report(fed, north, day, change, sent_at=sent_at)
        refused = post_report(fed, body, headers)
        assert refused.status_code == 400 and refused.json()["field"] == field_name, (field_name, refused.text)
    assert stored_days(fed) == before
    # A child whose clock runs a minute ahead is still heard.
    body, headers = signed_report(fed, north, day, sent_at=(datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    assert post_report(fed, body, headers).status_code == 200


# -- what the parent does with the reports ------------------------------------------------------------------------


def test_objectives_on_a_childs_units_are_judged_on_its_reports_and_both_sides_audit(paired: Federation) -> None:
    fed = paired
    north = fed.children["north"]
    last = link_of(north)["acknowledged_through"]
    reply = httpx.post(
        f"{fed.server.url}/api/v1/objectives",
        json={
            "unit": f"{north.id}:A",
            "metric": "satisfaction",
            "target": 0.2,
            "period": "rolling_30",
            "min_n": 5,
            "valid_from": (date.fromisoformat(last) - timedelta(days=29)).isoformat(),
        },
        headers=auth_header(fed.parent.tokens["admin"]),
    )
    assert reply.status_code == 201, reply.text
    status = httpx.get(
        f"{fed.server.url}/api/v1/objectives/{reply.json()['id']}/status",
        params={"at": last},
        headers=auth_header(fed.parent.tokens["admin"]),
    ).json()
    first = (date.fromisoformat(last) - timedelta(days=29)).isoformat()
    own = httpx.get(
        f"{north.server.url}/api/v1/satisfaction",
        params={"unit": "A", "from": first, "to": last},
        headers=auth_header(north.org.tokens["admin"]),
    ).json()["total"]
    assert status["n"] == own["n"] and status["successes"] == own["satisfied"] and status["status"] == "met"
    # Both sides keep the exchange in their audit logs; the parent's log still verifies.
    sent = rows(north.org, "SELECT record_id FROM audit_log WHERE kind = 'federation_report' AND action = 'sent'")
    assert last in {row["record_id"] for row in sent}
    received = rows(fed.parent, "SELECT action FROM audit_log WHERE kind = 'federation_report'")
    assert {row["action"] for row in received} >= {"stored"}
    verified = run_cli("audit", "verify", "--db", str(fed.parent.db), env=SECRET_ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_dashboard_unit_page_and_review_pack_mark_what_is_reported(paired: Federation) -> None:
    from tests.manage_helpers import add_user, sign_in
    from tests.test_review_pack import pdf_text

    fed = paired
    north = fed.children["north"]
    last = link_of(north)["acknowledged_through"]
    add_user(fed.parent.db, "chief", "correct horse 9", "admin")
    with httpx.Client(base_url=fed.server.url, timeout=30) as chief:
        sign_in(chief, fed.server, "chief", "correct horse 9")
        marks = {
            "en": "reported by Agency A, Пост Б, as of",
            "vi": "do Agency A, Пост Б báo cáo, số liệu đến ngày",
            "ru": "по отчётам Agency A, Пост Б, данные на",
            "zh": "由Agency A, Пост Б上报，数据截至",
        }
        for lang, mark in marks.items():
            page = chief.get("/manage/", params={"lang": lang})
            assert page.status_code == 200 and page.text.count(mark) >= 8, lang  # each child's four units
        own = chief.get(f"/manage/units/{north.id}:A1", params={"lang": "en"})
        assert own.status_code == 200 and "reported by Agency A, Пост Б, as of" in own.text
        above = chief.get("/manage/units/A1", params={"lang": "en", "to": last})
        assert "reported by Agency A, Пост Б, as of" in above.text
    first = (date.fromisoformat(last) - timedelta(days=20)).isoformat()
    pack = httpx.get(
        f"{fed.server.url}/api/v1/reports/management-review.pdf",
        params={"unit": "A1", "from": first, "to": last, "lang": "en"},
        headers=auth_header(fed.parent.tokens["admin"]),
        timeout=60,
    )
    assert pack.status_code == 200, pack.text
    text = " ".join(pdf_text(pack.content).split())
    assert "8. Reported by child installations" in text and "reported, as of" in text
    assert "Corrective actions:" in text


# -- stored reports verify later; objectives only on what crosses; a parent answering garbage --------------------


@pytest.mark.postgres_covered_elsewhere
def test_stored_reports_verify_later_and_a_tampered_body_is_named(paired: Federation) -> None:
    fed = paired
    stored = rows(fed.parent, "SELECT child, day, content_hash, body, signature FROM federation_reports")
    assert stored and all(row["body"] and row["signature"].startswith("ed25519=") for row in stored)
    for row in stored:  # what the README shows: the signature over the stored body, by the child's key
        key = rows(fed.parent, "SELECT public_key FROM federation_children WHERE id = ?", (row["child"],))[0]
        assert federation.signature_holds(row["body"].encode(), row["signature"], key["public_key"])
        assert json.loads(row["body"])["content_hash"] == row["content_hash"]
    good = run_cli("federation", "verify", "--db", str(fed.parent.db), env=SECRET_ENV)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"checked": len(stored), "bad": []}
    north = fed.children["north"]
    day = day_with_figures(fed, north)
    (original,) = [row["body"] for row in stored if row["child"] == north.id and row["day"] == day]
    inflated = original.replace('"satisfied":', '"satisfied":1', 1)
    assert inflated != original
    conn = connect(fed.parent.db)
    try:
        conn.execute("UPDATE federation_reports SET body = ? WHERE child = ? AND day = ?", (inflated, north.id, day))
        conn.commit()
        bad = run_cli("federation", "verify", "--db", str(fed.parent.db), env=SECRET_ENV)
        assert bad.returncode == 2, bad.stdout + bad.stderr
        assert f"{north.id}/{day}" in bad.stderr and "signature" in bad.stderr
        assert json.loads(bad.stdout)["bad"] == [
            {
                "child": north.id,
                "day": day,
                "problem": "the signature does not hold for the stored body and the child's key",
            }
        ]
        south = fed.children["south"]
        only_south = run_cli("federation", "verify", "--db", str(fed.parent.db), "--child", south.id, env=SECRET_ENV)
        assert only_south.returncode == 0, only_south.stderr
        unknown = run_cli("federation", "verify", "--db", str(fed.parent.db), "--child", "nobody", env=SECRET_ENV)
        assert unknown.returncode == 1 and "child" in unknown.stderr
    finally:
        conn.execute("UPDATE federation_reports SET body = ? WHERE child = ? AND day = ?", (original, north.id, day))
        conn.commit()
        conn.close()


def test_objectives_on_a_childs_units_take_only_metrics_its_reports_judge(paired: Federation) -> None:
    fed = paired
    north = fed.children["north"]
    headers = auth_header(fed.parent.tokens["admin"])
    for metric in ("dossier_on_time", "response_rate", "on_time_rectification", "callback_rate"):
        refused = httpx.post(
            f"{fed.server.url}/api/v1/objectives",
            json={"unit": f"{north.id}:A1", "metric": metric, "target": 0.9},
            headers=headers,
        )
        assert refused.status_code == 400 and refused.json()["field"] == "metric", refused.text
    refused = httpx.post(
        f"{fed.server.url}/api/v1/objectives",
        json={"unit": f"{north.id}:A1", "metric": "indicator_mean", "indicator": "waiting_time", "target": 80},
        headers=headers,
    )
    assert refused.status_code == 400 and refused.json()["field"] == "metric", refused.text
    made = httpx.post(
        f"{fed.server.url}/api/v1/objectives",
        json={"unit": f"{north.id}:A1", "metric": "not_dissatisfied", "target": 0.9},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    changed = httpx.put(
        f"{fed.server.url}/api/v1/objectives/{made.json()['id']}",
        json={"metric": "dossier_on_time", "target": 0.9},
        headers=headers,
    )
    assert changed.status_code == 400 and changed.json()["field"] == "metric", changed.text
    # The parent's own unit the child hangs under keeps every metric (its own figures).
    own = httpx.post(
        f"{fed.server.url}/api/v1/objectives",
        json={"unit": north.hangs_under, "metric": "dossier_on_time", "target": 0.9},
        headers=headers,
    )
    assert own.status_code == 201, own.text


# -- a child's units belong to the child; pairing again never counts twice -------------------------------------------

CATALOGUE_COLUMNS = [
    "record",
    "code",
    "parent",
    "name_vi",
    "name_ru",
    "name_zh",
    "name_en",
    "lang",
    "tz",
    "country",
    "action_days",
    "kind",
    "unit",
    "token",
    "name",
    "survey",
    "counter",
    "service",
    "retired",
]


def parent_records(fed: Federation) -> dict[str, list[dict[str, Any]]]:
    """What an edit of the organisation would change on the parent, and its audit log."""
    return {
        table: rows(fed.parent, f"SELECT * FROM {table} ORDER BY 1")
        for table in ("units", "services", "touchpoints", "audit_log")
    }


def test_a_childs_units_are_refused_to_every_edit_on_the_parent(paired: Federation, tmp_path) -> None:
    from feedback import organisation
    from feedback.errors import Conflict
    from tests.manage_helpers import add_user, csrf_token, sign_in

    fed = paired
    north = fed.children["north"]
    body, headers = signed_report(fed, north, closed_through(datetime.now(UTC)).isoformat())
    assert post_report(fed, body, headers).status_code == 200  # the child's units are here, whatever ran before
    unit = f"{north.id}:A1"
    refusal = f"{unit} is reported by child installation Agency A, Пост Б ({north.id}); change it there"
    add_user(fed.parent.db, "keeper", "correct horse 7", "admin")
    file = tmp_path / "catalogue.csv"
    lines = [
        {"record": "unit", "code": "NEWU", "parent": unit, "name_en": "New unit"},
        {"record": "service", "code": "NEWS", "name_en": "New service", "kind": "administrative", "unit": unit},
        {"record": "touchpoint", "token": "tp-new", "unit": unit, "name": "Desk", "survey": "vash_kontrol"},
    ]
    file.write_text(
        ",".join(CATALOGUE_COLUMNS)
        + "\n"
        + "".join(",".join(line.get(column, "") for column in CATALOGUE_COLUMNS) + "\n" for line in lines),
        encoding="utf-8",
    )
    with httpx.Client(base_url=fed.server.url, timeout=30) as keeper:
        sign_in(keeper, fed.server, "keeper", "correct horse 7")
        token = csrf_token(keeper, "/manage/admin/units/")
        before = parent_records(fed)
        # The API: a unit's settings.
        for change in ({"action_days": 3}, {"owner": None}, {"public_results": True}, {"retention": None}):
            reply = httpx.patch(
                f"{fed.server.url}/api/v1/units/{unit}", json=change, headers=auth_header(fed.parent.tokens["admin"])
            )
            assert reply.status_code == 409 and reply.json()["field"] == "code", reply.text
            assert reply.json()["detail"] == f"code: {refusal}"
        # The admin pages: its settings; a unit, a service, a touchpoint hung from it.
        forms = {
            f"/manage/admin/units/{unit}": {"action_days": "4", "country": "VN"},
            "/manage/admin/units/": {"code": "NEWU", "parent": unit, "name_en": "New", "lang": "en", "tz": "UTC"},
            "/manage/admin/services/": {"code": "NEWS", "agency": unit, "name_en": "Service", "kind": "other"},
            "/manage/admin/touchpoints/": {"unit": unit, "name": "Desk", "survey": "vash_kontrol", "kind": "qr"},
        }
        for path, form in forms.items():
            reply = keeper.post(path, data={**form, "_csrf_token": token})
            assert reply.status_code == 409 and "change it there" in reply.text, (path, reply.status_code)
    # The catalogue import: every line naming the child's unit is a problem of the file, and nothing is written.
    imported = run_cli("import", "catalogue", "--db", str(fed.parent.db), str(file), env=SECRET_ENV)
    assert imported.returncode == 2, imported.stdout + imported.stderr
    assert (imported.stdout + imported.stderr).count(f"{unit} is reported by a child installation") >= 3
    # The core itself: a rename (only a catalogue line reaches it) or a unit under the child's.
    db = open_database(str(fed.parent.db))
    try:
        for attempt in (
            lambda conn: organisation.update_unit_names(conn, unit, {"en": "Renamed"}, "en"),
            lambda conn: organisation.add_unit(conn, "NEWU", "New", parent=unit),
        ):
            with pytest.raises(Conflict, match="change it there"), db.conn:
                attempt(db.conn)
    finally:
        db.close()
    assert parent_records(fed) == before


def test_a_child_pairing_again_replaces_its_old_self_and_is_never_counted_twice(paired: Federation) -> None:
    fed = paired
    north, south = fed.children["north"], fed.children["south"]
    parent_db, old = str(fed.parent.db), north.id
    # A child reports under A1 already: a new code for A1 only with --replace.
    refused = run_cli("federation", "invite", "--db", parent_db, "--unit", north.hangs_under, env=SECRET_ENV)
    assert refused.returncode == 2 and "--replace" in refused.stderr and old in refused.stderr, refused.stderr
    invite = run_cli(
        "federation", "invite", "--db", parent_db, "--unit", north.hangs_under, "--replace", env=SECRET_ENV
    )
    assert invite.returncode == 0, invite.stderr
    code = invite.stdout.strip().splitlines()[-1]
    # The child pairs again (its secret changed, say): a new id; the old one is removed, its figures with it.
    joined = run_cli(
        "federation",
        "join",
        "--db",
        str(north.org.db),
        "--parent",
        fed.server.url,
        "--code",
        code,
        "--force",
        env=SECRET_ENV,
    )
    assert joined.returncode == 0, joined.stderr
    north.id = json.loads(joined.stdout)["child"]
    assert north.id != old
    assert rows(fed.parent, "SELECT count(*) AS n FROM federation_rollups WHERE child = ?", (old,))[0]["n"] == 0
    (sent,) = run_all(("tick", "--db", str(north.org.db), "--job", "federation.report"))
    assert sent.returncode == 0, sent.stderr
    last = link_of(north)["acknowledged_through"]
    assert link_of(south)["acknowledged_through"] == last
    assert_parent_rates_equal_childrens(fed, last)  # the whole history once, not twice
    listed = {item["child"] for item in fed.admin("/api/v1/federation/children").json()}
    assert listed == {north.id, south.id}
    # The old child is heard no more; its stored reports still verify.
    body, headers = signed_report(fed, north, last)
    assert post_report(fed, body, {**headers, federation.CHILD_HEADER: old}).status_code == 401
    checked = run_cli("federation", "verify", "--db", parent_db, "--child", old, env=SECRET_ENV)
    assert checked.returncode == 0 and json.loads(checked.stdout)["bad"] == [], checked.stdout + checked.stderr

    # Removing a child by hand: its figures leave every rate at once; unknown or removed twice: exit 2.
    before = rates_of(fed, fed.server, fed.parent, south.hangs_under, last)["total"]["n"]
    reported = sum(rates_of(fed, fed.server, fed.parent, f"{south.id}:{root}", last)["total"]["n"] for root in "AB")
    assert reported > 0
    removed = run_cli("federation", "remove", "--db", parent_db, "--child", south.id, env=SECRET_ENV)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["child"] == south.id and json.loads(removed.stdout)["rollups_dropped"] > 0
    under = rates_of(fed, fed.server, fed.parent, south.hangs_under, last)
    assert "reported" not in under and under["total"]["n"] == before - reported
    for child in (south.id, old, "nobody"):
        again = run_cli("federation", "remove", "--db", parent_db, "--child", child, env=SECRET_ENV)
        assert again.returncode == 2 and "child:" in again.stderr, again.stderr
    entries = rows(
        fed.parent, "SELECT record_id, change FROM audit_log WHERE kind = 'federation_child' AND action = 'remove'"
    )
    assert {entry["record_id"] for entry in entries} == {old, south.id}
    assert {json.loads(entry["change"])["after"]["replaced_by"] for entry in entries} == {north.id, None}


def acknowledge_all(db: Any, snapshot: Any, link: dict[str, Any], now: datetime) -> list[str]:
    """Plan the middle installation's reports as its job would and take them as acknowledged; the days."""
    days = []
    with db.conn:
        while due := federation_child.plan(db.conn, snapshot, link, now):
            for day, _content, digest in due:
                federation_store.acknowledge(db.conn, day, digest, datetime.now(UTC).isoformat())
                days.append(day)
    return days


def test_a_middle_tier_passes_a_grandchilds_late_days_on(org: Org) -> None:
    """Three tiers, in the middle installation's database: a day it reported upward long ago (older than the
    recheck window) is due again once a child of its own reports it late, or is removed; no other old day is."""
    now = datetime.now(UTC)
    db = open_database(str(org.db))
    try:
        key = federation.new_private_key()
        joined_at = (now - timedelta(days=30)).isoformat()
        with db.conn:
            federation_child.save_link(
                db.conn,
                {
                    "parent_url": "http://127.0.0.1:9",
                    "child_id": "middle",
                    "name": "middle",
                    "public_key": federation.public_key_text(key),
                    "private_key": federation.seal_private_key(key, "test-secret"),
                    "units": json.dumps(["A"]),
                    "joined_at": joined_at,
                },
            )
            link = federation_store.link(db.conn)
        snapshot = load_snapshot(db.conn, default_plugins())
        assert len(acknowledge_all(db, snapshot, link, now)) >= 30
        with db.conn:
            code, _expires = federation.create_invite(db.conn, "A1")
            attempt = federation.reserve_join_attempt(db.conn, "grandchild")
            grandchild_key = federation.public_key_text(federation.new_private_key())
            request = federation.JoinRequest(code=code, public_key=grandchild_key, name="Grandchild", units=["G"])
            grandchild = federation.accept_join(db.conn, attempt, request)["child"]
        late = (now.date() - timedelta(days=20)).isoformat()
        rollup = {"unit": "G", "service": None, "n": 2, "satisfied": 1, "dissatisfied": 1, "score_n": 0}
        raw = {
            "version": federation.REPORT_VERSION,
            "child": grandchild,
            "day": late,
            "sent_at": now.isoformat(),
            "units": [{"code": "G", "name": "Post G", "parent": None, "lang": "en", "tz": "UTC"}],
            "rollups": [{**rollup, "score_sum": 0.0, "l1": 1, "l2": 0, "l3": 0, "l4": 0, "l5": 1, "suspect": 0}],
            "objectives": [],
            "actions": [],
        }
        raw["content_hash"] = federation.content_hash(raw)
        with db.conn:
            child = federation_store.get_child(db.conn, grandchild)
            assert federation.receive_report(db.conn, child, federation.parse_report(raw))["status"] == "stored"
        snapshot = load_snapshot(db.conn, default_plugins())
        units = federation_child.reported_tree(snapshot, ["A"])
        assert f"{grandchild}:G" in units
        recheck_from = federation_child.closed_through(snapshot, units, now) - timedelta(
            days=federation_child.RECHECK_DAYS - 1
        )
        with db.conn:
            due = {day: content for day, content, _hash in federation_child.plan(db.conn, snapshot, link, now)}
        # The late day goes up with the grandchild's figures; of the older days, no other.
        assert late in due and late < recheck_from.isoformat()
        assert [day for day in due if day < recheck_from.isoformat()] == [late]
        assert [(r["unit"], r["n"]) for r in due[late]["rollups"]] == [(f"{grandchild}:G", 2)]
        acknowledge_all(db, snapshot, link, now)
        with db.conn:
            federation.remove_child(db.conn, grandchild)
            due = {day: content for day, content, _hash in federation_child.plan(db.conn, snapshot, link, now)}
        assert [day for day in due if day < recheck_from.isoformat()] == [late] and due[late]["rollups"] == []
    finally:
        db.close()


class HtmlParent(BaseHTTPRequestHandler):
    """A "parent" that answers every POST with a web page (a proxy's error page, a wrong address)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        page = b"<html><body>Gateway login</body></html>"
        self.send_response(201 if self.path.endswith("/join") else 200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def html_parent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HtmlParent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.postgres_covered_elsewhere
def test_a_parent_answering_something_else_than_json_gives_a_clear_error(org: Org, html_parent: str) -> None:
    joined = run_cli(
        "federation", "join", "--db", str(org.db), "--parent", html_parent, "--code", "ABCDE", env=SECRET_ENV
    )
    assert joined.returncode == 1, joined.stderr
    assert "text/html" in joined.stderr and "Gateway login" in joined.stderr and "Traceback" not in joined.stderr
    assert rows(org, "SELECT * FROM federation_link") == []
    # A link made earlier, to a parent that now answers reports with a page.
    db = open_database(str(org.db))
    try:
        key = federation.new_private_key()
        with db.conn:
            federation_child.save_link(
                db.conn,
                {
                    "parent_url": html_parent,
                    "child_id": "abcdef",
                    "name": "child",
                    "public_key": federation.public_key_text(key),
                    "private_key": federation.seal_private_key(key, "test-secret"),
                    "units": json.dumps(["A"]),
                    "joined_at": (datetime.now(UTC) - timedelta(days=4)).isoformat(),
                },
            )
    finally:
        db.close()
    ticked = run_cli("tick", "--db", str(org.db), "--job", "federation.report", env=SECRET_ENV)
    # The scheduler logs every failed job with its stack; the failure must be the job's own clear refusal.
    assert ticked.returncode != 0 and "ParentRefused" in ticked.stderr and "JSONDecodeError" not in ticked.stderr
    assert "federation.report" in ticked.stderr and "text/html" in ticked.stderr, ticked.stderr
    (link,) = rows(org, "SELECT last_error FROM federation_link")
    assert "text/html" in link["last_error"] and "Gateway login" in link["last_error"]
    assert rows(org, "SELECT * FROM federation_sent") == []
