"""SMS replies survive SIGKILL: a burst of signed one-digit replies to open invitations, the server killed
in the middle of it and started again on the same database, then every message delivered again by the
gateway (same ids, same bodies), as a gateway does with messages it got no answer to. Every reply is
stored exactly once, and every message id keeps one answer."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import BOTH_BACKENDS, Org, ProcessServer, auth_header, connect
from tests.test_event_durability import sessions_ended
from tests.test_sms import Gateway, signed, sms_env

pytestmark = BOTH_BACKENDS

INVITED = 60
SENDERS = 6
KILL_AFTER = INVITED // 3  # replies acknowledged before the SIGKILL


def invite_all(server: ProcessServer, org: Org, phones: list[str]) -> dict[str, str]:
    """Invite each number (tp-a1, CSAT: a digit is `overall`); {phone: invitation id}."""
    headers = auth_header(org.tokens["manager_a1"])
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:

        def invite(phone: str) -> tuple[str, str]:
            reply = client.post("/api/v1/invitations", json={"touchpoint": "tp-a1", "phone": phone})
            assert reply.status_code == 201, reply.text
            return phone, reply.json()["id"]

        with ThreadPoolExecutor(SENDERS) as pool:
            return dict(pool.map(invite, phones))


def post_inbound(client: httpx.Client, message: dict[str, str]) -> httpx.Response:
    raw, headers = signed(message)
    return client.post("/api/v1/sms/inbound", content=raw, headers=headers)


def deliver_until_killed(
    server: ProcessServer, pending: queue.Queue, acknowledged: dict[str, dict[str, Any]], lock: threading.Lock
) -> None:
    """One of the gateway's senders: posts messages until none are left or the server dies."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while True:
            try:
                message = pending.get_nowait()
            except queue.Empty:
                return
            try:
                reply = post_inbound(client, message)
            except httpx.HTTPError:
                return  # in flight when the server died: its fate is the database's
            assert reply.status_code == 200, reply.text
            with lock:
                acknowledged[message["id"]] = reply.json()


def redeliver(server: ProcessServer, messages: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Every message again, from several senders at once; {message id: answer}."""
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def deliver(message: dict[str, str]) -> tuple[str, dict[str, Any]]:
            reply = post_inbound(client, message)
            assert reply.status_code == 200, reply.text
            return message["id"], reply.json()

        with ThreadPoolExecutor(SENDERS) as pool:
            return dict(pool.map(deliver, messages))


def stored_sms_responses(org: Org) -> dict[str, list[dict[str, Any]]]:
    """The responses by SMS as {response id: [rows]} (a list, so that a second row would show)."""
    conn = connect(org.db)
    try:
        found: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute("SELECT id, answers, channel FROM responses WHERE channel = 'sms'"):
            found.setdefault(row["id"], []).append(dict(row))
        return found
    finally:
        conn.close()


def test_sms_replies_survive_sigkill_and_a_redelivery_stores_each_once(org: Org) -> None:
    gateway = Gateway()
    env = {**sms_env(gateway), "FEEDBACK_PUBLIC_URL": "https://feedback.example.gov"}
    server = ProcessServer(org.db, env=env).start()
    try:
        phones = [f"+8491{index:07d}" for index in range(INVITED)]
        invited = invite_all(server, org, phones)
        conn = connect(org.db)
        response_of = {
            row["id"]: row["response_id"] for row in conn.execute("SELECT id, response_id FROM sms_invitations")
        }
        conn.close()
        # Each number replies once, with its own digit (1 to 5) and message id.
        messages = [
            {"id": f"gw-{uuid.uuid4()}", "from": phone, "text": str(1 + index % 5)}
            for index, phone in enumerate(phones)
        ]
        expected = {  # message id -> (response id, rating)
            m["id"]: (response_of[invited[m["from"]]], int(m["text"])) for m in messages
        }

        pending: queue.Queue = queue.Queue()
        for message in messages:
            pending.put(message)
        acknowledged: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        senders = [
            threading.Thread(target=deliver_until_killed, args=(server, pending, acknowledged, lock))
            for _ in range(SENDERS)
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 15
        while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.002)
        server.kill()  # SIGKILL with replies in flight
        for sender in senders:
            sender.join(10)
        with lock:
            before_kill = dict(acknowledged)
        assert KILL_AFTER <= len(before_kill) < INVITED, "the kill did not fall in the middle of the burst"
    finally:
        server.kill()

    try:
        # Every reply acknowledged before the kill is on disk, once, with its rating.
        conn = connect(org.db)
        if org.backend == "sqlite":  # the killed process had the file open for writing
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        stored = stored_sms_responses(org)
        for message_id, answer in before_kill.items():
            response_id, rating = expected[message_id]
            assert answer == {"id": message_id, "status": "stored", "response": response_id}
            [row] = stored[response_id]
            assert json.loads(row["answers"]) == {"overall": rating}

        sessions_ended(org)
        restarted = ProcessServer(org.db, env=env).start()
        try:
            redelivered = redeliver(restarted, messages)
            replayed = redeliver(restarted, messages)
        finally:
            restarted.stop()
    finally:
        gateway.stop()

    # A message answered before the kill gets that answer again; every message is now answered as
    # stored, under its own invitation's response, and keeps that answer.
    for message_id, answer in before_kill.items():
        assert redelivered[message_id] == answer
    for message_id, (response_id, _) in expected.items():
        assert redelivered[message_id] == {"id": message_id, "status": "stored", "response": response_id}
    assert replayed == redelivered

    # Every reply stored exactly once, with its rating; no invitation has two responses; all are closed.
    stored = stored_sms_responses(org)
    assert set(stored) == {response_id for response_id, _ in expected.values()}
    for response_id, rating in expected.values():
        [row] = stored[response_id]
        assert json.loads(row["answers"]) == {"overall": rating}
    conn = connect(org.db)
    try:
        if org.backend == "sqlite":
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM responses").fetchone()[0] == INVITED
        assert conn.execute("SELECT sum(n) FROM rollups").fetchone()[0] == INVITED
        assert conn.execute("SELECT count(*) FROM sms_invitations WHERE answered_at IS NULL").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM sms_inbound").fetchone()[0] == INVITED
    finally:
        conn.close()
