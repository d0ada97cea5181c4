"""A full disk under a running server: every write route answers 503 with Retry-After and a message
(never a 500 with a traceback per request), /readyz says why, and the server recovers by itself when
space returns: what got 201 is stored, what got 503 is not.

The database lives on a tmpfs of a few MB (mounting one needs root, as in CI); a filler file takes
the rest of it."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import Org, ProcessServer, auth_header, enrollment_code, make_org, poll_until, rows

DISK_MB = 16


@pytest.fixture
def small_disk(tmp_path: Path):
    """A tmpfs of DISK_MB mounted in the test's folder, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (the test needs root): {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write zeros to `path` until the filesystem has no room left (less than a page)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0" * 512):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    finally:
        os.close(fd)


def post_response(url: str) -> tuple[str, httpx.Response]:
    rid = str(uuid.uuid4())
    reply = httpx.post(
        f"{url}/api/v1/responses", json={"id": rid, "touchpoint": "tp-a", "answers": {"overall": 4}}, timeout=30
    )
    return rid, reply


def test_a_full_disk_gives_503_with_retry_after_and_the_server_recovers_when_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    org: Org = make_org(small_disk / "feedback.db")
    # The server's own output goes beside the test, not onto the disk that is about to fill.
    (small_disk / "feedback.server.log").symlink_to(tmp_path / "server.log")
    server = ProcessServer(org.db, env={"FEEDBACK_READY_MIN_FREE_MB": "1"}).start()
    try:
        kiosk = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": enrollment_code(org)}).json()
        device = auth_header(kiosk["device_token"])
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200
        stored_before = {
            rid for rid, reply in (post_response(server.url) for _ in range(5)) if reply.status_code == 201
        }
        assert len(stored_before) == 5

        fill(small_disk / "filler")
        acknowledged, refused = set(stored_before), set()
        for _ in range(500):  # until the database's log has no room left to grow into
            rid, reply = post_response(server.url)
            assert reply.status_code in (201, 503), reply.text
            (acknowledged if reply.status_code == 201 else refused).add(rid)
            if reply.status_code == 503:
                break
        assert refused, "no write was refused on a full disk"
        assert reply.headers["retry-after"].isdigit()
        assert reply.json()["status_code"] == 503
        assert reply.json()["detail"].startswith("database: the disk is full")

        # Every write route: the next posts, a kiosk's queued taps, the citizen's form.
        for _ in range(20):
            rid, reply = post_response(server.url)
            assert reply.status_code == 503 and "retry-after" in reply.headers, reply.text
            refused.add(rid)
        tapped_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        tap = {"id": str(uuid.uuid4()), "answers": {"overall": 5}, "submitted_at": tapped_at}
        synced = httpx.post(f"{server.url}/api/v1/kiosk/sync", json={"items": [tap]}, headers=device, timeout=30)
        assert synced.status_code == 503 and "retry-after" in synced.headers, synced.text
        assert synced.json()["detail"].startswith("database: the disk is full")
        refused.add(tap["id"])
        form_id = str(uuid.uuid4())
        page = httpx.post(
            f"{server.url}/s/tp-a?lang=vi", data={"form_id": form_id, "lang": "vi", "q.overall": "4"}, timeout=30
        )
        assert page.status_code == 503 and "retry-after" in page.headers
        assert "Câu trả lời của bạn chưa được lưu" in page.text  # in the citizen's language, not a traceback
        refused.add(form_id)

        # (An answer up to a second old may still say ready: the check runs at most once a second.)
        ready = poll_until(
            lambda: (r := httpx.get(f"{server.url}/readyz", timeout=30)).status_code == 503 and r, 5, "not ready"
        )
        body = ready.json()
        assert body["status"] == "not_ready"
        assert any(reason.startswith("disk: the disk is nearly full") for reason in body["reasons"]), body
        assert body["checks"]["disk"]["ok"] is False and body["checks"]["disk"]["free_mb"] == 0
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200  # alive, only not ready

        # Space returns: the same server takes writes again, without a restart.
        (small_disk / "filler").unlink()
        poll_until(lambda: httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200, 15, "ready again")
        for _ in range(20):
            rid, reply = post_response(server.url)
            assert reply.status_code == 201, reply.text
            acknowledged.add(rid)
        again = httpx.post(f"{server.url}/api/v1/kiosk/sync", json={"items": [tap]}, headers=device, timeout=30)
        assert again.json()["results"][0]["status"] == "stored"  # the tablet's retry of the refused tap
        refused.discard(tap["id"])
        acknowledged.add(tap["id"])
    finally:
        server.stop()

    stored = {row["id"] for row in rows(org, "SELECT id FROM responses")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged responses missing"
    assert not (refused & stored), "a response answered 503 was stored"
    # One line about the failure, not a traceback per request.
    log = (tmp_path / "server.log").read_text()
    assert log.count("writes to the database fail: the disk is full") == 1
    assert "unhandled error" not in log
