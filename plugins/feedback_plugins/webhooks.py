"""Webhooks: admins register URLs; every matching event on the bus is POSTed there, signed.

Each delivery is a row in the durable outbox (channel "webhook", one per event × webhook), so a
restart loses nothing and a retry never sends a second copy: the body `{"id", "type", "created_at",
"data"}` is stored once and sent byte for byte on every attempt, with
`X-Feedback-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the webhook's secret>`.
Only globally routable targets are accepted, at registration and again before each delivery: every
address the host resolves to, and the IPv4 address inside IPv4-mapped, IPv4-compatible, 6to4,
Teredo and NAT64 forms, must be global (FEEDBACK_WEBHOOK_ALLOW_PRIVATE=1 lifts this). A delivery
connects to an address that check saw, so a name that resolves elsewhere in between gets nowhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import msgspec

from feedback import __version__, audit, hookimpl, tls
from feedback.db import Store
from feedback.errors import InvalidInput
from feedback.jobs import Job
from feedback.models import Event
from feedback.outbox import GiveUp, Nudger, deliver_due, due_at, enqueue
from feedback.settings import Settings, load_settings
from feedback.store import Connection, plugin_data
from feedback.store.tables import Column, Table

if TYPE_CHECKING:
    from feedback.jobs import JobContext

log = logging.getLogger("feedback.webhooks")

CHANNEL = "webhook"
EVENTS = (
    "response.stored",
    "action.opened",
    "action.changed",
    "action.due_soon",
    "action.overdue",
    "action.callback",
    "objective.breached",
    "kiosk.silent",
    "*",
)
TIMEOUT = 10.0
CONCURRENCY = 16  # deliveries in flight at once (no order among them is promised)
# Active webhooks are cached per process; a change made in another process shows within this long.
CACHE_SECONDS = 5.0

# The plugin's one table. A database made before it was declared here has it already, from the
# plugin's old sqlite-utils migration, with these same columns.
WEBHOOKS = Table(
    "webhooks",
    [
        Column("id", "integer", primary_key=True, autoincrement=True),
        Column("url", "text", nullable=False),
        Column("secret", "text", nullable=False),
        Column("events", "json", nullable=False, default=["*"]),  # event types, "*" for all
        Column("created_by", "text"),
        Column("created_at", "timestamp", nullable=False),
        Column("disabled_at", "timestamp"),  # disabled, never deleted: deliveries keep their record
    ],
)
PUBLIC_COLUMNS = ("id", "url", "events", "created_at", "created_by", "disabled_at")  # never the secret


@dataclass
class _State:
    settings: Settings | None = None
    serving: bool = False  # inside the server (not `feedback tick`): deliver promptly after queueing
    hooks: list[dict[str, Any]] = field(default_factory=list)
    loaded_at: float | None = None
    nudger: Nudger = field(default_factory=Nudger)


def _state_of(store: Store) -> _State:
    """This app's state (apps sharing a process, as in tests, each have their own settings)."""
    return store.local("feedback_plugins.webhooks", _State)


def current_settings(store: Store) -> Settings:
    """The app's settings (handed over at start-up); outside the server (`feedback tick`), the environment's."""
    state = _state_of(store)
    if state.settings is None:
        state.settings = load_settings(keep_secret=False)  # the webhook secrets are the receivers' own
    return state.settings


def forget_cache(store: Store) -> None:
    _state_of(store).loaded_at = None


# -- address checks ------------------------------------------------------------------------------
# Only globally routable targets, so that nobody can point a webhook at the server's own network
# (loopback, private ranges, cloud metadata at 169.254.169.254). An IPv6 address may carry an IPv4
# one that a relay, a NAT64 gateway or the host itself connects to: that one must be global too.

# NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use): the IPv4 address is the last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# IPv4-compatible addresses (::a.b.c.d, deprecated by RFC 4291).
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Not globally reachable per the IANA registries, though older Python releases call them global.
_NOT_GLOBAL = (ipaddress.IPv6Network("64:ff9b:1::/48"), _IPV4_COMPATIBLE)


class NotRoutable(InvalidInput):
    """A target that resolves to an address that is not globally routable."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, 6to4, Teredo (server and client),
    NAT64 and IPv4-compatible forms."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if (ip in _IPV4_COMPATIBLE and int(ip) > 1) or any(ip in network for network in _NAT64):  # :: and ::1 carry none
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    return found


def _is_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast and not any(ip in network for network in _NOT_GLOBAL)


def not_routable_reason(address: str) -> str | None:
    """Why an address is no webhook target (it, or an IPv4 address inside it, is not globally
    routable), or None when it is one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of the address
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in embedded_ipv4(ip):
            if not _is_global(inner):
                return f"{address}, which carries {inner}, an address that is not globally routable"
        if ip.ipv4_mapped is not None:
            return None  # a mapped address is its IPv4 address, checked above
    if not _is_global(ip):
        return f"{address}, an address that is not globally routable (loopback, private, reserved or the like)"
    return None


@dataclass(frozen=True)
class Target:
    """A checked webhook URL and the addresses its host resolved to when checked."""

    url: httpx.URL
    addresses: tuple[str, ...]


async def check_url(url: str, allow_private: bool) -> Target:
    """Raise InvalidInput naming `url` unless it is http(s) and its host resolves to globally
    routable addresses only (NotRoutable when an address is refused)."""
    try:
        parts = urlsplit(url)
        port = parts.port
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as error:
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
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            reason = not_routable_reason(address)
            if reason is not None:
                raise NotRoutable(
                    f"url: {host!r} resolves to {reason} (FEEDBACK_WEBHOOK_ALLOW_PRIVATE=1 allows it)", "url"
                )
    return Target(parsed, addresses)


async def post_to_checked_address(
    client: httpx.AsyncClient, target: Target, body: bytes, headers: dict[str, str]
) -> int:
    """POST to one of the addresses the check saw, never to a fresh look-up of the name: a name
    that resolves elsewhere between check and connection (DNS rebinding) cannot redirect the call.
    The Host header and TLS server name (SNI and certificate check) stay the URL's own. Returns the
    status; the answer is never read, so a receiver cannot make us hold a large one."""
    host_header = target.url.netloc.decode("ascii")
    extensions = {"sni_hostname": target.url.raw_host.decode("ascii")} if target.url.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in target.addresses:
        pinned = target.url.copy_with(host=address.split("%", 1)[0])
        request = client.build_request(
            "POST", pinned, content=body, headers={**headers, "Host": host_header}, extensions=extensions
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as error:
            failure = error  # nothing was sent: the next address may answer
            continue
        await response.aclose()
        return response.status_code
    raise failure or httpx.ConnectError(f"{target.url.host}: no address to connect to")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- queueing --------------------------------------------------------------------------------------


def _load_hooks(conn: Connection) -> list[dict[str, Any]]:
    active = plugin_data.select(conn, WEBHOOKS, {"disabled_at": None}, columns=["id", "events"], order_by="id")
    return [{"id": row["id"], "events": set(row["events"])} for row in active]


def _target(conn: Connection, webhook_id: int) -> dict[str, Any] | None:
    """url, secret and disabled_at of a webhook (what a delivery needs), or None."""
    return plugin_data.first(conn, WEBHOOKS, {"id": webhook_id}, columns=["url", "secret", "disabled_at"])


def register_webhook(conn: Connection, row: dict[str, Any]) -> int:
    """Store a new webhook and log it (the secret as a digest only); returns its id."""
    with audit.tracked(conn, "webhook", None, "create") as change:
        webhook_id = plugin_data.insert(conn, WEBHOOKS, row)
        change.record_id = str(webhook_id)
    return webhook_id


def disable_webhook(conn: Connection, webhook_id: int, at: Any) -> None:
    """Disable a webhook (a second call keeps the first time, and logs nothing)."""
    with audit.tracked(conn, "webhook", webhook_id, "disable"):
        plugin_data.update(conn, WEBHOOKS, {"id": webhook_id, "disabled_at": None}, {"disabled_at": at})


def body_of(event: Event) -> str:
    """The exact body every attempt sends (stored once, so retries are byte-identical)."""
    return msgspec.json.encode(
        {"id": event.id, "type": event.type, "created_at": event.created_at, "data": event.data}
    ).decode()


async def _enqueue(event: Event, store: Store) -> None:
    state = _state_of(store)
    if state.loaded_at is None or time.monotonic() - state.loaded_at > CACHE_SECONDS:
        state.hooks = await store.read(_load_hooks)
        state.loaded_at = time.monotonic()
    matching = [hook["id"] for hook in state.hooks if "*" in hook["events"] or event.type in hook["events"]]
    if not matching:
        return
    payload = body_of(event)
    at = due_at(event.created_at)

    def queue(conn: Connection) -> None:
        for hook_id in matching:
            enqueue(
                conn,
                channel=CHANNEL,
                dedupe_key=f"{event.id}|webhook:{hook_id}",
                target=str(hook_id),
                payload=payload,
                event_id=event.id,
                event_type=event.type,
                now=at,
            )

    await store.write(queue)
    if state.serving:
        state.nudger.nudge(CHANNEL, lambda: deliver(store, datetime.now(UTC), current_settings(store)))


@hookimpl
def tracked_events(store: Store) -> set[str]:
    """The types some active webhook subscribes to; every type while the cache of webhooks is stale
    (the next `track_event` reloads it)."""
    state = _state_of(store)
    if state.loaded_at is None or time.monotonic() - state.loaded_at > CACHE_SECONDS:
        return {"*"}
    return {event_type for hook in state.hooks for event_type in hook["events"]}


@hookimpl
def track_event(event: Event, store: Store):
    state = _state_of(store)
    fresh = state.loaded_at is not None and time.monotonic() - state.loaded_at <= CACHE_SECONDS
    if fresh and not state.hooks:
        return None  # the common case on the ingest path: no webhooks, no work
    return _enqueue(event, store)


# -- delivery --------------------------------------------------------------------------------------


async def deliver(store: Store, now: datetime, settings: Settings) -> int:
    """One delivery round of the webhook outbox: every due delivery, `CONCURRENCY` at a time."""
    hooks: dict[int, asyncio.Future] = {}  # each webhook read once per round
    clients: dict[tuple[str, str, int | None, tuple[str, ...]], httpx.AsyncClient] = {}

    def client_for(target: Target) -> httpx.AsyncClient:
        # A client per host name and checked addresses, for this round: a pooled connection is only
        # ever reused for the same name at the same address (its TLS server name and certificate
        # check are the name's). Direct connections only: a proxy would resolve the name itself,
        # past the address check.
        key = (target.url.scheme, target.url.host, target.url.port, target.addresses)
        if key not in clients:
            clients[key] = httpx.AsyncClient(
                timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=tls.client_context()
            )
        return clients[key]

    async def send(row: dict[str, Any]) -> None:
        hook_id = int(row["target"])
        if hook_id not in hooks:
            hooks[hook_id] = asyncio.ensure_future(store.read(lambda conn: _target(conn, hook_id)))
        hook = await hooks[hook_id]
        if hook is None or hook["disabled_at"]:
            raise GiveUp("webhook disabled")
        # Checked again before every attempt: the name may resolve elsewhere by now. A refused
        # address is final (the row fails with the reason); a name that does not resolve is retried.
        try:
            target = await check_url(hook["url"], settings.webhook_allow_private)
        except NotRoutable as error:
            raise GiveUp(error.message) from None
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"feedback/{__version__}",
            "X-Feedback-Signature": signature(hook["secret"], body),
            "X-Feedback-Event": row["event_type"] or "",
            "X-Feedback-Delivery": str(row["id"]),
        }
        status = await post_to_checked_address(client_for(target), target, body, headers)
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}")

    try:
        return await deliver_due(store, CHANNEL, send, now, concurrency=CONCURRENCY)
    finally:
        for client in clients.values():
            await client.aclose()


async def _deliver_job(ctx: JobContext) -> None:
    state = _state_of(ctx.store)
    if state.serving:
        # In the server a round runs in the background (one at a time): a backlog being sent must not
        # hold up the other jobs.
        state.nudger.nudge(CHANNEL, lambda: deliver(ctx.store, datetime.now(UTC), ctx.settings))
        return
    await deliver(ctx.store, ctx.now, ctx.settings)


@hookimpl
def register_tables() -> Table:
    return WEBHOOKS


@hookimpl
def register_jobs() -> list[Job]:
    return [Job("webhooks.deliver", every=2, run=_deliver_job)]


@hookimpl
def startup(store: Store, settings: Settings) -> None:
    state = _state_of(store)
    state.settings = settings
    state.serving = True


@hookimpl
def register_routes() -> list[str]:
    # By name: the app imports the routes (and Litestar with them) when it is built; the command line,
    # which loads this plugin too, never does (importing Litestar took 0.3 s of every command's start).
    return ["feedback_plugins.webhooks_api:WebhooksController"]
