"""Webhooks end to end: the real server, a real HTTP receiver on 127.0.0.1, events from the real APIs."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, free_port, rows, wait_for_dispatch
from tests.test_event_durability import sessions_ended

pytestmark = BOTH_BACKENDS

SECRET = "s3cret-for-tests"


class Receiver:
    """A webhook receiver that records every request and can be told to fail the next N with a 500."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= failing
                    status = 500 if failing else 204
                    receiver.requests.append(
                        {
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "at": time.monotonic(),
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 15.0, failed_too: bool = False) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = list(self.requests) if failed_too else self.delivered()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}: {self.requests}")


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def register(
    server: Server, org: Org, url: str, events: list[str] | None = None, token: str = "admin", secret: str = SECRET
) -> httpx.Response:
    body: dict[str, Any] = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = events
    return httpx.post(f"{server.url}/api/v1/webhooks", json=body, headers=auth_header(org.tokens[token]))


def respond(server: Server, touchpoint: str = "tp-a", rating: int = 5, response_id: str | None = None) -> dict:
    reply = httpx.post(
        f"{server.url}/api/v1/responses",
        json={"id": response_id or str(uuid.uuid4()), "touchpoint": touchpoint, "answers": {"overall": rating}},
    )
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def settled(org: Org, timeout: float = 15.0) -> None:
    """Wait until every event is handed to the plugins and every webhook row queued for them is delivered
    or given up. A request goes out before its row is recorded, so all that will ever be sent has been."""
    wait_for_dispatch(org, timeout)
    deadline = time.monotonic() + timeout
    pending = "SELECT 1 FROM outbox WHERE channel = 'webhook' AND delivered_at IS NULL AND failed_at IS NULL"
    while rows(org, pending):
        assert time.monotonic() < deadline, "webhook deliveries still pending"
        time.sleep(0.05)


def body_of(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(request["body"])


def test_a_registered_webhook_gets_each_event_once_signed_and_promptly(org: Org, start_server, receiver) -> None:
    # No periodic jobs: what arrives was sent at once after the event, not by a later job run.
    server = start_server(org.db, feedback_webhook_allow_private="1", feedback_jobs="0")
    created = register(server, org, receiver.url)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert set(hook) == {"id", "url", "events", "created_at"}
    assert hook["events"] == ["*"] and hook["url"] == receiver.url

    started = time.monotonic()
    stored = respond(server)
    [request] = receiver.wait_for(1)
    assert request["at"] - started < 3.0  # a healthy receiver hears within about a second

    body = request["body"]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"]["x-feedback-signature"], expected)
    wrong = "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    assert request["headers"]["x-feedback-signature"] != wrong
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["x-feedback-event"] == "response.stored"
    assert request["headers"]["x-feedback-delivery"]
    event = body_of(request)
    assert set(event) == {"id", "type", "created_at", "data"}
    assert event["id"] == f"response.stored:{stored['id']}"
    assert event["type"] == "response.stored"
    assert event["data"]["id"] == stored["id"] and event["data"]["receipt"] == stored["receipt"]

    # A replay of the same response stores nothing and sends nothing.
    respond(server, response_id=stored["id"])
    settled(org)
    assert len(receiver.requests) == 1

    deliveries = httpx.get(
        f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries", headers=auth_header(org.tokens["admin"])
    ).json()
    assert [(d["event_id"], d["status"], d["attempts"]) for d in deliveries] == [(event["id"], "delivered", 1)]


@pytest.mark.postgres_covered_elsewhere
def test_a_failed_delivery_is_retried_soon_with_the_same_body(org: Org, start_server, receiver) -> None:
    server = start_server(org.db, feedback_webhook_allow_private="1")
    hook = register(server, org, receiver.url).json()
    receiver.fail_next = 1
    stored = respond(server)
    failed, delivered = receiver.wait_for(2, timeout=30, failed_too=True)
    assert (failed["status"], delivered["status"]) == (500, 204)
    assert delivered["at"] - failed["at"] < 10  # the first retry comes within 10 seconds
    assert failed["body"] == delivered["body"]
    assert body_of(failed)["id"] == body_of(delivered)["id"] == f"response.stored:{stored['id']}"
    assert failed["headers"]["x-feedback-delivery"] == delivered["headers"]["x-feedback-delivery"]
    assert failed["headers"]["x-feedback-signature"] == delivered["headers"]["x-feedback-signature"]

    settled(org)  # the receiver answers before the server records the delivery
    [delivery] = httpx.get(
        f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries", headers=auth_header(org.tokens["admin"])
    ).json()
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 2
    assert delivery["last_error"] == "RuntimeError: HTTP 500"


def test_undelivered_webhooks_survive_a_crash_and_arrive_exactly_once(
    org: Org, start_server, start_process_server
) -> None:
    receiver = Receiver()  # down: nothing listens on its port yet
    server = start_process_server(org.db, feedback_webhook_allow_private="1")  # a process, to be killed
    # The responses' own events (the rating of 1 also opens a complaint action, whose events are not asked for).
    assert register(server, org, receiver.url, events=["response.stored"]).status_code == 201
    ids = [respond(server, rating=rating)["id"] for rating in (1, 3, 5)]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pending = rows(org, "SELECT attempts, delivered_at FROM outbox WHERE channel = 'webhook'")
        if len(pending) == 3 and all(row["attempts"] >= 1 for row in pending):
            break
        time.sleep(0.1)
    assert len(pending) == 3 and all(row["attempts"] >= 1 and row["delivered_at"] is None for row in pending)

    server.kill()
    sessions_ended(org)
    receiver.start()
    try:
        restarted = start_server(org.db, feedback_webhook_allow_private="1")
        receiver.wait_for(3, timeout=30)
        settled(org)  # a duplicate, were there one, would have arrived by now
        got = [body_of(request)["id"] for request in receiver.requests]
        assert sorted(got) == sorted(f"response.stored:{i}" for i in ids)
        assert len(receiver.requests) == 3
        assert all(r["delivered_at"] for r in rows(org, "SELECT delivered_at FROM outbox WHERE channel = 'webhook'"))
        restarted.stop()
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_private_targets_are_refused_by_default(url: str, shared_org: Org, server: Server) -> None:
    reply = register(server, shared_org, url)
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == "url"
    assert "url" in reply.json()["detail"]


@pytest.mark.postgres_covered_elsewhere
@pytest.mark.parametrize("url", ["ftp://example.org/hook", "not a url", "http:///nohost", "http://h:99999/"])
def test_malformed_targets_are_refused(url: str, shared_org: Org, server: Server) -> None:
    reply = register(server, shared_org, url)
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == "url"


def test_bad_bodies_and_event_names_are_refused(shared_org: Org, server: Server) -> None:
    headers = auth_header(shared_org.tokens["admin"])
    for body, field in (
        ({"url": "http://example.org/h", "secret": "x", "events": ["nope"]}, "events"),
        ({"url": "http://example.org/h", "secret": "x", "events": []}, "events"),
        ({"url": "http://example.org/h"}, "secret"),
        ({"url": "http://example.org/h", "secret": ""}, "secret"),
        ({"url": "http://example.org/h", "secret": "x", "extra": 1}, "extra"),
    ):
        reply = httpx.post(f"{server.url}/api/v1/webhooks", json=body, headers=headers)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["field"] == field, reply.json()


@pytest.mark.postgres_covered_elsewhere
def test_only_an_installation_admin_manages_webhooks(org: Org, start_server) -> None:
    from feedback import auth
    from feedback.db import open_database

    db = open_database(str(org.db))
    db.conn.execute("BEGIN")
    scoped_admin = auth.create_token(db.conn, "unit-admin", "admin", "A")
    db.conn.execute("COMMIT")
    db.close()
    server = start_server(org.db, feedback_webhook_allow_private="1")
    for token in (org.tokens["manager_a1"], org.tokens["viewer_b"], scoped_admin):
        headers = auth_header(token)
        assert (
            httpx.post(
                f"{server.url}/api/v1/webhooks", json={"url": "http://127.0.0.1/h", "secret": "x"}, headers=headers
            ).status_code
            == 403
        )
        assert httpx.get(f"{server.url}/api/v1/webhooks", headers=headers).status_code == 403
    assert httpx.get(f"{server.url}/api/v1/webhooks").status_code == 401
    assert rows(org, "SELECT count(*) AS n FROM webhooks")[0]["n"] == 0


@pytest.mark.postgres_covered_elsewhere
def test_private_targets_with_the_setting_and_checked_again_at_delivery(org: Org, start_server, receiver) -> None:
    server = start_server(org.db, feedback_webhook_allow_private="1")
    created = register(server, org, receiver.url)
    assert created.status_code == 201
    server.stop()

    strict = start_server(org.db)  # the setting is gone: the stored target is refused when sending
    stored = respond(strict)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        # Queued by the dispatcher just after the response's commit, then tried.
        found = rows(org, "SELECT attempts, last_error, event_id FROM outbox WHERE channel = 'webhook'")
        if found and found[0]["attempts"] >= 1:
            break
        time.sleep(0.1)
    [row] = found
    assert row["event_id"] == f"response.stored:{stored['id']}"
    assert "url" in row["last_error"] and "127.0.0.1" in row["last_error"]
    assert receiver.requests == []


@pytest.mark.postgres_covered_elsewhere
def test_events_filter_list_secrets_and_disable(org: Org, start_server, receiver) -> None:
    server = start_server(org.db, feedback_webhook_allow_private="1")
    admin = auth_header(org.tokens["admin"])
    other = Receiver().start()
    try:
        actions_only = register(server, org, receiver.url, ["action.opened", "action.changed"]).json()
        responses_only = register(server, org, other.url, ["response.stored"]).json()
        assert actions_only["events"] == ["action.changed", "action.opened"]

        stored = respond(server)
        opened = httpx.post(
            f"{server.url}/api/v1/actions", json={"unit": "A1", "title": "Queue too long"}, headers=admin
        )
        assert opened.status_code == 201, opened.text
        action = opened.json()
        step = httpx.post(
            f"{server.url}/api/v1/actions/{action['id']}/events", json={"type": "verifying"}, headers=admin
        )
        assert step.status_code == 201, step.text

        receiver.wait_for(2)
        settled(org)  # every delivery recorded: a third request would be here by now
        got = receiver.delivered()
        assert sorted(body_of(r)["type"] for r in got) == ["action.changed", "action.opened"]
        by_type = {body_of(r)["type"]: body_of(r) for r in got}
        assert by_type["action.opened"]["id"] == f"action.opened:{action['id']}"
        assert by_type["action.opened"]["data"]["title"] == "Queue too long"
        assert by_type["action.changed"]["data"]["status"] == "verifying"
        [only] = other.wait_for(1)
        assert body_of(only)["id"] == f"response.stored:{stored['id']}"

        listed = httpx.get(f"{server.url}/api/v1/webhooks", headers=admin).json()
        assert [hook["id"] for hook in listed] == [actions_only["id"], responses_only["id"]]
        assert SECRET not in json.dumps(listed)
        assert all("secret" not in hook for hook in listed)

        gone = httpx.delete(f"{server.url}/api/v1/webhooks/{responses_only['id']}", headers=admin)
        assert gone.status_code == 200 and gone.json()["disabled_at"]
        assert httpx.delete(f"{server.url}/api/v1/webhooks/999", headers=admin).status_code == 404
        respond(server)
        settled(org)
        assert len(other.requests) == 1
        kept = rows(org, "SELECT disabled_at FROM webhooks WHERE id = ?", (responses_only["id"],))
        assert kept and kept[0]["disabled_at"]
        assert (
            httpx.get(f"{server.url}/api/v1/webhooks/{responses_only['id']}/deliveries", headers=admin).json()[0][
                "status"
            ]
            == "delivered"
        )
    finally:
        other.stop()
