"""Behind the shipped nginx (deploy/nginx.conf, run by Debian's nginx) every client has its own limits.

The site file is the shipped one with only its ports, certificate paths and upstream swapped by
text substitution, so these tests prove the configuration operators install. Client addresses
are distinct loopback addresses (127.0.0.1, 127.0.0.2, 127.0.0.3): each request's socket is bound
to one, so nothing leaves this machine.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from feedback.settings import load_settings
from feedback.web.client_address import client_address
from tests.conftest import ROOT, Org, Server, free_port
from tests.tls_helpers import self_signed

NGINX = "/usr/sbin/nginx"
SHIPPED = ROOT / "deploy" / "nginx.conf"
TRUSTED = {"feedback_trusted_proxies": "127.0.0.1,::1"}  # as deploy/feedback.service sets it


@dataclass
class Nginx:
    process: subprocess.Popen
    url: str  # https, on 127.0.0.1
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def site_config(upstream_port: int, tls_port: int, http_port: int, cert: Path, key: Path) -> str:
    """deploy/nginx.conf with test ports, certificate and upstream; each swapped line must be there."""
    text = SHIPPED.read_text(encoding="utf-8")
    for old, new in (
        ("listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("/etc/ssl/feedback/fullchain.pem", str(cert)),
        ("/etc/ssl/feedback/privkey.pem", str(key)),
        ("proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{upstream_port};"),
    ):
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def start_nginx(folder: Path, upstream_port: int) -> Nginx:
    """Debian's nginx as a foreground child process with its own prefix, pid, logs and temp paths."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(folder / "tls", "feedback.example.gov.vn")
    tls_port, http_port = free_port(), free_port()
    site = folder / "feedback-site.conf"
    site.write_text(site_config(upstream_port, tls_port, http_port, cert, key), encoding="utf-8")
    temp = "\n".join(
        f"    {name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = folder / "nginx.conf"
    main.write_text(
        f"daemon off;\nmaster_process off;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
        f"events {{ worker_connections 128; }}\nhttp {{\n    access_log off;\n{temp}\n    include {site};\n}}\n",
        encoding="utf-8",
    )
    log = folder / "nginx.out"
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(main)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    started = Nginx(process, f"https://127.0.0.1:{tls_port}", log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text()} {(folder / 'error.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", tls_port), timeout=0.5).close()
            return started
        except OSError:
            time.sleep(0.05)
    started.stop()
    raise RuntimeError("nginx did not start")


@pytest.fixture
def nginx_for(tmp_path: Path) -> Iterator:
    started: list[Nginx] = []

    def start(server: Server) -> Nginx:
        started.append(start_nginx(tmp_path / f"nginx{len(started)}", server.port))
        return started[-1]

    yield start
    for proxy in started:
        proxy.stop()


def client_from(address: str) -> httpx.Client:
    """A client whose connections leave from `address` (a loopback address of this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address, verify=False), timeout=10)


def rate(client: httpx.Client, base: str, **headers: str) -> int:
    reply = client.post(
        f"{base}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 4}}, headers=headers
    )
    return reply.status_code


def test_clients_behind_the_shipped_nginx_get_their_own_rate_limit(org: Org, start_server, nginx_for) -> None:
    server = start_server(org.db, feedback_rate_limit="3", **TRUSTED)
    proxy = nginx_for(server)
    with client_from("127.0.0.2") as second, client_from("127.0.0.1") as first, client_from("127.0.0.3") as third:
        # What a client writes into X-Forwarded-For itself changes nothing: nginx appends the
        # address it saw, and that one counts.
        spoofed = [rate(second, proxy.url, **{"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(5)]
        assert spoofed == [201, 201, 201, 429, 429]
        assert rate(second, proxy.url, Forwarded="for=198.51.100.77") == 429
        assert [rate(first, proxy.url) for _ in range(3)] == [201, 201, 201]
        assert rate(third, proxy.url) == 201
        assert rate(first, proxy.url) == 429


def test_forwarding_headers_from_a_client_that_is_no_trusted_proxy_are_ignored(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_rate_limit="3", **TRUSTED)
    with client_from("127.0.0.2") as direct:
        codes = [
            rate(direct, server.url, **{"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=192.0.2.{n}"})
            for n in range(4)
        ]
    assert codes == [201, 201, 201, 429]
    with client_from("127.0.0.3") as other:
        assert rate(other, server.url) == 201


def test_without_trusted_proxies_the_proxy_is_the_client(org: Org, start_server, nginx_for) -> None:
    # The default trusts nobody: behind nginx every client then shares nginx's bucket.
    server = start_server(org.db, feedback_rate_limit="2")
    proxy = nginx_for(server)
    with client_from("127.0.0.2") as second, client_from("127.0.0.3") as third:
        assert [rate(second, proxy.url) for _ in range(2)] == [201, 201]
        assert rate(third, proxy.url) == 429


def test_kiosk_enrollment_limit_is_per_client_behind_nginx(org: Org, start_server, nginx_for) -> None:
    server = start_server(org.db, **TRUSTED)
    proxy = nginx_for(server)

    def wrong_code(client: httpx.Client) -> int:
        return client.post(f"{proxy.url}/api/v1/kiosk/enroll", json={"code": "000000"}).status_code

    with client_from("127.0.0.2") as guesser, client_from("127.0.0.3") as other:
        codes = [wrong_code(guesser) for _ in range(11)]
        assert codes[:10] == [codes[0]] * 10 and codes[0] in (400, 404) and codes[10] == 429
        assert wrong_code(other) == codes[0]  # another tablet's wrong code is its own first


def test_survey_cookie_is_secure_when_a_trusted_proxy_says_https(org: Org, start_server, nginx_for) -> None:
    server = start_server(org.db, **TRUSTED)  # the public URL left at serve's http default
    proxy = nginx_for(server)
    with client_from("127.0.0.2") as citizen:
        through_nginx = citizen.post(f"{proxy.url}/s/tp-a", data={"q.overall": "4"})
        direct = citizen.post(f"{server.url}/s/tp-a", data={"q.overall": "4"}, headers={"X-Forwarded-Proto": "https"})
    assert through_nginx.status_code == direct.status_code == 201
    assert "Secure" in through_nginx.headers["set-cookie"]
    assert "Secure" not in direct.headers["set-cookie"]  # a client's own claim of https is not believed


def scope_from(peer: str, *headers: tuple[str, str]) -> dict:
    return {"type": "http", "client": (peer, 50000), "headers": [(k.encode(), v.encode()) for k, v in headers]}


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # From a peer that is no trusted proxy, forwarding headers are ignored.
        ("203.0.113.5", [("x-forwarded-for", "198.51.100.1")], "203.0.113.5"),
        ("203.0.113.5", [("forwarded", "for=198.51.100.1")], "203.0.113.5"),
        # From a trusted proxy: the rightmost hop that is not a trusted proxy.
        ("127.0.0.1", [("x-forwarded-for", "198.51.100.1")], "198.51.100.1"),
        ("127.0.0.1", [("x-forwarded-for", "6.6.6.6, 198.51.100.1")], "198.51.100.1"),
        ("127.0.0.1", [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.1")], "198.51.100.1"),
        ("127.0.0.1", [("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.0.0.7")], "198.51.100.1"),  # 10/8 trusted
        ("::1", [("x-forwarded-for", "2001:db8::5")], "2001:db8::5"),
        ("::ffff:127.0.0.1", [("x-forwarded-for", "198.51.100.1:4711")], "198.51.100.1"),
        ("127.0.0.1", [("x-forwarded-for", "[2001:db8::5]:4711")], "2001:db8::5"),
        # Every hop trusted: the farthest one.
        ("127.0.0.1", [("x-forwarded-for", "10.0.0.8, 127.0.0.1")], "10.0.0.8"),
        ("127.0.0.1", [], "127.0.0.1"),
        # A hop nobody can name stops the walk at the last trusted proxy.
        ("127.0.0.1", [("x-forwarded-for", "198.51.100.1, unknown")], "127.0.0.1"),
        # Forwarded, when there is no X-Forwarded-For.
        ("127.0.0.1", [("forwarded", 'for=6.6.6.6, for="[2001:db8::5]:4711";proto=https')], "2001:db8::5"),
        ("127.0.0.1", [("forwarded", "proto=https;For=198.51.100.1")], "198.51.100.1"),
        ("127.0.0.1", [("forwarded", "for=_hidden")], "127.0.0.1"),
        ("127.0.0.1", [("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=6.6.6.6")], "198.51.100.1"),
    ],
)
def test_client_address_from_peer_and_headers(peer: str, headers: list, expected: str) -> None:
    settings = load_settings(
        {"FEEDBACK_SECRET": "x", "FEEDBACK_DB": ":memory:", "FEEDBACK_TRUSTED_PROXIES": "127.0.0.1, ::1, 10.0.0.0/8"}
    )
    assert client_address(scope_from(peer, *headers), settings) == expected


def test_a_trusted_proxies_typo_stops_start_up() -> None:
    with pytest.raises(ValueError, match="FEEDBACK_TRUSTED_PROXIES: 'nginx'"):
        load_settings({"FEEDBACK_SECRET": "x", "FEEDBACK_DB": ":memory:", "FEEDBACK_TRUSTED_PROXIES": "::1,nginx"})
