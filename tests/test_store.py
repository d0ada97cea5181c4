"""The writer thread: group commit, and one failing job never takes its batch down."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from feedback.db import Store


def test_a_failing_job_rolls_back_alone_and_the_rest_of_its_batch_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    setup.commit()
    setup.close()
    store = Store(path)

    def insert(key: str):
        def job(conn: sqlite3.Connection) -> str:
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
    with pytest.raises(sqlite3.IntegrityError):
        futures[3].result(10)  # a duplicate key fails on its own
    store.close()
    conn = sqlite3.connect(path)
    assert sorted(r[0] for r in conn.execute("SELECT k FROM t")) == ["a", "b"]
    assert store.batches == 1 and store.writes == 4


def test_writes_are_durable_settings(tmp_path: Path) -> None:
    from feedback.db import connect_writer

    conn = connect_writer(str(tmp_path / "d.db"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
