"""Events survive SIGKILL: a response's events and the work order it opens are written in its own
transaction, dispatched after, and delivered to a webhook and by mail at least once; after a restart
nothing committed is missing, and nothing arrives twice but the deliveries that were in flight."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from feedback import dispatch
from feedback.db import Store, open_database
from feedback.events import record
from feedback.models import Event
from feedback.store import events as event_store
from tests.conftest import (
    BOTH_BACKENDS,
    Org,
    ProcessServer,
    auth_header,
    free_port,
    poll_until,
    rows,
    wait_for_dispatch,
)
from tests.test_mail import Sink, staffed_org
from tests.test_plugins import write_plugin

pytestmark = BOTH_BACKENDS

SUBMITTERS = 8
ACKNOWLEDGED_BEFORE_KILL = 150


class SlowReceiver:
    """A webhook receiver on 127.0.0.1 that takes a little while per call, so that calls are in flight
    when the server dies; it keeps the event id of every call it answered."""

    def __init__(self, delay: float = 0.02) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.delay = delay
        self.ids: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.ids.append(json.loads(body)["id"])
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> Counter[str]:
        with self.lock:
            return Counter(self.ids)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def submit_until_killed(
    server: ProcessServer, stop: threading.Event, acknowledged: list[str], lock: threading.Lock
) -> None:
    """Bad 好差评 ratings at the kiosk touchpoint (each opens a work order), some good ones between."""
    rng = random.Random()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while not stop.is_set():
            body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a1a", "answers": {"overall": rng.choice([1, 1, 2, 5])}}
            try:
                reply = client.post("/api/v1/responses", json=body)
            except httpx.HTTPError:
                return  # the server died with this one in flight: stored or not, the database says
            if reply.status_code == 201:
                with lock:
                    acknowledged.append(body["id"])


def outbox_row_of(message: Any) -> int:
    """The outbox row a mail was sent from: its Message-ID (`<outbox.ROW.DIGEST@host>`, the same on
    every attempt) names it."""
    return int(re.match(r"<outbox\.(\d+)\.", message["Message-ID"]).group(1))


def sessions_ended(org: Org) -> None:
    """Wait until the killed server's connections are gone (PostgreSQL): a server starting then knows
    the leases of the event log and outbox are a dead process's and ends them, as it does when nobody
    holds an SQLite file."""
    if org.backend == "postgresql":
        sql = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'feedback%'"
        poll_until(lambda: not rows(org, sql), 10, "the killed server's sessions ended")


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_every_committed_event_is_delivered_after_sigkill_and_only_in_flight_ones_twice(org: Org) -> None:
    started_at = time.monotonic()
    org = staffed_org(org)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    receiver = SlowReceiver()
    env = {
        "FEEDBACK_WEBHOOK_ALLOW_PRIVATE": "1",
        "FEEDBACK_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        # The weekly digest on a day far from today, so that it cannot join in.
        "FEEDBACK_DIGEST_WEEKDAY": str((date.today().weekday() + 3) % 7),
    }
    try:
        server = ProcessServer(org.db, env=env).start()
        hook = httpx.post(
            f"{server.url}/api/v1/webhooks",
            json={"url": receiver.url, "secret": "s", "events": ["response.stored", "action.opened"]},
            headers=auth_header(org.tokens["admin"]),
        )
        assert hook.status_code == 201, hook.text

        acknowledged: list[str] = []
        lock, stop = threading.Lock(), threading.Event()
        threads = [
            threading.Thread(target=submit_until_killed, args=(server, stop, acknowledged, lock))
            for _ in range(SUBMITTERS)
        ]
        for thread in threads:
            thread.start()
        # Kill once deliveries are under way: some calls to the receiver are then in flight.
        wait_until(
            lambda: len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL and len(receiver.ids) >= 20,
            20,
            "responses acknowledged and webhooks delivered before the kill",
        )
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(10)
        sessions_ended(org)

        # What the dead server left: every committed response and work order with its event in the
        # log (written in the same transaction), and the deliveries it had claimed but not recorded.
        responses = {r["id"] for r in rows(org, "SELECT id FROM responses")}
        actions = {r["id"] for r in rows(org, "SELECT id FROM actions")}
        assert set(acknowledged) <= responses
        assert actions, "no work order was opened"
        logged = {r["id"] for r in rows(org, "SELECT id FROM event_log")}
        expected_events = {f"response.stored:{rid}" for rid in responses} | {f"action.opened:{aid}" for aid in actions}
        assert expected_events <= logged
        in_flight = rows(
            org,
            "SELECT id, channel, event_id, dedupe_key FROM outbox"
            " WHERE delivered_at IS NULL AND failed_at IS NULL AND claimed_until IS NOT NULL",
        )
        undispatched = rows(org, "SELECT count(*) AS n FROM event_log WHERE dispatched_at IS NULL")[0]["n"]
        received_before = sum(receiver.received().values())

        restarted = ProcessServer(org.db, env=env).start()
        try:
            expected_mails = len(actions)  # each work order: one mail to its owner (lan, of unit A1)

            def all_delivered() -> bool:
                got = receiver.received()
                # The mails' headers last: parsing them for each poll cost more than the two counts.
                return (
                    expected_events <= set(got)
                    and rows(org, "SELECT count(*) AS n FROM outbox WHERE delivered_at IS NULL")[0]["n"] == 0
                    and rows(org, "SELECT count(*) AS n FROM event_log WHERE dispatched_at IS NULL")[0]["n"] == 0
                    and len({m["Message-ID"] for m in sink.messages}) >= expected_mails
                )

            wait_until(all_delivered, max(5.0, 55 - (time.monotonic() - started_at)), "every event delivered")
        finally:
            restarted.stop()

        # Nothing else was sent: every webhook call is one of the events, every mail one of the actions.
        got = receiver.received()
        assert set(got) == expected_events
        mailed = Counter(outbox_row_of(m) for m in sink.messages)
        subjects = {int(re.search(r"#(\d+)", m["Subject"]).group(1)) for m in sink.messages}
        assert subjects == actions
        assert len(mailed) == expected_mails
        assert all("lan@example.org" in rcpt for rcpt in sink.envelopes)

        # Twice only what was in flight at the kill, and once more at most.
        hook_in_flight = Counter(r["event_id"] for r in in_flight if r["channel"] == "webhook")
        mail_in_flight = Counter(r["id"] for r in in_flight if r["channel"] == "mail")
        hook_twice = {event_id: n - 1 for event_id, n in got.items() if n > 1}
        mail_twice = {row_id: n - 1 for row_id, n in mailed.items() if n > 1}
        for twice, allowed in ((hook_twice, hook_in_flight), (mail_twice, mail_in_flight)):
            assert all(extra <= allowed[key] for key, extra in twice.items()), (twice, allowed)
        print(
            f"\n{len(responses)} responses ({len(acknowledged)} acknowledged), {len(actions)} work orders;"
            f" at the kill {undispatched} event(s) undispatched, {received_before} webhook call(s) received,"
            f" {len(in_flight)} delivery(ies) in flight; sent twice afterwards: {sum(hook_twice.values())} webhook"
            f" call(s), {sum(mail_twice.values())} mail(s); {time.monotonic() - started_at:.1f} s in all"
        )
    finally:
        receiver.stop()
        smtp.stop()


def test_an_event_is_logged_once_and_each_aggregates_events_are_claimed_in_order(org: Org) -> None:
    handle = open_database(str(org.db))
    conn = handle.conn
    at = "2026-03-02T08:00:00+00:00"

    def event(type_: str, event_id: str) -> Event:
        return Event(type=type_, id=event_id, created_at=at, data={"n": event_id})

    first = [
        event("action.opened", "action.opened:1"),
        event("action.changed", "action.changed:1:2"),
        event("action.opened", "action.opened:2"),
        event("action.changed", "action.changed:1:3"),
    ]
    with conn:
        record(conn, first)
    with conn:
        record(conn, [first[0], event("kiosk.silent", "kiosk.silent:k1:2026-03-02T07:00:00+00:00")])
    logged = rows_of(conn, "SELECT seq, id, aggregate FROM event_log ORDER BY seq")
    assert [r["id"] for r in logged] == [e.id for e in first] + ["kiosk.silent:k1:2026-03-02T07:00:00+00:00"]
    assert [r["aggregate"] for r in logged] == ["action:1", "action:1", "action:2", "action:1", "kiosk:k1"]

    def claim(holder: str, now: str, limit: int = 10) -> list[str]:
        with conn:
            found = event_store.claim_events(conn, holder, now, "2026-03-02T08:00:30.000+00:00", limit)
        return [row["id"] for row in found]

    now = "2026-03-02T08:00:00.000+00:00"
    assert claim("a", now, limit=1) == ["action.opened:1"]
    # Action 1's later events wait while its first is leased to another dispatcher; the rest go.
    assert claim("b", now) == ["action.opened:2", "kiosk.silent:k1:2026-03-02T07:00:00+00:00"]
    assert claim("b", now) == []
    with conn:
        event_store.mark_dispatched(conn, [logged[0]["seq"]], now)
    assert claim("b", now) == ["action.changed:1:2", "action.changed:1:3"]
    # A lease that ran out (its holder died) frees the event for anyone, in log order.
    assert claim("c", "2026-03-02T08:00:31.000+00:00") == [
        "action.changed:1:2",
        "action.opened:2",
        "action.changed:1:3",
        "kiosk.silent:k1:2026-03-02T07:00:00+00:00",
    ]
    handle.close()


def test_an_event_leased_to_a_live_dispatcher_is_not_claimable_until_its_lease_ends(org: Org) -> None:
    """What wakes a dispatcher: a pending event nobody holds, or one whose lease has run out."""
    handle = open_database(str(org.db))
    conn = handle.conn
    try:
        at = "2026-03-02T08:00:00.000+00:00"
        with conn:
            record(conn, [Event(type="kiosk.silent", id="kiosk.silent:k1:t", created_at=at, data={})])
        assert event_store.has_claimable(conn, at)
        with conn:
            event_store.claim_events(conn, "a", at, "2026-03-02T08:00:30.000+00:00", 10)
        assert not event_store.has_claimable(conn, "2026-03-02T08:00:10.000+00:00")
        assert event_store.has_claimable(conn, "2026-03-02T08:00:31.000+00:00")
    finally:
        handle.close()


def rows_of(conn, sql: str) -> list[dict]:
    cursor = conn.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


STUCK = """
    import asyncio
    from feedback import hookimpl

    @hookimpl
    def track_event(event):
        return asyncio.sleep(3600)  # never done: no event of this server is ever marked dispatched
"""

RECORDER = """
    import json
    from feedback import hookimpl

    @hookimpl
    def track_event(event):
        with open({log!r}, "a") as f:
            f.write(json.dumps({{"type": event.type, "id": event.id, "data": event.data}}) + "\\n")
"""


def test_a_response_whose_events_were_never_dispatched_gets_them_after_a_restart_and_a_replay_adds_none(
    tmp_path, org: Org
) -> None:
    log = tmp_path / "events.jsonl"
    stuck = ProcessServer(org.db, env={"FEEDBACK_PLUGINS_DIR": str(write_plugin(tmp_path / "stuck", "stuck", STUCK))})
    stuck.start()
    body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a1a", "answers": {"overall": 1}}
    try:
        assert httpx.post(f"{stuck.url}/api/v1/responses", json=body).status_code == 201
        [action] = rows(org, "SELECT id FROM actions")
        pending = {r["id"] for r in rows(org, "SELECT id FROM event_log WHERE dispatched_at IS NULL")}
        assert pending == {f"response.stored:{body['id']}", f"action.opened:{action['id']}"}
    finally:
        stuck.kill()
    sessions_ended(org)

    folder = write_plugin(tmp_path / "recorder", "recorder", RECORDER.format(log=str(log)))
    server = ProcessServer(org.db, env={"FEEDBACK_PLUGINS_DIR": str(folder)}).start()
    try:
        again = httpx.post(f"{server.url}/api/v1/responses", json=body)
        assert again.status_code == 200, again.text
        wait_for_dispatch(org)
    finally:
        server.stop()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(e["id"] for e in events) == sorted(pending)
    stored = next(e for e in events if e["type"] == "response.stored")
    # Rebuilt from the stored response: the same data the request would have handed over.
    assert (stored["data"]["id"], stored["data"]["level"], stored["data"]["unit"]) == (body["id"], 1, "A1a")
    assert stored["data"]["answers"] == {"overall": 1} and stored["data"]["flags"] == []
    assert rows(org, "SELECT count(*) AS n FROM event_log")[0]["n"] == 2


def test_pruning_deletes_old_dispatched_events_and_never_a_pending_one(org: Org) -> None:
    path = org.db
    handle = open_database(str(path))
    conn = handle.conn
    with conn:
        record(
            conn, [Event(type="kiosk.silent", id=f"kiosk.silent:k{n}:t", created_at="t", data={}) for n in range(1200)]
        )
    seqs = [r["seq"] for r in rows_of(conn, "SELECT seq FROM event_log ORDER BY seq")]
    with conn:
        event_store.mark_dispatched(conn, seqs[:1000], "2026-01-01T00:00:00.000+00:00")  # old
        event_store.mark_dispatched(conn, seqs[1000:1100], "2026-03-01T00:00:00.000+00:00")  # recent
    handle.close()  # seqs[1100:] stay pending

    async def prune() -> int:
        store = Store(str(path))
        store.start()
        try:
            return await dispatch.prune(store, "2026-02-01T00:00:00.000+00:00")
        finally:
            store.close()

    assert asyncio.run(prune()) == 1000
    left = rows(org, "SELECT count(*) AS n, count(dispatched_at) AS dispatched FROM event_log")[0]
    assert left == {"n": 200, "dispatched": 100}
