"""Backups that restore (ISO 9001 7.5: records protected from loss): `feedback backup` and `feedback restore`.

A backup is written under a temporary name in the backup folder (`.feedback-<time>.db.partial`),
checked, fsynced and only then renamed to `feedback-<time>.db` (`.dump` for PostgreSQL), so whatever
has that name is complete and sound; a run that fails removes its partial file and deletes no older
backup. SQLite is copied with the online backup API from one read snapshot (the server keeps writing
meanwhile), then checked with `PRAGMA integrity_check` and the row counts of every table against that
snapshot. PostgreSQL is dumped with `pg_dump --format=custom` and checked with `pg_restore --list`.

A restore checks the backup first, refuses a database a server is using, and puts the copy in place
with one rename (SQLite) or restores into an empty database (PostgreSQL, `pg_restore`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from feedback import serving
from feedback.errors import FeedbackError
from feedback.store import DatabaseError
from feedback.store import backups as checks
from feedback.store.dialect import is_postgres_url

__all__ = ["BackupFailed", "backup", "complete_backups", "is_postgres_url", "restore", "rotate"]

#: A complete backup's name; nothing else in the folder is taken for one (nor rotated away).
BACKUP_NAME = re.compile(r"^feedback-(\d{8}T\d{6}Z)\.(db|dump)$")
#: Pages copied per step of the online backup (4 MiB at SQLite's default page size).
STEP_PAGES = 1024
#: Waits between attempts when the database is busy (a checkpoint holding a lock, say).
RETRY_WAITS = (0.2, 0.5, 1.0, 2.0, 4.0)


class BackupFailed(FeedbackError):
    """A backup or restore that could not be made; the message starts with the option at fault."""


class _DeadlinePassed(Exception):
    pass


class Unsound(Exception):
    """A file SQLite opens whose `integrity_check` finds faults (the first few in the message)."""


# -- backup ---------------------------------------------------------------------------------------


def backup(db: str, out: Path, *, keep: int | None = None, deadline: float = 600.0) -> dict[str, Any]:
    """Write one checked backup of `db` into `out`, then keep the `keep` newest; a JSON-able summary.

    Everything before the rename (copy, check, fsync) must finish within `deadline` seconds, else the
    run fails and leaves nothing behind. Raises BackupFailed."""
    started = time.monotonic()
    deadline_at = started + deadline
    folder = _backup_folder(out)
    with _folder_lock(folder):
        _remove_stale_partials(folder)
        postgres = is_postgres_url(db)
        suffix = "dump" if postgres else "db"
        stamp = _free_stamp(folder)
        final = folder / f"feedback-{stamp}.{suffix}"
        partial = folder / f".feedback-{stamp}.{suffix}.partial"
        try:
            if postgres:
                details = _dump_postgres(db, partial, deadline_at, deadline)
            else:
                details = _copy_sqlite(db, partial, deadline_at, deadline)
            _fsync_file(partial)
            if time.monotonic() > deadline_at:
                raise _too_slow(deadline)
            # Owner-only whatever made the file (pg_dump, SQLite) and whatever the umask: a backup holds
            # contacts and comments, and erased ones live on in it until it is rotated out.
            os.chmod(partial, 0o600)
            os.rename(partial, final)
            _fsync_folder(folder)
        except OSError as error:  # a full disk, a folder taken away
            raise BackupFailed(f"--out: cannot write into {folder}: {error.strerror or error}", "--out") from None
        finally:
            _remove_partial(partial)
        kept, deleted = rotate(folder, keep)
    return {
        "file": str(final),
        "bytes": final.stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
        **details,
        "kept": kept,
        "deleted": deleted,
    }


def complete_backups(folder: Path) -> list[Path]:
    """The complete backups in a folder, oldest first (their names sort by time)."""
    return sorted((p for p in folder.iterdir() if BACKUP_NAME.match(p.name) and p.is_file()), key=lambda p: p.name)


def rotate(folder: Path, keep: int | None) -> tuple[list[str], list[str]]:
    """Delete all but the `keep` newest complete backups (None: keep all); (kept, deleted) names."""
    found = complete_backups(folder)
    doomed = found[:-keep] if keep else []
    for path in doomed:
        path.unlink(missing_ok=True)
    if doomed:
        _fsync_folder(folder)
    return [p.name for p in found[len(doomed) :]], [p.name for p in doomed]


def _backup_folder(out: Path) -> Path:
    """The backup folder, made when its parent exists (a mistyped parent is an error, not a new tree)."""
    if out.is_dir():
        return out
    if out.exists():
        raise BackupFailed(f"--out: {out} is not a folder", "--out")
    if not out.absolute().parent.is_dir():
        raise BackupFailed(f"--out: the folder {out.absolute().parent} does not exist; create it first", "--out")
    try:
        out.mkdir(mode=0o750)
    except OSError as error:
        raise BackupFailed(f"--out: cannot create {out}: {error.strerror or error}", "--out") from None
    return out


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One backup at a time per folder (the timer and a hand-started run): a lock on the folder itself."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupFailed(f"--out: another backup is being written into {folder}", "--out") from None
        yield
    finally:
        os.close(handle)


def _remove_stale_partials(folder: Path) -> None:
    """Partial files of a run that was killed (no run is writing: this one holds the folder's lock)."""
    for path in folder.glob(".feedback-*.partial*"):
        path.unlink(missing_ok=True)


def _free_stamp(folder: Path) -> str:
    """The time for the new backup's name, to the second; the next second when this one is taken."""
    while True:
        now = datetime.now(UTC)
        stamp = f"{now:%Y%m%dT%H%M%SZ}"
        if not any((folder / f"feedback-{stamp}.{suffix}").exists() for suffix in ("db", "dump")):
            return stamp
        time.sleep(1.0 - now.microsecond / 1e6 + 0.001)


def _remove_partial(partial: Path) -> None:
    for extra in ("", "-journal", "-wal", "-shm"):
        Path(f"{partial}{extra}").unlink(missing_ok=True)


def _create_private(path: Path) -> None:
    """An empty file only its owner may read: a backup holds citizens' contact details."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _fsync_file(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _fsync_folder(folder: Path) -> None:
    """Make a rename or deletion in `folder` durable."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _too_slow(deadline: float) -> BackupFailed:
    return BackupFailed(
        f"--deadline: the backup did not finish within {deadline:g} s; nothing was kept (raise --deadline)",
        "--deadline",
    )


# -- SQLite ---------------------------------------------------------------------------------------


def _copy_sqlite(db: str, partial: Path, deadline_at: float, deadline: float) -> dict[str, Any]:
    """Copy with retries while the database is busy; the checked copy's row counts."""
    for attempt, wait in enumerate((*RETRY_WAITS, None), start=1):
        try:
            rows = _copy_sqlite_once(db, partial, deadline_at)
        except _DeadlinePassed:
            raise _too_slow(deadline) from None
        except sqlite3.OperationalError as error:
            if "full" in str(error):
                raise BackupFailed(f"--out: no room for the backup in {partial.parent}: {error}", "--out") from None
            busy = "locked" in str(error) or "busy" in str(error)
            if not busy or wait is None or time.monotonic() + wait > deadline_at:
                raise BackupFailed(f"--db: cannot back up {db}: {error}", "--db") from None
            _remove_partial(partial)
            time.sleep(wait)
            continue
        except sqlite3.DatabaseError as error:  # not a database, or a damaged one
            raise BackupFailed(f"--db: cannot back up {db}: {error}", "--db") from None
        except OSError as error:
            raise BackupFailed(f"--out: cannot write {partial.parent}: {error.strerror or error}", "--out") from None
        return {"attempts": attempt, "rows": rows}
    raise AssertionError("unreachable")


def _copy_sqlite_once(db: str, partial: Path, deadline_at: float) -> dict[str, int]:
    """One attempt: counts and copy from one snapshot, then the copy checked on its own."""
    over = _deadline_guard(deadline_at)
    source = sqlite3.connect(
        f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=_remaining(deadline_at)
    )
    try:
        source.set_progress_handler(over, 10_000)
        with checks.read_snapshot(source):
            expected = checks.row_counts(source, checks.table_names(source))
            _create_private(partial)
            target = sqlite3.connect(partial, isolation_level=None)
            try:
                checks.prepare_copy(target)

                def step(_status: int, _remaining: int, _total: int) -> None:
                    if over():
                        raise _DeadlinePassed

                source.backup(target, pages=STEP_PAGES, progress=step)
                checks.make_self_contained(target)
            finally:
                target.close()
    except sqlite3.OperationalError as error:
        if "interrupted" in str(error) and over():
            raise _DeadlinePassed from None
        raise
    finally:
        source.close()
    try:
        found = check_sqlite_file(partial, deadline_at)
    except Unsound as error:  # the source's own pages are damaged
        raise BackupFailed(f"--db: the copy of {db} fails its integrity check: {error}", "--db") from None
    if found != expected:
        differ = sorted(t for t in expected.keys() | found.keys() if expected.get(t) != found.get(t))
        raise BackupFailed(f"--db: the copy's row counts differ from the database's in {', '.join(differ)}", "--db")
    return found


def _remaining(deadline_at: float) -> float:
    return max(0.001, deadline_at - time.monotonic())


def _deadline_guard(deadline_at: float | None) -> Callable[[], bool]:
    """True once the deadline has passed (as a progress handler, that interrupts the running statement)."""
    if deadline_at is None:
        return lambda: False
    return lambda: time.monotonic() > deadline_at


def check_sqlite_file(path: Path, deadline_at: float | None = None) -> dict[str, int]:
    """The row counts of a sound SQLite file, read without writing anything beside it; raises
    sqlite3.DatabaseError when it is no database, Unsound when `integrity_check` finds faults."""
    over = _deadline_guard(deadline_at)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, isolation_level=None)
    try:
        conn.set_progress_handler(over, 10_000)
        try:
            problems = checks.integrity_problems(conn)
            if problems:
                raise Unsound("; ".join(problems[:3]))
            return checks.row_counts(conn, checks.table_names(conn))
        except sqlite3.OperationalError as error:
            if "interrupted" in str(error) and over():
                raise _DeadlinePassed from None
            raise
    finally:
        conn.close()


# -- PostgreSQL -----------------------------------------------------------------------------------


def _dump_postgres(url: str, partial: Path, deadline_at: float, deadline: float) -> dict[str, Any]:
    """pg_dump in custom format, checked by listing its table of contents; retried when it fails to
    connect or is cut off, while the deadline allows."""
    target, env = libpq_target(url)
    last = ""
    for attempt, wait in enumerate((*RETRY_WAITS[:3], None), start=1):
        _remove_partial(partial)
        _create_private(partial)
        try:
            _run_tool(
                ["pg_dump", "--format=custom", f"--file={partial}", f"--dbname={target}"],
                env,
                _remaining(deadline_at),
            )
            listing = _run_tool(["pg_restore", "--list", str(partial)], env, _remaining(deadline_at))
        except subprocess.TimeoutExpired:
            raise _too_slow(deadline) from None
        except _ToolFailed as error:
            last = str(error)
            if wait is None or time.monotonic() + wait > deadline_at:
                break
            time.sleep(wait)
            continue
        tables = sum(1 for line in listing.splitlines() if " TABLE DATA " in line)
        return {"attempts": attempt, "tables": tables}
    raise BackupFailed(f"--db: cannot back up {redact(url)}: {last}", "--db")


class _ToolFailed(Exception):
    pass


def _run_tool(argv: list[str], env: dict[str, str], timeout: float) -> str:
    """Run a PostgreSQL client program; its output, or _ToolFailed with the last line it wrote."""
    if shutil.which(argv[0]) is None:
        raise BackupFailed(
            f"--db: {argv[0]} is not installed; install PostgreSQL's client programs (Debian: postgresql-client)",
            "--db",
        )
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise _ToolFailed(f"{argv[0]}: {lines[-1] if lines else f'exit status {done.returncode}'}")
    return done.stdout


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the password as PGPASSWORD: a command line is visible to
    every user of the machine (`ps`), the environment only to the process's owner."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, {}
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), {"PGPASSWORD": unquote(parts.password)}


def redact(url: str) -> str:
    """A database URL fit for a message: without its password."""
    return libpq_target(url)[0] if is_postgres_url(url) else url


# -- restore --------------------------------------------------------------------------------------


def restore(source: Path, db: str, *, force: bool = False, clean: bool = False) -> dict[str, Any]:
    """Put the backup `source` in place as the database `db`; a JSON-able summary. Raises BackupFailed."""
    started = time.monotonic()
    if is_postgres_url(db):
        summary = _restore_postgres(source, db, force=force, clean=clean)
    else:
        if clean:
            raise BackupFailed("--clean: only for a PostgreSQL database (an SQLite file is replaced whole)", "--clean")
        summary = _restore_sqlite(source, Path(db), force=force)
    return {**summary, "seconds": round(time.monotonic() - started, 3)}


def _restore_sqlite(source: Path, target: Path, *, force: bool) -> dict[str, Any]:
    if not target.absolute().parent.is_dir():
        raise BackupFailed(f"--db: the folder {target.absolute().parent} does not exist; create it first", "--db")
    if target.exists() and not force:
        raise BackupFailed(f"--db: {target} exists; pass --force to replace it", "--db")
    try:
        serving.refuse_database_in_use(str(target))
    except serving.DatabaseInUse as error:
        raise BackupFailed(f"--db: {error}", "--db") from None
    try:
        rows = check_sqlite_file(source)
    except sqlite3.DatabaseError as error:
        raise BackupFailed(f"--from: {source} is not a sound backup: {error}", "--from") from None
    except Unsound as error:
        raise BackupFailed(f"--from: {source} fails its integrity check: {error}", "--from") from None
    if "responses" not in rows:
        raise BackupFailed(f"--from: {source} is not a feedback database (it has no responses table)", "--from")
    temporary = target.absolute().parent / f".{target.name}.restore-partial"
    try:
        _create_private(temporary)
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o600)
        _fsync_file(temporary)
        # A -wal or -journal left by the database being replaced would be replayed into the new file.
        for extra in ("-wal", "-shm", "-journal"):
            Path(f"{target}{extra}").unlink(missing_ok=True)
        os.replace(temporary, target)
        _fsync_folder(target.absolute().parent)
    except OSError as error:
        raise BackupFailed(f"--db: cannot write {target}: {error.strerror or error}", "--db") from None
    finally:
        temporary.unlink(missing_ok=True)
    return {"restored": str(target), "from": str(source), "bytes": target.stat().st_size, "rows": rows}


def _restore_postgres(source: Path, url: str, *, force: bool, clean: bool) -> dict[str, Any]:
    from feedback.store.pg import Connection

    target, env = libpq_target(url)
    try:
        listing = _run_tool(["pg_restore", "--list", str(source)], env, 600)
    except _ToolFailed as error:
        raise BackupFailed(f"--from: {source} is not a sound pg_dump archive: {error}", "--from") from None
    try:
        conn = Connection.open(url, application_name="feedback restore")
    except DatabaseError as error:
        raise BackupFailed(f"--db: cannot connect to {redact(url)}: {error}", "--db") from None
    try:
        if checks.other_sessions(conn):
            raise BackupFailed(
                f"--db: {redact(url)} has other sessions connected (a running server?); stop them first", "--db"
            )
        if checks.postgres_tables(conn) and not (force and clean):
            raise BackupFailed(
                f"--db: {redact(url)} is not empty; pass --force --clean to drop its objects and restore", "--db"
            )
    finally:
        conn.close()
    argv = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    if clean:
        argv += ["--clean", "--if-exists"]
    try:
        _run_tool([*argv, f"--dbname={target}", str(source)], env, 24 * 3600)
    except _ToolFailed as error:
        raise BackupFailed(f"--db: cannot restore into {redact(url)}: {error}", "--db") from None
    tables = sum(1 for line in listing.splitlines() if " TABLE DATA " in line)
    return {"restored": redact(url), "from": str(source), "bytes": source.stat().st_size, "tables": tables}
