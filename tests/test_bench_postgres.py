"""bench/ingest.py on PostgreSQL: its bulk loader makes the same synthetic responses and rollups as the
SQLite one (so part 2 compares like with like), and a database given with --db is refused unless empty
and left empty again."""

from __future__ import annotations

import contextlib
import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from tests.conftest import new_postgres_database

pytestmark = pytest.mark.backends("postgresql")

ROOT = Path(__file__).resolve().parent.parent
RESPONSE_COLUMNS = (
    "id, receipt, touchpoint, unit, coalesce(service, ''), survey, channel, lang, counter, answers, "
    "occurred_at, server_time, day, level, satisfied, dissatisfied, score, indicators, flags"
)
ROLLUP_COLUMNS = "unit, day, service, touchpoint, n, satisfied, dissatisfied, score_n, score_sum, l1, l2, l3, l4, l5"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def sqlite_rows(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return sorted(conn.execute(sql).fetchall())


def pg_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return sorted(tuple(row) for row in conn.execute(sql).fetchall())


def test_the_postgres_bulk_load_makes_the_sqlite_rows(bench: ModuleType, backend: str, tmp_path: Path) -> None:
    total = 3_000
    bench.build_big(tmp_path / "big.db", total)
    pg = bench.Postgres.given(new_postgres_database())
    try:
        url = pg.fresh("reads")
        _org, rollups = bench.build_big_pg(url, total)
        expected = sqlite_rows(tmp_path / "big.db", f"SELECT {RESPONSE_COLUMNS} FROM responses")
        assert len(expected) == total
        assert pg_rows(url, f"SELECT {RESPONSE_COLUMNS} FROM responses") == expected
        for table in ("rollups", "rollups_unit_day"):
            columns = ROLLUP_COLUMNS if table == "rollups" else ROLLUP_COLUMNS.replace("service, touchpoint, ", "")
            assert pg_rows(url, f"SELECT {columns} FROM {table}") == sqlite_rows(
                tmp_path / "big.db", f"SELECT {columns} FROM {table}"
            )
            assert rollups[table] > 0
        # The indexes and the comment-search trigger the load set aside are back.
        with psycopg.connect(url) as conn:
            indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'responses'")}
            assert "idx_responses_unit_day" in indexes
            conn.execute(
                "INSERT INTO responses (id, receipt, touchpoint, unit, survey, survey_version, channel, lang,"
                " answers, server_time, occurred_at, day, flags, content_hash)"
                " SELECT 'x-1', 'AAAA-AAAA', touchpoint, unit, survey, survey_version, channel, lang,"
                " '{\"comment\":\"queue too long\"}', server_time, occurred_at, day, '[]', 'h' FROM responses LIMIT 1"
            )
            assert conn.execute("SELECT body FROM comment_search WHERE response_id = 'x-1'").fetchone() == (
                "queue too long",
            )
    finally:
        pg.close()


def test_a_database_of_your_own_must_be_empty_and_is_left_empty(bench: ModuleType, backend: str) -> None:
    url = new_postgres_database()
    pg = bench.Postgres.given(url)
    fresh = pg.fresh("ingest1")
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("CREATE TABLE responses (id TEXT)")  # lands in the run's own schema
    pg.close()
    with psycopg.connect(url, autocommit=True) as conn:
        schemas = [row[0] for row in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'feedback_%'")]
        assert schemas == []
        conn.execute("CREATE TABLE mine (x INTEGER)")
    with pytest.raises(SystemExit, match="not empty .*public.mine"):
        bench.Postgres.given(url)
