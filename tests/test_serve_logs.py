"""What `feedback serve` writes to its log: the service's own lines, not a library's chatter (font
subsetting logged about a hundred INFO lines per PDF), unless asked for; and a warning at start when
the public URL that every QR code and poster prints is unset or a loopback address."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from feedback.cli import public_url_warning
from tests.conftest import ProcessServer, auth_header, make_org

PUBLIC = "https://feedback.example.gov.vn"


def render_pdfs(server: ProcessServer, admin: str, count: int = 2) -> None:
    for lang in ("zh", "vi")[:count]:
        reply = httpx.get(
            f"{server.url}/api/v1/reports/management-review.pdf",
            params={"unit": "A", "lang": lang},
            headers=auth_header(admin),
            timeout=60,
        )
        assert reply.status_code == 200 and reply.content.startswith(b"%PDF")


def stop_and_read(server: ProcessServer) -> str:
    server.stop()  # the log is complete once the process has ended
    return server.log.read_text(encoding="utf-8", errors="replace")


def test_library_chatter_stays_out_and_the_public_url_is_asked_for(tmp_path: Path, start_process_server) -> None:
    org = make_org(tmp_path / "feedback.db")
    server = start_process_server(org.db, feedback_webhook_allow_private="1")
    render_pdfs(server, org.tokens["admin"])
    # One of the service's own INFO lines, to show the log still has them.
    reply = httpx.post(
        f"{server.url}/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 24, "events": ["action.opened"]},
        headers=auth_header(org.tokens["admin"]),
        timeout=15,
    )
    assert reply.status_code == 201, reply.text
    log = stop_and_read(server)
    assert "fontTools" not in log, log[-3000:]
    assert "webhook" in log and "registered" in log  # feedback.webhooks at INFO
    warnings = [line for line in log.splitlines() if line.startswith("warning: FEEDBACK_PUBLIC_URL")]
    assert len(warnings) == 1 and server.url in warnings[0] and "not set" in warnings[0]


def test_library_lines_when_asked_and_no_warning_for_a_public_address(tmp_path: Path, start_process_server) -> None:
    org = make_org(tmp_path / "feedback.db")
    server = start_process_server(org.db, feedback_public_url=PUBLIC, feedback_library_log_level="INFO")
    render_pdfs(server, org.tokens["admin"], count=1)
    log = stop_and_read(server)
    assert "fontTools" in log  # the subsetting lines, now that they were asked for
    assert "warning: FEEDBACK_PUBLIC_URL" not in log


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        (None, "not set"),
        ("http://127.0.0.1:8000", "loopback"),
        ("http://localhost:8000/", "loopback"),
        ("http://[::1]:8000", "loopback"),
        ("http://127.8.9.10", "loopback"),
        (PUBLIC, None),
        ("http://10.0.0.5:8000", None),  # a private address phones on the office Wi-Fi reach
    ],
)
def test_which_public_urls_are_warned_about(url: str | None, warned: str | None) -> None:
    found = public_url_warning(url, "http://127.0.0.1:8000")
    assert (found is None) if warned is None else (warned in found)
