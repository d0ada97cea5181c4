"""The PostgreSQL adapter's errors, without importing psycopg: `feedback.store` catches them beside
sqlite3's under one name (`IntegrityError`, `DatabaseError`), so callers never ask which backend."""

from __future__ import annotations


class GuessedWrong(Exception):
    """Work a write job put off on a guess (a response id taken for new) proved wrong when it was
    written: the writer rolls the group commit back and replays it job by job, where nothing guesses."""


class PgDatabaseError(Exception):
    """A PostgreSQL error; `sqlstate` is its five-character code (e.g. 23505 for a unique violation)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class PgOperationalError(PgDatabaseError):
    """The server could not be reached or ran out of something (connection, disk, lock wait)."""


class PgIntegrityError(PgDatabaseError):
    """A constraint refused the write (a key, NOT NULL, a foreign key or a refusing trigger)."""


#: Unique and primary-key violations: a race for the same key, which `unique()` makes a 409.
KEY_VIOLATION = "23505"
