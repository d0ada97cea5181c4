"""Webhook targets: only globally routable addresses, including the IPv4 inside IPv6 forms.

No test here sends anything beyond 127.0.0.1: the classifier is checked over literal addresses
(global ones are classified, never contacted), registration over literal URLs and names that
resolve locally, delivery to receivers on 127.0.0.1.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from feedback_plugins.webhooks import not_routable_reason
from tests.conftest import Org, Server, auth_header, free_port, rows
from tests.test_webhooks import Receiver, register, respond, settled
from tests.tls_helpers import self_signed

REFUSED = [
    "2002:7f00:1::1",  # 6to4 carrying 127.0.0.1
    "2002:c0a8:1::1",  # 6to4 carrying 192.168.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: relayed, never a direct target
    "64:ff9b::7f00:1",  # NAT64 carrying 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 carrying 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 carrying 10.0.0.1
    "64:ff9b:1::808:808",  # local-use NAT64 prefix: not global whatever it carries
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible forms are deprecated, never global
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.10",
    "100.64.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "192.0.2.1",
    "198.51.100.7",
    "224.0.0.1",
    "255.255.255.255",
]
ACCEPTED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_the_classifier_refuses_addresses_that_are_not_globally_routable(address: str) -> None:
    reason = not_routable_reason(address)
    assert reason is not None and address in reason


def test_the_classifier_names_the_ipv4_address_inside() -> None:
    assert "127.0.0.1" in not_routable_reason("2002:7f00:1::1")
    assert "192.0.2.45" in not_routable_reason("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    assert "127.0.0.1" in not_routable_reason("64:ff9b::7f00:1")


@pytest.mark.parametrize("address", ACCEPTED)
def test_the_classifier_accepts_globally_routable_addresses(address: str) -> None:
    assert not_routable_reason(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:7f00:1]:8080/hook",
        "https://[fc00::1]/hook",
        "http://[fe80::1]/hook",
        "http://100.64.0.1/hook",
        "http://192.0.2.1/hook",
        "http://localhost:8080/hook",
        "https://LOCALHOST/hook",
    ],
)
def test_registration_refuses_targets_that_are_not_globally_routable(url: str, shared_org: Org, server: Server) -> None:
    reply = register(server, shared_org, url)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["field"] == "url" and body["detail"].startswith("url: ")
    assert "not globally routable" in body["detail"]
    listed = httpx.get(f"{server.url}/api/v1/webhooks", headers=auth_header(shared_org.tokens["admin"])).json()
    assert url not in [hook["url"] for hook in listed]


def test_a_target_refused_at_delivery_fails_at_once_with_the_reason(org: Org, start_server, receiver) -> None:
    permissive = start_server(org.db, feedback_webhook_allow_private="1")
    hook = register(permissive, org, receiver.url, ["response.stored"]).json()
    permissive.stop()

    strict = start_server(org.db)  # the stored target is refused when sending, never sent to
    stored = respond(strict)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        # Queued by the dispatcher just after the response's commit, then tried.
        found = rows(org, "SELECT attempts, failed_at, last_error, event_id FROM outbox WHERE channel = 'webhook'")
        if found and found[0]["attempts"] >= 1:
            break
        time.sleep(0.1)
    [row] = found
    assert row["event_id"] == f"response.stored:{stored['id']}"
    assert row["attempts"] == 1 and row["failed_at"], row  # final: no retries of a refused address
    assert row["last_error"].startswith("GiveUp: url: ") and "127.0.0.1" in row["last_error"]
    [delivery] = httpx.get(
        f"{strict.url}/api/v1/webhooks/{hook['id']}/deliveries", headers=auth_header(org.tokens["admin"])
    ).json()
    assert delivery["status"] == "failed" and "not globally routable" in delivery["last_error"]
    assert receiver.requests == []


class TlsReceiver:
    """An https receiver on 127.0.0.1 whose certificate names only `localhost`."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"https://localhost:{self.port}/hook"
        self.cert, key = self_signed(folder, "localhost")
        self.requests: list[dict[str, Any]] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.sni: list[str | None] = []
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_delivery_keeps_the_host_name_for_host_header_and_tls(org: Org, start_process_server, tmp_path: Path) -> None:
    # The connection goes to the address the check resolved; the Host header, the TLS server name
    # and the certificate check stay the URL's (the certificate names no address, only localhost).
    tls = TlsReceiver(tmp_path / "tls")
    plain = Receiver().start()
    try:
        # A process: OpenSSL reads SSL_CERT_FILE from the environment of the server's process.
        server = start_process_server(org.db, feedback_webhook_allow_private="1", ssl_cert_file=str(tls.cert))
        for url in (tls.url, f"http://localhost:{plain.port}/hook"):
            assert register(server, org, url, ["response.stored"]).status_code == 201
        stored = respond(server)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (tls.requests and plain.requests):
            time.sleep(0.05)
        settled(org)  # every delivery recorded: a second request to either would be here by now
        [secure] = tls.requests
        [request] = plain.requests
        assert secure["headers"]["host"] == f"localhost:{tls.port}"
        assert tls.sni == ["localhost"]
        assert request["headers"]["host"] == f"localhost:{plain.port}"
        assert (
            json.loads(secure["body"])["id"] == json.loads(request["body"])["id"] == f"response.stored:{stored['id']}"
        )
    finally:
        tls.stop()
        plain.stop()


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()
