"""The strict security headers leave with every response the real server sends, errors included."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Org, Server

# A site plugin (loaded from FEEDBACK_PLUGINS_DIR, as an operator would) whose route fails: a real 500.
FAILING_PLUGIN = """
from litestar import get

from feedback import hookimpl


@get("/site/broken", include_in_schema=False)
async def broken() -> dict:
    raise RuntimeError("a site plugin failed")


@hookimpl
def register_routes(settings):
    return [broken]
"""


def assert_security_headers(reply: httpx.Response) -> None:
    where = f"{reply.request.method} {reply.request.url.path} -> {reply.status_code}"
    assert reply.headers.get("x-content-type-options") == "nosniff", where
    assert reply.headers.get("referrer-policy") == "no-referrer", where
    assert reply.headers.get("x-frame-options") == "DENY", where
    policy = reply.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, where
    # Added once, not once per layer.
    assert len(reply.headers.get_list("content-security-policy")) == 1, where


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "site-plugins"
    folder.mkdir()
    (folder / "site_broken.py").write_text(FAILING_PLUGIN, encoding="utf-8")
    return folder


def test_every_error_status_carries_the_security_headers(org: Org, start_server, plugin_dir: Path) -> None:
    server: Server = start_server(org.db, feedback_plugins_dir=str(plugin_dir))
    post = f"{server.url}/api/v1/responses"
    response_id = str(uuid.uuid4())
    assert (
        httpx.post(post, json={"id": response_id, "touchpoint": "tp-a", "answers": {"overall": 5}}).status_code == 201
    )

    replies = {
        # POST /api/v1/responses runs in its own fast path: each of its errors too.
        "ingest 400 bad JSON": httpx.post(post, content=b"{not json", headers={"content-type": "application/json"}),
        "ingest 404 unknown touchpoint": httpx.post(post, json={"touchpoint": "no-such", "answers": {"overall": 5}}),
        "ingest 409 other content": httpx.post(
            post, json={"id": response_id, "touchpoint": "tp-a", "answers": {"overall": 1}}
        ),
        "ingest 413 big body": httpx.post(
            post, content=b"x" * (65 * 1024), headers={"content-type": "application/json"}
        ),
        "404 unknown path": httpx.get(f"{server.url}/no/such/path"),
        "405 wrong method": httpx.delete(f"{server.url}/healthz"),
        "413 big body": httpx.post(
            f"{server.url}/api/v1/kiosk/enroll",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
        ),
        "403 CSRF": httpx.post(f"{server.url}/manage/logout", data={}),
        "500 failing route": httpx.get(f"{server.url}/site/broken"),
        "200 page": httpx.get(f"{server.url}/s/tp-a"),
    }
    expected = {
        "ingest 400 bad JSON": 400,
        "ingest 404 unknown touchpoint": 404,
        "ingest 409 other content": 409,
        "ingest 413 big body": 413,
        "404 unknown path": 404,
        "405 wrong method": 405,
        "413 big body": 413,
        "403 CSRF": 403,
        "500 failing route": 500,
        "200 page": 200,
    }
    assert {name: reply.status_code for name, reply in replies.items()} == expected
    for reply in replies.values():
        assert_security_headers(reply)
    assert replies["500 failing route"].json()["detail"] == "internal error"


def test_rate_limited_answers_carry_the_security_headers(org: Org, start_server) -> None:
    server: Server = start_server(org.db, feedback_rate_limit="2")
    statuses = []
    for _ in range(3):
        reply = httpx.post(f"{server.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 4}})
        statuses.append(reply.status_code)
        assert_security_headers(reply)
    assert statuses == [201, 201, 429]
    enroll = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": "000000"})
    assert enroll.status_code == 429
    assert_security_headers(enroll)
