"""Webhooks: admins register URLs; every matching event on the bus is POSTed there, signed.

Each delivery is a row in the durable outbox (channel "webhook", one per event × webhook), so a
restart loses nothing and a retry never sends a second copy: the body `{"id", "type", "created_at",
"data"}` is stored once and sent byte for byte on every attempt, with
`X-Feedback-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the webhook's secret>`.
Targets on loopback, private, link-local and other non-public addresses are refused, at
registration and again before each delivery, unless FEEDBACK_WEBHOOK_ALLOW_PRIVATE=1.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import httpx
import msgspec
import sqlite_utils
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from msgspec import Meta, Struct

from feedback import __version__, hookimpl
from feedback.db import Store
from feedback.errors import Forbidden, InvalidInput, NotFound
from feedback.models import Event
from feedback.outbox import GiveUp, Nudger, deliver_due, due_at, enqueue, stamp
from feedback.settings import Settings, load_settings

if TYPE_CHECKING:
    from feedback.jobs import Job, JobContext
    from feedback.web.security import Principal

log = logging.getLogger("feedback.webhooks")

CHANNEL = "webhook"
EVENTS = ("response.stored", "action.opened", "action.changed", "action.due_soon", "action.overdue",
          "objective.breached", "kiosk.silent", "*")
TIMEOUT = 10.0
# Active webhooks are cached per process; a change made in another process shows within this long.
CACHE_SECONDS = 5.0

migrations = sqlite_utils.Migrations("feedback_webhooks")


@migrations()
def m001_webhooks(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS webhooks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT NOT NULL DEFAULT '["*"]',  -- JSON list of event types, "*" for all
            created_by TEXT, created_at TEXT NOT NULL,
            disabled_at TEXT                      -- disabled, never deleted: deliveries keep their record
        )"""
    )


@dataclass
class _State:
    settings: Settings | None = None
    serving: bool = False  # inside the server (not `feedback tick`): deliver promptly after queueing
    hooks: list[dict[str, Any]] = field(default_factory=list)
    loaded_at: float | None = None


_state = _State()
_nudger = Nudger()


def current_settings() -> Settings:
    if _state.settings is None:
        _state.settings = load_settings()
    return _state.settings


def forget_cache() -> None:
    _state.loaded_at = None


# -- address checks ------------------------------------------------------------------------------

def _non_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast
            or ip.is_unspecified or not ip.is_global)


async def check_url(url: str, allow_private: bool) -> None:
    """Raise InvalidInput naming `url` unless it is http(s) and its host resolves to public addresses only."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"url: {error}", "url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("url: must be an http:// or https:// URL", "url")
    host = parts.hostname
    if not host:
        raise InvalidInput("url: has no host", "url")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidInput(f"url: host {host!r} does not resolve ({error})", "url") from None
    if allow_private:
        return
    for info in infos:
        address = str(info[4][0])
        if _non_public(address):
            raise InvalidInput(
                f"url: {host!r} resolves to {address}, a loopback, private or reserved address"
                " (FEEDBACK_WEBHOOK_ALLOW_PRIVATE=1 allows it)", "url")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- queueing --------------------------------------------------------------------------------------

def _load_hooks(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [
        {"id": row[0], "events": set(msgspec.json.decode(row[1]))}
        for row in conn.execute("SELECT id, events FROM webhooks WHERE disabled_at IS NULL ORDER BY id")
    ]


def body_of(event: Event) -> str:
    """The exact body every attempt sends (stored once, so retries are byte-identical)."""
    return msgspec.json.encode(
        {"id": event.id, "type": event.type, "created_at": event.created_at, "data": event.data}
    ).decode()


async def _enqueue(event: Event, store: Store) -> None:
    if _state.loaded_at is None or time.monotonic() - _state.loaded_at > CACHE_SECONDS:
        _state.hooks = await store.read(_load_hooks)
        _state.loaded_at = time.monotonic()
    matching = [hook["id"] for hook in _state.hooks if "*" in hook["events"] or event.type in hook["events"]]
    if not matching:
        return
    payload = body_of(event)
    at = due_at(event.created_at)

    def queue(conn: sqlite3.Connection) -> None:
        for hook_id in matching:
            enqueue(conn, channel=CHANNEL, dedupe_key=f"{event.id}|webhook:{hook_id}", target=str(hook_id),
                    payload=payload, event_id=event.id, event_type=event.type, now=at)

    await store.write(queue)
    if _state.serving:
        _nudger.nudge(CHANNEL, lambda: deliver(store, datetime.now(UTC), current_settings()))


@hookimpl
def track_event(event: Event, store: Store):
    fresh = _state.loaded_at is not None and time.monotonic() - _state.loaded_at <= CACHE_SECONDS
    if fresh and not _state.hooks:
        return None  # the common case on the ingest path: no webhooks, no work
    return _enqueue(event, store)


# -- delivery --------------------------------------------------------------------------------------

async def deliver(store: Store, now: datetime, settings: Settings) -> int:
    """One delivery round of the webhook outbox."""
    client: httpx.AsyncClient | None = None

    async def send(row: dict[str, Any]) -> None:
        nonlocal client
        if client is None:
            # Direct connections only: a proxy would resolve the host itself, past the address check.
            client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)
        hooks = await store.query("SELECT url, secret, disabled_at FROM webhooks WHERE id = ?", (int(row["target"]),))
        if not hooks or hooks[0]["disabled_at"]:
            raise GiveUp("webhook disabled")
        hook = hooks[0]
        # Checked again before every attempt: the name may resolve elsewhere by now.
        await check_url(hook["url"], settings.webhook_allow_private)
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"feedback/{__version__}",
            "X-Feedback-Signature": signature(hook["secret"], body),
            "X-Feedback-Event": row["event_type"] or "",
            "X-Feedback-Delivery": str(row["id"]),
        }
        # Streamed and never read: a receiver cannot make us hold a large answer.
        async with client.stream("POST", hook["url"], content=body, headers=headers) as response:
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"HTTP {response.status_code}")

    try:
        return await deliver_due(store, CHANNEL, send, now)
    finally:
        if client is not None:
            await client.aclose()


async def _deliver_job(ctx: JobContext) -> None:
    await deliver(ctx.store, ctx.now, ctx.settings)


@hookimpl
def register_migrations() -> sqlite_utils.Migrations:
    return migrations


@hookimpl
def register_jobs(settings: Settings) -> list[Job]:
    from feedback.jobs import Job  # plugins load while feedback.plugins imports: core modules come later

    _state.settings = settings
    return [Job("webhooks.deliver", every=2, run=_deliver_job)]


@hookimpl
def startup(settings: Settings) -> None:
    _state.settings = settings
    _state.serving = True


# -- API ---------------------------------------------------------------------------------------------

class WebhookBody(Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    secret: Annotated[str, Meta(min_length=1, max_length=256)]
    events: Annotated[list[str], Meta(max_length=len(EVENTS))] | None = None


async def _principal(request: Request, state: State) -> Any:
    # Imported when a request comes: this module loads while feedback.plugins is still importing.
    from feedback.web.security import current_principal

    return await current_principal(request, state)


def _require_admin(principal: Principal) -> None:
    # Webhooks see every unit's events: only an installation-wide admin may manage them.
    if principal.role != "admin" or principal.unit is not None:
        raise Forbidden("role: only an installation-wide admin may manage webhooks", "role")


def _normalise_events(events: list[str] | None) -> list[str]:
    if events is None:
        return ["*"]
    if not events:
        raise InvalidInput("events: name at least one event, or \"*\" for all", "events")
    for name in events:
        if name not in EVENTS:
            raise InvalidInput(f"events: unknown event {name!r}; known: {list(EVENTS)}", "events")
    return ["*"] if "*" in events else sorted(set(events))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"], "events": msgspec.json.decode(row["events"]),
            "created_at": row["created_at"], "created_by": row["created_by"], "disabled_at": row["disabled_at"],
            "active": row["disabled_at"] is None}


def _delivery_status(row: dict[str, Any]) -> str:
    if row["delivered_at"]:
        return "delivered"
    if row["failed_at"]:
        return "failed"
    return "retrying" if row["attempts"] else "pending"


class WebhooksController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]
    dependencies = {"principal": Provide(_principal)}

    async def _get(self, state: State, webhook_id: int) -> dict[str, Any]:
        rows = await state.store.query(
            "SELECT id, url, events, created_at, created_by, disabled_at FROM webhooks WHERE id = ?", (webhook_id,))
        if not rows:
            raise NotFound(f"id: no webhook {webhook_id}", "id")
        return rows[0]

    @post(summary="Register a webhook (admin)",
          description="Events: " + ", ".join(EVENTS) + "; none or [\"*\"] means all. The secret is never shown again.")
    async def create(self, data: WebhookBody, principal: Any, state: State) -> Response[dict[str, Any]]:
        _require_admin(principal)
        events = _normalise_events(data.events)
        await check_url(data.url, state.settings.webhook_allow_private)
        created_at = stamp(datetime.now(UTC))
        webhook_id = await state.store.write(lambda conn: conn.execute(
            "INSERT INTO webhooks (url, secret, events, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
            (data.url, data.secret, msgspec.json.encode(events).decode(), principal.user, created_at),
        ).lastrowid)
        forget_cache()
        log.info("webhook %s registered for %s by %s", webhook_id, events, principal.user)
        return Response({"id": webhook_id, "url": data.url, "events": events, "created_at": created_at},
                        status_code=201)

    @get(summary="Registered webhooks, secrets hidden (admin)")
    async def list(self, principal: Any, state: State) -> list[dict[str, Any]]:
        _require_admin(principal)
        rows = await state.store.query(
            "SELECT id, url, events, created_at, created_by, disabled_at FROM webhooks ORDER BY id")
        return [_public(row) for row in rows]

    @delete("/{webhook_id:int}", status_code=200, summary="Disable a webhook; its record and deliveries stay")
    async def disable(self, webhook_id: int, principal: Any, state: State) -> dict[str, Any]:
        _require_admin(principal)
        await self._get(state, webhook_id)
        at = stamp(datetime.now(UTC))
        await state.store.write(lambda conn: conn.execute(
            "UPDATE webhooks SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL", (at, webhook_id)))
        forget_cache()
        log.info("webhook %s disabled by %s", webhook_id, principal.user)
        return _public(await self._get(state, webhook_id))

    @get("/{webhook_id:int}/deliveries", summary="Recent deliveries of a webhook, newest first (admin)")
    async def deliveries(
        self, webhook_id: int, principal: Any, state: State,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        _require_admin(principal)
        await self._get(state, webhook_id)
        rows = await state.store.query(
            "SELECT id, event_id, event_type, attempts, last_error, created_at, next_attempt_at, delivered_at,"
            " failed_at FROM outbox WHERE channel = ? AND target = ? ORDER BY id DESC LIMIT ?",
            (CHANNEL, str(webhook_id), limit),
        )
        return [{**row, "status": _delivery_status(row)} for row in rows]


@hookimpl
def register_routes(settings: Settings) -> list:
    _state.settings = settings
    return [WebhooksController]
