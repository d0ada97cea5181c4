"""Corrective actions: the state machine over the real API, appeals, deadlines, effectiveness, KPIs.

Response-sourced actions are opened with `open_action` straight on the database (the path the
ingest triggers take); everything else goes through a real `feedback serve` and `feedback tick`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedback import actions, auth, callbacks
from feedback.calendars import add_working_days
from feedback.catalog import load_snapshot
from feedback.db import open_database
from feedback.models import ActionRequest
from feedback.rates import wilson
from feedback.store import Connection, IntegrityError, Row, dialect
from tests.conftest import (
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    connect,
    default_plugins,
    rows,
    run_cli,
    wait_for_dispatch,
)

pytestmark = BOTH_BACKENDS

HCM = ZoneInfo("Asia/Ho_Chi_Minh")

# A real plugin on the event bus: writes every action.* event to a file the test reads back (the
# path is written into it: the server may run in this process, whose environment is not the test's).
EVENT_LOGGER = """
import json

from feedback import hookimpl


@hookimpl
def track_event(event):
    path = {path!r}
    if event.type.startswith("action."):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({{"id": event.id, "type": event.type, "data": event.data}}) + "\\n")
"""


class Env:
    """An organisation with owners and countries, a plugins folder and an event log."""

    def __init__(self, tmp_path: Path, org: Org) -> None:
        self.org = org
        plugins_dir = tmp_path / "plugins"
        plugins_dir.mkdir()
        self.events_log = tmp_path / "events.jsonl"
        (plugins_dir / "action_event_log.py").write_text(EVENT_LOGGER.format(path=str(self.events_log)))
        # The servers' secret for `feedback tick` too (a PostgreSQL database has no file beside it for one).
        self.env = {"FEEDBACK_PLUGINS_DIR": str(plugins_dir), "FEEDBACK_JOBS": "0", "FEEDBACK_SECRET": "test-secret"}

        def setup(conn: Connection, _snapshot: Any) -> None:
            self.org.tokens["boss"] = auth.create_token(conn, "boss", "manager", "A")
            self.org.tokens["auditor_a"] = auth.create_token(conn, "aud", "auditor", "A")
            self.org.tokens["manager_b"] = auth.create_token(conn, "olga", "manager", "B")
            conn.execute("UPDATE units SET owner = 'boss', country = 'VN' WHERE code = 'A'")
            conn.execute("UPDATE units SET owner = 'lan', country = 'VN' WHERE code IN ('A1', 'A1a')")
            conn.execute("UPDATE units SET owner = NULL WHERE code = 'A1a'")
            conn.execute("UPDATE units SET owner = 'olga', country = 'RU' WHERE code = 'B'")
            # These tests open each response's action themselves: no complaint rule opens one first.
            conn.execute("UPDATE units SET complaint_levels = '[]'")

        self.db(setup)

    def db(self, fn: Callable[[Connection, Any], Any]) -> Any:
        """Run fn(conn, snapshot) in one write transaction (holding the write lock) on the database."""
        handle = open_database(str(self.org.db))
        conn = handle.conn
        conn.row_factory = Row
        try:
            with dialect.of(conn).write_transaction(conn):
                return fn(conn, load_snapshot(conn, default_plugins()))
        finally:
            handle.close()

    def events(self) -> list[dict[str, Any]]:
        wait_for_dispatch(self.org)  # track_event runs after the commit, on the dispatcher
        if not self.events_log.exists():
            return []
        return [json.loads(line) for line in self.events_log.read_text().splitlines()]

    def tick(self, now: datetime, **env: str) -> dict[str, Any]:
        result = run_cli("tick", "--db", str(self.org.db), "--now", now.isoformat(), env={**self.env, **env})
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture
def env(tmp_path: Path, org: Org) -> Env:
    return Env(tmp_path, org)


@pytest.fixture
def server(env: Env, start_server) -> Server:
    return start_server(env.org.db, **env.env)


def api(server: Server, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = auth_header(token) if token else {}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=15, **kwargs)


def step(server: Server, token: str, action_id: int, type_: str, **fields: Any) -> httpx.Response:
    return api(server, "POST", f"/api/v1/actions/{action_id}/events", token, json={"type": type_, **fields})


def post_response(server: Server, touchpoint: str, rating: int, **extra: Any) -> str:
    body = {"touchpoint": touchpoint, "answers": {"overall": rating}, **extra}
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=15)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def open_for_response(
    env: Env, response_id: str, kind: str = "work_order", now: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    def run(conn: Connection, snapshot: Any) -> dict[str, Any] | None:
        stored = dict(conn.execute("SELECT * FROM responses WHERE id = ?", (response_id,)).fetchone())
        request = ActionRequest(
            kind=kind,
            source_key=f"response:{response_id}",
            unit=stored["unit"],
            title="Bad review",
            service=stored["service"],
            touchpoint=stored["touchpoint"],
            response_id=response_id,
            **extra,
        )
        return actions.open_action(conn, request, snapshot=snapshot, now=now or datetime.now(UTC))

    opened = env.db(run)
    assert opened is not None
    return opened


def local_today() -> date:
    return datetime.now(UTC).astimezone(HCM).date()


# -- manual actions, the queue, scope ------------------------------------------------------------------
def test_manual_action_is_opened_listed_and_filtered(env: Env, server: Server) -> None:
    tokens = env.org.tokens
    reply = api(
        server,
        "POST",
        "/api/v1/actions",
        tokens["admin"],
        json={
            "unit": "A1",
            "title": "Queue display broken",
            "working_days": 3,
            "service": "S1",
            "note": "Found in the internal audit",
        },
    )
    assert reply.status_code == 201, reply.text
    first = reply.json()
    assert first["kind"] == "manual" and first["status"] == "new" and first["unit"] == "A1"
    assert first["source"] == {"type": "manual"} and first["response_id"] is None
    assert first["owner"] == "lan"  # the unit's owner
    assert first["due"] == add_working_days(local_today(), 3, "VN").isoformat()
    assert first["overdue"] is False and first["reopen_count"] == 0
    source_key = rows(env.org, "SELECT source_key FROM actions WHERE id = ?", (first["id"],))[0]["source_key"]
    assert source_key.startswith("manual:")

    # A unit without an owner: the nearest owner above; an explicit owner wins.
    second = api(
        server,
        "POST",
        "/api/v1/actions",
        tokens["manager_a1"],
        json={"unit": "A1a", "title": "Kiosk offline", "due": (local_today() + timedelta(days=20)).isoformat()},
    )
    assert second.status_code == 201, second.text
    assert second.json()["owner"] == "lan" and second.json()["created_by"] == "lan"
    third = api(
        server, "POST", "/api/v1/actions", tokens["admin"], json={"unit": "A", "title": "Signage", "owner": "boss"}
    ).json()
    assert third["owner"] == "boss"
    # Without a deadline anywhere: the default 10 working days of the setting.
    assert third["due"] == add_working_days(local_today(), 10, "VN").isoformat()

    detail = api(server, "GET", f"/api/v1/actions/{first['id']}", tokens["admin"]).json()
    assert [e["type"] for e in detail["events"]] == ["opened"]
    assert detail["events"][0]["note"] == "Found in the internal audit"
    assert detail["events"][0]["actor"] == "root" and detail["events"][0]["to_status"] == "new"

    listed = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A"}).json()
    # Not overdue: by due day (3, 10, then 20 days ahead).
    assert [a["id"] for a in listed] == [first["id"], third["id"], second.json()["id"]]
    assert {a["id"] for a in api(server, "GET", "/api/v1/actions", tokens["manager_a1"]).json()} == {
        first["id"],
        second.json()["id"],
    }
    only_a1a = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A1a"}).json()
    assert [a["id"] for a in only_a1a] == [second.json()["id"]]
    assert api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A", "kind": "callback"}).json() == []
    assert (
        len(api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A", "status": "new"}).json()) == 3
    )
    assert api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A", "status": "closed"}).json() == []

    # Overdue: the due day has passed in the unit's time zone. Overdue ones come first.
    yesterday = (local_today() - timedelta(days=1)).isoformat()
    env.db(lambda conn, _: conn.execute("UPDATE actions SET due = ? WHERE id = ?", (yesterday, third["id"])))
    listed = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A"}).json()
    assert listed[0]["id"] == third["id"] and listed[0]["overdue"] is True
    overdue = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A", "overdue": "true"}).json()
    assert [a["id"] for a in overdue] == [third["id"]]
    not_overdue = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A", "overdue": "false"})
    assert third["id"] not in {a["id"] for a in not_overdue.json()} and len(not_overdue.json()) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"title": "x"}, 400, "unit"),
        ({"unit": "A1"}, 400, "title"),
        ({"unit": "A1", "title": "   "}, 400, "title"),
        ({"unit": "NOPE", "title": "x"}, 404, "unit"),
        ({"unit": "A1", "title": "x", "due": "31/12/2026"}, 400, "due"),
        ({"unit": "A1", "title": "x", "due": "2020-01-01"}, 400, "due"),
        ({"unit": "A1", "title": "x", "working_days": -1}, 400, "working_days"),
        ({"unit": "A1", "title": "x", "service": "S9"}, 400, "service"),
        ({"unit": "A1", "title": "x", "owner": "nobody"}, 400, "owner"),
        ({"unit": "A1", "title": "x", "colour": "red"}, 400, "colour"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_manual_action_bad_input_names_the_field(env: Env, server: Server, body: dict, status: int, field: str) -> None:
    reply = api(server, "POST", "/api/v1/actions", env.org.tokens["admin"], json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["field"] == field
    assert rows(env.org, "SELECT count(*) AS n FROM actions")[0]["n"] == 0


@pytest.mark.postgres_covered_elsewhere
def test_roles_and_scope(env: Env, server: Server) -> None:
    tokens = env.org.tokens
    in_b = api(server, "POST", "/api/v1/actions", tokens["admin"], json={"unit": "B", "title": "Queue"}).json()
    in_a1 = api(server, "POST", "/api/v1/actions", tokens["admin"], json={"unit": "A1", "title": "Form"}).json()
    assert in_b["owner"] == "olga"
    # The manager of A1 sees nothing of B.
    assert api(server, "GET", "/api/v1/actions", tokens["manager_a1"], params={"unit": "B"}).status_code == 403
    assert api(server, "GET", f"/api/v1/actions/{in_b['id']}", tokens["manager_a1"]).status_code == 403
    assert step(server, tokens["manager_a1"], in_b["id"], "verifying").status_code == 403
    assert (
        api(server, "POST", "/api/v1/actions", tokens["manager_a1"], json={"unit": "B", "title": "x"}).status_code
        == 403
    )
    assert api(server, "GET", "/api/v1/kpis", tokens["manager_a1"], params={"unit": "B"}).status_code == 403
    # … nor of the agency above it.
    assert api(server, "GET", "/api/v1/actions", tokens["manager_a1"], params={"unit": "A"}).status_code == 403
    # Viewers and auditors read but never act.
    assert api(server, "GET", "/api/v1/actions", tokens["viewer_b"]).json()[0]["id"] == in_b["id"]
    reply = step(server, tokens["viewer_b"], in_b["id"], "verifying")
    assert reply.status_code == 403 and reply.json()["field"] == "role"
    assert step(server, tokens["auditor_a"], in_a1["id"], "verifying").status_code == 403
    assert (
        api(server, "POST", "/api/v1/actions", tokens["auditor_a"], json={"unit": "A1", "title": "x"}).status_code
        == 403
    )
    assert api(server, "GET", f"/api/v1/actions/{in_a1['id']}", tokens["auditor_a"]).status_code == 200
    # No token, unknown ids and units.
    assert api(server, "GET", "/api/v1/actions", None).status_code == 401
    assert api(server, "GET", "/api/v1/actions/99999", tokens["admin"]).status_code == 404
    assert step(server, tokens["admin"], 99999, "verifying").status_code == 404
    reply = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "NOPE"})
    assert reply.status_code == 404 and reply.json()["field"] == "unit"
    for params, field in (({"status": "done"}, "status"), ({"overdue": "maybe"}, "overdue")):
        reply = api(server, "GET", "/api/v1/actions", tokens["admin"], params={"unit": "A", **params})
        assert reply.status_code == 400 and reply.json()["field"] == field
    # An admin bound to no unit lists every unit's actions.
    assert {a["id"] for a in api(server, "GET", "/api/v1/actions", tokens["admin"]).json()} == {in_a1["id"], in_b["id"]}
    assert {a["id"] for a in api(server, "GET", "/api/v1/actions", tokens["manager_b"]).json()} == {in_b["id"]}
    paths = api(server, "GET", "/schema/openapi.json", None).json()["paths"]
    for path in (
        "/api/v1/actions",
        "/api/v1/actions/{action_id}",
        "/api/v1/actions/{action_id}/events",
        "/api/v1/kpis",
    ):
        assert path in paths


# -- the state machine --------------------------------------------------------------------------------------
@pytest.mark.postgres_covered_elsewhere
def test_every_legal_transition_and_the_record(env: Env, server: Server) -> None:
    admin, lan = env.org.tokens["admin"], env.org.tokens["manager_a1"]
    action = api(server, "POST", "/api/v1/actions", admin, json={"unit": "A1", "title": "Waiting time"}).json()
    aid = action["id"]
    later = (local_today() + timedelta(days=30)).isoformat()
    walk = [
        ("verifying", {"note": "checked the queue log"}),
        ("corrected", {"correction": "opened a second counter"}),
        (
            "implemented",
            {
                "action_taken": "second counter staffed at peaks",
                "root_cause": "one counter at noon",
                "similar_cases": "A1a has the same roster",
            },
        ),
        ("effectiveness_review", {}),
        ("closed", {"result": "waiting under 10 min"}),
        ("reopened", {"note": "complaints again"}),
        ("verifying", {}),
        ("action_planned", {"due": later, "action_taken": "new roster from next month"}),
        ("implemented", {}),
        ("effectiveness_review", {}),
        ("closed", {}),
    ]
    previous = "new"
    for target, fields in walk:
        reply = step(server, lan, aid, target, **fields)
        assert reply.status_code == 201, (target, reply.text)
        body = reply.json()
        assert body["action"]["status"] == target
        event = body["event"]
        assert (event["from_status"], event["to_status"], event["type"]) == (previous, target, target)
        assert body["event"]["actor"] == "lan"
        for name, value in fields.items():
            assert body["event"][name] == value
        if target == "effectiveness_review":
            assert body["action"]["watch_from"] == local_today().isoformat()
            assert body["action"]["watch_until"] == (local_today() + timedelta(weeks=4)).isoformat()
        if target == "closed":
            assert body["action"]["closed_at"] is not None
        if target == "reopened":
            assert body["action"]["closed_at"] is None and body["action"]["reopen_count"] == 1
        if target == "action_planned":
            assert body["action"]["due"] == later
        previous = target

    detail = api(server, "GET", f"/api/v1/actions/{aid}", admin).json()
    assert [e["type"] for e in detail["events"]] == ["opened", *[t for t, _ in walk]]
    assert detail["reopen_count"] == 1 and detail["status"] == "closed"
    stored = rows(
        env.org, "SELECT * FROM action_events WHERE action = ? AND type = 'implemented' ORDER BY seq", (aid,)
    )[0]
    assert stored["root_cause"] == "one counter at noon" and stored["similar_cases"] == "A1a has the same roster"

    # explained → closed, with the explanation on record.
    other = api(server, "POST", "/api/v1/actions", admin, json={"unit": "A1", "title": "Fee"}).json()["id"]
    assert step(server, lan, other, "verifying").status_code == 201
    reply = step(server, lan, other, "explained")
    assert reply.status_code == 400 and reply.json()["field"] == "explanation"
    reply = step(server, lan, other, "explained", explanation="The fee is set by Decree 61")
    assert reply.status_code == 201 and reply.json()["event"]["explanation"] == "The fee is set by Decree 61"
    assert step(server, lan, other, "closed").json()["action"]["closed_at"] is not None

    # The bus saw each step once, with a stable, distinct id.
    changed = [e for e in env.events() if e["type"] == "action.changed" and e["data"]["id"] == aid]
    assert len(changed) == len(walk) and len({e["id"] for e in changed}) == len(walk)
    assert changed[0]["data"]["event"]["to_status"] == "verifying"
    assert [e["id"] for e in env.events() if e["type"] == "action.opened"] == [
        f"action.opened:{aid}",
        f"action.opened:{other}",
    ]


@pytest.mark.postgres_covered_elsewhere
def test_illegal_transitions_are_refused(env: Env, server: Server) -> None:
    admin, lan = env.org.tokens["admin"], env.org.tokens["manager_a1"]
    aid = api(server, "POST", "/api/v1/actions", admin, json={"unit": "A1", "title": "x"}).json()["id"]

    def refused(target: str, status: int, field: str, **fields: Any) -> None:
        reply = step(server, lan, aid, target, **fields)
        assert reply.status_code == status, (target, reply.text)
        assert reply.json()["field"] == field, reply.text

    for target in ("closed", "implemented", "corrected", "effectiveness_review", "reopened", "new"):
        refused(target, 409, "type")
    refused("bogus", 400, "type")
    refused("verifying", 400, "due", due="2030-01-01")  # a due day belongs to action_planned only
    reply = api(server, "POST", f"/api/v1/actions/{aid}/events", lan, json={"note": "no type"})
    assert reply.status_code == 400 and reply.json()["field"] == "type"
    reply = api(server, "POST", f"/api/v1/actions/{aid}/events", lan, json={"type": "verifying", "size": 3})
    assert reply.status_code == 400 and reply.json()["field"] == "size"
    assert step(server, lan, aid, "verifying").status_code == 201
    refused("verifying", 409, "type")
    refused("implemented", 409, "type")
    refused("appealed", 409, "type")  # a manual action has no rated officer to appeal for
    refused("action_planned", 400, "due")
    refused("action_planned", 400, "due", due="next week")
    refused("action_planned", 400, "due", due=(local_today() - timedelta(days=1)).isoformat())
    # The system's own moves are not open to people.
    assert step(server, lan, aid, "corrected").status_code == 201
    assert step(server, lan, aid, "implemented").status_code == 201
    assert step(server, lan, aid, "effectiveness_review").status_code == 201
    refused("reopened", 409, "type")
    # Nothing refused left a trace in the record.
    types = [r["type"] for r in rows(env.org, "SELECT type FROM action_events WHERE action = ? ORDER BY seq", (aid,))]
    assert types == ["opened", "verifying", "corrected", "implemented", "effectiveness_review"]


def test_action_events_are_append_only(env: Env, server: Server) -> None:
    reply = api(server, "POST", "/api/v1/actions", env.org.tokens["admin"], json={"unit": "A1", "title": "x"})
    aid = reply.json()["id"]
    assert step(server, env.org.tokens["manager_a1"], aid, "verifying").status_code == 201
    conn = connect(env.org.db)
    try:
        for sql in (
            "UPDATE action_events SET actor = 'someone else' WHERE action = ?",
            "DELETE FROM action_events WHERE action = ?",
        ):
            with pytest.raises(IntegrityError, match="append-only"):
                conn.execute(sql, (aid,))
    finally:
        conn.close()
    assert [
        r["actor"] for r in rows(env.org, "SELECT actor FROM action_events WHERE action = ? ORDER BY seq", (aid,))
    ] == ["root", "lan"]


# -- response-sourced actions: idempotence, appeals, call-backs ------------------------------------------------
def test_one_action_per_response_however_often_opened(env: Env, server: Server) -> None:
    rid = post_response(server, "tp-a1", 1)
    first = open_for_response(env, rid)
    assert first["source"] == {"type": "response", "response_id": rid} and first["owner"] == "lan"

    def again(conn: Connection, snapshot: Any) -> Any:
        request = ActionRequest(
            kind="work_order", source_key=f"response:{rid}", unit="A1", title="again", response_id=rid
        )
        return actions.open_action(conn, request, snapshot=snapshot, now=datetime.now(UTC))

    assert env.db(again) is None
    assert env.db(again) is None
    assert rows(env.org, "SELECT count(*) AS n FROM actions")[0]["n"] == 1
    assert rows(env.org, "SELECT count(*) AS n FROM action_events")[0]["n"] == 1


def test_deadline_follows_the_unit_calendar_and_action_days(env: Env, server: Server) -> None:
    env.db(lambda conn, _: conn.execute("UPDATE units SET action_days = 5 WHERE code = 'A1'"))
    friday_before_tet = datetime(2026, 2, 13, 3, 0, tzinfo=UTC)  # 10:00 in Ho Chi Minh City
    rid = post_response(server, "tp-a1", 2)
    opened = open_for_response(env, rid, now=friday_before_tet)
    assert opened["due"] == "2026-02-27"  # 5 working days, Tết (16–20 February) skipped
    rid = post_response(server, "tp-a1", 2)
    assert open_for_response(env, rid, now=friday_before_tet, working_days=1)["due"] == "2026-02-23"

    def in_b(conn: Connection, snapshot: Any) -> Any:
        request = ActionRequest(kind="callback", source_key="test:b", unit="B", title="call", working_days=1)
        return actions.open_action(conn, request, snapshot=snapshot, now=datetime(2025, 12, 30, 1, tzinfo=UTC))

    assert env.db(in_b)["due"] == "2026-01-12"  # Russia's New Year holidays skipped

    # A plugin's malformed due day never fails the write it rides in: the working days count instead.
    def malformed(conn: Connection, snapshot: Any) -> Any:
        request = ActionRequest(kind="work_order", source_key="test:bad-due", unit="A1", title="x", due="soon")
        return actions.open_action(conn, request, snapshot=snapshot, now=friday_before_tet)

    assert env.db(malformed)["due"] == "2026-02-27"
    opening = rows(
        env.org,
        "SELECT e.data FROM action_events e JOIN actions a ON a.id = e.action WHERE a.source_key = 'test:bad-due'",
    )[0]
    assert json.loads(opening["data"])["due_ignored"] == "soon"


def test_effectiveness_follows_the_objective_behind_an_action(env: Env) -> None:
    def setup(conn: Connection, _snapshot: Any) -> None:
        now = datetime.now(UTC).isoformat()
        for objective, metric, comparator, target in (
            (1, "bad_review_rate", "<=", 0.05),
            (2, "indicator_mean", ">=", 80.0),
        ):
            conn.execute("INSERT INTO objectives (id, unit, created_at) VALUES (?, 'A1', ?)", (objective, now))
            conn.execute(
                "INSERT INTO objective_versions (objective, version, valid_from, metric, indicator, comparator,"
                " target, period, min_n, created_at) VALUES (?, 1, '2026-01-01', ?, ?, ?, ?, 'month', 12, ?)",
                (objective, metric, "waiting_time" if objective == 2 else None, comparator, target, now),
            )

    env.db(setup)
    snapshot = env.db(lambda conn, snapshot: snapshot)
    bad_reviews = actions.effect_spec({"unit": "A1", "objective_id": 1, "indicator": None, "data": "{}"}, snapshot)
    assert bad_reviews == {"metric": "bad_review_rate", "comparator": "<=", "min_n": 12}
    waiting = actions.effect_spec({"unit": "A1", "objective_id": 2, "indicator": "waiting_time"}, snapshot)
    assert waiting["metric"] == "indicator_mean" and waiting["comparator"] == ">="
    assert actions.normalise_target(80.0, "indicator_mean") == 0.8
    assert actions.normalise_target(0.05, "bad_review_rate") == 0.05
    # Without an objective: the indicator when there is one, else the satisfaction share.
    assert actions.effect_spec({"unit": "A1", "indicator": "premises"}, snapshot)["metric"] == "indicator_mean"
    assert actions.effect_spec({"unit": "A1"}, snapshot)["metric"] == "satisfaction"


def test_appeal_is_decided_by_someone_else_and_leaves_the_kpis_not_the_record(env: Env, server: Server) -> None:
    tokens = env.org.tokens
    bad = post_response(server, "tp-a1", 1, officer="lan")
    for _ in range(3):
        post_response(server, "tp-a1", 5)

    def satisfaction() -> dict[str, Any]:
        reply = api(server, "GET", "/api/v1/satisfaction", tokens["admin"], params={"unit": "A1"})
        return reply.json()["total"]

    before = satisfaction()
    assert (before["n"], before["satisfied"], before["dissatisfied"]) == (4, 3, 1)
    aid = open_for_response(env, bad)["id"]
    assert step(server, tokens["admin"], aid, "verifying").status_code == 201
    reply = step(server, tokens["admin"], aid, "appealed", note="the citizen had not brought the form")
    assert reply.status_code == 201
    # The rated officer may not decide; nor may the person who appealed.
    for who in ("manager_a1", "admin"):
        for decision in ("appeal_upheld", "appeal_rejected"):
            reply = step(server, tokens[who], aid, decision)
            assert reply.status_code == 403 and reply.json()["field"] == "actor", reply.text
    reply = step(server, tokens["boss"], aid, "appeal_rejected", note="the form is in the guide")
    assert reply.status_code == 201 and reply.json()["action"]["status"] == "appeal_rejected"
    assert satisfaction()["n"] == 4
    assert step(server, tokens["boss"], aid, "verifying").status_code == 201
    assert step(server, tokens["manager_a1"], aid, "appealed").status_code == 201  # the officer appeals now
    assert step(server, tokens["manager_a1"], aid, "appeal_upheld").status_code == 403
    reply = step(server, tokens["admin"], aid, "appeal_upheld", note="a camera shows the form was accepted")
    assert reply.status_code == 201, reply.text
    upheld = reply.json()["action"]
    assert upheld["status"] == "appeal_upheld" and upheld["closed_at"] is not None
    # Out of the rates …
    after = satisfaction()
    assert (after["n"], after["satisfied"], after["dissatisfied"], after["rate"]) == (3, 3, 0, 1.0)
    assert after["raw_n"] == before["raw_n"] == 4 and after["suspect"] == 1
    # … never out of the record.
    stored = rows(env.org, "SELECT flags, level FROM responses WHERE id = ?", (bad,))
    assert stored and json.loads(stored[0]["flags"]) == ["appeal_upheld"] and stored[0]["level"] == 1
    assert rows(env.org, "SELECT count(*) AS n FROM responses")[0]["n"] == 4
    # Terminal.
    for target in ("verifying", "closed", "reopened", "appeal_rejected"):
        assert step(server, tokens["boss"], aid, target).status_code == 409


@pytest.mark.postgres_covered_elsewhere
def test_contact_is_shown_while_open_and_callback_flagged_on_close(env: Env, server: Server) -> None:
    tokens = env.org.tokens
    reply = httpx.post(
        f"{server.url}/api/v1/responses",
        timeout=15,
        json={"touchpoint": "tp-a1", "answers": {"overall": 2, "contact": "+84 90 123 4567"}},
    )
    rid = reply.json()["id"]
    aid = open_for_response(env, rid, kind="callback")["id"]
    shown = api(server, "GET", f"/api/v1/actions/{aid}", tokens["manager_a1"]).json()
    assert shown["contact"] == "+84 90 123 4567" and shown["kind"] == "callback"
    assert "contact" not in api(server, "GET", f"/api/v1/actions/{aid}", tokens["auditor_a"]).json()
    for target, fields in (
        ("verifying", {}),
        ("explained", {"explanation": "called back, explained the rules"}),
        ("closed", {}),
    ):
        assert step(server, tokens["manager_a1"], aid, target, **fields).status_code == 201
    closing = [e for e in env.events() if e["type"] == "action.changed" and e["data"]["status"] == "closed"]
    assert len(closing) == 1 and closing[0]["data"]["callback"] is True
    assert closing[0]["data"]["event"]["to_status"] == "closed"
    others = [e for e in env.events() if e["type"] == "action.changed" and e["data"]["status"] != "closed"]
    assert others and all("callback" not in e["data"] for e in others)
    assert api(server, "GET", f"/api/v1/actions/{aid}", tokens["manager_a1"]).json()["contact"] is None


# -- KPIs --------------------------------------------------------------------------------------------------------
def _walk(conn: Connection, snapshot: Any, aid: int, at: datetime, path: list[str]) -> None:
    for target in path:
        fields = {"explanation": "no legal basis"} if target == "explained" else {}
        actions.transition(conn, aid, target, actor="lan", role="manager", fields=fields, snapshot=snapshot, now=at)


def test_kpis_on_time_and_callback_rates(env: Env, server: Server) -> None:
    def at(day: int, month: int = 1) -> datetime:
        return datetime(2026, month, day, 3, 0, tzinfo=UTC)  # 10:00 local

    close = ["verifying", "explained", "closed"]

    def history(conn: Connection, snapshot: Any) -> None:
        def opened(key: str, kind: str, when: datetime, due: str, unit: str = "A1") -> int:
            request = ActionRequest(kind=kind, source_key=key, unit=unit, title=key, due=due)
            return actions.open_action(conn, request, snapshot=snapshot, now=when)["id"]

        on_time = opened("on-time", "work_order", at(5), "2026-01-10")
        _walk(conn, snapshot, on_time, at(9), close)
        late = opened("late", "work_order", at(5), "2026-01-10")
        _walk(conn, snapshot, late, at(15), close)
        opened("overdue", "work_order", at(20), "2026-01-25")  # still open, past due at the end of January
        opened("not-yet-due", "nonconformity", at(28), "2026-02-05")
        called = opened("callback-done", "callback", at(10), "2026-01-20", unit="A1a")
        callbacks.record_attempt(conn, called, via="phone", outcome="reached", by="lan", at=at(12))
        _walk(conn, snapshot, called, at(12), close)
        opened("callback-open", "callback", at(11), "2026-01-20", unit="A1a")
        # Opened before the period, still open and overdue at its end.
        opened("december", "work_order", datetime(2025, 12, 1, 3, tzinfo=UTC), "2025-12-05")
        elsewhere = opened("in-b", "callback", at(10), "2026-01-20", unit="B")
        callbacks.record_attempt(conn, elsewhere, via="mail", outcome="reached", by="system", at=at(11))
        _walk(conn, snapshot, elsewhere, at(11), close)
        # Opened on 31 January at 23:30 local time, which is still January there (16:30 UTC).
        opened("last-evening", "work_order", datetime(2026, 1, 31, 16, 30, tzinfo=UTC), "2026-02-10")
        # 1 February at 00:30 local time is 31 January in UTC: not in the period.
        february = opened("february", "work_order", datetime(2026, 1, 31, 17, 30, tzinfo=UTC), "2026-02-10")
        _walk(conn, snapshot, february, at(3, 2), close)

    env.db(history)
    reply = api(
        server,
        "GET",
        "/api/v1/kpis",
        env.org.tokens["admin"],
        params={"unit": "A", "from": "2026-01-01", "to": "2026-01-31"},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    total = body["total"]
    assert (total["opened"], total["closed"], total["closed_on_time"]) == (7, 3, 2)
    # Open past the due day at the end of the period: overdue, callback-open, december.
    assert total["overdue_open"] == 3 and total["on_time_n"] == 6
    assert total["on_time_rate"] == pytest.approx(2 / 6)
    assert total["on_time_ci95"] == pytest.approx(list(wilson(2, 6)))
    # Call-backs: one reached, one still pending past its due day (20 January): 1 of 2.
    assert (total["callbacks"], total["callbacks_reached"], total["callback_rate"]) == (2, 1, 0.5)
    assert (total["callbacks_overdue"], total["callbacks_declined"], total["callbacks_not_reached"]) == (1, 0, 0)
    assert total["callback_ci95"] == pytest.approx(list(wilson(1, 2)))
    assert total["on_time_sufficient"] is False
    by_unit = {row["unit"]: row for row in body["rows"]}
    assert list(by_unit) == ["A", "A1", "A1a"]
    assert (by_unit["A1"]["opened"], by_unit["A1"]["closed"], by_unit["A1"]["overdue_open"]) == (5, 2, 2)
    assert (by_unit["A1a"]["callbacks"], by_unit["A1a"]["callbacks_reached"]) == (2, 1)
    assert by_unit["A"]["opened"] == 0 and by_unit["A"]["on_time_rate"] is None

    def metrics(conn: Connection, snapshot: Any) -> tuple:
        return (
            actions.metric_on_time(conn, snapshot, "A", "2026-01-01", "2026-01-31"),
            actions.metric_callback(conn, snapshot, "A", "2026-01-01", "2026-01-31"),
            actions.metric_on_time(conn, snapshot, "A1a", "2026-01-01", "2026-01-31"),
            actions.metric_callback(conn, snapshot, "B", "2026-01-01", "2026-01-31"),
        )

    assert env.db(metrics) == ((2, 6), (1, 2), (1, 2), (1, 1))
    for params, field in (
        ({"from": "2026-13-01"}, "from"),
        ({"to": "x"}, "to"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ):
        reply = api(server, "GET", "/api/v1/kpis", env.org.tokens["admin"], params={"unit": "A", **params})
        assert reply.status_code == 400 and reply.json()["field"] == field
    assert api(server, "GET", "/api/v1/kpis", env.org.tokens["admin"]).status_code == 400
    assert api(server, "GET", "/api/v1/kpis", env.org.tokens["manager_a1"]).json()["unit"] == "A1"


# -- jobs: deadlines and escalation ------------------------------------------------------------------------------
@pytest.mark.postgres_covered_elsewhere
def test_deadline_job_reminds_then_escalates_to_the_manager_above(env: Env, server: Server) -> None:
    admin = env.org.tokens["admin"]

    def manual(unit: str, title: str) -> dict[str, Any]:
        body = {"unit": unit, "title": title, "working_days": 5}
        return api(server, "POST", "/api/v1/actions", admin, json=body).json()

    near, deep, top = manual("A1", "Near"), manual("A1a", "Deep"), manual("A", "Top")
    due = date.fromisoformat(near["due"])
    assert deep["due"] == top["due"] == near["due"] and deep["owner"] == "lan"

    # Well before the deadline: nothing.
    env.tick(datetime.now(UTC))
    assert rows(env.org, "SELECT count(*) AS n FROM actions WHERE due_soon_at IS NOT NULL")[0]["n"] == 0
    assert env.events() == [] or all(e["type"] == "action.opened" for e in env.events())

    # On the due day (10:00 local): within 2 working days → one reminder each, once.
    on_due_day = datetime.combine(due, datetime.min.time(), HCM).replace(hour=10).astimezone(UTC)
    env.tick(on_due_day)
    env.tick(on_due_day + timedelta(minutes=10))
    soon = [e for e in env.events() if e["type"] == "action.due_soon"]
    assert sorted(e["id"] for e in soon) == sorted(f"action.due_soon:{a['id']}" for a in (near, deep, top))
    assert all(e["data"]["overdue"] is False for e in soon)

    # The day after the due day: overdue, escalated to the owner of the unit above.
    env.tick(on_due_day + timedelta(days=1))
    env.tick(on_due_day + timedelta(days=2))
    overdue = {e["data"]["id"]: e for e in env.events() if e["type"] == "action.overdue"}
    assert set(overdue) == {near["id"], deep["id"], top["id"]}
    assert overdue[near["id"]]["id"] == f"action.overdue:{near['id']}"
    assert overdue[near["id"]]["data"]["escalated_to"] == "boss"
    assert overdue[near["id"]]["data"]["overdue"] is True
    # A1a has no owner: lan (A1) owns its action, so the escalation goes past lan to boss.
    assert overdue[deep["id"]]["data"]["escalated_to"] == "boss"
    # A root unit has nobody above.
    assert overdue[top["id"]]["data"]["escalated_to"] is None
    stored = {r["id"]: r for r in rows(env.org, "SELECT * FROM actions")}
    assert stored[near["id"]]["escalated_to"] == "boss" and stored[near["id"]]["overdue_at"] is not None
    events = rows(env.org, "SELECT * FROM action_events WHERE action = ? ORDER BY seq", (near["id"],))
    assert [e["type"] for e in events] == ["opened", "escalated"]
    assert events[1]["actor"] == "system" and "lan" not in events[1]["note"] and "boss" in events[1]["note"]
    assert [e["type"] for e in rows(env.org, "SELECT type FROM action_events WHERE action = ?", (top["id"],))] == [
        "opened",
        "overdue",
    ]
    shown = api(server, "GET", f"/api/v1/actions/{deep['id']}", admin).json()
    assert shown["escalated_to"] == "boss" and shown["events"][-1]["data"]["escalated_to"] == "boss"

    # A closed action is left alone by the job.
    closed = api(
        server, "POST", "/api/v1/actions", admin, json={"unit": "A1", "title": "Done", "working_days": 1}
    ).json()
    for target, fields in (("verifying", {}), ("explained", {"explanation": "n/a"}), ("closed", {})):
        assert step(server, admin, closed["id"], target, **fields).status_code == 201
    env.tick(on_due_day + timedelta(days=30))
    assert not [
        e
        for e in env.events()
        if e["data"]["id"] == closed["id"] and e["type"] != "action.changed" and e["type"] != "action.opened"
    ]


# -- jobs: effectiveness -------------------------------------------------------------------------------------------
@pytest.mark.postgres_covered_elsewhere
def test_effectiveness_review_closes_recovered_and_reopens_the_rest(env: Env, server: Server) -> None:
    now = datetime.now(UTC)

    def in_review(
        key: str,
        unit: str,
        service: str | None,
        target: float | None,
        opened: datetime,
        review: datetime,
        weeks: int = 4,
        close: bool = False,
    ) -> int:
        def run(conn: Connection, snapshot: Any) -> int:
            request = ActionRequest(
                kind="nonconformity", source_key=key, unit=unit, title=key, service=service, target=target
            )
            aid = actions.open_action(conn, request, snapshot=snapshot, now=opened)["id"]
            for target_state in ("verifying", "corrected", "implemented", "effectiveness_review"):
                actions.transition(
                    conn,
                    aid,
                    target_state,
                    actor="lan",
                    role="manager",
                    fields={},
                    snapshot=snapshot,
                    now=review,
                    weeks=weeks,
                )
            if close:
                actions.transition(
                    conn, aid, "closed", actor="lan", role="manager", fields={}, snapshot=snapshot, now=review
                )
            return aid

        return env.db(run)

    def back(days: float) -> str:
        return (now - timedelta(days=days)).isoformat()

    # Baseline for the S2 hall: good before anything was opened.
    for _ in range(10):
        post_response(server, "tp-a", 5, service="S2", submitted_at=back(20))
    recovered = in_review("recovered", "A1", "S1", 0.8, now - timedelta(days=40), now - timedelta(days=30))
    confirmed = in_review("confirmed", "A1", "S1", 0.8, now - timedelta(days=40), now - timedelta(days=30), close=True)
    not_recovered = in_review("not-recovered", "A", "S2", 0.8, now - timedelta(days=40), now - timedelta(days=30))
    # No target: judged against the rate of the 90 days before it opened (the ten good ratings).
    below_baseline = in_review(
        "below-baseline", "A", "S2", None, now - timedelta(days=12), now - timedelta(days=10), weeks=1
    )
    quiet = in_review("quiet", "A1a", None, 0.8, now - timedelta(days=40), now - timedelta(days=30))
    assert rows(env.org, "SELECT baseline FROM actions WHERE id = ?", (below_baseline,))[0]["baseline"] == 1.0
    # The weeks after: the A1 counter recovered (20 of 20: the whole interval clears 80 %; 12 of 12 would
    # not), the S2 hall did not.
    for _ in range(20):
        post_response(server, "tp-a1", 5, submitted_at=back(8))
    for _ in range(12):
        post_response(server, "tp-a", 1, service="S2", submitted_at=back(8))

    env.tick(now, FEEDBACK_MIN_N="10")
    stored = {r["id"]: r for r in rows(env.org, "SELECT * FROM actions")}
    assert stored[recovered]["status"] == "closed" and stored[recovered]["closed_at"] is not None
    assert stored[recovered]["watch_until"] is None
    last = rows(env.org, "SELECT * FROM action_events WHERE action = ? ORDER BY seq DESC LIMIT 1", (recovered,))[0]
    assert (last["type"], last["actor"], last["from_status"]) == ("closed", "system", "effectiveness_review")
    figures = json.loads(last["data"])["effectiveness"]
    assert figures["verdict"] == "effective" and figures["n"] == 20 and figures["rate"] == 1.0
    assert figures["target"] == 0.8 and figures["target_source"] == "target" and figures["ci95"][0] >= 0.8
    assert "20" in last["result"]  # the figures are on record, in the unit's language

    assert stored[confirmed]["status"] == "closed" and stored[confirmed]["watch_until"] is None
    assert (
        rows(env.org, "SELECT type FROM action_events WHERE action = ? ORDER BY seq DESC LIMIT 1", (confirmed,))[0][
            "type"
        ]
        == "effectiveness_confirmed"
    )

    assert stored[not_recovered]["status"] == "reopened" and stored[not_recovered]["reopen_count"] == 1
    last = rows(env.org, "SELECT * FROM action_events WHERE action = ? ORDER BY seq DESC LIMIT 1", (not_recovered,))[0]
    figures = json.loads(last["data"])["effectiveness"]
    assert (last["type"], last["actor"]) == ("reopened", "system")
    assert figures["verdict"] == "not_effective" and figures["n"] == 22
    assert figures["ci95"][1] < 0.8 and "22" in last["note"]

    assert stored[below_baseline]["status"] == "reopened"
    figures = json.loads(
        rows(env.org, "SELECT data FROM action_events WHERE action = ? ORDER BY seq DESC LIMIT 1", (below_baseline,))[
            0
        ]["data"]
    )["effectiveness"]
    assert figures["target_source"] == "baseline" and figures["target"] == 1.0 and figures["n"] == 12

    changed = {e["data"]["id"]: e for e in env.events() if e["type"] == "action.changed"}
    assert changed[recovered]["data"]["status"] == "closed"
    assert changed[not_recovered]["data"]["status"] == "reopened"

    # Too few responses: watched a week longer, three times, then recorded as unknown.
    assert stored[quiet]["status"] == "effectiveness_review" and stored[quiet]["watch_extensions"] == 1
    first_until = date.fromisoformat(stored[quiet]["watch_until"])
    for week in (1, 2, 3):
        env.tick(now + timedelta(weeks=week), FEEDBACK_MIN_N="10")
    quiet_row = rows(env.org, "SELECT * FROM actions WHERE id = ?", (quiet,))[0]
    assert quiet_row["status"] == "effectiveness_review" and quiet_row["watch_until"] is None
    assert quiet_row["watch_extensions"] == 3
    types = [r["type"] for r in rows(env.org, "SELECT type FROM action_events WHERE action = ? ORDER BY seq", (quiet,))]
    assert types[-4:] == ["effectiveness_extended"] * 3 + ["effectiveness_unknown"]
    review_day = (now - timedelta(days=30)).astimezone(HCM).date()
    assert first_until == review_day + timedelta(weeks=4, days=7)

    # Judged once: later ticks leave every judgement alone.
    def judgements() -> list[dict[str, Any]]:
        return rows(
            env.org,
            "SELECT seq FROM action_events WHERE type IN"
            " ('effectiveness_extended', 'effectiveness_unknown', 'effectiveness_confirmed')"
            " OR (actor = 'system' AND type IN ('closed', 'reopened'))",
        )

    before = judgements()
    env.tick(now + timedelta(weeks=8), FEEDBACK_MIN_N="10")
    assert judgements() == before and len(before) == 8
