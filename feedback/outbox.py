"""The durable outbox: mails, webhook calls and any plugin's deliveries, written first, sent after.

A row is queued once per `dedupe_key` (the same event to the same target), so an event handed to
`track_event` again, a replayed response or a re-run job never sends twice. Delivery claims rows in
batches with a lease (`claimed_until`), sends up to `CONCURRENCY` at once and writes each outcome
right after its send, so several server processes never send the same row at the same time, and a
crash sends again only the rows that were in flight (claimed, outcome not yet written), once their
lease ends. A failed send is retried with backoff until it gives up. Channel-agnostic: the channel's
plugin supplies `send(row)`.

Pruning (the "outbox.prune" job). Rows delivered more than `FEEDBACK_OUTBOX_KEEP_DAYS` (30) days
ago are deleted, and given-up rows after three times as long, so an operator can still read why a
delivery failed; a pending row (neither delivered nor given up) is never deleted. Deduplication must
outlive the rows: most keys name one occurrence (an action id, an action event's sequence number, a
response id, a kiosk's last heartbeat) and can never come back, but some can: an objective breached
again within the same quarter fires `objective.breached:{objective}:{period}` again, a digest's key
holds its week (`feedback tick --now` can replay a past week), and a plugin's own channel may key
as it likes. So rather than guess which keys can recur, every pruned row leaves its key behind in
`outbox_pruned` (the first 16 bytes of its SHA-256: about 25 bytes a row instead of the payload, and
no address outlives the row) and `enqueue` refuses a key found there. Deleting is done in batches
of `PRUNE_BATCH` rows, each its own short write, found by a read first, so a run never holds the
writer for long. Ids are AUTOINCREMENT: a deleted row's id (part of a mail's Message-ID) is never
given to another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback.db import Store
from feedback.events import stamp
from feedback.jobs import Job, JobContext
from feedback.store import Connection
from feedback.store import events as outbox_store

log = logging.getLogger("feedback.outbox")

# Seconds to wait after the 1st, 2nd, … failure; the last step repeats until MAX_ATTEMPTS.
BACKOFF = (5, 30, 120, 600, 3600, 21600)
MAX_ATTEMPTS = 10
# Given-up rows are kept this many times as long as delivered ones.
GIVEN_UP_FACTOR = 3
PRUNE_BATCH = 500
# Sends in flight at once in a delivery round, and rows taken per claim.
CONCURRENCY = 16
CLAIM_BATCH = 64

__all__ = ["GiveUp", "claim", "delivered", "deliver_due", "due_at", "enqueue", "key_digest", "retry_later", "stamp"]

key_digest = outbox_store.key_digest


class GiveUp(Exception):
    """Raised by a `send` when retrying cannot help (the target was removed): the row fails at once."""


def due_at(created_at: str | None) -> datetime:
    """When an event's deliveries become due: when it happened, never later than now. A job run by
    `feedback tick --now` in the past or future thus queues what that same clock finds due."""
    now = datetime.now(UTC)
    try:
        happened = datetime.fromisoformat(created_at or "")
    except ValueError:
        return now
    return min(happened, now) if happened.tzinfo else now


def enqueue(
    conn: Connection,
    *,
    channel: str,
    dedupe_key: str,
    target: str,
    payload: str,
    event_id: str | None = None,
    event_type: str | None = None,
    now: datetime,
) -> bool:
    """Queue one delivery; False when `dedupe_key` was queued before (nothing is queued twice)."""
    return outbox_store.enqueue(
        conn,
        channel=channel,
        dedupe_key=dedupe_key,
        target=target,
        payload=payload,
        at=stamp(now),
        event_id=event_id,
        event_type=event_type,
    )


def claim(
    conn: Connection, channel: str, now: datetime, limit: int = 20, lease_seconds: float = 60
) -> list[dict[str, Any]]:
    """Take up to `limit` due rows of a channel for `lease_seconds`; one statement, so it is atomic."""
    return outbox_store.claim(conn, channel, stamp(now), stamp(now + timedelta(seconds=lease_seconds)), limit)


def delivered(conn: Connection, id: int, now: datetime) -> None:
    outbox_store.record_delivered(conn, [(id, stamp(now))])


def failure(
    row_id: int, attempts_before: int, now: datetime, error: str, give_up: bool = False
) -> tuple[int, int, str | None, str | None, str]:
    """The record of a failed attempt: try again after the backoff, or give up after MAX_ATTEMPTS."""
    attempts = attempts_before + 1
    if give_up or attempts >= MAX_ATTEMPTS:
        return row_id, attempts, None, stamp(now), error
    wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    return row_id, attempts, stamp(now + timedelta(seconds=wait)), None, error


def retry_later(conn: Connection, id: int, now: datetime, error: str, *, give_up: bool = False) -> None:
    """Count a failed attempt: try again after the backoff, or give up after MAX_ATTEMPTS."""
    attempts = outbox_store.attempts_of(conn, id)
    if attempts is not None:
        outbox_store.record_failed(conn, [failure(id, attempts, now, error, give_up)])


Outcome = Callable[[Connection, dict[str, Any]], None]
Failure = tuple[int, int, str | None, str | None, str]


class _Recorder:
    """Writes the outcome of each send as soon as it is known: one write at a time, carrying every
    outcome that arrived while the previous one was being written (so a busy round costs a write per
    group commit, not per send, and a crash forgets only what was in flight)."""

    def __init__(self, store: Store, on_delivered: Outcome | None, on_given_up: Outcome | None = None) -> None:
        self.store = store
        self.on_delivered = on_delivered
        self.on_given_up = on_given_up
        self._delivered: list[tuple[dict[str, Any], str]] = []
        self._failed: list[tuple[Failure, dict[str, Any] | None]] = []
        self._writing: asyncio.Task | None = None

    def sent(self, row: dict[str, Any], at: datetime) -> None:
        self._delivered.append((row, stamp(at)))
        self._kick()

    def failed(self, record: Failure, row: dict[str, Any] | None = None) -> None:
        self._failed.append((record, row))
        self._kick()

    def _kick(self) -> None:
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._delivered or self._failed:
            ok, self._delivered = self._delivered, []
            bad, self._failed = self._failed, []
            try:
                await self.store.write(lambda conn, ok=ok, bad=bad: self._record(conn, ok, bad))
            except Exception:  # noqa: BLE001 - one by one, so one bad outcome keeps the others
                log.exception("recording %s outcome(s) together failed; recording them one by one", len(ok) + len(bad))
                for item in ok:
                    await self._one(lambda conn, item=item: self._record(conn, [item], []))
                for record in bad:
                    await self._one(lambda conn, record=record: self._record(conn, [], [record]))

    async def _one(self, job: Callable[[Connection], None]) -> None:
        try:
            await self.store.write(job)
        except Exception:  # noqa: BLE001 - left claimed: sent again once its lease ends
            log.exception("recording a delivery outcome failed")

    def _record(
        self,
        conn: Connection,
        ok: list[tuple[dict[str, Any], str]],
        bad: list[tuple[Failure, dict[str, Any] | None]],
    ) -> None:
        outbox_store.record_delivered(conn, [(row["id"], at) for row, at in ok])
        if self.on_delivered is not None:
            for row, at in ok:
                self.on_delivered(conn, {**row, "delivered_at": at})
        outbox_store.record_failed(conn, [record for record, _ in bad])
        if self.on_given_up is not None:
            for (_, _, _, failed_at, error), row in bad:
                if failed_at is not None and row is not None:  # given up, not to be tried again
                    self.on_given_up(conn, {**row, "failed_at": failed_at, "last_error": error})

    async def flush(self) -> None:
        while self._writing is not None and not self._writing.done():
            await self._writing


async def deliver_due(
    store: Store,
    channel: str,
    send: Callable[[dict[str, Any]], Awaitable[None]],
    now: datetime,
    *,
    lease_seconds: float = 60,
    on_delivered: Outcome | None = None,
    concurrency: int = CONCURRENCY,
    batch: int = CLAIM_BATCH,
    on_given_up: Outcome | None = None,
) -> int:
    """Send every due row of a channel, up to `concurrency` at once (claimed as slots free up, at most
    `batch` per claim), until nothing due is left; returns how many were delivered.

    Each outcome is recorded right after its send (outcomes that arrive together share one write), so a
    crash mid-round sends again only the rows whose send had started and whose outcome was not yet
    written. `send` raising means "try again later" (`GiveUp`: never). `on_delivered(conn, row)` runs in
    the same transaction that marks a row delivered (e.g. to purge what the delivery made unnecessary),
    the row carrying its `delivered_at`; `on_given_up(conn, row)` likewise when a row is given up (after
    `MAX_ATTEMPTS`, or at once on `GiveUp`), with its `failed_at` and `last_error`.
    A claimed row must be sent within `lease_seconds`, or another process may take it and send it again."""
    # A read first: an idle outbox costs the writer nothing.
    if not await store.read(lambda conn: outbox_store.has_due(conn, channel, stamp(now))):
        return 0
    started = time.monotonic()

    def moment() -> datetime:
        # `now` may be a time-travelling `feedback tick --now`: outcomes are stamped on its clock.
        return now + timedelta(seconds=time.monotonic() - started)

    recorder = _Recorder(store, on_delivered, on_given_up)

    async def attempt(row: dict[str, Any]) -> bool:
        try:
            await send(row)
        except Exception as error:  # noqa: BLE001 - any failure is a retry, recorded on the row
            text = f"{type(error).__name__}: {error}"
            log.warning("%s delivery %s failed (attempt %s): %s", channel, row["id"], row["attempts"] + 1, text)
            recorder.failed(failure(row["id"], row["attempts"], moment(), text, isinstance(error, GiveUp)), row)
            return False
        recorder.sent(row, moment())
        return True

    sending: set[asyncio.Task] = set()
    more, count = True, 0
    while True:
        # Claim only what can be sent at once (when at least half the slots are free), so that what is
        # claimed is in flight: a crash leaves no more than `concurrency` rows to send again.
        free = concurrency - len(sending)
        if more and free >= max(1, concurrency // 2):
            at, limit = moment(), min(free, batch)
            claimed = await store.write(lambda conn, at=at, limit=limit: claim(conn, channel, at, limit, lease_seconds))
            more = len(claimed) == limit
            sending.update(asyncio.ensure_future(attempt(row)) for row in claimed)
        if not sending:
            break
        done, sending = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
        count += sum(task.result() for task in done)
    await recorder.flush()
    return count


def prune_cutoffs(now: datetime, keep_days: float) -> dict[str, str]:
    """The stamps before which delivered and given-up rows may go."""
    keep = timedelta(days=max(keep_days, 0))
    return {"delivered_before": stamp(now - keep), "failed_before": stamp(now - keep * GIVEN_UP_FACTOR)}


async def prune(store: Store, now: datetime, keep_days: float, batch: int = PRUNE_BATCH) -> int:
    """Delete delivered rows older than `keep_days` and given-up rows older than three times that, in
    batches of `batch` rows, each found on a reader and deleted in its own short write. Returns how many."""
    cutoffs = prune_cutoffs(now, keep_days)
    pruned, after = 0, 0
    while True:
        found = await store.read(lambda conn, after=after: outbox_store.next_prunable(conn, after, cutoffs, batch))
        if found is None:
            break
        first, last, count = found
        pruned += await store.write(
            lambda conn, first=first, last=last: outbox_store.prune_range(conn, first, last, cutoffs)
        )
        after = last
        if count < batch:
            break
    return pruned


async def run_prune(ctx: JobContext) -> int:
    pruned = await prune(ctx.store, ctx.now, ctx.settings.outbox_keep_days)
    if pruned:
        log.info("outbox: %s delivered or given-up row(s) pruned", pruned)
    return pruned


def jobs() -> list[Job]:
    return [Job("outbox.prune", every=3600, run=run_prune)]


# How long a stopping server lets its prompt delivery rounds finish (well within serving's grace).
SHUTDOWN_GRACE_SECONDS = 5.0

# The prompt delivery rounds under way in this process (each on its app's event loop), for
# `finish_rounds` at shutdown.
_ROUNDS: set[asyncio.Task] = set()


class Nudger:
    """Runs a delivery round soon after something is queued, so a healthy receiver need not wait for
    the next job run. Nudges that arrive during a round coalesce into one more round."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()

    def nudge(self, channel: str, round_: Callable[[], Awaitable[Any]]) -> None:
        if channel in self._running:
            self._again.add(channel)
            return
        task = asyncio.get_running_loop().create_task(self._rounds(channel, round_))
        self._running[channel] = task
        _ROUNDS.add(task)
        task.add_done_callback(_ROUNDS.discard)

    async def _rounds(self, channel: str, round_: Callable[[], Awaitable[Any]]) -> None:
        try:
            while True:
                self._again.discard(channel)
                try:
                    await round_()
                except Exception:  # noqa: BLE001 - the periodic job retries whatever is left
                    log.exception("prompt %s delivery failed", channel)
                if channel not in self._again:
                    return
        finally:
            self._running.pop(channel, None)


async def finish_rounds(timeout: float) -> None:
    """Let the prompt delivery rounds under way on this event loop end before the store closes, so
    that a message its receiver has taken is recorded as delivered and not sent again after a restart.
    A round still running after `timeout` seconds is cancelled: what it had in flight is sent again by
    the next round (at least once, as after a crash)."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _ROUNDS if task.get_loop() is loop]
    if not mine:
        return
    _done, late = await asyncio.wait(mine, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)
