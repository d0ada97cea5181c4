"""Events are records: each is written to the event log in the transaction that caused it.

A write job that changes something (a response stored, an action opened or moved, an objective
breached, a kiosk gone silent) calls `record` (or `record_response_stored`) on its own connection,
so the event commits with the change or not at all; a crash right after the commit leaves it in the
log, never lost. `feedback.dispatch` then hands each event to `track_event` at least once, in order
per aggregate, keyed by its id; an id already in the log is not written again, so a replayed write
adds nothing.

Inside a server, the writer hands each new event to the process's dispatcher as soon as its
transaction commits (it is born leased to that dispatcher, so no other process takes it meanwhile);
elsewhere (`feedback tick`, `feedback demo`) events wait in the log for a dispatcher to claim them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec

from feedback.db import after_commit, deferred, held, writing_store
from feedback.models import Event
from feedback.store import Connection
from feedback.store import events as event_store

# How long an event handed to this process's dispatcher is held from the others: a crash leaves it
# to any dispatcher after this long.
HOT_LEASE = timedelta(seconds=15)

_json = msgspec.json.Encoder()


def stamp(moment: datetime) -> str:
    """Fixed-width UTC text, so times compare correctly as strings in SQL."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def aggregate_of(event_type: str, event_id: str) -> str:
    """What an event is about, as kind:id: the kind is the first part of its type, the id the first
    part of its id after the type (`action.changed:42:7` → `action:42`)."""
    kind = event_type.split(".", 1)[0]
    rest = event_id[len(event_type) + 1 :] if event_id.startswith(event_type + ":") else event_id
    return f"{kind}:{rest.split(':', 1)[0]}"


class Logged:
    """An event just written to the log, as the in-process dispatcher receives it after commit."""

    __slots__ = ("aggregate", "event", "id", "seq", "type")

    def __init__(self, id: str, type: str, aggregate: str, event: Event | Callable[[], Event], seq: int = 0) -> None:
        self.id = id
        self.type = type
        self.aggregate = aggregate
        self.event = event  # a callable builds it when it is dispatched
        self.seq = seq  # its place in the log, once written

    def resolve(self) -> Event:
        return self.event() if callable(self.event) else self.event


class Sink(Protocol):
    """The in-process dispatcher, as the writer sees it (`Store.event_sink`)."""

    holder: str

    def wanted(self) -> Callable[[str], bool]:
        """Which event types some plugin's `track_event` wants now (see the `tracked_events` hook)."""

    def accept(self, items: list[Logged]) -> None:
        """Called on the writer thread right after the commit; must only hand the items over."""


def record(conn: Connection, events: Sequence[Event], *, new_aggregates: bool = False) -> None:
    """Write events to the log in the caller's transaction (each once per id). `new_aggregates`: what
    they are about was made in this transaction (a new action), so no earlier event can precede them."""
    if not events:
        return
    rows = [(e.id, e.type, aggregate_of(e.type, e.id), e.created_at, _json.encode(e.data).decode()) for e in events]
    sink = _sink()
    if sink is None:
        event_store.insert_events(conn, [(*row, "", "") for row in rows])
        return
    if new_aggregates and (batch := deferred(HELD_EVENTS, lambda: _HeldEvents(sink))) is not None:
        # In a writer's transaction: written with the group commit's others just before it commits (a
        # new aggregate has no earlier event to follow; see `_HeldEvents`).
        for event, row in zip(events, rows, strict=True):
            batch.add(row, event)
        return
    earlier = held(HELD_EVENTS)
    if earlier is not None and earlier.holds_any({row[2] for row in rows}):
        earlier.flush(conn)  # an aggregate's first event, still held, goes in before these
    until = _hot_until()
    waiting: set[str] = set()
    claimed = []
    for row in rows:
        # An aggregate with an earlier event some other dispatcher holds (or nobody yet) waits its
        # turn in the log; otherwise this process hands its events over in commit order.
        if row[2] in waiting or (not new_aggregates and event_store.has_pending_of_others(conn, row[2], sink.holder)):
            waiting.add(row[2])
            claimed.append((*row, "", ""))
        else:
            claimed.append((*row, sink.holder, until))
    by_id = {event.id: event for event in events}
    handed = [
        Logged(event_id, row[1], row[2], by_id[event_id], seq)
        for (event_id, seq), row in _inserted_rows(event_store.insert_events(conn, claimed), claimed)
        if row[5]  # leased to this process: handed over after commit
    ]
    for item in handed:
        after_commit(sink.accept, item)


def record_response_stored(
    conn: Connection, response_id: str, created_at: str, objectives: Sequence[int], build: Callable[[], Event]
) -> None:
    """Write a `response.stored` event compactly: the response row is in the same transaction, so the
    log keeps only what the row lacks (the objectives it counts towards) and the data is rebuilt from
    the row when the event is dispatched. `build` makes the event for the in-process dispatcher.

    In a server the row joins the group commit's others and is written with them in one statement
    just before the commit (`_HeldEvents`); its place in the log is then after the events of the
    same transaction, which is fine: a new response's aggregate has no other event to precede.
    (On every response's path: kept to no more Python than needed.)"""
    event_id = "response.stored:" + response_id
    aggregate = "response:" + response_id
    data = _json.encode({"objectives": list(objectives)}).decode() if objectives else None
    sink = _sink()
    if sink is None:
        event_store.add_event(conn, (event_id, "response.stored", aggregate, created_at, data, "", ""))
        return
    row = (event_id, "response.stored", aggregate, created_at, data)
    deferred(HELD_EVENTS, lambda: _HeldEvents(sink)).add(row, build)


#: The writer's `deferred` key of a transaction's held events.
HELD_EVENTS = "held_events"


class _HeldEvents:
    """The first events of new aggregates in one group commit (each `response.stored`, each
    `action.opened`), written a few statements for all of them just before the commit: one INSERT
    each cost as much as the rest of a response's writing, and on PostgreSQL a round trip.

    Held, they take their place in the log after the transaction's other events, which is fine while
    nothing else of their aggregate comes before them: `record` writes a held one first when it is
    asked to write a later event of the same aggregate in the same transaction."""

    __slots__ = ("aggregates", "builds", "handed", "quiet", "sink")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.quiet: list[tuple[str, str, str, str, str | None, str]] = []
        self.handed: list[tuple[str, str, str, str, str | None, str, str]] = []
        # event id → (type, aggregate, the event or what builds it)
        self.builds: dict[str, tuple[str, str, Event | Callable[[], Event]]] = {}
        self.aggregates: set[str] = set()

    def add(self, row: tuple[str, str, str, str, str | None], event: Event | Callable[[], Event]) -> None:
        """One event: its log row without the lease (id, type, aggregate, created_at, data), and the
        event or what builds it for the dispatcher."""
        self.aggregates.add(row[2])
        if not _wanted_in_transaction(self.sink)(row[1]):
            # Nobody listens: logged as handed over already, so the dispatcher never builds, hands over
            # or marks it (what it would do with it a moment later anyway).
            self.quiet.append((*row, row[3]))
        else:
            self.handed.append((*row, self.sink.holder, _hot_until()))
            self.builds[row[0]] = (row[1], row[2], event)

    def holds_any(self, aggregates: set[str]) -> bool:
        return not self.aggregates.isdisjoint(aggregates)

    def flush(self, conn: Connection) -> None:
        """Write what is held and start again from nothing (it may be flushed early, then again)."""
        quiet, handed, builds = self.quiet, self.handed, self.builds
        self.quiet, self.handed, self.builds, self.aggregates = [], [], {}, set()
        event_store.insert_dispatched_events(conn, quiet)
        for event_id, seq in event_store.insert_events(conn, handed):
            event_type, aggregate, build = builds[event_id]
            after_commit(self.sink.accept, Logged(event_id, event_type, aggregate, build, seq))


class _Wanted:
    """The plugins' answer to `tracked_events`, asked once per group commit (a `Deferred` with nothing
    to write: it lives as long as the transaction's other deferred work)."""

    __slots__ = ("test",)

    def __init__(self, sink: Sink) -> None:
        self.test = sink.wanted()

    def flush(self, conn: Connection) -> None:
        return None


def _wanted_in_transaction(sink: Sink) -> Callable[[str], bool]:
    found = deferred("wanted_events", lambda: _Wanted(sink))
    return found.test if found is not None else sink.wanted()


def _sink() -> Sink | None:
    store = writing_store()
    return store.event_sink if store is not None else None


def _inserted_rows(inserted: list[tuple[str, int]], rows: list[tuple]) -> list[tuple[tuple[str, int], tuple]]:
    by_id = {row[0]: row for row in rows}
    return [(pair, by_id[pair[0]]) for pair in inserted]


_until = [0.0, ""]  # when it was worked out (monotonic), the lease end as text


def _hot_until() -> str:
    """When a lease taken now ends; worked out at most ten times a second (a lease is 15 s)."""
    now = time.monotonic()
    if now - _until[0] > 0.1:
        _until[0], _until[1] = now, stamp(datetime.now(UTC) + HOT_LEASE)
    return _until[1]


def compact_data(data: str | None) -> dict[str, Any]:
    """The stored data of an event (an empty dict when none was kept)."""
    return msgspec.json.decode(data) if data else {}
