"""Shared fixtures: a real SQLite file with a small organisation, and a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import atexit
import base64
import fcntl
import gc
import itertools
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from feedback import auth, kiosks, organisation, passwords, surveys
from feedback.db import open_database
from feedback.migrations import apply_all
from feedback.plugins import PluginManager, build_plugin_manager
from feedback.settings import Settings, load_settings
from feedback.store import events as event_store
from feedback.store.dialect import is_postgres_url
from tests.shared_signatures import share_handler_signatures

# -- cheap password hashes -------------------------------------------------------------------------
# The suite signs in thousands of times; at the standard cost each argon2 check takes 0.19 s of CPU.
# OWASP's least argon2id cost (the `minimum` setting) takes about a sixth, and is still argon2id: every
# server, command and helper of the suite uses it. tests/test_password_hashing.py checks both costs.
os.environ.setdefault("FEEDBACK_PASSWORD_HASHING", "minimum")
passwords.use_hashing(os.environ["FEEDBACK_PASSWORD_HASHING"])

# -- one TLS context for the test process's HTTP clients -------------------------------------------
# httpx builds an SSL context for every client it makes (about 35 ms of reading the CA bundle), even
# for a client that only speaks plain HTTP to 127.0.0.1, and the tests make thousands of clients. The
# default context is made once per (trust_env, SSL_CERT_FILE, SSL_CERT_DIR) and shared; any other
# `verify` or a client certificate is made as before.
_make_ssl_context = httpx._transports.default.create_ssl_context
_default_ssl_contexts: dict[tuple[Any, ...], Any] = {}


def _shared_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
    if verify is not True or cert:
        return _make_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
    key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    if key not in _default_ssl_contexts:
        _default_ssl_contexts[key] = _make_ssl_context(verify=True, trust_env=trust_env)
    return _default_ssl_contexts[key]


httpx._transports.default.create_ssl_context = _shared_ssl_context

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# Debian's Chromium, never a downloaded browser; quiet flags for a machine with no outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]

# `feedback` as the tests run it: this interpreter with the working tree first on the path, so a
# server or command under test runs the code being tested, never a copy installed earlier.
FEEDBACK = [sys.executable, "-m", "feedback"]
SOURCE_PATH = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "kiosk")]


def source_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that must import the working tree."""
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join([*SOURCE_PATH, *filter(None, [merged.get("PYTHONPATH")])])
    return merged


@dataclass
class Org:
    """What `make_org` created: the database path, touchpoint tokens and API tokens by name."""

    db: Path | str  # an SQLite file, or the URL of a PostgreSQL database
    touchpoints: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return "postgresql" if is_postgres_url(str(self.db)) else "sqlite"


@cache
def default_plugins() -> PluginManager:
    """The plugins a server has with no plugin settings (the built-in ones), for preparing databases."""
    return build_plugin_manager(Settings())


def make_org(db_path: Path | str) -> Org:
    """Two agencies: A (A → A1 → A1a) answering CSAT and 好差评, and B answering Ваш контроль (in an
    SQLite file, or in the PostgreSQL database a URL names).

    An SQLite file is a copy of one this process seeded once (the suite makes hundreds; migrating and
    seeding each took 80 ms of CPU, a copy takes about 1), as `postgres_org` copies a template database:
    every copy holds the same rows and the same API tokens."""
    if is_postgres_url(str(db_path)):
        return _seed_org(db_path)
    template = _sqlite_org_template()
    shutil.copyfile(template.db, db_path)
    return Org(db=db_path, touchpoints=dict(template.touchpoints), tokens=dict(template.tokens))


@cache
def _sqlite_org_template() -> Org:
    folder = tempfile.mkdtemp(prefix="org-template-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    template = _seed_org(Path(folder) / "feedback.db")
    # Closed, the file holds everything (no write-ahead log beside it): a copy of it is the database.
    if Path(f"{template.db}-wal").exists():
        raise RuntimeError(f"{template.db} kept its write-ahead log after closing")
    return template


def _seed_org(db_path: Path | str) -> Org:
    db = open_database(str(db_path))
    apply_all(db, default_plugins())
    conn = db.conn
    org = Org(db=db_path)
    conn.execute("BEGIN")
    for slug in ("csat", "haochaping", "vash_kontrol"):
        surveys.publish_template(conn, slug, default_plugins())
    organisation.add_unit(conn, "A", "Agency A", lang="en", tz="Asia/Ho_Chi_Minh")
    organisation.add_unit(
        conn,
        "A1",
        "Đơn vị A1",
        parent="A",
        lang="vi",
        tz="Asia/Ho_Chi_Minh",
        names={"vi": "Đơn vị A1", "en": "Unit A1"},
    )
    organisation.add_unit(conn, "A1a", "Quầy A1a", parent="A1", lang="vi", tz="Asia/Ho_Chi_Minh")
    organisation.add_unit(conn, "B", "Пост Б", lang="ru", tz="Asia/Sakhalin")
    organisation.add_service(conn, "S1", "Đăng ký", agency="A")
    organisation.add_service(conn, "S2", "Cấp phép", agency="A")
    org.touchpoints["a"] = organisation.add_touchpoint(conn, "A", "A hall", "csat", token="tp-a")
    org.touchpoints["a1"] = organisation.add_touchpoint(
        conn, "A1", "Quầy 1", "csat", counter="1", service="S1", token="tp-a1"
    )
    org.touchpoints["a1a"] = organisation.add_touchpoint(
        conn, "A1a", "3号窗口", "haochaping", lang="zh", kind="kiosk", token="tp-a1a"
    )
    org.touchpoints["b"] = organisation.add_touchpoint(conn, "B", "Окно 2", "vash_kontrol", token="tp-b")
    org.tokens["admin"] = auth.create_token(conn, "root", "admin", None)
    org.tokens["manager_a1"] = auth.create_token(conn, "lan", "manager", "A1")
    org.tokens["viewer_b"] = auth.create_token(conn, "ivan", "viewer", "B")
    conn.execute("COMMIT")
    db.close()
    return org


def enrollment_code(org: Org, touchpoint: str = "tp-a1a") -> str:
    """A kiosk enrollment code, made as `feedback kiosk enroll` makes it (through the core, in this process:
    for tests that only need a kiosk; tests/test_kiosk_api.py runs the command itself)."""
    db = open_database(str(org.db))
    try:
        with db.conn:
            code, _expires = kiosks.create_enrollment(db.conn, touchpoint, "cli")
    finally:
        db.close()
    return code


# Ports for the servers tests start: a block per xdist worker, below the kernel's ephemeral range (32768
# and up), so a client connection of another worker (or a PostgreSQL connection) never holds the port a
# server is about to bind; a random start keeps two pytest runs on one machine apart too.
PORT_BLOCK = 1000
_next_port = itertools.count(random.randrange(PORT_BLOCK))


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = 20000 + (int(worker) % 12 if worker.isdigit() else 0) * PORT_BLOCK
    for _ in range(PORT_BLOCK):
        port = start + next(_next_port) % PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or still closing from an earlier server
            return port
    raise RuntimeError(f"no free port in {start}..{start + PORT_BLOCK - 1}")


class ProcessServer:
    """`feedback serve` in a child process, as an operator would run it: for tests where the process is
    the point (SIGKILL, several workers, what `serve` checks and prints before it serves)."""

    def __init__(
        self, db: Path | str, env: dict[str, str] | None = None, workers: int = 1, fresh: bool = False
    ) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = source_env({"FEEDBACK_RATE_LIMIT": "0", "FEEDBACK_SECRET": "test-secret", **(env or {})})
        self.workers = workers
        self.fresh = fresh  # a fresh interpreter (`python -m feedback serve`), as an operator starts it
        self.process: subprocess.Popen | ForkedProcess | None = None
        self.log = server_log(db)

    def start(self) -> ProcessServer:
        args = ["serve", "--db", str(self.db), "--port", str(self.port), "--workers", str(self.workers)]
        # Forked like the command line's commands (a process of its own, without a fresh interpreter's
        # imports: about 1.5 s of CPU less per server), unless the test asks for a fresh interpreter.
        self.process = None if self.fresh else COMMAND_LINE.spawn(args, self.env, self.log)
        if self.process is None:
            self.process = subprocess.Popen(
                [*FEEDBACK, *args],
                env=self.env,
                stdout=self.log.open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            if healthy(self.url):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def server_log(db: Path | str) -> Path:
    """Where a server over `db` logs: beside an SQLite file, in a folder of its own for a URL."""
    if is_postgres_url(str(db)):
        return Path(tempfile.mkdtemp(prefix="feedback-server-")) / "server.log"
    return Path(db).with_suffix(".server.log")


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# How long an in-process server's stop waits for the responses in flight before it ends them.
STOP_GRACE_SECONDS = 3.0

# Loggers of the app write INFO and up, as in `feedback serve` (whose Litestar sets the root to INFO).
logging.getLogger("feedback").setLevel(logging.INFO)
LOG_FORMAT = "%(levelname)s - %(asctime)s - %(name)s - %(module)s - %(message)s"


class Server:
    """The app in this process, as `feedback serve` would run it, over real HTTP on 127.0.0.1.

    granian's embedded server runs the app on an event loop of its own thread, so a test reaches it with
    any HTTP client at `url` and a browser can load its pages, at a fraction of a process's start-up.
    Before it serves, it does what `feedback serve` does (migrate, release the leases of a stopped
    server, hold the database, default FEEDBACK_PUBLIC_URL to its own address); its settings come from
    this process's environment and `env`, never by changing `os.environ`. What the app logs goes to
    `log`, as a process server's output does. Where the process itself is the point (SIGKILL, several
    workers), use `ProcessServer`."""

    def __init__(self, db: Path | str, env: dict[str, str] | None = None, workers: int = 1) -> None:
        if workers != 1:
            raise ValueError("several workers are several processes: use ProcessServer (start_process_server)")
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"FEEDBACK_RATE_LIMIT": "0", "FEEDBACK_SECRET": "test-secret", **(env or {})}
        self.log = server_log(db)
        self.app: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._held: Any = None
        self._log_handler: logging.Handler | None = None
        self._failure: BaseException | None = None
        self._frozen = False

    def settings(self) -> Settings:
        database = str(self.db) if is_postgres_url(str(self.db)) else str(Path(self.db).resolve())
        environ = {**os.environ, **self.env, "FEEDBACK_DB": database}
        environ.setdefault("FEEDBACK_PUBLIC_URL", self.url)
        return load_settings(environ)

    def start(self) -> Server:
        from granian.constants import Interfaces
        from granian.server.embed import Server as EmbeddedServer

        from feedback.web.app import create_app

        settings = self.settings()
        prepare_database(settings)
        self._held = None if is_postgres_url(settings.db) else DATABASE_LOCKS.hold(settings.db)
        try:
            self.app = create_app(settings)
        except BaseException:
            self._release()
            raise
        self._log_handler = self._capture_log()
        self._loop = new_event_loop()
        # No handlers of its own: granian's default logging set-up would replace this process's.
        self._server = EmbeddedServer(
            self.app,
            address="127.0.0.1",
            port=self.port,
            interface=Interfaces.ASGI,
            log_enabled=False,
            log_dictconfig={"incremental": True, "handlers": {}, "loggers": {}},
        )
        self._failure = None
        self._thread = threading.Thread(target=self._run, name=f"server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                self._release()
                raise RuntimeError(f"server exited: {self._failure!r} {self.log.read_text()[-2000:]}")
            if healthy(self.url):
                COLLECTOR.freeze()
                self._frozen = True
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve())
        except BaseException as error:  # noqa: BLE001 - reported by start() or stop()
            self._failure = error
        finally:
            # What asyncio.run does on the way out: end what is left, then the loop's own threads.
            leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftover:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _capture_log(self) -> logging.Handler:
        """The app's log lines (from its loop, writer and reader threads) into `log`; not other servers'."""
        handler = logging.FileHandler(self.log, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(lambda record: record.thread in self._threads())
        logging.getLogger().addHandler(handler)
        return handler

    def _threads(self) -> set[int | None]:
        """The app's threads: the loop's, the store's writer and readers, asyncio.to_thread's."""
        store = self.app.state.store
        readers = getattr(store, "_readers", None)
        executor = getattr(self._loop, "_default_executor", None)
        threads = [self._thread, getattr(store, "_writer", None)]
        threads.extend([*getattr(readers, "_threads", ()), *getattr(executor, "_threads", ())])
        return {thread.ident for thread in threads if thread is not None}

    def kill(self) -> None:
        raise RuntimeError(
            "an in-process server cannot be SIGKILLed: use ProcessServer (start_process_server) for a kill test"
        )

    def stop(self) -> None:
        """Stop as SIGTERM stops `feedback serve`: the lifespan's shutdown runs (writer, dispatcher and
        scheduler end), then the loop closes; no thread of the server is left."""
        if self._thread is None:
            return
        if self._thread.is_alive():
            from feedback.web.app import begin_stopping

            # As the signal handler of a `feedback serve` worker does: long-polls and event streams
            # answer at once, so the stop waits only for the requests in flight.
            self._loop.call_soon_threadsafe(begin_stopping, self.app.state.store)
            self._loop.call_soon_threadsafe(self._server.stop)
            self._thread.join(STOP_GRACE_SECONDS)
        if self._thread.is_alive():
            # granian lets the responses in flight finish first, and an event stream whose client has
            # gone ends only when next written to (its keep-alive, 15 s): end them, as ProcessServer
            # ends a process that outlives its grace.
            self._loop.call_soon_threadsafe(self._end_responses)
            self._thread.join(30)
        alive = self._thread.is_alive()
        self._release()
        if alive:
            raise RuntimeError(f"in-process server on port {self.port} did not stop within 30 s")

    def _end_responses(self) -> None:
        """Cancel the responses still in flight (granian runs each request as a `future_watcher` task)."""
        for task in asyncio.all_tasks(self._loop):
            if task.get_coro().__qualname__.endswith("future_watcher"):
                task.cancel()

    def _release(self) -> None:
        if self._frozen:
            COLLECTOR.unfreeze()
            self._frozen = False
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self._held is not None:
            DATABASE_LOCKS.release(self._held)
            self._held = None
        self._thread = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop granian gives a `feedback serve` worker: uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Collector:
    """gc.freeze() while any in-process server runs, as `feedback serve` freezes its start-up objects:
    the collector then leaves the test process's large, long-lived heap out of its scans (a fifth of a
    server's processor time otherwise). gc.unfreeze() when the last one stops, so that nothing of a
    test outlives it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers = 0

    def freeze(self) -> None:
        with self._lock:
            self._servers += 1
            gc.freeze()

    def unfreeze(self) -> None:
        with self._lock:
            self._servers -= 1
            if not self._servers:
                gc.unfreeze()


COLLECTOR = Collector()

# A test process builds hundreds of apps, each some hundred thousand objects that live for one test
# or module. Python's full collection walks every object of the process, and at its default pace
# (one after every ten collections of the middle generation) it took a fifth of a worker's CPU. At a
# tenth of that pace the cycles a module leaves behind are still collected, only later.
gc.set_threshold(700, 10, 100)

# For the same reason, later apps reuse the handler signatures the first app of the process parsed
# (a third of an app's build; tests/shared_signatures.py says why that is safe).
share_handler_signatures()


class DatabaseLocks:
    """The shared flock() each in-process server holds on its database file, as `feedback serve` does
    (feedback.serving), so a command or server started meanwhile sees the file in use.

    The lock files are opened once per database file and closed only as the process exits: closing any
    descriptor of a file drops every POSIX lock this process holds on it (fcntl(2)), SQLite's own among
    them, and another process would then take this process's open connections for gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[tuple[str, int], tuple[Any, Any]] = {}  # (path, inode) -> (holder, prober)
        self._holders: dict[tuple[str, int], int] = {}
        atexit.register(self._close_all)  # by then every server has stopped; left open, each warns

    def _close_all(self) -> None:
        with self._lock:
            for files in self._files.values():
                for file in files:
                    file.close()
            self._files.clear()

    def _key(self, path: str) -> tuple[str, int]:
        key = (str(Path(path).resolve()), os.stat(path).st_ino)
        if key not in self._files:
            self._files[key] = (open(path, "rb"), open(path, "rb"))  # noqa: SIM115 - open for good, see above
        return key

    def hold(self, path: str) -> tuple[str, int]:
        with self._lock:
            key = self._key(path)
            if not self._holders.get(key):
                fcntl.flock(self._files[key][0].fileno(), fcntl.LOCK_SH)
            self._holders[key] = self._holders.get(key, 0) + 1
            return key

    def release(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._holders[key] -= 1
            if not self._holders[key]:
                fcntl.flock(self._files[key][0].fileno(), fcntl.LOCK_UN)

    def in_use(self, path: str) -> bool:
        """Whether a server (here or in another process) holds the file, as serving.refuse_database_in_use
        tells, without closing a descriptor of it."""
        with self._lock:
            key = self._key(path)
            if self._holders.get(key):
                return True
            prober = self._files[key][1].fileno()
            try:
                fcntl.flock(prober, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(prober, fcntl.LOCK_UN)
            return False


DATABASE_LOCKS = DatabaseLocks()


def prepare_database(settings: Settings) -> None:
    """What `feedback serve` does before it serves: migrate, and end the leases of a stopped server
    (`feedback.cli.release_dead_leases`, with the in-use check of DatabaseLocks)."""
    db = open_database(settings.db)
    try:
        apply_all(db, build_plugin_manager(settings))
        # PostgreSQL: no other feedback session on the database (another node's are live leases).
        if is_postgres_url(settings.db):
            from feedback.store.dialect_postgres import other_feedback_sessions

            idle = not other_feedback_sessions(db.conn)
        else:
            idle = not DATABASE_LOCKS.in_use(settings.db)
        if idle:
            with db.conn:
                event_store.release_leases(db.conn)
    finally:
        db.close()


# -- backends ------------------------------------------------------------------------------------------
# A test module that runs on PostgreSQL as well says so with `pytestmark = BOTH_BACKENDS`; its tests
# that take `org`, `shared_org` or `backend` then run once per backend chosen with --backends (the
# README's test command chooses both). Every other test runs on SQLite alone.
BACKENDS = ("sqlite", "postgresql")
BOTH_BACKENDS = pytest.mark.backends(*BACKENDS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("FEEDBACK_TEST_BACKENDS", "sqlite"),
        help="comma-separated databases to run the two-backend tests on: sqlite,postgresql (default sqlite)",
    )
    parser.addoption(
        "--postgres-everything",
        action="store_true",
        help="on PostgreSQL, run the tests marked postgres_covered_elsewhere too (tests/postgres_selection.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): the test module runs on each of these databases")
    config.addinivalue_line(
        "markers", "browser_on_postgresql: a browser test whose point is the store path, run on PostgreSQL too"
    )
    config.addinivalue_line(
        "markers",
        "postgres_covered_elsewhere: on PostgreSQL every store line this test reaches is reached by other"
        " tests (measured by tests/postgres_selection.py), and its point is not a value SQL computes: SQLite only",
    )
    chosen = [name.strip() for name in config.getoption("--backends").split(",") if name.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown or not chosen:
        raise pytest.UsageError(f"--backends: choose from {', '.join(BACKENDS)}, got {sorted(unknown) or 'nothing'}")
    config.chosen_backends = chosen  # type: ignore[attr-defined]
    if not hasattr(config, "workerinput"):  # xdist workers inherit the controller's choice
        _temporary_files_in_memory()
        _compiled_code_kept()
        # Node (Playwright's driver, started once per browser module; the OpenID provider) keeps the
        # code it compiles for the run's later starts: a driver starts in about a quarter less CPU.
        os.environ.setdefault("NODE_COMPILE_CACHE", str(Path(tempfile.gettempdir()) / "node-compile-cache"))


def _compiled_code_kept() -> None:
    """Let every process of the run keep the bytecode it compiles, even where the environment says
    not to (PYTHONDONTWRITEBYTECODE, common in container images): each of the run's hundreds of
    interpreters (workers, `feedback serve`, its granian worker, the command line) would otherwise
    compile the app again, and each worker would rewrite the asserts of every test module again.
    What is written goes to __pycache__ folders, which git ignores."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        sys.dont_write_bytecode = False


# Room the suite's temporary files need at most (databases, the PostgreSQL cluster, exports, logs).
_MEMORY_TMP_ROOM = 4 * 1024**3


def _temporary_files_in_memory() -> None:
    """Put the suite's temporary files (each test's SQLite file, the throwaway PostgreSQL cluster,
    server logs) on /dev/shm when it has room: an fsync there costs nothing, which saves the suite
    a few percent. Durability is still tested: a SIGKILL kills the process, not the filesystem, and
    tests/test_disk_full.py mounts its own. An explicit TMPDIR (or too little room) is left alone."""
    if os.environ.get("TMPDIR") or not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        return
    stats = os.statvfs("/dev/shm")
    if stats.f_bavail * stats.f_frsize < _MEMORY_TMP_ROOM:
        return
    folder = tempfile.mkdtemp(prefix="feedback-tests-", dir="/dev/shm")
    os.chmod(folder, 0o1777)  # as /tmp: the PostgreSQL cluster runs as the postgres user
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["TMPDIR"] = folder  # child processes (servers, the CLI, PostgreSQL's initdb) follow it
    tempfile.tempdir = folder  # this process and pytest's tmp_path follow it


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    able = marker.args if marker else ("sqlite",)
    chosen = metafunc.config.chosen_backends  # type: ignore[attr-defined]
    params = [
        name if name in chosen else pytest.param(name, marks=pytest.mark.skip(reason=f"--backends leaves out {name}"))
        for name in able
    ]
    metafunc.parametrize("backend", params, scope="module")


# A page in each of the four languages is a matter of rendering, which the database does not change:
# on PostgreSQL such a test runs in one language (SQLite runs all four).
POSTGRES_PAGE_LANGUAGE = "en"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, drop what only the markup decides: a page in more than one language, and a browser
    test (an audit, a screenshot, keys typed) unless it is marked `browser_on_postgresql` because its point
    is the store path behind the page (a live update, a flow walked to its end). Drop too the tests marked
    `postgres_covered_elsewhere`. Then put the longest modules first (`LONGEST_FIRST`)."""
    kept, dropped = [], []
    everything = config.getoption("--postgres-everything")
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        other_language = params.get("lang", POSTGRES_PAGE_LANGUAGE) != POSTGRES_PAGE_LANGUAGE
        page_only = "browser" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "browser_on_postgresql"
        )
        covered_elsewhere = item.get_closest_marker("postgres_covered_elsewhere") is not None and not everything
        if params.get("backend") == "postgresql" and (other_language or page_only or covered_elsewhere):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # The longest modules first (a stable sort: each module's own order is kept).
    items[:] = sorted(kept, key=lambda item: LONGEST_FIRST.get(item.path.stem, len(LONGEST_FIRST)))


# The modules that take longest (summed test durations of the whole suite, longest first). xdist hands
# out whole modules (`--dist loadscope`) in collection order, which `--no-loadscope-reorder` in
# pyproject.toml's addopts keeps (by default xdist sorts modules by their number of tests, which put
# the long modules of few tests, the SIGKILL, migration and scenario ones, last), so these start first
# and no long module starts last while the other workers sit idle. Only the order changes: a module
# left out, renamed or grown runs all the same, just not first.
LONGEST_FIRST = {
    name: rank
    for rank, name in enumerate(
        (
            "test_paper_scan",
            "test_openapi_fuzz",
            "test_user_admin_scope",
            "test_kiosk",
            "test_manage_auth",
            "test_manage_dashboard",
            "test_federation",
            "test_manage_actions",
            "test_maintenance",
            "test_event_durability",
            "test_dossiers",
            "test_webhooks",
            "test_exports",
            "test_actions",
            "test_two_nodes",
            "test_quick_start",
            "test_serve_guards",
            "test_demo",
            "test_kiosk_api",
            "test_manage_admin",
            "test_survey_page",
            "test_objectives",
            "test_two_factor",
            "test_backup",
            "test_sso",
            "test_kiosk_retired",
            "test_migrate_postgres",
            "test_survey_phones",
            "test_scenario_quality_loop",
            "test_crash",
            "test_sms_crash",
        )
    )
}


_cluster: Any = None
_org_template: Org | None = None


def postgres_cluster() -> Any:
    """This test process's throwaway PostgreSQL server (tests/postgres.py), started on first use."""
    global _cluster
    if _cluster is None:
        from tests.postgres import Cluster

        _cluster = Cluster().start()
    return _cluster


def new_postgres_database() -> str:
    """An empty database on the cluster; returns its URL."""
    return postgres_cluster().create_database()


def postgres_org() -> Org:
    """`make_org` in a database of its own, copied from a template made once per test process."""
    global _org_template
    cluster = postgres_cluster()
    if _org_template is None:
        _org_template = make_org(cluster.create_database("org_template"))
    url = cluster.create_database(template="org_template")
    return Org(db=url, touchpoints=dict(_org_template.touchpoints), tokens=dict(_org_template.tokens))


def org_on(backend: str, folder: Path) -> Org:
    return postgres_org() if backend == "postgresql" else make_org(folder / "feedback.db")


@pytest.fixture
def org(tmp_path: Path, backend: str) -> Org:
    return org_on(backend, tmp_path)


@pytest.fixture(scope="module")
def shared_org(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Org:
    return org_on(backend, tmp_path_factory.mktemp("org"))


@pytest.fixture(scope="module")
def server(shared_org: Org):
    """A server over `shared_org`, shared by the tests of one module."""
    srv = Server(shared_org.db).start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server():
    """Start in-process servers with custom settings; all are stopped after the test."""
    started: list[Server] = []

    def start(db: Path, **env: str) -> Server:
        srv = Server(db, env={k.upper(): v for k, v in env.items()}).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def start_process_server():
    """Start `feedback serve` processes with custom settings (`workers=` too); all are stopped after the test."""
    started: list[ProcessServer] = []

    def start(db: Path, workers: int = 1, fresh: bool = False, **env: str) -> ProcessServer:
        srv = ProcessServer(db, env={k.upper(): v for k, v in env.items()}, workers=workers, fresh=fresh).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright, shared by the tests of one module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def connect(db: Path | str) -> Any:
    """A plain connection to the test's database, outside any server: sqlite3's for a file, the store's
    PostgreSQL adapter for a URL (the same `?` parameters, rows by name)."""
    if is_postgres_url(str(db)):
        from feedback.store import pg

        return pg.Connection.open(str(db), application_name="tests")
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return conn


def rows(org: Org, sql: str, params: tuple = ()) -> list[dict]:
    """Rows straight from the database, as dicts."""
    conn = connect(org.db)
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ForkedProcess:
    """A process `CommandLine.spawn` forked, seen as `subprocess.Popen` shows a child: `pid` (also its
    process group), `poll()`, `wait()`, `returncode`. Its exit status comes from the file the forking
    process writes when it ends (it is that process's child, not this one's)."""

    def __init__(self, pid: int, status: Path) -> None:
        self.pid = pid
        self._status = status
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        gone = not Path(f"/proc/{self.pid}").exists()  # looked at first: the status is written before
        if self._status.exists():
            self.returncode = int(self._status.read_text())
            shutil.rmtree(self._status.parent, ignore_errors=True)
        elif gone:  # without a status: the forking process ended first, and init reaped this one
            self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"feedback (pid {self.pid})", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


class CommandLine:
    """`feedback …` for tests, forked from a process that has imported the app once (tests/cli_zygote.py):
    each command is still a process of its own, without a fresh interpreter's second of imports. One per
    test process; a command asked for while another runs (from another thread) gets a fresh interpreter."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _started(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.cli_zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=source_env(),
                cwd=ROOT,
            )
            atexit.register(self._stop, self._process)
        return self._process

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()

    def spawn(
        self, args: list[str], env: dict[str, str], log: Path, errors: Path | None = None
    ) -> ForkedProcess | None:
        """A command forked and left running (`feedback serve`, or commands run side by side), its stdout
        added to `log` and its stderr to `errors` (else to `log` too); None when the forking process is
        busy or gone (start it afresh)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            status = Path(tempfile.mkdtemp(prefix="feedback-cli-")) / "status"
            answer = self._ask(
                {
                    "args": list(args),
                    "env": env,
                    "cwd": os.getcwd(),
                    "stdin": os.devnull,
                    "stdout": str(log),
                    "stderr": str(errors or log),
                    "append": True,
                    "status": str(status),
                }
            )
            return ForkedProcess(answer["pid"], status) if answer else None
        finally:
            self._lock.release()

    def _ask(self, request: dict) -> dict | None:
        """One request to the forking process (the caller holds the lock) and its answer; None when it is gone."""
        process = self._started()
        assert process.stdin and process.stdout
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            return None
        line = process.stdout.readline()
        return json.loads(line) if line else None

    def run(
        self, args: list[str], env: dict[str, str], input: str | None, timeout: float
    ) -> subprocess.CompletedProcess | None:
        """The finished command, or None when the forking process is busy or gone (run it afresh)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="feedback-cli-") as folder:
                files = {name: str(Path(folder) / name) for name in ("stdin", "stdout", "stderr")}
                Path(files["stdin"]).write_text(input or "", encoding="utf-8")
                answer = self._ask({"args": list(args), "env": env, "cwd": os.getcwd(), "timeout": timeout, **files})
                if answer is None:
                    return None
                if answer.get("timeout"):
                    raise subprocess.TimeoutExpired([*FEEDBACK, *args], timeout)
                return subprocess.CompletedProcess(
                    [*FEEDBACK, *args],
                    answer["returncode"],
                    Path(files["stdout"]).read_text(encoding="utf-8"),
                    Path(files["stderr"]).read_text(encoding="utf-8"),
                )
        finally:
            self._lock.release()


COMMAND_LINE = CommandLine()


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """`feedback ARGS` in a process of its own, with this process's environment and `env`."""
    environment = source_env(env)
    done = COMMAND_LINE.run(list(args), environment, input, timeout=300)
    if done is not None:
        return done
    return subprocess.run(
        [*FEEDBACK, *args],
        capture_output=True,
        text=True,
        env=environment,
        input=input,
        timeout=300,
        check=False,
    )


def run_cli_together(
    *commands: tuple[str, ...], env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess]:
    """`feedback ARGS` for each of `commands`, running at the same time, each in a process of its own."""
    environment = source_env(env)
    folder = Path(tempfile.mkdtemp(prefix="feedback-cli-"))
    started: list[tuple[tuple[str, ...], ForkedProcess | subprocess.Popen, Path, Path]] = []
    for number, args in enumerate(commands):
        out, err = folder / f"{number}.out", folder / f"{number}.err"
        process = COMMAND_LINE.spawn(list(args), environment, out, err)
        if process is None:
            with out.open("wb") as stdout, err.open("wb") as stderr:
                process = subprocess.Popen([*FEEDBACK, *args], env=environment, stdout=stdout, stderr=stderr)
        started.append((args, process, out, err))
    done = []
    for args, process, out, err in started:
        returncode = process.wait(300)
        read = [path.read_text(encoding="utf-8") if path.exists() else "" for path in (out, err)]
        done.append(subprocess.CompletedProcess([*FEEDBACK, *args], returncode, *read))
    shutil.rmtree(folder, ignore_errors=True)
    return done


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def load_axe(page: Any) -> None:
    """axe-core in a Playwright page, once per loaded page however often it is audited: brought in through
    the DevTools protocol, which the page's strict CSP does not govern (a <script> tag it would refuse)."""
    if page.evaluate("() => typeof axe") == "undefined":
        page.evaluate(_axe_source())


# axe-core's WCAG 2.1 A and AA rules, reporting violations only: the passes and the rules that do not
# apply are neither collected per node nor sent back, which halves axe's time on a large page.
# Each violation comes back as [rule, impact, the first three nodes' selectors].
_AXE_RUN = """impacts => axe.run(document, {
    runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'], resultTypes: ['violations']
}).then(result => result.violations
    .filter(v => impacts === null || impacts.includes(v.impact))
    .map(v => [v.id, v.impact, v.nodes.slice(0, 3).map(n => n.target.join(' '))]))"""

SERIOUS_IMPACTS = ("serious", "critical")


def save_screenshot(page: Any, path: Path | str, full_page: bool = True) -> None:
    """A PNG of the page as it stands (the whole page, else the viewport) at `path`, for a person to look
    at. Taken through the DevTools protocol with Chromium's quicker PNG encoding (`optimizeForSpeed`):
    about half the browser's CPU of Playwright's screenshot for a file about a quarter bigger. Now and
    then, on a loaded machine, Chromium answers "Unable to capture screenshot": tried again after two
    frames, then through Playwright's own screenshot, which waits for the page to be ready."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(2):
        try:
            data = _capture_screenshot(page, full_page)
        except PlaywrightError as error:
            if "Unable to capture screenshot" not in str(error):
                raise
            if attempt == 0:
                page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
            continue
        Path(path).write_bytes(base64.b64decode(data))
        return
    page.screenshot(path=str(path), full_page=full_page)


def _capture_screenshot(page: Any, full_page: bool) -> str:
    """Page.captureScreenshot's base64 PNG, through a DevTools session of its own."""
    session = page.context.new_cdp_session(page)
    try:
        params: dict[str, Any] = {"format": "png", "optimizeForSpeed": True}
        if full_page:
            metrics = session.send("Page.getLayoutMetrics")
            width = max(metrics["cssContentSize"]["width"], metrics["cssLayoutViewport"]["clientWidth"])
            height = max(metrics["cssContentSize"]["height"], metrics["cssLayoutViewport"]["clientHeight"])
            clip = {"x": 0, "y": 0, "width": math.ceil(width), "height": math.ceil(height), "scale": 1}
            params |= {"captureBeyondViewport": True, "clip": clip}
        return session.send("Page.captureScreenshot", params)["data"]
    finally:
        session.detach()


def axe_violations(page: Any, impacts: tuple[str, ...] | None = SERIOUS_IMPACTS) -> list[list]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it stands: [rule, impact, nodes] for
    each violation of one of `impacts` (every violation when None). An audit asserts this is []."""
    load_axe(page)
    return page.evaluate(_AXE_RUN, list(impacts) if impacts else None)


def resize(page: Any, width: int, height: int) -> None:
    """Set a Playwright page's viewport and wait two frames (at most two seconds), so that the page's own
    `resize` listeners (and what they change, e.g. manage.js making a scrolling table focusable) have run."""
    page.set_viewport_size({"width": width, "height": height})
    page.evaluate(
        "() => new Promise(done => {"
        " requestAnimationFrame(() => requestAnimationFrame(done)); setTimeout(done, 2000); })"
    )


def poll_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "the condition") -> Any:
    """Wait for `condition()` to be true (polled every 20 ms) and return it; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)
    return value


def wait_for_dispatch(org: Org, timeout: float = 15.0) -> None:
    """Wait until every event in the log has been handed to `track_event` (none left pending): what a
    plugin does with an event happens after the commit, on the server's dispatcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows(org, "SELECT count(*) AS n FROM event_log WHERE dispatched_at IS NULL")[0]["n"] == 0:
            return
        time.sleep(0.02)
    pending = rows(org, "SELECT id, claimed_by, claimed_until FROM event_log WHERE dispatched_at IS NULL")
    raise AssertionError(f"events still pending after {timeout} s: {pending[:10]}")
