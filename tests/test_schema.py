"""The core schema is one spec (feedback.store.schema) on both backends: the SQLite migrations an
existing file has run end where the spec says, and a PostgreSQL database is made from it."""

from __future__ import annotations

import pytest

from feedback.store import schema, tables
from tests.conftest import BOTH_BACKENDS, Org, connect

pytestmark = BOTH_BACKENDS

SQLITE_AFFINITY = {"text": "TEXT", "integer": "INTEGER", "real": ("REAL", "FLOAT"), "bytes": "BLOB"}
POSTGRES_TYPES = {"text": "text", "integer": "bigint", "real": "double precision", "bytes": "bytea"}


def columns_of(conn, backend: str, table: str) -> dict[str, tuple[str, bool]]:
    """{column: (declared type, nullable)} as the database has them."""
    if backend == "sqlite":
        found = conn.execute(f"SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')").fetchall()
        return {row[0]: (row[1].upper(), not row[2] and not row[3]) for row in found}
    found = conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    ).fetchall()
    return {row[0]: (row[1], row[2] == "YES") for row in found}


@pytest.mark.parametrize("table", schema.CORE_SCHEMA, ids=lambda t: t.name)
def test_each_core_table_is_as_its_spec_says(org: Org, backend: str, table: tables.Table) -> None:
    conn = connect(org.db)
    try:
        found = columns_of(conn, backend, table.name)
        assert list(found) == [column.name for column in table.columns]
        for column in table.columns:
            declared, nullable = found[column.name]
            expected = SQLITE_AFFINITY[column.type] if backend == "sqlite" else POSTGRES_TYPES[column.type]
            assert declared in ((expected,) if isinstance(expected, str) else expected), column.name
            assert nullable == (column.nullable and not column.primary_key), column.name
        assert not tables.plan(conn, [table]), "the database lacks what the spec declares"
    finally:
        conn.close()


def test_the_records_that_must_not_change_are_refused_by_the_database(org: Org) -> None:
    conn = connect(org.db)
    try:
        for trigger, table, verb, _message in schema.REFUSED_CHANGES:
            if org.backend == "sqlite":
                found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (trigger,))
            else:
                found = conn.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgname = ? AND tgrelid = ?::regclass", (trigger, table)
                )
            assert found.fetchall(), f"{trigger}: no trigger refuses {verb} on {table}"
        with pytest.raises(Exception, match="immutable"):
            conn.execute("UPDATE survey_versions SET definition = '{}'")
    finally:
        conn.close()
