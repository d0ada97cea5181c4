"""A fast webhook receiver for bench/outbox_drain.py, served by granian on 127.0.0.1 (one worker).

Every POST is answered 204 at once and counted by the event id in its body; GET /stats answers
{"count", "distinct", "first", "last"} (the first and last POST on this process's monotonic clock),
and POST /reset forgets everything.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec


class Body(msgspec.Struct):
    id: str


_decode = msgspec.json.Decoder(Body).decode
_seen: dict[str, int] = {}
_times: list[float] = []
EMPTY = {"type": "http.response.start", "status": 204, "headers": [(b"content-length", b"0")]}


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, payload: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await _body(receive)
    if scope["method"] == "GET":
        stats = {
            "count": sum(_seen.values()),
            "distinct": len(_seen),
            "first": _times[0] if _times else None,
            "last": _times[-1] if _times else None,
        }
        await _answer(send, 200, msgspec.json.encode(stats))
        return
    if scope["path"] == "/reset":
        _seen.clear()
        _times.clear()
        await _answer(send, 200, b"{}")
        return
    event_id = _decode(body).id
    _seen[event_id] = _seen.get(event_id, 0) + 1
    if len(_times) < 2:  # [first, last]
        _times.append(time.monotonic())
    else:
        _times[1] = time.monotonic()
    await send(EMPTY)
    await send({"type": "http.response.body", "body": b""})
