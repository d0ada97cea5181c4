"""The store layer: every SQL statement of the application lives in this package (the schema itself
in `feedback.migrations`).

One module per aggregate (responses, surveys, organisation, actions, objectives, events,
kiosks, users, exposure, jobs) holds plain functions that take a connection and return dicts (or ids,
counts, booleans); `dialect` holds the forms only SQLite accepts (PRAGMAs, FTS5, triggers, rowid
paging, the set-based rollup rebuild). Plugins declare their own tables with `tables` and reach
their rows through `plugin_data`.
Callers outside this package never write SQL and never import `sqlite3`: they annotate with
`Connection` and catch `Conflict`, which `unique()` raises when a constraint refuses a row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from feedback.errors import Conflict
from feedback.store.errors import KEY_VIOLATION, PgDatabaseError, PgIntegrityError

#: The connection every store function takes: a `sqlite3.Connection`, or `feedback.store.pg.Connection`
#: (the same methods over PostgreSQL). Annotated as the SQLite one; both are used the same way.
Connection = sqlite3.Connection
#: A row as the database hands it over; store functions turn rows into dicts before returning.
Row = sqlite3.Row
#: Raised when a constraint refuses a write (catch it as a tuple: `except IntegrityError`).
IntegrityError = (sqlite3.IntegrityError, PgIntegrityError)
#: Raised when the database cannot be used (not one, unreadable, read-only, unreachable, …).
DatabaseError = (sqlite3.DatabaseError, PgDatabaseError)

__all__ = [
    "Connection",
    "DatabaseError",
    "IntegrityError",
    "Row",
    "all_rows",
    "first_row",
    "marks",
    "scalar",
    "unique",
    "where_equal",
]


def all_rows(conn: Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
    """Every row as a dict, whatever row factory the connection has (the CLI's has none)."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return [dict(row) for row in cursor.execute(sql, params if isinstance(params, dict) else tuple(params))]


def first_row(conn: Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
    """The first row as a dict, or None."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    found = cursor.execute(sql, params if isinstance(params, dict) else tuple(params)).fetchone()
    cursor.close()  # done with the statement (an INSERT … RETURNING must not stay open until COMMIT)
    return dict(found) if found is not None else None


def scalar(conn: Connection, sql: str, params: Sequence[Any] | dict[str, Any] = (), default: Any = None) -> Any:
    """The first column of the first row, or `default` when there is no row."""
    cursor = conn.execute(sql, params if isinstance(params, dict) else tuple(params))
    found = cursor.fetchone()
    cursor.close()
    return found[0] if found is not None else default


def where_equal(equal: dict[str, Any] | None, allowed: Collection[str]) -> tuple[str, list[Any]]:
    """` AND column = ?` for each value given (None: any), and the parameters; columns must be `allowed`
    (they are spliced into the SQL)."""
    where, params = "", []
    for column, value in (equal or {}).items():
        if value is None:
            continue
        if column not in allowed:
            raise ValueError(f"not a filter column: {column}")
        where += f" AND {column} = ?"
        params.append(value)
    return where, params


def marks(values: Sequence[Any]) -> str:
    """`?, ?, ?` for an `IN (…)` list of these values."""
    return ", ".join("?" for _ in values)


@contextmanager
def unique(conn: Connection, message: str, field: str | None = None) -> Iterator[None]:
    """Turn a key violation inside the block into `Conflict(message, field)`.

    The one place where a refused insert becomes a 409: the database's primary keys and unique
    constraints decide, so two writers racing for the same key cannot both win. The block runs in a
    savepoint: whatever fails in it undoes the block alone and the transaction goes on, on SQLite and
    on PostgreSQL alike (which would otherwise refuse every later statement of the transaction).
    """
    alone = False  # whether the block is a transaction of its own (PostgreSQL has no savepoint outside one)
    if not conn.in_transaction:
        if conn.isolation_level is not None:
            # A connection that opens transactions implicitly (the CLI's) would open one at the first
            # write anyway: open it first, so the savepoint nests in it and the caller's commit decides.
            conn.execute("BEGIN")
        elif getattr(conn, "backend", "sqlite") == "postgresql":
            conn.execute("BEGIN")
            alone = True
    conn.execute("SAVEPOINT unique_block")
    try:
        yield
    except BaseException as error:
        if conn.in_transaction:  # a RAISE(ROLLBACK) trigger ends the transaction, savepoints and all
            conn.execute("ROLLBACK TO SAVEPOINT unique_block")
            conn.execute("RELEASE SAVEPOINT unique_block")
            if alone:
                conn.execute("COMMIT")
        if _is_key_violation(error):
            raise Conflict(message, field) from error
        raise  # a NOT NULL or foreign-key failure is a bug or bad input, not a race
    conn.execute("RELEASE SAVEPOINT unique_block")
    if alone:
        conn.execute("COMMIT")


_KEY_VIOLATIONS = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


def _is_key_violation(error: BaseException) -> bool:
    if isinstance(error, PgIntegrityError):
        return error.sqlstate == KEY_VIOLATION
    return isinstance(error, sqlite3.IntegrityError) and getattr(error, "sqlite_errorname", "") in _KEY_VIOLATIONS
