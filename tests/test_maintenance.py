"""Maintenance of a long-running install: `feedback rebuild-rollups` and the outbox's pruning.

The rollups compared here are built by the real ingest path (a `feedback serve` subprocess answering
POST /api/v1/responses, appeals upheld through the actions API); the rebuild must give exactly the
same tables. The outbox is pruned by the real `outbox.prune` job through `feedback tick`, and a
weekly digest goes through the real mail plugin to a real SMTP server.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedback import outbox
from feedback.db import Store
from feedback.ingest import RESPONSE_COLUMNS
from feedback.models import is_suspect
from feedback.store import Connection, dialect
from feedback.store.dialect import is_postgres_url
from tests.conftest import (
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    connect,
    new_postgres_database,
    postgres_cluster,
    rows,
    run_cli,
)
from tests.test_mail import Sink, staffed_org
from tests.test_mail import smtp as smtp  # noqa: PLC0414 - the SMTP sink fixture, re-exported for pytest

pytestmark = BOTH_BACKENDS

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
ROLLUP_TABLES = ("rollups", "rollups_unit_day", "heatmap_rollups", "rollup_indicators")
VASH_KEYS = ("service_time", "waiting_time", "staff_courtesy", "premises", "information")
# `feedback tick` signs with the servers' secret: a PostgreSQL database has no file beside it for one.
SECRET = {"FEEDBACK_SECRET": "test-secret"}


# -- helpers ---------------------------------------------------------------------------------------------------
def key_and_values(conn: Connection, table: str) -> tuple[list[str], list[str]]:
    """A table's primary key columns (in key order) and its other columns, as the database has them."""
    if dialect.backend(conn) == "postgresql":
        info = conn.execute(
            # The column's place in the primary key, from 1 (indkey's own subscripts may start at 0).
            "SELECT a.attname, CASE WHEN a.attnum = ANY(i.indkey)"
            " THEN array_position(i.indkey::int2[], a.attnum) + 1 ELSE 0 END FROM pg_attribute a"
            " LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary"
            " WHERE a.attrelid = ?::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (table,),
        ).fetchall()
        columns = [(row[0], row[1]) for row in info]
    else:
        columns = [(row[1], row[5]) for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]
    keys = [name for name, position in sorted(columns, key=lambda column: column[1]) if position]
    return keys, [name for name, position in columns if not position]


def dump_rollups(db: Path | str) -> dict[str, dict[tuple, tuple]]:
    """Every rollup table as {primary key: the other columns}."""
    conn = connect(db)
    try:
        tables = {}
        for table in ROLLUP_TABLES:
            keys, values = key_and_values(conn, table)
            tables[table] = {
                tuple(row[: len(keys)]): tuple(row[len(keys) :])
                for row in conn.execute(f"SELECT {', '.join(keys + values)} FROM {table}")
            }
        return tables
    finally:
        conn.close()


def assert_same_rollups(
    expected: dict[str, dict[tuple, tuple]],
    actual: dict[str, dict[tuple, tuple]],
    tables: tuple[str, ...] = ROLLUP_TABLES,
) -> None:
    """Row for row: the same keys, integers equal, floats within 1e-9."""
    for table in tables:
        want, got = expected[table], actual[table]
        assert sorted(set(want) - set(got)) == [], f"{table}: rows missing after the rebuild"
        assert sorted(set(got) - set(want)) == [], f"{table}: rows the rebuild should not have made"
        for key, values in want.items():
            for a, b in zip(values, got[key], strict=True):
                if isinstance(a, float) or isinstance(b, float):
                    assert abs(a - b) <= 1e-9, f"{table} {key}: {values} != {got[key]}"
                else:
                    assert a == b, f"{table} {key}: {values} != {got[key]}"


def copy_db(source: Path | str, target: Path) -> Path | str:
    """A consistent copy of a live database: SQLite's online backup into `target`, or pg_dump's snapshot
    restored into a new PostgreSQL database (whose URL is returned)."""
    if is_postgres_url(str(source)):
        copy = new_postgres_database()
        tools = postgres_cluster().bin
        dump = subprocess.run(
            [str(tools / "pg_dump"), "--format=custom", f"--dbname={source}"], capture_output=True, check=True
        )
        subprocess.run(
            [str(tools / "pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={copy}"],
            input=dump.stdout,
            capture_output=True,
            check=True,
        )
        return copy
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def execute(db: Path | str, *statements: tuple[str, tuple] | str) -> None:
    conn = connect(db)
    try:
        with conn:
            for statement in statements:
                sql, params = (statement, ()) if isinstance(statement, str) else statement
                conn.execute(sql, params)
    finally:
        conn.close()


def rebuild(db: Path | str, *period: str) -> dict[str, Any]:
    result = run_cli("rebuild-rollups", "--db", str(db), *period)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def post(server: Server, body: dict[str, Any], token: str | None = None) -> str:
    reply = httpx.post(
        f"{server.url}/api/v1/responses", json=body, timeout=60, headers=auth_header(token) if token else {}
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def answers_for(touchpoint: str, rng: random.Random, rating: int) -> dict[str, Any]:
    if touchpoint == "tp-b":  # Ваш контроль: five criteria, each its own indicator
        return {key: rng.randint(1, 5) for key in VASH_KEYS}
    answers: dict[str, Any] = {"overall": rating}
    if touchpoint == "tp-a1a":  # 好差评: optional criteria with indicators of their own
        for key in ("efficiency", "competence", "attitude"):
            if rng.random() < 0.6:
                answers[key] = rng.randint(1, 5)
    elif rng.random() < 0.3:
        answers["reasons"] = ["waiting_time", "premises"][: rng.randint(1, 2)]
    return answers


def uphold_appeal(server: Server, org: Org, response_id: str) -> None:
    """The work order a bad 好差评 review opened, appealed by the admin and upheld by A1's manager."""
    [action] = rows(org, "SELECT id FROM actions WHERE response_id = ?", (response_id,))
    for token, step in (("admin", "verifying"), ("admin", "appealed"), ("manager_a1", "appeal_upheld")):
        reply = httpx.post(
            f"{server.url}/api/v1/actions/{action['id']}/events",
            json={"type": step},
            headers=auth_header(org.tokens[token]),
            timeout=30,
        )
        assert reply.status_code == 201, reply.text


def post_history(server: Server, token: str, count: int = 160) -> list[str]:
    """Responses over the last eight days on every touchpoint, some suspect (a case reference seen
    before, vouched for by `token` half the time), some with a distrusted client clock (counted,
    flagged), and two bad 好差评 reviews with work orders to appeal, one of them alone on its day.
    Returns the ids of those two."""
    rng = random.Random(9001)
    now = datetime.now(UTC)
    for i in range(count):
        touchpoint = rng.choice(["tp-a", "tp-a1", "tp-a1a", "tp-b"])
        body: dict[str, Any] = {
            "touchpoint": touchpoint,
            "answers": answers_for(touchpoint, rng, rng.choice([1, 2, 3, 4, 4, 5, 5, 5])),
            "submitted_at": (now - timedelta(minutes=rng.randint(10, 8 * 24 * 60))).isoformat(),
        }
        if touchpoint == "tp-a" and rng.random() < 0.5:
            body["service"] = "S2"
        vouched = None
        if rng.random() < 0.2:
            body["case_ref"] = f"C-{rng.randint(1, 5)}"
            vouched = token if rng.random() < 0.5 else None
        if i % 40 == 7:
            body["submitted_at"] = (now - timedelta(days=45)).isoformat()
        post(server, body, vouched)
    lone = post(
        server,
        {
            "touchpoint": "tp-a1a",
            "answers": {"overall": 1, "efficiency": 2, "attitude": 1},
            "submitted_at": (now - timedelta(days=20)).isoformat(),
        },
    )
    busy = post(
        server,
        {
            "touchpoint": "tp-a1a",
            "answers": {"overall": 2, "efficiency": 4, "competence": 3},
            "submitted_at": (now - timedelta(days=2)).isoformat(),
        },
    )
    return [lone, busy]


@pytest.fixture(scope="module")
def history(shared_org: Org):
    """An organisation with a history stored by a real server, which keeps running for the module."""
    org = shared_org
    server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    try:
        to_appeal = post_history(server, org.tokens["admin"])
        yield org, server, to_appeal
    finally:
        server.stop()


@dataclass
class Appealed:
    """The history after both appeals were upheld through the API: the rollups ingest kept before and
    after, the rollups rebuilt from the responses, and the indicator rows as they should be (the
    appealed responses counted out, their rows kept even when nothing is left in them)."""

    before: dict[str, dict[tuple, tuple]]
    ingested: dict[str, dict[tuple, tuple]]
    rebuilt: dict[str, dict[tuple, tuple]]
    counted_out: dict[tuple, tuple]
    lone_day: tuple[str, str]


@pytest.fixture(scope="module")
def appealed(history, tmp_path_factory: pytest.TempPathFactory) -> Appealed:
    org, _server, to_appeal = history
    db = copy_db(org.db, tmp_path_factory.mktemp("appealed") / "feedback.db")
    copy = Org(db, tokens=org.tokens)
    server = Server(db, env={"FEEDBACK_JOBS": "0"}).start()
    try:
        before = dump_rollups(db)
        for response_id in to_appeal:
            uphold_appeal(server, copy, response_id)
        ingested = dump_rollups(db)
        rebuild(db)
        rebuilt = dump_rollups(db)
    finally:
        server.stop()
    counted_out = dict(before["rollup_indicators"])
    for response_id in to_appeal:
        [row] = rows(copy, "SELECT * FROM responses WHERE id = ?", (response_id,))
        for indicator, value in json.loads(row["indicators"]).items():
            key = (row["unit"], row["day"], row["service"] or "", row["touchpoint"], indicator)
            n, total = counted_out[key]
            counted_out[key] = (n - 1, total - value)
    [lone] = rows(copy, "SELECT unit, day FROM responses WHERE id = ?", (to_appeal[0],))
    return Appealed(before, ingested, rebuilt, counted_out, (lone["unit"], lone["day"]))


# -- rebuild-rollups -------------------------------------------------------------------------------------------
def test_the_ingest_history_covers_every_rule(history) -> None:
    """The data the rebuild is judged on holds every case ingest treats specially."""
    org, _server, _ = history
    flags = [json.loads(row["flags"]) for row in rows(org, "SELECT flags FROM responses")]
    assert any("duplicate_case" in f for f in flags) and any(f == ["clock_skew"] for f in flags)
    built = dump_rollups(org.db)
    assert any(values[-1] > 0 and values[0] > 0 for values in built["rollups"].values())  # n and suspect
    assert any(key[2] == "" for key in built["rollups"]) and any(key[2] == "S2" for key in built["rollups"])
    assert len({key[1] for key in built["rollups_unit_day"]}) >= 9
    assert len({key[2] for key in built["heatmap_rollups"]}) >= 12
    assert len({key[4] for key in built["rollup_indicators"]}) >= 8


def test_rebuild_gives_exactly_the_rollups_ingest_built(history) -> None:
    org, server, _ = history
    built = dump_rollups(org.db)
    execute(
        org.db,
        "DELETE FROM rollups",
        "UPDATE rollups_unit_day SET n = n + 3, suspect = 0",
        "DELETE FROM heatmap_rollups WHERE hour % 2 = 0",
        "UPDATE rollup_indicators SET sum = sum * 2 + 1",
        "INSERT INTO rollup_indicators (unit, day, service, touchpoint, indicator, n, sum)"
        " VALUES ('A', '1999-01-01', '', 'tp-a', 'overall', 1, 50)",
    )
    assert dump_rollups(org.db) != built
    summary = rebuild(org.db)  # beside the running server
    assert_same_rollups(built, dump_rollups(org.db))
    stored = rows(org, "SELECT flags FROM responses")
    suspect = sum(is_suspect(json.loads(row["flags"])) for row in stored)
    assert (summary["responses"], summary["suspect"], summary["counted"]) == (
        len(stored),
        suspect,
        len(stored) - suspect,
    )
    assert summary["rows"] == {table: len(built[table]) for table in ROLLUP_TABLES}
    assert summary["from"] is None and summary["to"] is None
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200


def test_an_upheld_appeal_stays_out_of_the_rebuilt_rollups(appealed: Appealed) -> None:
    # Rates, the unit-day rollup and the heatmap: moved to suspect exactly as ingest moved them.
    assert_same_rollups(appealed.ingested, appealed.rebuilt, ("rollups", "rollups_unit_day", "heatmap_rollups"))
    assert appealed.ingested["rollups"] != appealed.before["rollups"]
    unit, day = appealed.lone_day
    assert appealed.rebuilt["rollups_unit_day"][(unit, day)][0] == 0  # n
    assert appealed.rebuilt["rollups_unit_day"][(unit, day)][-1] == 1  # suspect
    # Indicators: the appealed answers counted out; the lone review's rows stay, with nothing in them.
    assert_same_rollups({"rollup_indicators": appealed.counted_out}, appealed.rebuilt, ("rollup_indicators",))
    emptied = {
        key[4]: values for key, values in appealed.rebuilt["rollup_indicators"].items() if key[:2] == (unit, day)
    }
    assert emptied == {"overall": (0, 0.0), "efficiency": (0, 0.0), "staff_courtesy": (0, 0.0)}


def test_ingest_counts_an_upheld_appeal_out_of_the_indicator_rollups(appealed: Appealed) -> None:
    assert_same_rollups({"rollup_indicators": appealed.counted_out}, appealed.ingested, ("rollup_indicators",))


def test_a_period_rebuild_leaves_other_days_untouched(history, tmp_path: Path) -> None:
    org, _server, _ = history
    db = copy_db(org.db, tmp_path / "copy.db")
    built = dump_rollups(db)
    days = sorted({key[1] for key in built["rollups_unit_day"]})
    first, last = days[2], days[3]
    execute(
        db,
        *(f"UPDATE {table} SET n = n + 1000" for table in ROLLUP_TABLES),
        ("DELETE FROM rollups WHERE day = ?", (first,)),
    )
    damaged = dump_rollups(db)
    summary = rebuild(db, "--from", first, "--to", last)
    after = dump_rollups(db)

    def within(tables: dict[str, dict[tuple, tuple]], inside: bool) -> dict[str, dict[tuple, tuple]]:
        return {
            table: {key: values for key, values in tables[table].items() if (first <= key[1] <= last) == inside}
            for table in ROLLUP_TABLES
        }

    assert_same_rollups(within(built, True), within(after, True))
    assert within(after, False) == within(damaged, False)
    assert all(within(built, True)[table] for table in ROLLUP_TABLES)
    in_period = rows(Org(db), "SELECT count(*) AS n FROM responses WHERE day BETWEEN ? AND ?", (first, last))
    assert summary["responses"] == in_period[0]["n"] > 0
    assert (summary["from"], summary["to"]) == (first, last)
    # One bound alone: from that day on.
    execute(db, "UPDATE rollups SET n = n + 5")
    rebuild(db, "--from", days[-2])
    tail = dump_rollups(db)["rollups"]
    assert all(
        (values[0] == built["rollups"][key][0]) == (key[1] >= days[-2])
        for key, values in tail.items()
        if not first <= key[1] <= last
    )


def bulk_insert(db: Path | str, unit: str, touchpoint: str, day: str, levels: list[int], flags: str = "[]") -> None:
    """Responses written straight into the table, the way a bulk import would: no rollups."""
    occurred = datetime.combine(datetime.fromisoformat(day).date(), clock(10), HCM).astimezone(UTC).isoformat()
    values = []
    for level in levels:
        row = {
            "id": str(uuid.uuid4()),
            "receipt": "BULK-0000",
            "touchpoint": touchpoint,
            "unit": unit,
            "service": "S1",
            "survey": "csat",
            "survey_version": 1,
            "channel": "paper",
            "transaction_point": None,
            "case_ref": None,
            "counter": None,
            "officer": None,
            "lang": "vi",
            "answers": json.dumps({"overall": level}),
            "client_time": None,
            "server_time": occurred,
            "occurred_at": occurred,
            "day": day,
            "level": level,
            "satisfied": int(level >= 4),
            "dissatisfied": int(level <= 2),
            "score": (level - 1) * 25.0,
            "indicators": json.dumps({"overall": (level - 1) * 25.0}),
            "flags": flags,
            "content_hash": uuid.uuid4().hex,
            "device": None,
            "case_verified": 0,
        }
        values.append(tuple(row[c] for c in RESPONSE_COLUMNS))
    marks = ", ".join("?" for _ in RESPONSE_COLUMNS)
    conn = connect(db)
    try:
        with conn:
            conn.executemany(f"INSERT INTO responses ({', '.join(RESPONSE_COLUMNS)}) VALUES ({marks})", values)
    finally:
        conn.close()


def test_bulk_inserted_responses_count_once_the_rollups_are_rebuilt(history, tmp_path: Path, start_server) -> None:
    org, _server, _ = history
    db = copy_db(org.db, tmp_path / "bulk.db")
    server = start_server(db, feedback_jobs="0")
    day = (datetime.now(HCM) - timedelta(days=30)).date().isoformat()

    def total() -> dict[str, Any]:
        reply = httpx.get(
            f"{server.url}/api/v1/satisfaction",
            params={"unit": "A1", "from": day, "to": day},
            headers=auth_header(org.tokens["admin"]),
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["total"]

    assert total()["n"] == 0
    bulk_insert(db, "A1", "tp-a1", day, [5, 5, 4, 4, 3, 2, 1])
    bulk_insert(db, "A1", "tp-a1", day, [5], flags='["honeypot"]')
    assert total()["n"] == 0  # written beside ingest: the rollups do not know them yet
    summary = rebuild(db, "--from", day, "--to", day)
    assert (summary["responses"], summary["counted"], summary["suspect"]) == (8, 7, 1)
    counted = total()
    assert (counted["n"], counted["satisfied"], counted["suspect"]) == (7, 4, 1)
    assert counted["rate"] == pytest.approx(4 / 7)


def wait_for_posts(posted: list[str], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(posted) < count:
        assert time.monotonic() < deadline, f"only {len(posted)} responses posted"
        time.sleep(0.02)


def test_a_rebuild_beside_live_ingest_loses_and_doubles_nothing(history, tmp_path: Path, start_server) -> None:
    """Responses posted all through a rebuild are either read by it or added after its commit."""
    org, _server, _ = history
    db = copy_db(org.db, tmp_path / "live.db")
    # Enough history that the rebuild holds the write lock for a while.
    columns = ", ".join(RESPONSE_COLUMNS)
    copied = ", ".join("'bulk-' || seq.i || '-' || r.id" if c == "id" else f"r.{c}" for c in RESPONSE_COLUMNS)
    execute(
        db,
        f"""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 400)
                    INSERT INTO responses ({columns}) SELECT {copied} FROM responses r, seq""",
    )
    rebuild(db)
    server = start_server(db, feedback_jobs="0")
    before = rows(Org(db), "SELECT count(*) AS n FROM responses")[0]["n"]
    stop = threading.Event()
    posted: list[str] = []

    def keep_posting() -> None:
        rng = random.Random(5)
        while not stop.is_set():
            touchpoint = rng.choice(["tp-a", "tp-a1", "tp-a1a", "tp-b"])
            posted.append(
                post(server, {"touchpoint": touchpoint, "answers": answers_for(touchpoint, rng, rng.randint(1, 5))})
            )

    poster = threading.Thread(target=keep_posting)
    poster.start()
    try:
        wait_for_posts(posted, 5)
        during = rebuild(db)
        wait_for_posts(posted, len(posted) + 3)
    finally:
        stop.set()
        poster.join(60)
    after = rows(Org(db), "SELECT count(*) AS n FROM responses")[0]["n"]
    assert after == before + len(posted)
    assert before < during["responses"] < after  # it overlapped the stream at both ends
    live = dump_rollups(db)
    rebuild(db)
    assert_same_rollups(live, dump_rollups(db))


def test_a_bad_period_is_refused_naming_the_option(history, tmp_path: Path) -> None:
    org, _server, _ = history
    for args, field in (
        (("--from", "2024-13-01"), "from"),
        (("--to", "yesterday"), "to"),
        (("--from", "2024-03-02", "--to", "2024-03-01"), "to"),
    ):
        result = run_cli("rebuild-rollups", "--db", str(org.db), *args)
        assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith(f"Error: {field}:"), (
            result.stderr
        )


# -- outbox pruning --------------------------------------------------------------------------------------------
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def outbox_db(org: Org) -> Path | str:
    return org.db


def write(db: Path | str, fn) -> Any:
    """fn(conn) in one write transaction that holds the write lock from its start."""
    conn = connect(db)
    try:
        with dialect.of(conn).write_transaction(conn):
            return fn(conn)
    finally:
        conn.close()


def queue(conn: Connection, key: str, at: datetime) -> int:
    assert outbox.enqueue(conn, channel="test", dedupe_key=key, target="t", payload="{}", now=at)
    return conn.execute("SELECT id FROM outbox WHERE dedupe_key = ?", (key,)).fetchone()[0]


def states_of_every_kind(conn: Connection) -> None:
    outbox.delivered(conn, queue(conn, "delivered-at-t0", T0), T0 + timedelta(minutes=1))
    outbox.delivered(conn, queue(conn, "delivered-day-25", T0 + timedelta(days=25)), T0 + timedelta(days=25))
    outbox.retry_later(conn, queue(conn, "given-up-at-t0", T0), T0 + timedelta(hours=1), "gone", give_up=True)
    queue(conn, "pending-never-tried", T0)
    outbox.retry_later(conn, queue(conn, "pending-retrying", T0), T0, "refused")
    queue(conn, "pending-claimed", T0)
    outbox.claim(conn, "test", T0 + timedelta(days=1))  # leases the pending ones that are due


def tick_prune(db: Path | str, now: datetime, **env: str) -> None:
    result = run_cli("tick", "--db", str(db), "--now", now.isoformat(), "--job", "outbox.prune", env={**SECRET, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout[result.stdout.index("{") :])["jobs"] == {"outbox.prune": True}


def keys(db: Path | str) -> list[str]:
    return [row["dedupe_key"] for row in rows(Org(db), "SELECT dedupe_key FROM outbox ORDER BY id")]


PENDING_KEYS = ["pending-never-tried", "pending-retrying", "pending-claimed"]


def test_prune_keeps_delivered_rows_30_days_given_up_90_and_pending_for_ever(outbox_db: Path | str) -> None:
    write(outbox_db, states_of_every_kind)
    everything = keys(outbox_db)
    tick_prune(outbox_db, T0 + timedelta(days=29))
    assert keys(outbox_db) == everything
    tick_prune(outbox_db, T0 + timedelta(days=31))
    assert keys(outbox_db) == ["delivered-day-25", "given-up-at-t0", *PENDING_KEYS]
    tick_prune(outbox_db, T0 + timedelta(days=89))
    assert keys(outbox_db) == ["given-up-at-t0", *PENDING_KEYS]
    tick_prune(outbox_db, T0 + timedelta(days=91))
    assert keys(outbox_db) == PENDING_KEYS
    tick_prune(outbox_db, T0 + timedelta(days=3650))
    assert keys(outbox_db) == PENDING_KEYS


def test_the_keep_days_setting_shortens_both_retentions(outbox_db: Path | str) -> None:
    write(outbox_db, states_of_every_kind)
    tick_prune(outbox_db, T0 + timedelta(days=3), FEEDBACK_OUTBOX_KEEP_DAYS="2")
    assert keys(outbox_db) == ["delivered-day-25", "given-up-at-t0", *PENDING_KEYS]
    tick_prune(outbox_db, T0 + timedelta(days=7), FEEDBACK_OUTBOX_KEEP_DAYS="2")
    assert keys(outbox_db) == ["delivered-day-25", *PENDING_KEYS]
    tick_prune(outbox_db, T0 + timedelta(days=28), FEEDBACK_OUTBOX_KEEP_DAYS="2")
    assert keys(outbox_db) == PENDING_KEYS


def test_a_pruned_key_is_never_queued_again_and_is_kept_only_hashed(outbox_db: Path | str) -> None:
    key = "action.opened:7|mail:lan@example.org"
    write(outbox_db, lambda conn: outbox.delivered(conn, queue(conn, key, T0), T0))
    tick_prune(outbox_db, T0 + timedelta(days=31))
    assert keys(outbox_db) == []
    again = write(
        outbox_db,
        lambda conn: outbox.enqueue(
            conn, channel="mail", dedupe_key=key, target="t", payload="{}", now=T0 + timedelta(days=32)
        ),
    )
    other = write(
        outbox_db,
        lambda conn: outbox.enqueue(
            conn, channel="mail", dedupe_key=key + ".", target="t", payload="{}", now=T0 + timedelta(days=32)
        ),
    )
    assert (again, other) == (False, True)
    assert keys(outbox_db) == [key + "."]
    kept = rows(Org(outbox_db), "SELECT key FROM outbox_pruned")
    assert kept == [{"key": outbox.key_digest(key)}] and b"example.org" not in kept[0]["key"]


def test_prune_deletes_in_short_batches(outbox_db: Path | str) -> None:
    def many(conn: Connection) -> None:
        for i in range(250):
            outbox.delivered(conn, queue(conn, f"old-{i}", T0), T0)
            if i % 50 == 0:
                queue(conn, f"pending-{i}", T0)

    write(outbox_db, many)

    async def scenario() -> tuple[int, int]:
        store = Store(str(outbox_db))
        store.start()
        try:
            writes = store.writes
            pruned = await outbox.prune(store, T0 + timedelta(days=31), 30, batch=100)
            return pruned, store.writes - writes
        finally:
            store.close()

    pruned, writes = asyncio.run(scenario())
    assert (pruned, writes) == (250, 3)  # 100 + 100 + 50 rows, each batch its own write
    assert keys(outbox_db) == [f"pending-{i}" for i in range(0, 250, 50)]
    assert rows(Org(outbox_db), "SELECT count(*) AS n FROM outbox_pruned")[0]["n"] == 250


def test_a_weekly_digest_is_not_sent_again_after_its_row_is_pruned(org: Org, smtp: Sink) -> None:
    if org.backend == "postgresql":
        pytest.skip("the digest job's rule, not the database's: judged on SQLite")
    """The digest key holds its week: replaying that week after the prune must not mail anyone twice."""
    org = staffed_org(org)
    env = {"FEEDBACK_SMTP_URL": smtp.url, **SECRET}
    today = datetime.now(HCM).date()
    monday = today + timedelta(days=7 - today.weekday())
    at = datetime.combine(monday, clock(9), HCM)

    def tick(now: datetime, *jobs: str) -> None:
        args = ["tick", "--db", str(org.db), "--now", now.isoformat()]
        for job in jobs:
            args += ["--job", job]
        result = run_cli(*args, env=env)
        assert result.returncode == 0, result.stderr[-3000:]

    tick(at, "mail.digest", "mail.deliver")
    sent = len(smtp.messages)
    assert sent == 3 and len(smtp.to("mai@example.org")) == 1  # mai, lan and olga
    digests = rows(org, "SELECT dedupe_key FROM outbox WHERE event_type = 'digest' AND delivered_at IS NOT NULL")
    assert len(digests) == 3
    tick(at + timedelta(days=31), "outbox.prune")
    assert rows(org, "SELECT count(*) AS n FROM outbox WHERE event_type = 'digest'")[0]["n"] == 0
    tick(at + timedelta(hours=1), "mail.digest", "mail.deliver")  # the same week once more
    assert len(smtp.messages) == sent
    assert rows(org, "SELECT count(*) AS n FROM outbox WHERE event_type = 'digest'")[0]["n"] == 0
