"""Which SQL dialect a connection speaks: `of(conn)` is `dialect_sqlite` or `dialect_postgres`, two
modules with the same functions (connection set-up, triggers, comment search, paging, the set-based
rollup rebuild, schema introspection, write transactions). Everything else in the store is SQL that
both databases accept."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def backend(conn: Any) -> str:
    """ "sqlite" or "postgresql" (the PostgreSQL adapter says so; a sqlite3 connection has no `backend`)."""
    return getattr(conn, "backend", "sqlite")


def of(conn: Any) -> ModuleType:
    """The dialect module for this connection."""
    if backend(conn) == "postgresql":
        from feedback.store import dialect_postgres

        return dialect_postgres
    from feedback.store import dialect_sqlite

    return dialect_sqlite


def is_postgres_url(database: str) -> bool:
    """Whether a `--db` / FEEDBACK_DB value names a PostgreSQL database rather than an SQLite file."""
    return database.startswith(("postgresql://", "postgres://"))
