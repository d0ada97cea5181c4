"""Live corrective-action updates for the manager web app: an in-process fan-out to SSE clients.

A built-in plugin: its `track_event` pushes every `action.*` event to the queue of each connected
client. With several server workers an event fires only in the process that made the change, so
while anyone is listening each process also polls `actions.updated_at` every few seconds and passes
on changes it did not see itself; on PostgreSQL another node's change is notified as it commits
(`Store.listen`), so the poll runs at once.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from feedback.db import Store
from feedback.hookspecs import hookimpl
from feedback.models import Event
from feedback.store import actions as action_store

log = logging.getLogger("feedback.live")

POLL_SECONDS = 3.0
QUEUE_SIZE = 200  # a client this far behind only needs to know "something changed"
SEEN_LIMIT = 5000
# What the poller finds by itself (a row's opening or change); reminders come only as events.
POLLED = frozenset({"action.opened", "action.changed"})
# The message that ends every event stream when the server begins to stop (see `Hub.close`).
STOPPING = "server.stopping"


@dataclass(eq=False)
class Subscriber:
    """One connected client: its loop and queue of {"type", "id", "data"} messages."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Hub:
    """The clients of one app in this process, and the poller that finds changes made by other processes."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        # (action id, updated_at) already passed on, so the poller does not repeat a local event.
        self.seen: dict[tuple[int, str], None] = {}
        self.watermark: str | None = None
        self.poller: asyncio.Task | None = None
        # Set when another node notifies a change (PostgreSQL): the poller looks at once.
        self.changed: asyncio.Event | None = None

    def publish(self, message: dict[str, Any]) -> None:
        data = message.get("data") or {}
        if isinstance(data.get("id"), int) and data.get("updated_at"):
            key = (data["id"], data["updated_at"])
            # An opening or change the poller already passed on (on PostgreSQL another node's NOTIFY can
            # wake it before this process's own event arrives): the clients have it once.
            if key in self.seen and message.get("type") in POLLED:
                return
            self._remember(key)
        for subscriber in list(self.subscribers):
            subscriber.loop.call_soon_threadsafe(_offer, subscriber.queue, message)

    def close(self) -> None:
        """The server is stopping: end every event stream of this app, so that it does not hold the stop
        up (a browser reconnects by itself, to another node behind a load balancer)."""
        for subscriber in list(self.subscribers):
            subscriber.loop.call_soon_threadsafe(_offer, subscriber.queue, {"type": STOPPING})

    def _remember(self, key: tuple[int, str]) -> None:
        self.seen[key] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.pop(next(iter(self.seen)))

    @contextlib.asynccontextmanager
    async def subscribe(self, store: Store) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(asyncio.get_running_loop())
        self.subscribers.add(subscriber)
        if self.poller is None or self.poller.done():
            if self.changed is None:
                self.changed = asyncio.Event()
                loop = subscriber.loop
                store.listen("actions", lambda _payload: loop.call_soon_threadsafe(self.changed.set))
            self.poller = asyncio.create_task(self._poll(store))
        try:
            yield subscriber
        finally:
            self.subscribers.discard(subscriber)

    async def _poll(self, store: Store) -> None:
        """Pass on rows changed by another process, for as long as anyone listens."""
        while self.subscribers:
            try:
                await self._poll_once(store)
            except Exception:  # noqa: BLE001 - a failed poll must not end the live updates
                log.exception("polling actions for live updates failed")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), POLL_SECONDS)
        self.poller = None

    async def _poll_once(self, store: Store) -> None:
        if self.watermark is None:
            self.watermark = await store.read(action_store.latest_change) or ""
            return
        watermark = self.watermark
        changed = await store.read(lambda conn: action_store.changed_since(conn, watermark))
        for row in changed:
            self.watermark = max(self.watermark, row["updated_at"])
            key = (row["id"], row["updated_at"])
            if key in self.seen:
                continue
            kind = "action.opened" if row["opened_at"] == row["updated_at"] else "action.changed"
            self.publish({"type": kind, "id": f"{kind}:{row['id']}:{row['updated_at']}", "data": row})


def _offer(queue: asyncio.Queue, message: dict[str, Any]) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()  # drop the oldest: the page re-reads the list anyway
    queue.put_nowait(message)


def hub_of(store: Store) -> Hub:
    """This app's hub: its clients and its poller (apps sharing a process each have their own)."""
    return store.local("live_hub", Hub)


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """What a client is sent: enough to find the row, never the record's text or a contact."""
    keys = ("id", "unit", "status", "title", "owner", "due", "overdue", "updated_at")
    return {key: data.get(key) for key in keys}


ACTION_EVENTS = frozenset({"action.opened", "action.changed", "action.due_soon", "action.overdue"})


@hookimpl
def tracked_events(store: Store) -> frozenset[str]:
    return ACTION_EVENTS if hub_of(store).subscribers else frozenset()


@hookimpl
def track_event(event: Event, store: Store) -> None:
    if not event.type.startswith("action."):
        return
    hub = hub_of(store)
    if not hub.subscribers:
        return
    hub.publish({"type": event.type, "id": event.id, "data": dict(event.data or {})})
