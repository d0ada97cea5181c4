"""The durable outbox: mails, webhook calls and any plugin's deliveries, written first, sent after.

A row is queued once per `dedupe_key` (the same event to the same target), so a replayed response
or a re-run job never sends twice. Delivery claims rows with a lease (`claimed_until`), so several
server processes never send the same row at the same time, and a row whose sender died is picked
up again once its lease ends. A failed send is retried with backoff until it gives up.
Channel-agnostic: the channel's plugin supplies `send(row)`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback.db import Store

log = logging.getLogger("feedback.outbox")

# Seconds to wait after the 1st, 2nd, … failure; the last step repeats until MAX_ATTEMPTS.
BACKOFF = (5, 30, 120, 600, 3600, 21600)
MAX_ATTEMPTS = 10
PENDING = "delivered_at IS NULL AND failed_at IS NULL"


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


def enqueue(conn: sqlite3.Connection, *, channel: str, dedupe_key: str, target: str, payload: str,
            event_id: str | None = None, event_type: str | None = None, now: datetime) -> bool:
    """Queue one delivery; False when `dedupe_key` was queued before (nothing is queued twice)."""
    at = stamp(now)
    return conn.execute(
        "INSERT OR IGNORE INTO outbox (channel, dedupe_key, event_id, event_type, target, payload,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (channel, dedupe_key, event_id, event_type, target, payload, at, at),
    ).rowcount == 1


def claim(conn: sqlite3.Connection, channel: str, now: datetime, limit: int = 20,
          lease_seconds: float = 60) -> list[dict[str, Any]]:
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
        return conn.execute(
            f"SELECT 1 FROM outbox WHERE channel = ? AND {PENDING} AND next_attempt_at <= ?"
            " AND (claimed_until IS NULL OR claimed_until <= ?) LIMIT 1",
            (channel, at, at),
        ).fetchone() is not None

    return check


async def deliver_due(store: Store, channel: str, send: Callable[[dict[str, Any]], Awaitable[None]],
                      now: datetime, *, lease_seconds: float = 60,
                      on_delivered: Callable[[sqlite3.Connection, dict[str, Any]], None] | None = None) -> int:
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
