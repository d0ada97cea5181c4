"""What `feedback backup` and `feedback restore` ask a database: a snapshot to copy from, the tables
and their row counts, whether a copy is sound, and on PostgreSQL whether a database is empty and
whether anyone else is connected to it.

The SQLite functions use PRAGMAs and `sqlite_schema`; the PostgreSQL ones `pg_stat_activity` and
`information_schema`. The row counts are plain SQL both accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from feedback.store import Connection, all_rows, scalar

# -- SQLite ---------------------------------------------------------------------------------------


@contextmanager
def read_snapshot(conn: Connection) -> Iterator[None]:
    """One read transaction for the block: in WAL mode everything read in it, the online backup's
    steps included, sees the database as it was when the block began, while other connections go on
    writing (and the backup is never restarted by their commits)."""
    conn.execute("BEGIN")
    try:
        scalar(conn, "SELECT count(*) FROM sqlite_schema")  # the snapshot starts with the first read
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def table_names(conn: Connection) -> list[str]:
    """The ordinary tables of an SQLite database, by name (the FTS5 index's own tables among them; not
    the virtual table over them nor SQLite's internal ones)."""
    return [
        row["name"]
        for row in all_rows(
            conn,
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            " AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
        )
    ]


def prepare_copy(conn: Connection) -> None:
    """A connection to a new backup file: no journal and no syncs while the pages are copied (a copy
    that fails is deleted anyway, and a finished one is checked and fsynced as a whole)."""
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")


def make_self_contained(conn: Connection) -> None:
    """Mark a finished copy as a rollback-journal database: the backup API copies the source's WAL
    flag, and a WAL database cannot be opened read-only without -wal and -shm files beside it."""
    conn.execute("PRAGMA journal_mode=DELETE")


def integrity_problems(conn: Connection) -> list[str]:
    """What `PRAGMA integrity_check` finds wrong (at most 100 lines); [] when the file is sound."""
    found = [str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if found == ["ok"] else found


# -- both -----------------------------------------------------------------------------------------


def row_counts(conn: Connection, tables: Iterable[str]) -> dict[str, int]:
    """Rows in each table (names as `table_names` gives them: they are quoted, never user input)."""
    counts = {}
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        counts[table] = int(scalar(conn, f"SELECT count(*) FROM {quoted}", (), 0))
    return counts


# -- PostgreSQL -----------------------------------------------------------------------------------


def other_sessions(conn: Connection) -> int:
    """Sessions connected to this PostgreSQL database besides this one (a server, a psql, a backup)."""
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            (),
            0,
        )
    )


def postgres_tables(conn: Connection) -> int:
    """Tables in this PostgreSQL database outside the system schemas: 0 for an empty database."""
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\\_%'",
            (),
            0,
        )
    )
