"""The durable outbox: mails, webhook calls and any plugin's deliveries, written first, sent after.

A row is queued once per `dedupe_key` (the same event to the same target), so a replayed response
or a re-run job never sends twice. Delivery claims rows with a lease (`claimed_until`), so several
server processes never send the same row at the same time, and a row whose sender died is picked
up again once its lease ends. A failed send is retried with backoff until it gives up.
Channel-agnostic: the channel's plugin supplies `send(row)`.

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
import hashlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback.db import Store
from feedback.jobs import Job, JobContext

log = logging.getLogger("feedback.outbox")

# Seconds to wait after the 1st, 2nd, … failure; the last step repeats until MAX_ATTEMPTS.
BACKOFF = (5, 30, 120, 600, 3600, 21600)
MAX_ATTEMPTS = 10
PENDING = "delivered_at IS NULL AND failed_at IS NULL"
# Given-up rows are kept this many times as long as delivered ones.
GIVEN_UP_FACTOR = 3
PRUNE_BATCH = 500
PRUNABLE = "(delivered_at < :delivered_before OR failed_at < :failed_before)"


class GiveUp(Exception):
    """Raised by a `send` when retrying cannot help (the target was removed): the row fails at once."""


def stamp(moment: datetime) -> str:
    """Fixed-width UTC text, so times compare correctly as strings in SQL."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


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
    conn: sqlite3.Connection,
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
    at = stamp(now)
    return (
        conn.execute(
            "INSERT OR IGNORE INTO outbox (channel, dedupe_key, event_id, event_type, target, payload,"
            " next_attempt_at, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM outbox_pruned WHERE key = ?)",
            (channel, dedupe_key, event_id, event_type, target, payload, at, at, key_digest(dedupe_key)),
        ).rowcount
        == 1
    )


def key_digest(dedupe_key: str) -> bytes:
    """What `outbox_pruned` keeps of a pruned row's key."""
    return hashlib.sha256(dedupe_key.encode()).digest()[:16]


def claim(
    conn: sqlite3.Connection, channel: str, now: datetime, limit: int = 20, lease_seconds: float = 60
) -> list[dict[str, Any]]:
    """Take up to `limit` due rows of a channel for `lease_seconds`; one statement, so it is atomic."""
    at = stamp(now)
    rows = conn.execute(
        f"""UPDATE outbox SET claimed_until = ?
            WHERE id IN (SELECT id FROM outbox WHERE channel = ? AND {PENDING} AND next_attempt_at <= ?
                         AND (claimed_until IS NULL OR claimed_until <= ?)
                         ORDER BY next_attempt_at, id LIMIT ?)
            RETURNING *""",
        (stamp(now + timedelta(seconds=lease_seconds)), channel, at, at, limit),
    ).fetchall()
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


def delivered(conn: sqlite3.Connection, id: int, now: datetime) -> None:
    conn.execute(
        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, claimed_until = NULL WHERE id = ?",
        (stamp(now), id),
    )


def retry_later(conn: sqlite3.Connection, id: int, now: datetime, error: str, *, give_up: bool = False) -> None:
    """Count a failed attempt: try again after the backoff, or give up after MAX_ATTEMPTS."""
    row = conn.execute("SELECT attempts FROM outbox WHERE id = ?", (id,)).fetchone()
    if row is None:
        return
    attempts = row[0] + 1
    if give_up or attempts >= MAX_ATTEMPTS:
        conn.execute(
            "UPDATE outbox SET attempts = ?, failed_at = ?, claimed_until = NULL, last_error = ? WHERE id = ?",
            (attempts, stamp(now), error[:1000], id),
        )
        return
    wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    conn.execute(
        "UPDATE outbox SET attempts = ?, next_attempt_at = ?, claimed_until = NULL, last_error = ? WHERE id = ?",
        (attempts, stamp(now + timedelta(seconds=wait)), error[:1000], id),
    )


def _has_due(channel: str, now: datetime) -> Callable[[sqlite3.Connection], bool]:
    at = stamp(now)

    def check(conn: sqlite3.Connection) -> bool:
        return (
            conn.execute(
                f"SELECT 1 FROM outbox WHERE channel = ? AND {PENDING} AND next_attempt_at <= ?"
                " AND (claimed_until IS NULL OR claimed_until <= ?) LIMIT 1",
                (channel, at, at),
            ).fetchone()
            is not None
        )

    return check


async def deliver_due(
    store: Store,
    channel: str,
    send: Callable[[dict[str, Any]], Awaitable[None]],
    now: datetime,
    *,
    lease_seconds: float = 60,
    on_delivered: Callable[[sqlite3.Connection, dict[str, Any]], None] | None = None,
) -> int:
    """Claim the due rows of a channel, send them concurrently, record each outcome; returns how many
    were delivered. `send` raising means "try again later" (`GiveUp`: never). `on_delivered(conn, row)` runs in the same
    transaction that marks a row delivered (e.g. to purge what the delivery made unnecessary). A send must
    finish within `lease_seconds`, or another process may take the row and send it again."""
    # A read first: an idle outbox costs the writer nothing.
    if not await store.read(_has_due(channel, now)):
        return 0
    rows = await store.write(lambda conn: claim(conn, channel, now, lease_seconds=lease_seconds))
    started = time.monotonic()

    def moment() -> datetime:
        # `now` may be a time-travelling `feedback tick --now`: outcomes are stamped on its clock.
        return now + timedelta(seconds=time.monotonic() - started)

    async def attempt(row: dict[str, Any]) -> bool:
        try:
            await send(row)
        except Exception as error:  # noqa: BLE001 - any failure is a retry, recorded on the row
            text = f"{type(error).__name__}: {error}"
            log.warning("%s delivery %s failed (attempt %s): %s", channel, row["id"], row["attempts"] + 1, text)
            at, final = moment(), isinstance(error, GiveUp)
            await store.write(lambda conn: retry_later(conn, row["id"], at, text, give_up=final))
            return False

        def record(conn: sqlite3.Connection) -> None:
            delivered(conn, row["id"], moment())
            if on_delivered is not None:
                on_delivered(conn, row)

        await store.write(record)
        return True

    results = await asyncio.gather(*(attempt(row) for row in rows))
    return sum(results)


def prune_cutoffs(now: datetime, keep_days: float) -> dict[str, str]:
    """The stamps before which delivered and given-up rows may go."""
    keep = timedelta(days=max(keep_days, 0))
    return {"delivered_before": stamp(now - keep), "failed_before": stamp(now - keep * GIVEN_UP_FACTOR)}


def next_prunable(
    conn: sqlite3.Connection, after_id: int, cutoffs: dict[str, str], limit: int = PRUNE_BATCH
) -> tuple[int, int, int] | None:
    """(first id, last id, rows) of the next `limit` prunable rows after `after_id`, or None."""
    found = conn.execute(
        f"SELECT id FROM outbox WHERE id > :after AND {PRUNABLE} ORDER BY id LIMIT :limit",
        {"after": after_id, "limit": limit, **cutoffs},
    ).fetchall()
    return (found[0][0], found[-1][0], len(found)) if found else None


def prune_range(conn: sqlite3.Connection, first_id: int, last_id: int, cutoffs: dict[str, str]) -> int:
    """Delete the prunable rows with ids first_id..last_id, keeping their keys; returns how many went.
    The condition is checked again here: a pending row is never deleted, whatever the range holds."""
    keys = conn.execute(
        f"DELETE FROM outbox WHERE id BETWEEN :first AND :last AND {PRUNABLE} RETURNING dedupe_key",
        {"first": first_id, "last": last_id, **cutoffs},
    ).fetchall()
    conn.executemany("INSERT OR IGNORE INTO outbox_pruned (key) VALUES (?)", [(key_digest(k),) for (k,) in keys])
    return len(keys)


async def prune(store: Store, now: datetime, keep_days: float, batch: int = PRUNE_BATCH) -> int:
    """Delete delivered rows older than `keep_days` and given-up rows older than three times that, in
    batches of `batch` rows, each found on a reader and deleted in its own short write. Returns how many."""
    cutoffs = prune_cutoffs(now, keep_days)
    pruned, after = 0, 0
    while True:
        found = await store.read(lambda conn, after=after: next_prunable(conn, after, cutoffs, batch))
        if found is None:
            break
        first, last, count = found
        pruned += await store.write(lambda conn, first=first, last=last: prune_range(conn, first, last, cutoffs))
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
        self._running[channel] = asyncio.get_running_loop().create_task(self._rounds(channel, round_))

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
