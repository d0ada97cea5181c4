"""The writer thread: group commit, and one failing job never takes its batch down."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback.db import Store
from feedback.store import Connection, IntegrityError
from tests.conftest import BOTH_BACKENDS, Org, connect, new_postgres_database

pytestmark = BOTH_BACKENDS


@pytest.fixture
def database(tmp_path: Path, backend: str) -> str:
    """An empty database: a new SQLite file, or a new PostgreSQL database's URL."""
    return new_postgres_database() if backend == "postgresql" else str(tmp_path / "s.db")


def values(path: str, sql: str) -> list:
    conn = connect(path)
    try:
        return [row[0] for row in conn.execute(sql)]
    finally:
        conn.close()


def test_a_failing_job_rolls_back_alone_and_the_rest_of_its_batch_commits(database: str) -> None:
    path = database
    setup = connect(path)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    setup.commit()
    setup.close()
    store = Store(path)

    def insert(key: str):
        def job(conn: Connection) -> str:
            conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
            if key == "bad":
                raise ValueError("refused")
            return key

        return job

    # Queued before the writer starts, so they land in one batch.
    futures = [store.submit_write(insert(key)) for key in ("a", "bad", "b", "a")]
    store.start()
    assert futures[0].result(10) == "a"
    with pytest.raises(ValueError, match="refused"):
        futures[1].result(10)
    assert futures[2].result(10) == "b"
    with pytest.raises(IntegrityError):
        futures[3].result(10)  # a duplicate key fails on its own
    store.close()
    assert sorted(values(path, "SELECT k FROM t")) == ["a", "b"]
    assert store.batches == 1 and store.writes == 4


def test_writes_are_durable_settings(database: str, backend: str) -> None:
    from feedback.db import connect_writer

    conn = connect_writer(database)
    try:
        if backend == "postgresql":
            # Each COMMIT waits for the WAL flush, whatever the cluster's default.
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        else:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        conn.close()


class Tally:
    """A Deferred that sums into one row of `totals`, as the rollups do."""

    def __init__(self) -> None:
        self.added = 0

    def flush(self, conn: Connection) -> None:
        conn.execute("UPDATE totals SET n = n + ?", (self.added,))
        self.added = 0


def _tally_store(path: str) -> tuple[str, Store]:
    setup = connect(path)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    setup.execute("CREATE TABLE totals (n INTEGER NOT NULL)")
    setup.execute("INSERT INTO totals VALUES (0)")
    setup.commit()
    setup.close()
    return path, Store(path)


def _counting(key: str):
    """A job that inserts a row and counts it in the transaction's Tally (deferred, like ingest's rollups)."""
    from feedback.db import deferred

    def job(conn: Connection) -> str:
        conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
        tally = deferred("tally", Tally)
        assert tally is not None  # on the writer thread
        tally.added += 1
        if key.startswith("bad"):
            raise ValueError("refused")
        return key

    job.defers = True
    return job


def test_deferred_work_is_flushed_once_per_commit_and_a_failed_job_takes_its_share_with_it(database: str) -> None:
    path, store = _tally_store(database)
    seen: list[int] = []

    def reader(conn: Connection) -> None:
        # Not a deferring job: what the jobs before it deferred is written before it runs.
        seen.append(conn.execute("SELECT n FROM totals").fetchone()[0])

    keys = ("a", "b", "c")
    futures = [store.submit_write(_counting(k)) for k in keys]
    futures.append(store.submit_write(reader))
    futures += [store.submit_write(_counting(k)) for k in ("d", "bad", "e")]
    store.start()
    for future in futures:
        if future is not futures[-2]:
            future.result(10)
    with pytest.raises(ValueError):
        futures[-2].result(10)
    store.close()
    assert sorted(values(path, "SELECT k FROM t")) == ["a", "b", "c", "d", "e"]
    # Every committed row counted once, the failed job's not at all; the reader saw the first three,
    # both in the optimistic pass and when the failure made the writer replay the batch job by job.
    assert values(path, "SELECT n FROM totals") == [5]
    assert seen == [3, 3]
    assert store.batches == 1


def test_deferred_work_outside_a_writer_thread_is_none() -> None:
    from feedback.db import deferred

    assert deferred("tally", Tally) is None


def test_the_writer_accounts_for_its_time(database: str) -> None:
    # What /healthz reports: the writer's time running batches, and of that, in COMMIT.
    path, store = _tally_store(database)
    store.start()
    for key in ("a", "b", "c"):
        store.submit_write(_counting(key)).result(10)
    store.close()
    assert store.batches == 3 and store.writes == 3
    assert 0 < store.commit_seconds <= store.write_seconds < 10


def test_the_case_lookup_uses_an_index_of_only_the_responses_that_name_a_case(org: Org) -> None:
    from feedback.store import responses

    conn = connect(org.db)
    lookup = "SELECT 1 FROM responses WHERE touchpoint = ? AND case_ref = ? AND case_verified = 1 AND id != ? LIMIT 1"
    if org.backend == "postgresql":
        sql = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_responses_touchpoint_case_ref'")
        assert sql.fetchone()[0].endswith("WHERE (case_ref IS NOT NULL)")
        conn.execute("SET enable_seqscan = off")  # the table is empty: ask which index the planner would take
        plan = " ".join(row[0] for row in conn.execute("EXPLAIN " + lookup, ("tp-a", "C-1", "x")))
    else:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'idx_responses_touchpoint_case_ref'")
        assert sql.fetchone()[0].endswith("WHERE case_ref IS NOT NULL")
        plan = " ".join(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + lookup, ("tp-a", "C-1", "x")))
    assert "idx_responses_touchpoint_case_ref" in plan
    assert responses.case_claimed(conn, "tp-a", "C-1", "x") is False
    conn.close()


def test_state_kept_with_a_store_belongs_to_that_store_alone(tmp_path: Path) -> None:
    first, second = Store(str(tmp_path / "a.db")), Store(str(tmp_path / "b.db"))
    cache = first.local("tokens", dict)
    cache["t"] = "alice"
    assert first.local("tokens", dict) is cache  # made once, then the same value
    assert second.local("tokens", dict) == {}  # another app's store never sees it
