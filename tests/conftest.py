"""Shared fixtures: a real SQLite file with a small organisation, and a real server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx
import pytest

from feedback import auth, organisation, surveys
from feedback.db import open_utils
from feedback.migrations import apply_all
from feedback.plugins import PluginManager, build_plugin_manager
from feedback.settings import Settings

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

    db: Path
    touchpoints: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


@cache
def default_plugins() -> PluginManager:
    """The plugins a server has with no plugin settings (the built-in ones), for preparing databases."""
    return build_plugin_manager(Settings())


def make_org(db_path: Path) -> Org:
    """Two agencies: A (A → A1 → A1a) answering CSAT and 好差评, and B answering Ваш контроль."""
    db = open_utils(str(db_path))
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`feedback serve` in a child process, as an operator would run it."""

    def __init__(self, db: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = source_env({"FEEDBACK_RATE_LIMIT": "0", "FEEDBACK_SECRET": "test-secret", **(env or {})})
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self.log = db.with_suffix(".server.log")

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [*FEEDBACK, "serve", "--db", str(self.db), "--port", str(self.port), "--workers", str(self.workers)],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
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


@pytest.fixture
def org(tmp_path: Path) -> Org:
    return make_org(tmp_path / "feedback.db")


@pytest.fixture(scope="module")
def shared_org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    return make_org(tmp_path_factory.mktemp("org") / "feedback.db")


@pytest.fixture(scope="module")
def server(shared_org: Org):
    """A server over `shared_org`, shared by the tests of one module."""
    srv = Server(shared_org.db).start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server():
    """Start servers with custom settings; all are stopped after the test."""
    started: list[Server] = []

    def start(db: Path, **env: str) -> Server:
        srv = Server(db, env={k.upper(): v for k, v in env.items()}).start()
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


def rows(org: Org, sql: str, params: tuple = ()) -> list[dict]:
    """Rows straight from the SQLite file, as dicts."""
    conn = sqlite3.connect(org.db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*FEEDBACK, *args],
        capture_output=True,
        text=True,
        env=source_env(env),
        input=input,
        timeout=300,
        check=False,
    )


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
