"""GET /readyz over a real server: ready with its checks; 503 naming the database when a test write
cannot commit, and the events when one waited too long; at most one test write a second however
often it is asked; documented in the OpenAPI document. (A full disk: tests/test_disk_full.py.)"""

from __future__ import annotations

import math
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import BOTH_BACKENDS, Org, poll_until, rows

STUCK_PLUGIN = """
import asyncio
from pathlib import Path

from feedback import hookimpl


@hookimpl
def tracked_events(store):
    return {{"response.stored"}}


@hookimpl
async def track_event(event, store):
    # A plugin that hangs until the test lets it go: the event stays undispatched meanwhile.
    for _ in range(500):
        if Path({release!r}).exists():
            return
        await asyncio.sleep(0.05)
"""


def readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=30)


@BOTH_BACKENDS
def test_a_healthy_server_is_ready_and_says_what_it_checked(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_jobs="0")
    reply = readyz(srv.url)
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert body["status"] == "ready" and "reasons" not in body
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["database"]["seconds"] < 2
    if org.backend == "sqlite":
        assert checks["disk"]["ok"] and checks["disk"]["free_mb"] >= 256 and checks["disk"]["min_free_mb"] == 256
    else:  # the database server's disk is watched on that server
        assert checks["disk"]["ok"] and checks["disk"]["free_mb"] is None
        assert checks["disk"]["detail"].startswith("not checked: the database is PostgreSQL")
    assert checks["events"] == {"ok": True, "detail": "no event waits", "oldest_seconds": None, "max_seconds": 300}
    # The test write leaves nothing behind.
    assert rows(org, "SELECT count(*) AS n FROM job_runs WHERE name = 'readiness probe'") == [{"n": 0}]
    # Documented, both answers.
    document = httpx.get(f"{srv.url}/schema/openapi.json", timeout=30).json()
    answers = document["paths"]["/readyz"]["get"]["responses"]
    assert set(answers) >= {"200", "503"}


def test_a_database_that_cannot_be_written_is_not_ready_and_recovers(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_jobs="0")
    assert readyz(srv.url).status_code == 200
    # Another process holds the write lock: the writer's test write cannot commit within its deadline.
    holder = sqlite3.connect(org.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reply = poll_until(lambda: (r := readyz(srv.url)).status_code == 503 and r, 10, "not ready")
        body = reply.json()
        assert body["status"] == "not_ready"
        assert body["reasons"] == [
            "database: a test write did not commit within 2 s (the writer is stuck or the database locked)"
        ]
        assert body["checks"]["database"] == {"ok": False, "detail": body["reasons"][0][10:], "seconds": None}
        assert body["checks"]["disk"]["ok"] and body["checks"]["events"]["ok"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    poll_until(lambda: readyz(srv.url).status_code == 200, 35, "ready again once the lock is gone")


@BOTH_BACKENDS
def test_an_event_waiting_too_long_makes_the_server_not_ready(start_server, org: Org, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    release = tmp_path / "release"
    (plugins / "stuck_plugin.py").write_text(STUCK_PLUGIN.format(release=str(release)))
    srv = start_server(org.db, feedback_jobs="0", feedback_plugins_dir=str(plugins), feedback_ready_max_event_age="1")
    assert readyz(srv.url).status_code == 200
    stored = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 5}})
    assert stored.status_code == 201
    reply = poll_until(lambda: (r := readyz(srv.url)).status_code == 503 and r, 15, "not ready")
    [reason] = reply.json()["reasons"]
    assert reason.startswith("events: the oldest event not yet dispatched has waited ")
    assert "FEEDBACK_READY_MAX_EVENT_AGE=1" in reason
    events = reply.json()["checks"]["events"]
    assert events["ok"] is False and events["oldest_seconds"] > 1 and events["max_seconds"] == 1
    release.touch()  # the plugin finishes: the event is dispatched and the server is ready again
    poll_until(lambda: readyz(srv.url).status_code == 200, 15, "ready once the event is dispatched")


def test_a_burst_of_checks_makes_at_most_one_test_write_a_second(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_jobs="0")
    assert readyz(srv.url).status_code == 200

    def writes() -> int:
        return httpx.get(f"{srv.url}/healthz", timeout=30).json()["writes"]

    before = writes()
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: readyz(srv.url).status_code, range(200)))
    took = time.monotonic() - started
    assert answers == [200] * 200
    assert writes() - before <= math.ceil(took) + 1, f"{writes() - before} test writes in {took:.1f} s"
