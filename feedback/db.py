"""The store: one writer thread with group commit, and one read-only connection per reader thread.

Datasette's `database.py` model: the only write connection belongs to a thread fed by a queue.
The writer takes every job that is waiting, runs them all in one `BEGIN IMMEDIATE` transaction
and commits once (`synchronous=FULL`), so throughput comes from batching, never from weaker
durability; only when a job raises is the batch rolled back and replayed job by job, each in its own
SAVEPOINT, so that the failing job alone is refused. Work the jobs share (the rollups of a batch of
responses, see `deferred`) is written once before COMMIT. A job's future resolves only after COMMIT
returned.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlite_utils

from feedback.store import dialect

log = logging.getLogger("feedback.db")
T = TypeVar("T")

_STOP = object()
# What the writer thread of a Store is doing: the store, and the callbacks of the transaction under way.
_in_writer = threading.local()
_ALONE = object()  # `after_commit` without an item


def writing_store() -> Store | None:
    """The Store whose writer thread runs the caller (a write job), or None (a CLI connection, a reader)."""
    return getattr(_in_writer, "store", None)


def after_commit(callback: Callable[..., None], item: Any = _ALONE) -> bool:
    """Run `callback()` on the writer thread once the calling write job's transaction has committed,
    before the job's caller is answered; dropped if the job rolls back. With `item`, `callback` runs
    once per commit with the list of every item registered with it, in order (one call for a whole
    group commit). It must be quick and must not raise (hand work to an event loop with
    `call_soon_threadsafe`). Returns False, and keeps nothing, outside a Store's writer thread:
    nobody would run it there."""
    pending = getattr(_in_writer, "pending", None)
    if pending is None:
        return False
    pending.append((callback, item))
    return True


class Deferred(Protocol):
    """Work that write jobs add to and the writer does once for all of them (see `deferred`)."""

    def flush(self, conn: sqlite3.Connection) -> None: ...


D = TypeVar("D", bound=Deferred)


def deferred(key: str, make: Callable[[], D]) -> D | None:
    """The running transaction's `Deferred` under `key`, made on first use; None outside a Store's
    writer thread (the caller then writes at once).

    The writer flushes it before the transaction commits and before any job that does not declare
    `fn.defers = True` (so a job that reads what it holds always sees it written), and, when a
    batch is replayed job by job, at the end of each job inside its savepoint (so a failing job
    takes its share with it). Jobs that declare `defers` (ingest's) share it: a group commit of many
    responses to a few touchpoints updates each rollup row once."""
    held = getattr(_in_writer, "deferred", None)
    if held is None:
        return None
    found = held.get(key)
    if found is None:
        found = held[key] = make()
    return found


def _flush_deferred(conn: sqlite3.Connection) -> None:
    held = _in_writer.deferred
    while held:
        _key, work = held.popitem()
        work.flush(conn)


def connect_writer(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    dialect.configure_writer(conn)
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    dialect.configure_reader(conn)
    return conn


def open_utils(path: str) -> sqlite_utils.Database:
    """A sqlite-utils handle for schema and admin work (CLI, migrations, demo)."""
    db = sqlite_utils.Database(path)
    db.enable_wal()
    dialect.configure_admin(db.conn)
    return db


class LoopWaiter:
    """The writer's handle on an asyncio future: the parts of `concurrent.futures.Future` it uses."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        self.loop = loop
        self.future = future

    def set_running_or_notify_cancel(self) -> bool:
        return not self.future.cancelled()

    def done(self) -> bool:
        return self.future.done()

    def set_exception(self, error: BaseException) -> None:
        self.loop.call_soon_threadsafe(_settle, [(self.future, False, error)])


def _settle(results: list[tuple[asyncio.Future, bool, Any]]) -> None:
    """On the event loop: hand each caller its result (a caller that gave up is skipped)."""
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Store:
    """The async face of the database for the web app and plugins."""

    def __init__(self, path: str, max_batch: int = 256, readers: int = 4, plugins: Any = None) -> None:
        self.path = path
        self.max_batch = max_batch
        # The app's plugin manager: what is written through this store fires its events to these
        # plugins (None: a bare store, e.g. in a script, fires nothing).
        self.plugins = plugins
        # The in-process dispatcher of the event log: it takes the events a write job logs as soon as
        # their transaction commits (None: they wait in the log for a dispatcher to claim them).
        self.event_sink: Any = None
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="feedback-read")
        self._writer = threading.Thread(target=self._write_loop, name="feedback-write", daemon=True)
        self._started = False
        self.batches = 0
        self.writes = 0
        # State of the app this store serves (caches, hubs, plugins' own), never of the process: tests
        # and programs that embed the app run several in one process. See `local`.
        self._locals: dict[str, Any] = {}
        self._locals_lock = threading.Lock()
        # Where the writer's time goes (seconds, since start): running batches, and of that, COMMIT.
        self.write_seconds = 0.0
        self.commit_seconds = 0.0

    def local(self, name: str, factory: Callable[[], T]) -> T:
        """The app's value called `name`, made with `factory()` on first use: per app, not per process,
        so one app's sessions, tokens, pages or plugin settings never reach another in the same process.
        Plugins name theirs after themselves (`"feedback_plugins.mail"`)."""
        value = self._locals.get(name)
        if value is None:
            with self._locals_lock:
                value = self._locals.get(name)
                if value is None:
                    value = self._locals[name] = factory()
        return value

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._writer.start()
            self._started = True

    def close(self) -> None:
        if self._started:
            self._jobs.put(_STOP)
            self._writer.join(timeout=30)
            self._started = False
        self._readers.shutdown(wait=True)

    # -- writes ----------------------------------------------------------------------------
    def submit_write(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue `fn(conn)` for the writer; the future resolves once its batch has committed."""
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return future

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Queue `fn(conn)` and wait, without blocking the event loop, until its batch has committed."""
        loop = asyncio.get_running_loop()
        waiter = LoopWaiter(loop, loop.create_future())
        self._jobs.put((fn, waiter))
        return await waiter.future

    def _write_loop(self) -> None:
        conn = connect_writer(self.path)
        _in_writer.store, _in_writer.pending, _in_writer.deferred = self, [], {}
        try:
            while True:
                first = self._jobs.get()
                if first is _STOP:
                    return
                batch = [first]
                stop_after = False
                while len(batch) < self.max_batch:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop_after = True
                        break
                    batch.append(job)
                self._run_batch(conn, batch)
                if stop_after:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[tuple[Callable, Future]]) -> None:
        batch = [(fn, future) for fn, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        # Optimistic first: every job in one transaction with no savepoints (they cost as much as the
        # job itself). Only when a job raises is the batch rolled back and replayed job by job, each
        # in its own savepoint, so that one bad request cannot take the others down with it.
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            values = []
            for fn, _ in batch:
                if not getattr(fn, "defers", False):
                    _flush_deferred(conn)
                values.append(fn(conn))
            _flush_deferred(conn)
            committing = time.perf_counter()
            conn.execute("COMMIT")
        except BaseException:  # noqa: BLE001 - replayed below, error by error
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _in_writer.pending.clear()
            _in_writer.deferred.clear()
            self._run_isolated(conn, batch)
            self.write_seconds += time.perf_counter() - started
            return
        done = time.perf_counter()
        self.commit_seconds += done - committing
        self.write_seconds += done - started
        self._run_after_commit()
        self._resolve([(future, True, value) for (_, future), value in zip(batch, values, strict=True)])

    def _run_isolated(self, conn: sqlite3.Connection, batch: list[tuple[Callable, Future]]) -> None:
        outcomes: list[tuple[Future, bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                conn.execute("SAVEPOINT job")
                registered = len(_in_writer.pending)
                try:
                    result = fn(conn)
                    _flush_deferred(conn)
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    del _in_writer.pending[registered:]  # what the job asked for after commit went with it
                    _in_writer.deferred.clear()
                    outcomes.append((future, False, error))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((future, True, result))
            conn.execute("COMMIT")
        except BaseException as error:  # noqa: BLE001 - the whole batch failed to commit
            log.exception("write batch failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _in_writer.pending.clear()
            _in_writer.deferred.clear()
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self._run_after_commit()
        self._resolve(outcomes)

    def _run_after_commit(self) -> None:
        """The callbacks the committed jobs registered with `after_commit`, in the order they came."""
        pending = list(_in_writer.pending)
        _in_writer.pending.clear()
        grouped: dict[Callable, list[Any]] = {}
        calls: list[tuple[Callable, tuple]] = []
        for callback, item in pending:
            if item is _ALONE:
                calls.append((callback, ()))
            elif callback in grouped:
                grouped[callback].append(item)
            else:
                grouped[callback] = [item]
                calls.append((callback, (grouped[callback],)))
        for callback, args in calls:
            try:
                callback(*args)
            except Exception:  # noqa: BLE001 - the commit stands; a bad callback only loses its own work
                log.exception("after-commit callback failed")

    def _resolve(self, outcomes: list[tuple[Future, bool, Any]]) -> None:
        """Answer the callers, only now that their writes are committed."""
        self.batches += 1
        self.writes += len(outcomes)
        # Event-loop callers are woken with one call per loop per batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, bool, Any]]] = {}
        for future, ok, value in outcomes:
            if isinstance(future, LoopWaiter):
                by_loop.setdefault(future.loop, []).append((future.future, ok, value))
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for loop, results in by_loop.items():
            loop.call_soon_threadsafe(_settle, results)

    # -- reads -----------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path)
            self._local.conn = conn
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a reader thread with its own read-only connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

    async def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Rows of a read-only SQL query, for scripts and tests that look at the file; the application
        and its plugins read through the store modules' functions instead."""

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [dict(row) for row in conn.execute(sql, params)]

        return await self.read(run)
