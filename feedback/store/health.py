"""What the database's health looks like from the application: whether an error is the storage failing
(a full disk, an I/O error) rather than the statement, and a write that proves the database takes writes.

A storage failure is no fault of the request: the writer hands its callers `StorageUnavailable`
(answered 503 with Retry-After, so a client sends the same request again later) and logs it once a
minute per database, not once per request. Nothing of the failure is kept: once space returns, the
next transaction commits as before.
"""

from __future__ import annotations

import logging
import threading
import time

from feedback.errors import StorageUnavailable
from feedback.store import Connection
from feedback.store.errors import PgOperationalError

# SQLite's primary result codes (the low byte of an extended code) that mean the storage, not the SQL.
_SQLITE_STORAGE = {
    13: "the disk is full",  # SQLITE_FULL
    10: "the disk reported an I/O error",  # SQLITE_IOERR
    8: "the database file cannot be written (read-only)",  # SQLITE_READONLY
}
# PostgreSQL's SQLSTATE classes (and one code) that mean the same on the database server.
_PG_DISK_FULL = "53100"
_PG_STORAGE_CLASSES = {
    "53": "the database server ran out of a resource",  # insufficient resources
    "58": "the database server reported an I/O error",  # system error
    "08": "the database server cannot be reached",  # connection exception
}
LOG_EVERY_SECONDS = 60.0
_last_logged: dict[str, float] = {}
_log_lock = threading.Lock()


def storage_failure(error: BaseException) -> str | None:
    """Why the database cannot take writes, when `error` says the storage failed (e.g. "the disk is
    full"); None for any other error (a constraint, a bug, bad input)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_STORAGE.get(code & 0xFF)
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(error, PgOperationalError) and not sqlstate:  # the client lost the server: no SQLSTATE
        return _PG_STORAGE_CLASSES["08"]
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate == _PG_DISK_FULL:
            return "the database server's disk is full"
        return _PG_STORAGE_CLASSES.get(sqlstate[:2])
    return None


def as_unavailable(error: BaseException) -> BaseException:
    """`error` as a `StorageUnavailable` (the original as its cause) when the storage failed; else itself."""
    if isinstance(error, StorageUnavailable):
        return error
    reason = storage_failure(error)
    if reason is None:
        return error
    unavailable = StorageUnavailable(f"database: {reason}; nothing was stored, send the same request again later")
    unavailable.__cause__ = error
    return unavailable


def write_failed(log: logging.Logger, database: str, error: BaseException) -> BaseException:
    """Log a write transaction that failed as a whole, and return what its callers are handed.

    A storage failure is logged once a minute per database, without a traceback (every request would
    otherwise log the same one); anything else with its traceback, as before."""
    handed = as_unavailable(error)
    if not isinstance(handed, StorageUnavailable):
        log.error("write batch failed", exc_info=error)
        return handed
    log_unavailable(log, database, "writes to the database fail", error)
    return handed


def log_unavailable(log: logging.Logger, key: str, what: str, error: BaseException) -> None:
    """Log a storage failure (`what`: where it struck) once a minute per `key`, without a traceback."""
    now = time.monotonic()
    with _log_lock:
        if now - _last_logged.get(key, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return
        _last_logged[key] = now
    log.error(
        "%s: %s (%s); requests are answered 503 until it recovers (logged once a minute)",
        what,
        storage_failure(error) or error,
        error,
    )


PROBE_KEY = "readiness probe"


def probe_write(conn: Connection) -> None:
    """Write a row and take it back, inside the caller's transaction: the pages it touched are still
    written at COMMIT (SQLite) or the change is logged and flushed (PostgreSQL), so the commit proves
    the database takes writes, and nothing stays behind."""
    conn.execute("SAVEPOINT readiness_probe")
    conn.execute("INSERT INTO job_runs (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (PROBE_KEY,))
    conn.execute("ROLLBACK TO SAVEPOINT readiness_probe")
    conn.execute("RELEASE SAVEPOINT readiness_probe")
