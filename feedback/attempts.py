"""Guess limits that hold however many guesses arrive at once: manager sign-ins per user name and
kiosk enrollment codes per client.

An attempt is reserved before it is checked. `reserve` is one INSERT … SELECT that counts the key's
attempts within the window and inserts a row only below the limit; it runs on the writer's
connection inside its transaction (and SQLite lets one writer at a time in, across processes), so no
two requests can both see room for the last attempt. A refused reservation means the guess is never
checked. A failed check leaves its row as the failure; a success takes rows away again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Ledger:
    """A table of attempts: `id INTEGER PRIMARY KEY`, the key column and `at` (ISO time, UTC). Rows
    older than `keep` (or than the window, when longer) are deleted as new attempts come in."""

    table: str
    key_column: str
    keep: timedelta = timedelta(0)


SIGN_IN = Ledger("login_attempts", "username", keep=timedelta(days=1))
# Keyed hashes of client addresses: kept no longer than they count.
KIOSK_ENROLL = Ledger("kiosk_enroll_attempts", "client")


def reserve(
    conn: sqlite3.Connection, ledger: Ledger, key: str, now: datetime, window: timedelta, limit: int
) -> int | None:
    """Record an attempt for `key` unless `limit` attempts already lie within `window` before `now`.

    Returns the attempt's row id, or None when the key is at its limit (nothing is recorded then).
    A `limit` of 0 or less records every attempt and refuses none.
    """
    table, column = ledger.table, ledger.key_column
    conn.execute(f"DELETE FROM {table} WHERE at < ?", ((now - max(window, ledger.keep)).isoformat(),))
    cursor = conn.execute(
        f"INSERT INTO {table} ({column}, at) SELECT ?, ?"
        f" WHERE ? <= 0 OR (SELECT count(*) FROM {table} WHERE {column} = ? AND at > ?) < ?",
        (key, now.isoformat(), limit, key, (now - window).isoformat(), limit),
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None


def release(conn: sqlite3.Connection, ledger: Ledger, attempt: int) -> None:
    """Take back one reserved attempt (it succeeded, so it is no failure)."""
    conn.execute(f"DELETE FROM {ledger.table} WHERE id = ?", (attempt,))


def clear(conn: sqlite3.Connection, ledger: Ledger, key: str, through: int) -> None:
    """Forget the key's attempts up to and including `through` (a success wipes the failures before it;
    guesses reserved after it, perhaps still being checked, stay counted)."""
    conn.execute(f"DELETE FROM {ledger.table} WHERE {ledger.key_column} = ? AND id <= ?", (key, through))
