"""Read-then-write races decided by the database, not by there being one writer.

Each check that used to be "read, decide, write" is now a compare-and-set or a key the database
enforces, so it holds with several writers too (another server process, or a database that lets
transactions run side by side). The tests interleave two transactions on the real database (an
SQLite file, a PostgreSQL database) the way two writers would, and send conflicting requests at once to a real server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from feedback import actions, organisation, surveys
from feedback.catalog import load_snapshot
from feedback.errors import Conflict, NotFound
from feedback.models import ActionRequest
from feedback.store import Connection, dialect
from feedback.store.dialect import is_postgres_url
from feedback.web.manage.admin_surveys import create_draft, publish_draft
from tests.conftest import BOTH_BACKENDS, Org, auth_header, default_plugins, rows
from tests.conftest import connect as plain_connection

pytestmark = BOTH_BACKENDS
T = TypeVar("T")


def connect(db: Path | str) -> Connection:
    """A connection like the store's: explicit transactions, rows by name, foreign keys enforced."""
    if is_postgres_url(str(db)):
        return plain_connection(db)  # autocommit: transactions are the explicit BEGIN/COMMIT
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def in_write(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """fn(conn) in one write transaction (holding the write lock from its start, as the writer does):
    committed when it returns, rolled back when it raises."""
    with dialect.of(conn).write_transaction(conn):
        return fn(conn)


def open_manual_action(org: Org, unit: str = "A1") -> int:
    conn = connect(org.db)
    try:
        snapshot = load_snapshot(conn, default_plugins())
        request = ActionRequest(kind="manual", source_key=f"manual:{unit}:race", unit=unit, title="Queue too long")
        opened = in_write(conn, lambda c: actions.open_action(c, request, snapshot=snapshot, now=datetime.now(UTC)))
        assert opened is not None
        return opened["id"]
    finally:
        conn.close()


# -- corrective-action steps ------------------------------------------------------------------------------


def test_a_step_planned_from_a_state_another_step_left_is_a_conflict(org: Org) -> None:
    aid = open_manual_action(org)
    first, second = connect(org.db), connect(org.db)
    try:
        snapshot = load_snapshot(first, default_plugins())
        now = datetime.now(UTC)

        def plan(conn: Connection, target: str, actor: str, **fields: Any) -> actions.Move:
            return actions.plan_transition(
                conn, aid, target, actor=actor, role="manager", fields=fields, snapshot=snapshot, now=now
            )

        in_write(first, lambda c: actions.apply_move(c, plan(c, "verifying", "lan"), snapshot, now))
        # Two managers each read the action in "verifying" and choose a different, legal next step.
        corrected = plan(first, "corrected", "lan", correction="Second counter opened")
        explained = plan(second, "explained", "boss", explanation="The queue was normal for a Monday")
        assert corrected.from_status == explained.from_status == "verifying"
        in_write(first, lambda c: actions.apply_move(c, corrected, snapshot, now))
        with pytest.raises(Conflict) as refused:
            in_write(second, lambda c: actions.apply_move(c, explained, snapshot, now))
    finally:
        first.close()
        second.close()
    assert refused.value.field == "type"
    assert "'verifying'" in refused.value.message and "'corrected'" in refused.value.message
    # The loser left no trace: one state, one record of the winner.
    assert rows(org, "SELECT status FROM actions WHERE id = ?", (aid,)) == [{"status": "corrected"}]
    steps = rows(org, "SELECT type, actor FROM action_events WHERE action = ? ORDER BY seq", (aid,))
    assert steps == [
        {"type": "opened", "actor": "system"},
        {"type": "verifying", "actor": "lan"},
        {"type": "corrected", "actor": "lan"},
    ]


def test_concurrent_conflicting_steps_over_the_api_one_wins_the_other_is_409(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_jobs="0")
    admin, lan = auth_header(org.tokens["admin"]), auth_header(org.tokens["manager_a1"])
    ids = []
    for number in range(6):
        reply = httpx.post(
            f"{server.url}/api/v1/actions", headers=admin, json={"unit": "A1", "title": f"Case {number}"}, timeout=15
        )
        assert reply.status_code == 201, reply.text
        ids.append(reply.json()["id"])
        step = httpx.post(
            f"{server.url}/api/v1/actions/{ids[-1]}/events", headers=lan, json={"type": "verifying"}, timeout=15
        )
        assert step.status_code == 201, step.text
    moves = [
        {"type": "corrected", "correction": "Second counter opened"},
        {"type": "explained", "explanation": "The queue was normal for a Monday"},
    ]

    def send(job: tuple[int, dict[str, Any]]) -> httpx.Response:
        aid, body = job
        return httpx.post(f"{server.url}/api/v1/actions/{aid}/events", headers=lan, json=body, timeout=30)

    with ThreadPoolExecutor(max_workers=len(ids) * 2) as pool:
        replies = list(pool.map(send, [(aid, body) for aid in ids for body in moves]))
    for index, aid in enumerate(ids):
        pair = replies[2 * index : 2 * index + 2]
        assert sorted(r.status_code for r in pair) == [201, 409], [r.text for r in pair]
        loser = next(r for r in pair if r.status_code == 409)
        assert loser.json()["field"] == "type" and loser.json()["detail"].startswith("type:"), loser.text
        winner = next(r for r in pair if r.status_code == 201).json()["event"]["type"]
        stored = rows(org, "SELECT status FROM actions WHERE id = ?", (aid,))[0]["status"]
        steps = [r["type"] for r in rows(org, "SELECT type FROM action_events WHERE action = ? ORDER BY seq", (aid,))]
        assert stored == winner and steps == ["opened", "verifying", winner]


# -- keys instead of look-ups -----------------------------------------------------------------------------


def test_a_taken_user_name_is_one_201_and_the_rest_409(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_jobs="0")
    admin = auth_header(org.tokens["admin"])
    roles = ["viewer", "manager", "auditor", "viewer", "manager", "auditor", "viewer", "manager"]

    def create(role: str) -> httpx.Response:
        body = {"name": "mai", "role": role, "unit": "A1"}
        return httpx.post(f"{server.url}/api/v1/users", headers=admin, json=body, timeout=30)

    with ThreadPoolExecutor(max_workers=len(roles)) as pool:
        replies = list(pool.map(create, roles))
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * (len(roles) - 1), [r.text for r in replies]
    for reply in replies:
        if reply.status_code == 409:
            assert reply.json()["field"] == "name" and reply.json()["detail"].startswith("name:"), reply.text
    winner = next(r for r in replies if r.status_code == 201).json()
    # The first creation stands: no later one rewrote the user's role.
    assert rows(org, "SELECT role, unit FROM users WHERE name = 'mai'") == [{"role": winner["role"], "unit": "A1"}]


def test_taken_codes_are_conflicts_naming_the_field_and_the_transaction_goes_on(org: Org) -> None:
    conn = connect(org.db)
    try:

        def attempt(fn: Callable[[Connection], Any]) -> Conflict:
            with pytest.raises(Conflict) as refused:
                fn(conn)
            return refused.value

        def job(c: Connection) -> list[Conflict]:
            refused = [
                attempt(lambda c: organisation.add_unit(c, "A1", "Again", parent="A")),
                attempt(lambda c: organisation.add_service(c, "S1", "Again", agency="A")),
                attempt(lambda c: organisation.add_touchpoint(c, "A", "Again", "csat", token="tp-a")),
            ]
            organisation.add_service(c, "S3", "Third service", agency="A")  # the same transaction still writes
            return refused

        refused = in_write(conn, job)
    finally:
        conn.close()
    assert [(e.field, e.message) for e in refused] == [
        ("code", "code: unit 'A1' exists"),
        ("code", "code: service 'S1' exists"),
        ("token", "token: touchpoint 'tp-a' exists"),
    ]
    assert [r["code"] for r in rows(org, "SELECT code FROM services ORDER BY code")] == ["S1", "S2", "S3"]
    assert rows(org, "SELECT name FROM units WHERE code = 'A1'") == [{"name": "Đơn vị A1"}]


def test_a_draft_is_published_once_however_often_it_is_sent(org: Org) -> None:
    # Two admins publish the same draft: each read it before either wrote, as two pages open at once do.
    plugins = default_plugins()
    conn = connect(org.db)
    try:
        definition = load_snapshot(conn, plugins).current["csat"].definition
        draft_id = in_write(conn, lambda c: create_draft(c, definition, 1, "root"))
        version = in_write(conn, lambda c: publish_draft(c, draft_id, definition, plugins))
        with pytest.raises(NotFound) as refused:
            in_write(conn, lambda c: publish_draft(c, draft_id, definition, plugins))
        # Publishing a survey numbers the version in the same statement that stores it.
        after = in_write(conn, lambda c: surveys.publish(c, definition, plugins))
    finally:
        conn.close()
    assert version == 2 and refused.value.field == "id" and after == 3
    assert [r["version"] for r in rows(org, "SELECT version FROM survey_versions WHERE slug = 'csat'")] == [1, 2, 3]
    assert rows(org, "SELECT count(*) AS n FROM survey_drafts") == [{"n": 0}]
