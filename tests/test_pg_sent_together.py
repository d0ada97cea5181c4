"""Statements sent together on PostgreSQL (`pg.Connection.sent_together`, psycopg's pipeline mode): the
writer's group commit sends its flush in one round trip, results are there when asked for, and an error
is raised as the store names it, failing the transaction as it would have statement by statement."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg import pq

from feedback.db import Store, deferred
from feedback.store import Connection, IntegrityError
from feedback.store.errors import PgIntegrityError
from tests.conftest import connect, new_postgres_database

pytestmark = pytest.mark.backends("postgresql")


@pytest.fixture
def url(backend: str) -> str:
    url = new_postgres_database()
    setup = connect(url)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)")
    setup.close()
    return url


def keys(url: str) -> list[tuple[str, int]]:
    conn = connect(url)
    try:
        return [(row["k"], row["n"]) for row in conn.execute("SELECT k, n FROM t ORDER BY k")]
    finally:
        conn.close()


class SyncCounter:
    """Counts the Sync messages the client sends (each waits for its answers: a round trip in pipeline
    mode), from libpq's trace of the protocol."""

    def __init__(self, conn: Connection, folder: Path) -> None:
        self.pgconn = conn.raw.pgconn
        self.path = folder / "trace.txt"

    def __enter__(self) -> SyncCounter:
        self.file = self.path.open("w")
        self.pgconn.trace(self.file.fileno())
        return self

    @property
    def count(self) -> int:
        self.file.flush()
        lines = self.path.read_text().splitlines()
        return sum(1 for line in lines if line.split("\t")[1:4:2] == ["F", "Sync"])

    def __exit__(self, *_exc: object) -> None:
        self.pgconn.untrace()
        self.file.close()


def test_statements_sent_together_are_answered_when_their_result_is_read(url: str, tmp_path: Path) -> None:
    conn = connect(url)
    try:
        conn.execute("BEGIN")
        with SyncCounter(conn, tmp_path) as syncs, conn.sent_together():
            assert conn.raw.pgconn.pipeline_status != pq.PipelineStatus.OFF
            conn.executemany("INSERT INTO t (k) VALUES (?)", [("a",), ("b",)])
            conn.executemany("UPDATE t SET n = n + ? WHERE k = ?", [(1, "a"), (2, "b")])
            assert syncs.count == 0  # nothing waited for yet
            taken = conn.executemany("INSERT INTO t (k) VALUES (?) ON CONFLICT (k) DO NOTHING", [("b",), ("c",)])
            assert taken.rowcount == 1  # read: everything so far goes in one round trip
            assert syncs.count == 1
            with conn.sent_together():  # nested: the outer block sends
                returned = conn.execute("INSERT INTO t (k, n) VALUES (?, 7) RETURNING k, n", ("d",))
            assert syncs.count == 1
            assert [tuple(row) for row in returned.fetchall()] == [("d", 7)]
            assert syncs.count == 2
        assert conn.raw.pgconn.pipeline_status == pq.PipelineStatus.OFF
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert keys(url) == [("a", 1), ("b", 2), ("c", 0), ("d", 7)]


def test_a_statement_failing_among_those_sent_together_fails_the_transaction(url: str) -> None:
    conn = connect(url)
    try:
        conn.execute("INSERT INTO t (k) VALUES ('kept')")
        conn.execute("BEGIN")
        with pytest.raises(IntegrityError) as refused, conn.sent_together():
            conn.executemany("INSERT INTO t (k) VALUES (?)", [("new",)])
            conn.executemany("INSERT INTO t (k) VALUES (?)", [("kept",)])  # the key is taken
            conn.executemany("INSERT INTO t (k) VALUES (?)", [("after",)])  # skipped by the server
        assert isinstance(refused.value, PgIntegrityError) and refused.value.sqlstate == "23505"
        assert conn.in_transaction  # failed, awaiting its ROLLBACK: nothing of it can commit
        conn.execute("ROLLBACK")
        # An error of the caller's own inside the block leaves the connection as usable.
        conn.execute("BEGIN")
        with pytest.raises(ValueError), conn.sent_together():
            conn.executemany("INSERT INTO t (k) VALUES (?)", [("unsent",)])
            raise ValueError("the caller's")
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        conn.close()
    assert keys(url) == [("kept", 0)]


class Journal:
    """Deferred work that inserts its keys with one statement at the flush (as ingest's rollups do)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def flush(self, conn: Connection) -> None:
        conn.executemany("INSERT INTO t (k) VALUES (?)", [(key,) for key in self.keys])
        self.keys = []


def journalling(key: str):
    def job(conn: Connection) -> str:
        journal = deferred("journal", Journal)
        assert journal is not None
        journal.keys.append(key)
        return key

    job.defers = True
    return job


def test_a_group_commit_whose_flush_fails_is_replayed_job_by_job(url: str) -> None:
    conn = connect(url)
    conn.execute("INSERT INTO t (k) VALUES ('taken')")
    conn.close()
    store = Store(url)
    futures = [store.submit_write(journalling(key)) for key in ("a", "taken", "b")]
    store.start()
    try:
        assert futures[0].result(10) == "a" and futures[2].result(10) == "b"
        with pytest.raises(IntegrityError):
            futures[1].result(10)
    finally:
        store.close()
    assert store.batches == 1
    assert [k for k, _ in keys(url)] == ["a", "b", "taken"]


def test_the_writer_sends_a_group_commits_flushes_together(url: str) -> None:
    seen: list[bool] = []

    class Counted(Journal):
        def flush(self, conn: Connection) -> None:
            seen.append(conn.pipeline is not None)  # inside `sent_together`: not yet sent
            conn.executemany("UPDATE t SET n = n + 1 WHERE k = ?", [(key,) for key in self.keys])
            self.keys = []

    def job(conn: Connection) -> None:
        for key, kind in (("journal", Journal), ("counted", Counted)):
            found = deferred(key, kind)
            assert found is not None
            found.keys.append("x")

    job.defers = True  # type: ignore[attr-defined]
    store = Store(url)
    store.start()
    try:
        store.submit_write(job).result(10)
    finally:
        store.close()
    assert seen == [True]
    assert keys(url) == [("x", 0)]  # the later flush first: it counted no row yet, as the writer orders them
