"""The dispatcher: every event in the log reaches `track_event` at least once, in order per aggregate.

In a server, one `Dispatcher` per process runs beside the app: the writer hands it each event the
moment its transaction commits (`feedback.events`), and every `POLL_SECONDS` it claims whatever
else waits in the log — events another process wrote, or a crashed one left behind once their lease
has ended. `feedback tick` drains the log after each job it runs. An event is marked
dispatched after `track_event` has returned for it (and what the plugins returned has been
awaited), so a crash in between hands it over again: plugins key what they do on the event's id
(the outbox queues one delivery per event and target), so a second hand-over queues nothing new.
The events of one aggregate (one response, one action, one objective, one kiosk) are handed over
one after the other, in the order they were written; different aggregates go concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from feedback.db import Store
from feedback.events import Logged, compact_data, stamp
from feedback.ingest import stored_event
from feedback.jobs import Job, JobContext
from feedback.models import Event
from feedback.plugins import await_me_maybe
from feedback.store import events as event_store

log = logging.getLogger("feedback.dispatch")

POLL_SECONDS = 2.0
BATCH = 500
# How long a claimed event is held from other dispatchers while this one hands it over.
CLAIM_LEASE = timedelta(seconds=30)
# How long handed-over events wait to be recorded together (one write for all of them).
MARK_EVERY = 0.05
# How long what one plugin returned for one event may take before the event moves on without it.
HAND_OVER_SECONDS = 30.0


class Dispatcher:
    """Hands logged events to the store's plugins (`track_event`) and records that it did."""

    def __init__(self, store: Store, poll: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll = poll
        # Who holds a lease (kept in every leased row, so short): unique per dispatcher, so a
        # restarted process never mistakes its predecessor's leases for its own.
        self.holder = secrets.token_hex(4)
        self.dispatched = 0
        self._hot: list[Logged] = []
        self._incoming: list[Logged] = []  # from the writer thread, not yet on the event loop
        self._incoming_lock = threading.Lock()
        self._take_scheduled = False
        self._done: list[int] = []  # seqs handed over, not yet recorded
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._marking: asyncio.Task | None = None

    # -- in a server -----------------------------------------------------------------------------
    def start(self) -> None:
        """Take the events this process writes from now on, and look at the log at once."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.store.event_sink = self
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        """Hand over what was taken, record it, and stop taking events (they wait in the log)."""
        self.store.event_sink = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._take()
        with self._incoming_lock:
            self._loop = None  # what a late commit hands over waits in the log for the next start
        if self._hot:
            taken, self._hot = self._hot, []
            await self._hand_over([(item.seq, item.aggregate, item.resolve()) for item in taken])
        await self._mark_now()

    def accept(self, items: list[Logged]) -> None:
        """On the writer thread, right after the commit that wrote `items`: queued, and the event loop
        woken once however many commits' events arrive before it runs."""
        with self._incoming_lock:
            self._incoming.extend(items)
            if self._take_scheduled or self._loop is None:
                return
            self._take_scheduled = True
        self._loop.call_soon_threadsafe(self._take)

    def _take(self) -> None:
        with self._incoming_lock:
            items, self._incoming = self._incoming, []
            self._take_scheduled = False
        self._hot.extend(items)
        if self._wake is not None:
            self._wake.set()

    def wanted(self) -> Callable[[str], bool]:
        """Which event types some plugin's `track_event` wants now (see `tracked_events`); the writer
        asks too, once per group commit, and logs an event nobody wants as dispatched already."""
        return wanted_types(self.store)

    async def _run(self) -> None:
        assert self._wake is not None and self._loop is not None
        next_poll = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._hot:
                    taken, self._hot = self._hot, []
                    wanted = self.wanted()
                    # Events nobody wants are recorded as handed over without being built.
                    self._skip([item.seq for item in taken if not wanted(item.type)])
                    await self._hand_over([(i.seq, i.aggregate, i.resolve()) for i in taken if wanted(i.type)])
                if self._loop.time() >= next_poll:
                    next_poll = self._loop.time() + self.poll
                    await self.drain()
            except Exception:  # noqa: BLE001 - the dispatcher must outlive a bad round; the log keeps the events
                log.exception("event dispatch round failed")

    # -- claiming from the log -------------------------------------------------------------------
    async def drain(self) -> int:
        """Claim and hand over every event free to claim, batch by batch; returns how many."""
        total = 0
        while await self.store.read(lambda conn: event_store.has_claimable(conn, stamp(datetime.now(UTC)))):
            now = datetime.now(UTC)
            rows = await self.store.write(
                lambda conn, now=now: event_store.claim_events(
                    conn, self.holder, stamp(now), stamp(now + CLAIM_LEASE), BATCH
                )
            )
            if not rows:
                break  # what is free waits behind another dispatcher's events of the same aggregate
            wanted = self.wanted()
            self._skip([row["seq"] for row in rows if not wanted(row["type"])])
            await self._hand_over(await self._materialise([row for row in rows if wanted(row["type"])]))
            # Recorded before the next claim: a later event of the same aggregate waits for these.
            await self._mark_now()
            total += len(rows)
        return total

    async def _materialise(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, Event]]:
        """Events from their log rows; a compact `response.stored` is rebuilt from its response."""
        wanted = [row["aggregate"].split(":", 1)[1] for row in rows if row["type"] == "response.stored"]
        responses = await self.store.read(lambda conn: event_store.stored_responses(conn, wanted)) if wanted else {}
        events = []
        for row in rows:
            data = compact_data(row["data"])
            if row["type"] == "response.stored":
                response = responses.get(row["aggregate"].split(":", 1)[1])
                if response is not None:
                    flags = tuple(msgspec.json.decode(response["flags"] or "[]"))
                    events.append((row["seq"], row["aggregate"], stored_event(response, flags, data.get("objectives"))))
                    continue
            event = Event(type=row["type"], id=row["id"], created_at=row["created_at"], data=data)
            events.append((row["seq"], row["aggregate"], event))
        return events

    # -- handing over ----------------------------------------------------------------------------
    async def _hand_over(self, events: list[tuple[int, str, Event]]) -> None:
        """`track_event` for each event: one aggregate's events in order, aggregates concurrently.

        The hooks are called at once, in log order; only where a plugin returned work to await does an
        aggregate's next event wait for it (the common event costs no task at all)."""
        busy: dict[str, asyncio.Future] = {}  # aggregate -> the work its earlier events still await
        for _seq, aggregate, event in events:
            earlier = busy.get(aggregate)
            if earlier is not None and not earlier.done():
                busy[aggregate] = asyncio.ensure_future(self._after(earlier, event))
                continue
            results = call_hooks(event, self.store)
            if results:
                busy[aggregate] = asyncio.ensure_future(settle(event, results, self.store))
        if busy:
            await asyncio.gather(*busy.values())
        self.dispatched += len(events)
        self._done.extend(seq for seq, _aggregate, _event in events)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.get_running_loop().create_task(self._mark_pending(MARK_EVERY))

    def _skip(self, seqs: list[int]) -> None:
        if seqs:
            self.dispatched += len(seqs)
            self._done.extend(seqs)

    async def _after(self, earlier: asyncio.Future, event: Event) -> None:
        await earlier
        await deliver(event, self.store)

    async def _mark_pending(self, gather_for: float = 0.0) -> None:
        """Record what was handed over, in one write (what is handed over meanwhile, `gather_for`
        seconds first and while it is written, joins the next)."""
        if gather_for:
            await asyncio.sleep(gather_for)
        while self._done:
            seqs, self._done = self._done, []
            at = stamp(datetime.now(UTC))
            try:
                await self.store.write(lambda conn, seqs=seqs, at=at: event_store.mark_dispatched(conn, seqs, at))
            except Exception:  # noqa: BLE001 - unrecorded events are handed over again after their lease
                log.exception("recording %s dispatched event(s) failed", len(seqs))

    async def _mark_now(self) -> None:
        if self._marking is not None and not self._marking.done():
            await self._marking
        await self._mark_pending()


async def deliver(event: Event, store: Store) -> None:
    """One event to every `track_event` implementation of the store's plugins; what each returns is
    awaited (for at most `HAND_OVER_SECONDS`: a plugin that hangs must not stop the bus). Each
    implementation is isolated by the plugin manager: a failure is recorded under the plugin's name,
    and the event still counts as handed over."""
    await settle(event, call_hooks(event, store), store)


def _every_type(_event_type: str) -> bool:
    return True


def wanted_types(store: Store) -> Callable[[str], bool]:
    """A test for event types: True where some `track_event` implementation wants the type now.

    Every type is wanted while any plugin implements `track_event` without `tracked_events`, or
    answers "*"; no type when no plugin implements `track_event`."""
    plugins = store.plugins
    if plugins is None:
        return lambda _event_type: False
    trackers = {impl.plugin_name for impl in plugins.hook.track_event.get_hookimpls()}
    if not trackers:
        return lambda _event_type: False
    declaring = {impl.plugin_name for impl in plugins.hook.tracked_events.get_hookimpls()}
    if not trackers <= declaring:
        return _every_type
    wanted: set[str] = set()
    for answer in plugins.hook.tracked_events(store=store):
        wanted.update(answer)
    return _every_type if "*" in wanted else wanted.__contains__


def call_hooks(event: Event, store: Store) -> list[Any]:
    """Call every `track_event` implementation; what they returned to await (pluggy drops the Nones)."""
    if store.plugins is None:
        return []
    return store.plugins.hook.track_event(event=event, store=store)


async def settle(event: Event, results: list[Any], store: Store) -> None:
    pending = list(results)
    try:
        while pending:
            result = pending.pop(0)
            try:
                await asyncio.wait_for(await_me_maybe(result), HAND_OVER_SECONDS)
            except TimeoutError:
                late = TimeoutError(f"{event.id}: not done within {HAND_OVER_SECONDS:.0f} s")
                store.plugins.failures.record("dispatch", "track_event", late)
    finally:
        # Cancelled part-way (the server stopping): the event stays undispatched and is handed over
        # again; the hand-overs not reached are closed, not left for the garbage collector to warn of.
        for result in pending:
            if inspect.isawaitable(result) and hasattr(result, "close"):  # a coroutine, or a plugin's wrapped one
                result.close()


PRUNE_BATCH = 500


async def prune(store: Store, before: str) -> int:
    """Delete dispatched events older than `before`, a window of the log at a time."""
    pruned, after = 0, 0
    while True:
        seqs, last = await store.read(
            lambda conn, after=after: event_store.prunable_events(conn, after, before, PRUNE_BATCH)
        )
        if seqs:
            pruned += await store.write(lambda conn, seqs=seqs: event_store.delete_events(conn, seqs, before))
        if last is None:
            return pruned
        after = last


async def run_prune(ctx: JobContext) -> int:
    """The `events.prune` job: the log keeps dispatched events as long as the outbox keeps deliveries."""
    keep = timedelta(days=max(ctx.settings.outbox_keep_days, 0))
    pruned = await prune(ctx.store, stamp(ctx.now - keep))
    if pruned:
        log.info("event log: %s dispatched event(s) pruned", pruned)
    return pruned


def jobs() -> list[Job]:
    return [Job("events.prune", every=3600, run=run_prune)]
