"""Two `feedback serve` nodes on one PostgreSQL database, as behind a load balancer: one id stored once,
jobs once per interval, each webhook sent once, a catalog change and a kiosk invitation seen by the
other node at once, and a node killed under load loses nothing that was acknowledged."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import Org, auth_header, poll_until, rows
from tests.manage_helpers import retire_touchpoint
from tests.test_kiosk_api import enroll
from tests.test_webhooks import Receiver, register

pytestmark = pytest.mark.backends("postgresql")


def post(node, body: dict) -> httpx.Response:
    return httpx.post(f"{node.url}/api/v1/responses", json=body, timeout=30)


def test_the_same_id_posted_to_both_nodes_at_once_is_stored_once(org: Org, backend: str, start_process_server) -> None:
    a = start_process_server(org.db, feedback_jobs="0")
    b = start_process_server(org.db, feedback_jobs="0")
    with ThreadPoolExecutor(8) as pool:
        for rating in range(1, 11):
            same = {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 1 + rating % 5}}
            replies = list(pool.map(lambda node, s=same: post(node, s), [a, b, a, b]))
            assert sorted(r.status_code for r in replies) == [200, 200, 200, 201]
            assert len({r.json()["receipt"] for r in replies}) == 1
            other = {**same, "answers": {"overall": 5 if same["answers"]["overall"] != 5 else 4}}
            assert post(b, other).status_code == 409
    assert rows(org, "SELECT count(*) AS n FROM responses")[0]["n"] == 10
    assert rows(org, "SELECT sum(n) AS n FROM rollups")[0]["n"] == 10  # counted once in the rates too


def test_jobs_webhooks_catalog_and_invitations_across_nodes(org: Org, backend: str, start_process_server) -> None:
    receiver = Receiver().start()
    try:
        a = start_process_server(org.db, feedback_webhook_allow_private="1")
        b = start_process_server(org.db, feedback_webhook_allow_private="1")
        # Each hourly job ran once, though both nodes started with their schedulers on.
        hourly = ("events.prune", "outbox.prune", "actions.effectiveness", "mail.digest")
        # Other jobs run in the same round, in their own order: wait for these four by name.
        poll_until(
            lambda: set(hourly) <= {row["name"] for row in rows(org, "SELECT name FROM job_runs")},
            what="the jobs' first runs",
        )
        runs = {row["name"]: row["runs"] for row in rows(org, "SELECT name, runs FROM job_runs")}
        assert all(runs.get(name) == 1 for name in hourly), runs

        # Every event is sent once, whichever node stored it and whichever node delivers.
        assert register(a, org, receiver.url).status_code == 201
        ids = [str(uuid.uuid4()) for _ in range(20)]
        for n, response_id in enumerate(ids):
            body = {"id": response_id, "touchpoint": "tp-a", "answers": {"overall": 5}}
            assert post((a, b)[n % 2], body).status_code == 201
        receiver.wait_for(len(ids), timeout=30)
        time.sleep(2.5)  # one more delivery round of each node: nothing may come twice
        sent = [r["headers"]["x-feedback-delivery"] for r in receiver.delivered()]
        assert len(sent) == len(set(sent)) == len(ids)

        # A touchpoint retired through node A is refused by node B within 2 s.
        retire_touchpoint(a, org.db, "tp-a1", "A1")
        retired_at = time.monotonic()
        poll_until(
            lambda: post(b, {"touchpoint": "tp-a1", "answers": {"overall": 4}}).status_code == 410,
            timeout=5,
            what="node B refusing the retired touchpoint",
        )
        assert time.monotonic() - retired_at < 2.0

        # A kiosk waiting on node B gets the invitation a manager posts on node A at once.
        device, kiosk_id = enroll(b.url, org)
        received: dict = {}

        def wait() -> None:
            reply = httpx.get(
                f"{b.url}/api/v1/kiosk/invitation", params={"wait": 20}, headers=auth_header(device), timeout=30
            )
            received.update(reply.json(), at=time.monotonic())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(1.5)  # the long-poll is waiting on node B (its own 1 s re-check has run at least once)
        posted_at = time.monotonic()
        invite = httpx.post(
            f"{a.url}/api/v1/kiosks/{kiosk_id}/invite",
            headers=auth_header(org.tokens["admin"]),
            json={"case_ref": "CASE-7", "service": "S1"},
            timeout=10,
        )
        assert invite.status_code == 201, invite.text
        waiter.join(30)
        assert received["invitation"]["case_ref"] == "CASE-7"
        assert received["at"] - posted_at < 0.5  # notified, not found by the next 1 s re-check
    finally:
        receiver.stop()


def test_a_node_killed_under_load_loses_nothing_acknowledged(org: Org, backend: str, start_process_server) -> None:
    a = start_process_server(org.db, feedback_jobs="0")
    b = start_process_server(org.db, feedback_jobs="0")
    acknowledged: set[str] = set()
    refused_after_kill = 0
    lock = threading.Lock()
    stop = threading.Event()
    killed = threading.Event()

    def load(node, worker: int) -> None:
        nonlocal refused_after_kill
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response_id = str(uuid.uuid4())
                body = {"id": response_id, "touchpoint": "tp-a", "answers": {"overall": 1 + worker % 5}}
                try:
                    reply = client.post(f"{node.url}/api/v1/responses", json=body)
                except httpx.HTTPError:
                    if node is a and killed.is_set():
                        return  # the killed node: its clients would now go to the other one
                    raise
                if reply.status_code in (200, 201):
                    with lock:
                        acknowledged.add(response_id)
                elif node is b:
                    with lock:
                        refused_after_kill += 1

    threads = [threading.Thread(target=load, args=((a, b)[n % 2], n)) for n in range(8)]
    for thread in threads:
        thread.start()
    poll_until(lambda: len(acknowledged) > 300, timeout=30, what="load on both nodes")
    killed.set()  # before the kill: a client of node a may see its connection drop at once
    a.kill()
    at_kill = len(acknowledged)
    poll_until(lambda: len(acknowledged) > at_kill + 300, timeout=30, what="node B serving on after the kill")
    stop.set()
    for thread in threads:
        thread.join(30)
    stored = {row["id"] for row in rows(org, "SELECT id FROM responses")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged responses lost"
    assert rows(org, "SELECT count(*) AS n FROM responses")[0]["n"] == len(stored)  # none stored twice
    assert refused_after_kill == 0
    assert rows(org, "SELECT sum(n) AS n FROM rollups")[0]["n"] == len(stored)
