"""The audit log: a hash chain the database refuses to edit, daily seals of the responses that hold through
late arrivals and upheld appeals, `feedback audit verify` naming what was changed behind the log's back,
and the log over the API (scoped to the caller's subtree), in the review pack and with its head hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from feedback import audit, organisation
from feedback.db import Store, open_database
from feedback.migrations import apply_all
from tests.conftest import (
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    connect,
    default_plugins,
    org_on,
    postgres_cluster,
    rows,
    run_cli,
)
from tests.test_review_pack import pdf_text, squash

pytestmark = BOTH_BACKENDS
SECRET = {"FEEDBACK_SECRET": "test-secret"}  # the servers' (a command on PostgreSQL needs the nodes' secret)

HASHED = (
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "actor_unit",
    "kind",
    "record_id",
    "unit",
    "action",
    "change",
    "prev_hash",
)


def migrated(org: Org) -> Any:
    """An admin handle on the test's database, migrated as every start migrates it."""
    db = open_database(str(org.db))
    apply_all(db, default_plugins())
    return db


def entries(org: Org, where: str = "1 = 1", params: tuple = ()) -> list[dict[str, Any]]:
    return rows(org, f"SELECT * FROM audit_log WHERE {where} ORDER BY seq", params)


def verify(org: Org, *extra: str) -> Any:
    return run_cli("audit", "verify", "--db", str(org.db), *extra, env=SECRET)


# -- the chain ---------------------------------------------------------------------------------------------


def test_each_entry_hashes_its_content_and_the_entry_before(org: Org) -> None:
    db = migrated(org)
    try:
        with db.conn, audit.acting_as(audit.Actor("user", "mai", "A1")):
            first = audit.record(
                db.conn, "export", "responses.csv", "download", None, {"rows": 3, "to": "Нов 新"}, "A1"
            )
            second = audit.record(db.conn, "export", "rates.csv", "download", {"a": 1}, {"rows": 4}, "A1")
    finally:
        db.close()
    assert second == first + 1
    chain = entries(org)
    assert chain[0]["seq"] == 1 and chain[0]["prev_hash"] == "0" * 64
    assert [entry["seq"] for entry in chain] == list(range(1, len(chain) + 1))
    for earlier, later in zip(chain, chain[1:], strict=False):
        assert later["prev_hash"] == earlier["hash"]
    for entry in chain:
        # SHA-256 over the other columns as JSON with sorted keys (what the README tells a verifier).
        content = json.dumps({k: entry[k] for k in HASHED}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(content.encode()).hexdigest() == entry["hash"], entry["seq"]
    mine = chain[-1]
    assert (mine["actor_kind"], mine["actor_id"], mine["actor_unit"]) == ("user", "mai", "A1")
    assert json.loads(mine["change"]) == {"before": {"a": 1}, "after": {"rows": 4}}
    assert verify(org).returncode == 0


def test_the_database_refuses_to_change_or_delete_an_entry(org: Org) -> None:
    migrated(org).close()
    conn = connect(org.db)
    try:
        assert entries(org), "the log has entries to refuse changes to"
        for statement in ("UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(statement)
            conn.rollback()
    finally:
        conn.close()


def test_a_refusal_missing_from_a_database_is_installed_at_start(org: Org) -> None:
    conn = connect(org.db)
    on = " ON audit_log" if org.backend == "postgresql" else ""
    conn.execute(f"DROP TRIGGER audit_log_no_delete{on}")
    conn.commit()
    conn.close()
    migrated(org).close()  # what every start does
    conn = connect(org.db)
    try:
        with pytest.raises(Exception, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()


def raw_insert(org: Org, sql: str) -> None:
    """A row written behind the application's back (a script, a database console)."""
    conn = connect(org.db)
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.postgres_covered_elsewhere
def test_only_a_database_from_before_the_log_gets_baseline_entries_at_start(org: Org) -> None:
    # A database from before the log: its records exist, its log is empty (made here by emptying it).
    conn = connect(org.db)
    on = " ON audit_log" if org.backend == "postgresql" else ""
    conn.execute(f"DROP TRIGGER audit_log_no_delete{on}")
    conn.execute("DELETE FROM audit_log")
    conn.commit()
    conn.close()
    raw_insert(org, "INSERT INTO services (code, name, created_at) VALUES ('SX', 'Inserted', '2026-01-01')")
    migrated(org).close()  # the first start with the log: every record gets one baseline entry
    assert {e["action"] for e in entries(org)} == {"baseline"}
    assert verify(org).returncode == 0
    # While the log holds nothing but baseline entries, a start still takes stored records as they are.
    raw_insert(org, "INSERT INTO services (code, name, created_at) VALUES ('SY', 'Inserted later', '2026-01-01')")
    migrated(org).close()
    migrated(org).close()  # a second start adds nothing
    baseline = entries(org, "kind = 'service' AND record_id IN ('SX', 'SY')")
    assert [(e["record_id"], e["action"], e["actor_kind"]) for e in baseline] == [
        ("SX", "baseline", "system"),
        ("SY", "baseline", "system"),
    ]
    assert json.loads(baseline[1]["change"])["after"]["name"] == "Inserted later"
    assert verify(org).returncode == 0

    # Once anything is logged, a record stored without an entry was made behind the log's back: no start
    # makes it look logged, and the verifier names it.
    db = migrated(org)
    try:
        with db.conn:
            organisation.add_service(db.conn, "S9", "Logged", agency="A")
    finally:
        db.close()
    head = entries(org)[-1]["seq"]
    raw_insert(org, "INSERT INTO users (name, role, unit, created_at) VALUES ('mallory', 'admin', NULL, '2026-01-01')")
    migrated(org).close()
    assert entries(org)[-1]["seq"] == head
    found = verify(org)
    assert found.returncode == 1 and "record user/mallory: stored but never logged" in found.stderr


def test_a_write_job_runs_as_the_actor_of_the_code_that_queued_it(org: Org) -> None:
    migrated(org).close()
    store = Store(str(org.db))
    store.start()

    async def run() -> tuple[audit.Actor, audit.Actor]:
        with audit.acting_as(audit.Actor("job", "nightly")):
            inside = await store.write(lambda conn: audit.current_actor())
        outside = await store.write(lambda conn: audit.current_actor())
        return inside, outside

    try:
        inside, outside = asyncio.run(run())
    finally:
        store.close()
    assert inside == audit.Actor("job", "nightly") and outside == audit.SYSTEM


# -- seals ---------------------------------------------------------------------------------------------------

VASH = {key: 4 for key in ("service_time", "waiting_time", "staff_courtesy", "premises", "information")}


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def post(server: Server, touchpoint: str, answers: dict[str, Any], submitted_at: str) -> str:
    body = {"touchpoint": touchpoint, "answers": answers, "submitted_at": submitted_at}
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=30)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def step(server: Server, org: Org, token: str, action_id: int, target: str, **fields: str) -> None:
    reply = httpx.post(
        f"{server.url}/api/v1/actions/{action_id}/events",
        json={"type": target, **fields},
        headers=auth_header(org.tokens[token]),
        timeout=30,
    )
    assert reply.status_code == 201, reply.text


def seal(org: Org) -> None:
    """The seal job through the jobs command, as cron runs it (an hour ahead: every day before is closed)."""
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    result = run_cli("tick", "--db", str(org.db), "--job", "audit.seal", "--now", at, env=SECRET)
    assert result.returncode == 0, result.stderr


@dataclass
class History:
    org: Org
    day: str  # the local day of A1 the responses were given on
    sealed: list[str]  # responses of A1 under the first seal
    appealed: str
    late: str


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, backend: str) -> History:
    """Responses of three days ago at A1 and B, sealed; then one more for that day arriving late and an
    upheld appeal of a sealed one, sealed again."""
    org = org_on(backend, tmp_path_factory.mktemp("audit"))
    server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    try:
        sealed = [post(server, "tp-a1", {"overall": level}, days_ago(3)) for level in (5, 4, 1)]
        post(server, "tp-b", VASH, days_ago(3))
    finally:
        server.stop()
    seal(org)
    server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    try:
        late = post(server, "tp-a1", {"overall": 5}, days_ago(3))  # a kiosk that was offline, or a paper form
        # The rating of 1 opened a complaint; its appeal is upheld, which flags the sealed response.
        [action] = rows(org, "SELECT id FROM actions WHERE response_id = ?", (sealed[2],))
        step(server, org, "admin", action["id"], "verifying")
        step(server, org, "admin", action["id"], "appealed", note="the form had been handed in")
        step(server, org, "manager_a1", action["id"], "appeal_upheld", note="the camera shows it")
    finally:
        server.stop()
    seal(org)
    [found] = rows(org, "SELECT day FROM responses WHERE id = ?", (late,))
    return History(org, found["day"], sealed, sealed[2], late)


@pytest.mark.postgres_covered_elsewhere
def test_seals_cover_late_arrivals_and_logged_appeals(history: History) -> None:
    org = history.org
    seals = entries(org, "kind = 'seal' AND record_id = ?", (f"A1/{history.day}",))
    assert [entry["action"] for entry in seals] == ["seal", "seal"]
    first, second = (json.loads(entry["change"])["after"] for entry in seals)
    assert (first["count"], second["count"]) == (3, 1)
    assert first["since"] == "" and second["since"] == first["through"] < second["through"]
    assert all(entry["actor_kind"] == "job" and entry["actor_id"] == "audit.seal" for entry in seals)
    assert entries(org, "kind = 'seal' AND unit = 'B'"), "B's day is sealed too"
    # The appeal changed a sealed response through a logged step: digests and flags, never the answers.
    [changed] = entries(org, "kind = 'response' AND record_id = ?", (history.appealed,))
    change = json.loads(changed["change"])
    assert changed["action"] == "appeal_upheld" and changed["unit"] == "A1"
    assert "appeal_upheld" not in change["before"]["flags"] and "appeal_upheld" in change["after"]["flags"]
    assert change["before"]["digest"] == change["after"]["digest"]
    assert "overall" not in changed["change"]
    result = verify(org)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit log verified:") and len(result.stdout.strip().splitlines()) == 1
    # Nothing new: another run seals nothing.
    count = len(entries(org, "kind = 'seal'"))
    seal(org)
    assert len(entries(org, "kind = 'seal'")) == count


def copy_of(org: Org, folder: Path) -> Org:
    """A database of its own with the same content."""
    if org.backend == "postgresql":
        url = postgres_cluster().create_database(template=urlsplit(str(org.db)).path.lstrip("/"))
        return Org(db=url, touchpoints=org.touchpoints, tokens=org.tokens)
    target = folder / "copy.db"
    source, copy = sqlite3.connect(org.db), sqlite3.connect(target)
    source.backup(copy)
    source.close()
    copy.close()
    return Org(db=target, touchpoints=org.touchpoints, tokens=org.tokens)


TAMPERS = ("edited response", "deleted response", "edited appealed response", "unit", "audit entry")


@pytest.mark.parametrize("tamper", TAMPERS)
@pytest.mark.postgres_covered_elsewhere
def test_verify_names_what_was_changed_behind_the_log(history: History, tmp_path: Path, tamper: str) -> None:
    org = copy_of(history.org, tmp_path)
    conn = connect(org.db)
    try:
        if tamper == "edited response":
            conn.execute("UPDATE responses SET level = 1, satisfied = 0 WHERE id = ?", (history.sealed[0],))
            expected = f"day A1/{history.day}"
        elif tamper == "deleted response":
            conn.execute("DELETE FROM responses WHERE id = ?", (history.late,))
            expected = f"day A1/{history.day}"
        elif tamper == "edited appealed response":
            conn.execute("UPDATE responses SET flags = '[]' WHERE id = ?", (history.appealed,))
            expected = f"day A1/{history.day}: response {history.appealed}"
        elif tamper == "unit":
            conn.execute("UPDATE units SET name = 'Renamed quietly' WHERE code = 'B'")
            expected = "record unit/B"
        else:
            [target] = entries(org, "kind = 'seal' AND unit = 'B'")
            conn.execute("DROP TRIGGER audit_log_no_update" + (" ON audit_log" if org.backend == "postgresql" else ""))
            conn.execute(
                "UPDATE audit_log SET change = replace(change, '\"count\":1', '\"count\":2') WHERE seq = ?",
                (target["seq"],),
            )
            expected = f"entry seq {target['seq']}"
        conn.commit()
    finally:
        conn.close()
    result = verify(org)
    assert result.returncode == 1, result.stdout
    assert f"audit verify failed: {expected}" in result.stderr, result.stderr


@pytest.mark.postgres_covered_elsewhere
def test_an_anchor_kept_elsewhere_must_still_be_in_the_chain(history: History) -> None:
    head = entries(history.org)[-1]
    assert verify(history.org, "--anchor", f"{head['seq']}:{head['hash']}").returncode == 0
    other = verify(history.org, "--anchor", f"{head['seq']}:{'0' * 64}")
    assert other.returncode == 1 and f"entry seq {head['seq']}" in other.stderr
    beyond = verify(history.org, "--anchor", f"{head['seq'] + 5}:{head['hash']}")
    assert beyond.returncode == 1 and f"entry seq {head['seq'] + 5}: missing" in beyond.stderr
    bad = verify(history.org, "--anchor", "12")
    assert bad.returncode == 2 and "--anchor" in bad.stderr


# -- the API -----------------------------------------------------------------------------------------------


@dataclass
class Api:
    org: Org
    server: Server
    tokens: dict[str, str]

    def get(self, path: str, token: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.server.url}{path}", params=params, headers=auth_header(self.tokens[token]), timeout=30)

    def all_entries(self, token: str, **params: Any) -> list[dict[str, Any]]:
        found, cursor = [], None
        while True:
            reply = self.get("/api/v1/audit", token, limit=7, **params, **({"cursor": cursor} if cursor else {}))
            assert reply.status_code == 200, reply.text
            page = reply.json()
            found.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found


@pytest.fixture(scope="module")
def api(history: History, tmp_path_factory: pytest.TempPathFactory) -> Any:
    org = copy_of(history.org, tmp_path_factory.mktemp("audit-api"))
    tokens = dict(org.tokens)
    for name, role, unit in (("a1admin", "admin", "A1"), ("bauditor", "auditor", "B")):
        made = run_cli(
            "token", "create", "--db", str(org.db), "--user", name, "--role", role, "--unit", unit, env=SECRET
        )
        assert made.returncode == 0, made.stderr
        tokens[name] = made.stdout.strip().splitlines()[-1]
    server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    yield Api(org, server, tokens)
    server.stop()


def test_the_log_pages_newest_first_and_each_caller_sees_their_subtree(api: Api) -> None:
    everything = api.all_entries("admin")
    stored = rows(api.org, "SELECT seq, unit FROM audit_log ORDER BY seq DESC")
    assert [entry["seq"] for entry in everything] == [row["seq"] for row in stored]
    assert {entry["unit"] for entry in everything} >= {"A", "A1", "B", None}
    sample = everything[0]
    assert set(sample) == {"seq", "at", "actor", "kind", "record_id", "unit", "action", "change", "prev_hash", "hash"}
    assert set(sample["actor"]) == {"kind", "id", "unit"} and set(sample["change"]) == {"before", "after"}

    a1 = api.all_entries("a1admin")
    assert a1 and {entry["unit"] for entry in a1} <= {"A1", "A1a"}
    assert [e["seq"] for e in a1] == [row["seq"] for row in stored if row["unit"] in ("A1", "A1a")]
    assert any(entry["kind"] == "seal" for entry in a1)
    b = api.all_entries("bauditor")
    assert b and {entry["unit"] for entry in b} == {"B"}
    for token in ("viewer_b", "manager_a1"):
        reply = api.get("/api/v1/audit", token)
        assert reply.status_code == 403 and reply.json()["field"] == "role", reply.text
    outside = api.get("/api/v1/audit", "a1admin", unit="B")
    assert outside.status_code == 403 and outside.json()["field"] == "unit"


def test_the_log_filters_by_period_kind_and_actor(api: Api) -> None:
    seals = api.all_entries("admin", kind="seal")
    assert seals and {entry["kind"] for entry in seals} == {"seal"}
    by_job = api.all_entries("admin", actor="job:audit.seal")
    assert by_job == api.all_entries("admin", actor="audit.seal") == seals
    assert {(e["actor"]["kind"], e["actor"]["id"]) for e in by_job} == {("job", "audit.seal")}
    today = datetime.now(UTC).date()
    around = api.all_entries("admin", **{"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()})
    assert len(around) == len(api.all_entries("admin"))
    assert api.all_entries("admin", **{"from": (today + timedelta(days=1)).isoformat()}) == []
    moment = around[len(around) // 2]["at"]
    later = api.all_entries("admin", **{"from": moment})
    assert later and all(entry["at"] >= moment for entry in later) and len(later) < len(around)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "soon"}, "to"),
        ({"from": "2026-01-01T10:00:00"}, "from"),  # a time without its offset
        ({"to": "9999-12-31"}, "to"),  # its end lies beyond the last day a date can hold
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),  # in UTC, before the first
        ({"to": "9999-12-31T23:30:00-01:00"}, "to"),  # in UTC, after the last
        ({"kind": "Not a kind"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"unit": "NOPE"}, "unit"),
    ],
)
def test_a_bad_query_is_refused_naming_the_field(api: Api, params: dict[str, str], field: str) -> None:
    reply = api.get("/api/v1/audit", "admin", **params)
    assert reply.status_code in (400, 404), reply.text
    body = reply.json()
    assert body["field"] == field and body["detail"].startswith(field), body


def test_head_and_the_actor_of_an_api_change(api: Api) -> None:
    changed = httpx.patch(
        f"{api.server.url}/api/v1/units/A1",
        json={"action_days": 7},
        headers=auth_header(api.tokens["a1admin"]),
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    head = api.get("/api/v1/audit/head", "viewer_b")
    assert head.status_code == 200
    [newest] = rows(
        api.org, "SELECT seq, hash, at, actor_kind, actor_id, actor_unit FROM audit_log ORDER BY seq DESC LIMIT 1"
    )
    assert head.json() == {"seq": newest["seq"], "hash": newest["hash"], "at": newest["at"]}
    [token] = rows(api.org, "SELECT id FROM api_tokens WHERE \"user\" = 'a1admin'")
    assert (newest["actor_kind"], newest["actor_id"], newest["actor_unit"]) == ("token", token["id"], "A1")


def test_the_review_pack_prints_the_head_hash(api: Api) -> None:
    before = api.get("/api/v1/audit/head", "admin").json()
    today = date.today()
    reply = api.get(
        "/api/v1/reports/management-review.pdf",
        "admin",
        unit="A",
        **{"from": (today - timedelta(days=7)).isoformat(), "to": today.isoformat(), "lang": "en"},
    )
    assert reply.status_code == 200, reply.text
    text = squash(pdf_text(reply.content))
    printed = [e for e in entries(api.org, "seq >= ?", (before["seq"],)) if squash(e["hash"]) in text]
    assert printed, "the pack prints the audit log's newest hash"
    assert f"entry{printed[0]['seq']},SHA-256" in text
