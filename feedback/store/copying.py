"""Rows moved from one database to another (`feedback migrate`): read in key order in chunks from the
source, written with PostgreSQL's COPY, identity sequences moved past the copied keys, rows counted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from feedback.store import Connection, scalar
from feedback.store.tables import Table, quoted


def count_rows(conn: Connection, table: str) -> int:
    return int(scalar(conn, f"SELECT count(*) FROM {quoted(table)}"))


def read_rows(conn: Connection, table: Table, chunk: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
    """Every row of `table` (its spec's columns, in order), `chunk` rows at a time."""
    columns = ", ".join(quoted(column.name) for column in table.columns)
    cursor = conn.execute(f"SELECT {columns} FROM {quoted(table.name)}")
    while rows := cursor.fetchmany(chunk):
        yield [tuple(row) for row in rows]


def write_rows(conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append rows to a PostgreSQL table with COPY (the spec's columns, in order)."""
    columns = ", ".join(quoted(column.name) for column in table.columns)
    with conn.raw.cursor().copy(f"COPY {quoted(table.name)} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(row)


def move_identity_past_keys(conn: Connection, table: Table) -> None:
    """After copying keys in, the next generated key of an identity column follows the largest one."""
    for column in table.columns:
        if column.autoincrement:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max({quoted(column.name)}), 0) + 1, false)"
                f" FROM {quoted(table.name)}",
                (table.name, column.name),
            )


def set_trigger(conn: Connection, table: str, trigger: str, enabled: bool) -> None:
    """Switch one of a PostgreSQL table's triggers off (a bulk copy) or on again."""
    conn.execute(f"ALTER TABLE {quoted(table)} {'ENABLE' if enabled else 'DISABLE'} TRIGGER {trigger}")


def user_tables(conn: Connection) -> list[str]:
    """The tables of a PostgreSQL database's current schema."""
    found = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [row[0] for row in found]
