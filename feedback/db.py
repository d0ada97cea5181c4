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
import contextlib
import contextvars
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlite_utils

from feedback.store import Connection, dialect, dialect_sqlite, health
from feedback.store.dialect import is_postgres_url
from feedback.store.errors import PgOperationalError

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
    writer thread and `holding_deferred` (the caller then writes at once).

    The writer flushes it before the transaction commits and before any job that does not declare
    `fn.defers = True` (so a job that reads what it holds always sees it written), and, when a
    batch is replayed job by job, at the end of each job inside its savepoint (so a failing job
    takes its share with it). Jobs that declare `defers` (ingest's) share it: a group commit of many
    responses to a few touchpoints updates each rollup row once. Such a job that reads what may be
    held writes it first (`held`: an action's baseline reads the rollups of earlier days)."""
    held = getattr(_in_writer, "deferred", None)
    if held is None:
        return None
    found = held.get(key)
    if found is None:
        found = held[key] = make()
    return found


def held(key: str) -> Any | None:
    """What the running transaction holds under `key` (`deferred`), without making it; None when
    nothing is held there."""
    return (getattr(_in_writer, "deferred", None) or {}).get(key)


def optimistic(key: str, make: Callable[[], D]) -> D | None:
    """`deferred`, but only in the writer's first, optimistic pass over a group commit; None in its
    job-by-job replay and outside the writer. For work put off on a guess, whose `flush` raises
    `feedback.store.errors.GuessedWrong` when the guess proves wrong (the batch is then replayed)."""
    return deferred(key, make) if getattr(_in_writer, "optimistic", False) else None


@contextlib.contextmanager
def holding_deferred() -> Iterator[Callable[[sqlite3.Connection], None]]:
    """For a loader that writes in a transaction of its own, outside any Store's writer (`feedback demo`):
    inside, `deferred` holds the jobs' work as in a group commit (a day's responses to a few touchpoints
    update each rollup row once), and the caller writes it with the function it is given before it
    commits (a job that reads what may be held writes it first, as in the writer). On leaving,
    whatever is still held is dropped."""
    if getattr(_in_writer, "deferred", None) is not None:
        raise RuntimeError("holding_deferred: already inside a writer's transaction")
    _in_writer.deferred = {}
    try:
        yield _flush_deferred
    finally:
        del _in_writer.deferred


def _flush_deferred(conn: sqlite3.Connection) -> None:
    held = _in_writer.deferred
    if not held:
        return
    # On PostgreSQL the flushes' statements go out together: one round trip instead of one each (the
    # writer thread waits for every answer, and gets the interpreter back after each). The last one
    # held flushes first, so the flushes that read results back, held by a response's first steps
    # (`NewResponses`, then the held events when they hand some over), come after the rollups'.
    with getattr(conn, "sent_together", contextlib.nullcontext)():
        while held:
            _key, work = held.popitem()
            work.flush(conn)


def connect_writer(database: str) -> Connection:
    """The write connection to an SQLite file or a `postgresql://` database."""
    if is_postgres_url(database):
        from feedback.store import dialect_postgres, pg

        conn = pg.Connection.open(database, application_name="feedback-writer")
        dialect_postgres.configure_writer(conn)
        return conn  # type: ignore[return-value]  # the same methods as a sqlite3 connection
    conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    dialect_sqlite.configure_writer(conn)
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    dialect_sqlite.configure_reader(conn)
    return conn


def open_utils(path: str) -> sqlite_utils.Database:
    """A sqlite-utils handle for schema and admin work on an SQLite file (CLI, migrations, demo)."""
    db = sqlite_utils.Database(path)
    db.enable_wal()
    dialect_sqlite.configure_admin(db.conn)
    return db


class PostgresDatabase:
    """What `open_database` gives for PostgreSQL: the admin connection as `.conn`, and `.close()`, like
    the sqlite-utils handle the CLI uses for a file."""

    def __init__(self, url: str) -> None:
        from feedback.store import pg

        self.url = url
        self.conn = pg.Connection.open(url, application_name="feedback-admin")

    def close(self) -> None:
        self.conn.close()


def open_database(database: str) -> sqlite_utils.Database | PostgresDatabase:
    """An admin handle (`.conn`, `.close()`) on an SQLite file or a `postgresql://` database."""
    if is_postgres_url(database):
        return PostgresDatabase(database)
    return open_utils(database)


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


# How long a committed batch's answers may wait for the next batch's jobs (see `Store._run_batch`).
HOLD_ANSWERS_SECONDS = 0.010


class InCallerContext:
    """A write job that runs on the writer thread in the context of the code that queued it, so what it
    reads from context variables (who is acting, for the audit log) is the caller's. One context copy
    per write; `defers` and `quick` are the job's own (the writer checks them on every job)."""

    __slots__ = ("fn", "context", "defers", "quick")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.context = contextvars.copy_context()
        self.defers = getattr(fn, "defers", False)
        self.quick = getattr(fn, "quick", False)

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return self.context.run(self.fn, conn)


class _Unreachable:
    """The writer's connection while the database cannot be reached: every batch tries to reconnect."""

    broken = True

    def close(self) -> None:
        pass


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
        # A committed batch's answers, held while the next batch's jobs run (see `_run_batch`).
        self._held: list[tuple[Future, bool, Any]] = []
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="feedback-read")
        # PostgreSQL: readers borrow from psycopg's pool (opened on start); SQLite: one file handle per thread.
        self._pool: Any = None
        self._listener: Any = None
        self._pool_size = readers
        self._begin: Callable[[Any], None] = dialect_sqlite.begin_write
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
        # Called on the writer thread after each group commit with (jobs, seconds of COMMIT): /metrics.
        self.on_batch: Callable[[int, float], None] | None = None

    @property
    def queue_depth(self) -> int:
        """Write jobs waiting for the writer."""
        return self._jobs.qsize()

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
            if is_postgres_url(self.path) and self._pool is None:
                from feedback.store import pg, pg_listen

                self._pool = pg.reader_pool(self.path, self._pool_size)
                self._listener = pg_listen.Listener(self.path)
                self._listener.start()
            self._writer.start()
            self._started = True

    def listen(self, topic: str, callback: Callable[[str], None]) -> bool:
        """Call `callback(payload)` on a listener thread whenever a committed change of `topic` ("catalog",
        "actions", "invitation") is notified by any node; False (and nothing happens) on SQLite, whose
        processes find each other's changes by their periodic checks. See feedback.store.pg_listen."""
        if self._listener is None:
            return False
        self._listener.subscribe(topic, callback)
        return True

    def close(self) -> None:
        if self._started:
            self._jobs.put(_STOP)
            self._writer.join(timeout=30)
            self._started = False
        self._readers.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    # -- writes ----------------------------------------------------------------------------
    def submit_write(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue `fn(conn)` for the writer; the future resolves once its batch has committed."""
        future: Future[T] = Future()
        self._jobs.put((InCallerContext(fn), future))
        return future

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Queue `fn(conn)` and wait, without blocking the event loop, until its batch has committed.
        `fn` runs in the caller's context (its context variables, e.g. the audit log's actor)."""
        loop = asyncio.get_running_loop()
        waiter = LoopWaiter(loop, loop.create_future())
        self._jobs.put((InCallerContext(fn), waiter))
        return await waiter.future

    def _write_loop(self) -> None:
        conn = connect_writer(self.path)
        self._begin = dialect.of(conn).begin_write
        _in_writer.store, _in_writer.pending, _in_writer.deferred = self, [], {}
        try:
            while True:
                if self._held and self._jobs.empty():
                    self._answer_held()  # nothing to overlap with: answer now
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
                if getattr(conn, "broken", False):
                    self._answer_held()
                    conn = self._reconnect(conn, batch)
                    if isinstance(conn, _Unreachable):
                        continue
                try:
                    self._run_batch(conn, batch)
                except Exception as error:  # noqa: BLE001 - e.g. a ROLLBACK on a lost connection: the thread lives on
                    self._answer_held()
                    handed = health.write_failed(log, self.path, error)
                    for _fn, future in batch:
                        if not future.done():
                            future.set_exception(handed)
                if stop_after:
                    return
        finally:
            self._answer_held()
            conn.close()

    def _reconnect(self, conn: Any, batch: list[tuple[Callable, Future]]) -> Any:
        """A PostgreSQL server dropped the writer's connection (a restart, a failover): open a new one
        for this batch; if that fails too, the batch's callers get the error (nothing was written) and
        the next batch tries again."""
        conn.close()
        try:
            return connect_writer(self.path)
        except Exception as error:  # noqa: BLE001 - handed to each caller, retried with the next batch
            log.warning("the database is unreachable: %s", error)
            for _fn, future in batch:
                if future.set_running_or_notify_cancel():
                    future.set_exception(health.as_unavailable(error))  # 503: send it again later
            time.sleep(0.5)  # not a busy loop while the server is down
            return _Unreachable()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[tuple[Callable, Future]]) -> None:
        """Run a batch in one transaction and commit it. Its answers are held until the next batch's
        jobs have run, just before that batch commits (or at once, when no job waits for the writer).

        Why: the moment a batch is answered, the event loop wakes every caller of it at once, sends
        their responses and parses the requests that follow; the writer, starting the next batch right
        then, waited for the interpreter lock on every statement. Held, the answers go out just before
        the next `COMMIT`, whose fsync holds no lock, so the loop's burst and the writer's wait on the
        disk overlap instead (bench/ingest.py: 9 % more responses a second, p99 4 ms lower). Only jobs
        that say they are `quick` (ingest's of a few responses) start while answers are held, and only
        within `HOLD_ANSWERS_SECONDS` of the batch's start: any other job (a kiosk's queue of hundreds,
        a bulk update, a rebuild) finds them answered. Nothing is answered before its commit."""
        batch = [(fn, future) for fn, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            self._answer_held()
            return
        # Optimistic first: every job in one transaction with no savepoints (they cost as much as the
        # job itself). Only when a job raises is the batch rolled back and replayed job by job, each
        # in its own savepoint, so that one bad request cannot take the others down with it.
        started = time.perf_counter()
        held_until = started + HOLD_ANSWERS_SECONDS
        _in_writer.optimistic = True
        try:
            self._begin(conn)
            values = []
            for fn, _ in batch:
                if not getattr(fn, "defers", False):
                    _flush_deferred(conn)
                if self._held and (not getattr(fn, "quick", False) or time.perf_counter() > held_until):
                    self._answer_held()  # only quick jobs run before them
                values.append(fn(conn))
            _flush_deferred(conn)
            _in_writer.optimistic = False
            self._answer_held()
            committing = time.perf_counter()
            conn.execute("COMMIT")
        except BaseException:  # noqa: BLE001 - replayed below, error by error
            _in_writer.optimistic = False
            self._answer_held()
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
        if self.on_batch is not None:
            self.on_batch(len(batch), done - committing)
        self._run_after_commit()
        self._held = [(future, True, value) for (_, future), value in zip(batch, values, strict=True)]

    def _run_isolated(self, conn: sqlite3.Connection, batch: list[tuple[Callable, Future]]) -> None:
        outcomes: list[tuple[Future, bool, Any]] = []
        try:
            self._begin(conn)
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
                    outcomes.append((future, False, health.as_unavailable(error)))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((future, True, result))
            conn.execute("COMMIT")
        except BaseException as error:  # noqa: BLE001 - the whole batch failed to commit
            handed = health.write_failed(log, self.path, error)  # a full disk: 503 for each, logged once a minute
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _in_writer.pending.clear()
            _in_writer.deferred.clear()
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(handed)
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

    def _answer_held(self) -> None:
        held, self._held = self._held, []
        if held:
            self._resolve(held)

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

    def _read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """On a reader thread: `fn` with this thread's SQLite connection, or one from the PostgreSQL pool."""
        if self._pool is None:
            return fn(self._reader())
        from feedback.store import pg

        for attempt in (1, 2):
            with self._pool.connection() as raw:
                try:
                    return fn(pg.Connection(raw))  # type: ignore[arg-type]  # the same methods
                except PgOperationalError:
                    # The server dropped this pooled connection (a restart, a failover): the pool
                    # discards it, and the read runs once more on another.
                    if attempt == 2 or not raw.broken:
                        raise
            self._pool.check()  # the others dropped with it: replace them before the second try
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a reader thread with a read connection of its own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_now, fn)

    async def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Rows of a read-only SQL query, for scripts and tests that look at the file; the application
        and its plugins read through the store modules' functions instead."""

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [dict(row) for row in conn.execute(sql, params)]

        return await self.read(run)
