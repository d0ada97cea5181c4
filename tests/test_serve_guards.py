"""What `feedback serve` guards as a process: one server per port, no worker outliving its parent, no
database replaced under a running server, and one secret that outlives a restart.

Real `feedback serve` processes on 127.0.0.1 over real SQLite files."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from feedback.web.survey_page import read_form_id
from tests.conftest import FEEDBACK, Org, ProcessServer, make_org, rows, run_cli, source_env


def serve_once(db: Path, port: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`feedback serve` on a port, expected to give up at once; a server that starts anyway is killed."""
    process = subprocess.Popen(
        [*FEEDBACK, "serve", "--db", str(db), "--port", str(port)],
        env=source_env({"FEEDBACK_RATE_LIMIT": "0", "FEEDBACK_SECRET": "s", **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"a second server started on a port in use: {err[-500:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def form_id_of(server: ProcessServer, token: str = "tp-a") -> str:
    page = httpx.get(f"{server.url}/s/{token}?lang=en", timeout=10)
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'name="form_id" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def wait_until(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=0.5)
    except httpx.HTTPError:
        return True
    return False


def test_a_second_server_on_a_port_in_use_is_refused(start_process_server, org: Org, tmp_path: Path) -> None:
    first = start_process_server(org.db)
    other = make_org(tmp_path / "other.db")
    with sqlite3.connect(other.db) as conn:
        conn.execute("UPDATE units SET name = 'Other A' WHERE code = 'A'")

    result = serve_once(other.db, first.port)

    assert result.returncode == 1, result.stderr
    assert f"port {first.port}" in result.stderr and "in use" in result.stderr
    # Only the first server answers, from its own database, every time.
    for _ in range(20):
        units = httpx.get(f"{first.url}/api/v1/units", headers={"Authorization": f"Bearer {org.tokens['admin']}"})
        assert {u["code"]: u["name"] for u in units.json()}["A"] == "Agency A"


def test_a_worker_exits_when_its_parent_is_killed(org: Org) -> None:
    server = ProcessServer(org.db, workers=2).start()
    try:
        os.kill(server.process.pid, signal.SIGKILL)  # the parent alone, as the OOM killer would
        server.process.wait(10)
        assert wait_until(lambda: refused(server.url)), "a worker still serves after its parent died"

        def group_gone() -> bool:
            try:
                os.killpg(server.process.pid, 0)
            except ProcessLookupError:
                return True
            return False

        assert wait_until(group_gone), "a worker process is still alive"
    finally:
        server.kill()


def test_demo_force_refuses_a_database_a_running_server_holds(start_process_server, org: Org) -> None:
    server = start_process_server(org.db)
    before = rows(org, "SELECT token FROM touchpoints ORDER BY token")

    result = run_cli("demo", "--db", str(org.db), "--force", "--days", "2")

    assert result.returncode == 1
    assert "running" in result.stderr and "stop" in result.stderr
    assert rows(org, "SELECT token FROM touchpoints ORDER BY token") == before
    assert httpx.get(f"{server.url}/healthz").status_code == 200

    server.stop()
    replaced = run_cli("demo", "--db", str(org.db), "--force", "--days", "2")
    assert replaced.returncode == 0, replaced.stderr
    assert rows(org, "SELECT count(*) AS n FROM units WHERE code = 'A1a'") == [{"n": 0}]


def test_without_feedback_secret_one_kept_secret_outlives_a_restart(org: Org) -> None:
    secret_file = Path(f"{org.db}.secret")
    assert not secret_file.exists()
    first = ProcessServer(org.db, env={"FEEDBACK_SECRET": ""}, workers=2).start()
    try:
        signed_before = form_id_of(first)
    finally:
        first.stop()

    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) == 64

    second = ProcessServer(org.db, env={"FEEDBACK_SECRET": ""}).start()
    try:
        signed_after = form_id_of(second)
        # Both renders carry a render time signed with the one kept secret.
        assert read_form_id(signed_before, secret)[1] is not None
        assert read_form_id(signed_after, secret)[1] is not None
        # And the form opened before the restart is still taken as the server's own.
        answer = httpx.post(f"{second.url}/s/tp-a?lang=en", data={"form_id": signed_before, "q.overall": "5"})
        assert answer.status_code == 201, answer.text[:300]
        assert rows(org, "SELECT id FROM responses") == [{"id": signed_before}]
    finally:
        second.stop()
    assert secret_file.read_text().strip() == secret


def test_feedback_secret_overrides_the_kept_one(org: Org) -> None:
    server = ProcessServer(org.db, env={"FEEDBACK_SECRET": "from-the-environment"}).start()
    try:
        form_id = form_id_of(server)
    finally:
        server.stop()
    assert read_form_id(form_id, "from-the-environment")[1] is not None
    assert not Path(f"{org.db}.secret").exists()
