"""Stopping and crashing `feedback serve`: SIGTERM ends kiosk long-polls and event streams at once,
finishes the requests in flight, flushes the writer and exits 0 within 10 s; a worker that dies is
started again, and one that keeps dying makes the server exit non-zero (for systemd to restart it)."""

from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import Org, ProcessServer, auth_header, enrollment_code, healthy, poll_until
from tests.manage_helpers import add_user, sign_in

STOP_WITHIN = 10.0
LONG_POLL_WAIT = 30  # seconds the long-poll would wait for an invitation if the server did not stop


def consumed(server_port: int, client_port: int) -> bool:
    """Whether the server has read everything sent on the connection from `client_port` (its socket's
    receive queue in /proc/net/tcp is empty): the request is in granian's hands, not in the kernel's."""
    wanted_local, wanted_remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted_local and fields[2] == wanted_remote:
            return int(fields[4].split(":")[1], 16) == 0
    return False


def send_and_wait_until_read(server: ProcessServer, path: str, headers: dict[str, str]) -> http.client.HTTPConnection:
    """A GET sent on a connection of its own, once the server has read it; the answer is read later."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=LONG_POLL_WAIT + 15)
    connection.request("GET", path, headers=headers)
    client_port = connection.sock.getsockname()[1]
    poll_until(lambda: consumed(server.port, client_port), 10, f"the server reading {path}")
    return connection


def worker_pids(server: ProcessServer) -> set[int]:
    """The processes `feedback serve` started (its granian workers)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == server.process.pid:
                pids.add(int(entry.name))
    return pids


def listening_workers(server: ProcessServer) -> set[int]:
    """The workers that listen on the server's port (a starting worker opens its socket once its app is up)."""
    port = f"0100007F:{server.port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == port and fields[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    found = set()
    for pid in worker_pids(server):
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        if links & inodes:
            found.add(pid)
    return found


def submit_until_stopped(server: ProcessServer, acknowledged: dict[str, str], stop: threading.Event) -> None:
    """Post responses back to back until told to stop or the server stops answering; record each 201."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while not stop.is_set():
            body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 4}}
            try:
                reply = client.post("/api/v1/responses", json=body)
            except httpx.HTTPError:
                return  # stopped accepting: this one was never acknowledged
            if reply.status_code == 201:
                acknowledged[body["id"]] = reply.json()["receipt"]
            else:
                assert reply.status_code < 500, reply.text


def test_sigterm_ends_long_polls_finishes_requests_and_exits_0_within_10_s(org: Org) -> None:
    server = ProcessServer(org.db).start()
    try:
        kiosk = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": enrollment_code(org)}).json()
        add_user(org.db, "mai", "correct horse 1", "manager", "A1")
        manager = httpx.Client(base_url=server.url, timeout=LONG_POLL_WAIT + 15)
        sign_in(manager, server, "mai", "correct horse 1")
        long_poll = send_and_wait_until_read(
            server, f"/api/v1/kiosk/invitation?wait={LONG_POLL_WAIT}", auth_header(kiosk["device_token"])
        )
        cookies = "; ".join(f"{name}={value}" for name, value in manager.cookies.items())
        stream = send_and_wait_until_read(
            server, "/manage/actions/stream", {"Cookie": cookies, "Accept": "text/event-stream"}
        )

        # Load: 16 clients posting back to back, so requests are in flight when the signal comes.
        acknowledged: dict[str, str] = {}
        stop = threading.Event()
        submitters = [
            threading.Thread(target=submit_until_stopped, args=(server, acknowledged, stop)) for _ in range(16)
        ]
        for thread in submitters:
            thread.start()
        poll_until(lambda: len(acknowledged) >= 200, 30, "200 responses acknowledged under load")

        signalled = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)  # as systemd stops the unit: every process of it
        answer = long_poll.getresponse()
        long_poll_took = time.monotonic() - signalled
        invitation = answer.read()
        events = stream.getresponse()
        streamed = events.read()  # the whole stream: it ends when the server begins to stop
        stream_took = time.monotonic() - signalled
        exit_status = server.process.wait(STOP_WITHIN + 5)
        stopped_after = time.monotonic() - signalled
        stop.set()
        for thread in submitters:
            thread.join(15)
    finally:
        server.stop()

    # The long-poll answered at once as at the end of its wait (the tablet polls again, elsewhere),
    # far from its 30 s; so did the manager's event stream.
    assert answer.status == 200 and invitation == b'{"invitation":null}'
    assert long_poll_took < 3, long_poll_took
    assert events.status == 200 and b"ready" in streamed
    assert stream_took < 3, stream_took
    assert exit_status == 0
    assert stopped_after < STOP_WITHIN, stopped_after
    # Every acknowledged response is on disk, with the receipt it was acknowledged with.
    conn = sqlite3.connect(org.db)
    try:
        stored = dict(conn.execute("SELECT id, receipt FROM responses").fetchall())
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert len(acknowledged) >= 200
    assert {rid: stored.get(rid) for rid in acknowledged} == acknowledged


def test_a_killed_worker_is_replaced_and_the_service_answers_again(org: Org) -> None:
    server = ProcessServer(org.db, workers=2).start()
    try:
        workers = poll_until(
            lambda: len(found := listening_workers(server)) == 2 and found, 30, "two workers listening"
        )
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        replaced = poll_until(
            lambda: len(found := listening_workers(server)) == 2 and killed not in found and found,
            30,
            "a new worker listening in the dead one's place",
        )
        assert replaced - workers, "a new worker process took the dead one's place"
        assert server.process.poll() is None  # the server itself kept running
        # Both workers answer again: every one of 40 fresh connections is served (the kernel spreads
        # them over the workers' sockets), and what is posted is stored.
        for _ in range(40):
            reply = httpx.post(
                f"{server.url}/api/v1/responses",
                json={"touchpoint": "tp-a", "answers": {"overall": 5}},
                headers={"Connection": "close"},
                timeout=10,
            )
            assert reply.status_code == 201, reply.text
    finally:
        server.stop()
    assert server.process.returncode == 0  # a clean stop after a recovered crash


def test_a_worker_that_keeps_dying_makes_the_server_exit_non_zero(org: Org) -> None:
    """A crash loop is not hidden: the server exits with status 1, and systemd (Restart=always) restarts it."""
    server = ProcessServer(org.db, workers=2).start()
    try:
        workers = poll_until(
            lambda: len(found := listening_workers(server)) == 2 and found, 30, "two workers listening"
        )
        os.kill(min(workers), signal.SIGKILL)
        # Its replacement dies too, within seconds of being started.
        newcomer = poll_until(lambda: worker_pids(server) - workers, 30, "the replacement worker")
        os.kill(newcomer.pop(), signal.SIGKILL)
        exit_status = server.process.wait(30)
    finally:
        server.stop()
    assert exit_status == 1
    assert not healthy(server.url)


# A plugin for the race below: in `feedback serve`'s main process it holds granian back between hearing
# the stop signal and telling its workers to stop until they have ended by themselves (at most 8 s), as
# a loaded machine may, so the race goes the same way every time.
SLOW_TO_STOP_WORKERS = """
import time

from granian.server.common import AbstractServer

_stop_workers = AbstractServer._stop_workers


def _late(self):
    deadline = time.monotonic() + 8
    while any(worker.is_alive() for worker in self.wrks) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Granian notices a worker's exit on a watcher thread of each worker, which a busy machine may not
    # have run yet: let it, as it has when the worker ended well before the main process stops it.
    while len(self.interrupt_children) < len(self.wrks) and time.monotonic() < deadline:
        time.sleep(0.02)
    _stop_workers(self)


AbstractServer._stop_workers = _late
"""


def test_a_worker_that_ends_before_the_main_process_tells_it_to_is_still_a_clean_stop(org: Org, tmp_path) -> None:
    """systemd signals every process of the unit at once (`KillMode=control-group`), so a worker may end
    its graceful stop before granian's main process has told it to stop; granian then takes it for a
    crash. A stop asked for by a signal still exits 0 (a crash loop without one still exits 1, above)."""
    (tmp_path / "slow_to_stop_workers.py").write_text(SLOW_TO_STOP_WORKERS)
    server = ProcessServer(org.db, env={"FEEDBACK_PLUGINS_DIR": str(tmp_path)}).start()
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        exit_status = server.process.wait(STOP_WITHIN + 5)
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Unexpected exit from worker-1" in log, log[-2000:]  # the race did happen
    assert exit_status == 0, log[-2000:]
    assert "ended on the stop signal before granian's main process told it to" in log, log[-2000:]
