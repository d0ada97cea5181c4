"""What each request leaves behind: its id (`X-Request-ID`), its count and latency in /metrics, and one
access line of `feedback.access` (method, route template, status, duration, request id; never the
client's address or a forwarding header).

`Observer` wraps the app's whole ASGI handler (`Litestar.asgi_handler`), outside routing and the
exception handlers, so it sees every answer: unknown paths (counted under one route label), the rate
limiter's 429 and the CSRF 403 as much as a route's own. It runs on every request, ingest included,
so it stays small: no objects per request but the id and one closure, the labelled metric children
cached, the access line a tuple appended to a list (`feedback.logs.AccessLog`).
"""

import asyncio
import itertools
import re
import secrets
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from feedback.logs import AccessLog
from feedback.web.metrics import UNMATCHED, Metrics

REQUEST_ID = b"x-request-id"
# An id a client or proxy sent is kept when it is a sane token; anything else is replaced.
SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
ACCESS_FLUSH_SECONDS = 0.1


class RequestIds:
    """Request ids of one app: a random prefix and a counter (unique across nodes, cheap per request)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._count = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._count):x}"


class Observer:
    """The ASGI layer around the app that gives each request its id, counts it and logs it."""

    __slots__ = ("app", "metrics", "access", "ids")

    def __init__(self, app: ASGIApp, metrics: Metrics, access: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                if SANE_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = self.ids.new()
        header = (REQUEST_ID, request_id.encode("ascii"))
        status = 500  # what the client sees when nothing was sent

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: a cached response may hand the same one to every request.
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("path_template", UNMATCHED)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            self.access.add((scope["method"], route, status, seconds, request_id, time.time()))


def observe(app: Any, metrics: Metrics) -> AccessLog:
    """Wrap `app`'s ASGI handler in an `Observer`; returns the app's access log (flushed by
    `write_access_lines`, which the app's lifespan runs)."""
    access = AccessLog()
    app.asgi_handler = Observer(app.asgi_handler, metrics, access)
    return access


async def write_access_lines(access: AccessLog, every: float = ACCESS_FLUSH_SECONDS) -> None:
    """Hand the access lines to logging every `every` seconds, and what is left when cancelled."""
    try:
        while True:
            await asyncio.sleep(every)
            access.flush()
    finally:
        access.flush()
