"""The durable outbox on a real database (an SQLite file, a PostgreSQL database): queued once, claimed
by one sender at a time, retried with backoff, given up on, and recorded in the same transaction as
what a delivery makes unnecessary."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from feedback import outbox
from feedback.db import Store
from tests.conftest import BOTH_BACKENDS, Org

pytestmark = BOTH_BACKENDS

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def db(org: Org) -> str:
    return str(org.db)


def run(coro):
    return asyncio.run(coro)


async def with_store(path: str, fn):
    store = Store(path)
    store.start()
    try:
        return await fn(store)
    finally:
        store.close()


def queue(store: Store, key: str, now: datetime = T0, channel: str = "test"):
    return store.write(
        lambda conn: outbox.enqueue(
            conn, channel=channel, dedupe_key=key, target="t", payload=f'{{"key": "{key}"}}', event_id=key, now=now
        )
    )


def test_the_same_key_is_queued_once(db: str) -> None:
    async def scenario(store: Store):
        first = await queue(store, "e1|x")
        again = await queue(store, "e1|x", T0 + timedelta(hours=1))
        other = await queue(store, "e1|y")
        return first, again, other, await store.query("SELECT dedupe_key FROM outbox ORDER BY id")

    first, again, other, rows = run(with_store(db, scenario))
    assert (first, again, other) == (True, False, True)
    assert [row["dedupe_key"] for row in rows] == ["e1|x", "e1|y"]


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(db: str) -> None:
    async def scenario(store: Store):
        for i in range(3):
            await queue(store, f"k{i}")
        await queue(store, "later", T0 + timedelta(minutes=5))
        await queue(store, "elsewhere", channel="other")
        first = await store.write(lambda conn: outbox.claim(conn, "test", T0, limit=2, lease_seconds=60))
        second = await store.write(lambda conn: outbox.claim(conn, "test", T0 + timedelta(seconds=1)))
        third = await store.write(lambda conn: outbox.claim(conn, "test", T0 + timedelta(seconds=2)))
        expired = await store.write(lambda conn: outbox.claim(conn, "test", T0 + timedelta(seconds=61)))
        return first, second, third, expired

    first, second, third, expired = run(with_store(db, scenario))
    assert [row["dedupe_key"] for row in first] == ["k0", "k1"]
    assert [row["dedupe_key"] for row in second] == ["k2"]
    assert third == []  # everything due is leased; "later" is not due, "elsewhere" is another channel
    assert [row["dedupe_key"] for row in expired] == ["k0", "k1", "k2"]


def test_two_writers_on_one_database_never_claim_the_same_row(db: str) -> None:
    """Two stores stand for two server processes (or nodes), each with its own writer connection."""

    async def scenario(_):
        a, b = Store(db), Store(db)
        a.start()
        b.start()
        try:
            for i in range(40):
                await queue(a, f"k{i}")
            claims = await asyncio.gather(
                *[
                    store.write(lambda conn: outbox.claim(conn, "test", T0, limit=7))
                    for store in (a, b, a, b, a, b, a, b)
                ]
            )
        finally:
            a.close()
            b.close()
        return claims

    claims = run(scenario(None))
    ids = [row["id"] for claim in claims for row in claim]
    assert len(ids) == 40
    assert len(set(ids)) == 40


def test_backoff_then_give_up(db: str) -> None:
    async def scenario(store: Store):
        await queue(store, "k")
        row_id = (await store.query("SELECT id FROM outbox"))[0]["id"]
        waits = []
        now = T0
        for attempt in range(outbox.MAX_ATTEMPTS):
            await store.write(lambda conn, now=now, n=attempt: outbox.retry_later(conn, row_id, now, f"boom {n}"))
            row = (await store.query("SELECT * FROM outbox WHERE id = ?", (row_id,)))[0]
            if row["failed_at"]:
                break
            next_at = datetime.fromisoformat(row["next_attempt_at"])
            waits.append((next_at - now).total_seconds())
            now = next_at
        return waits, row

    waits, row = run(with_store(db, scenario))
    assert waits[:6] == [5, 30, 120, 600, 3600, 21600]
    assert waits[0] <= 10  # the first retry comes quickly
    assert row["attempts"] == outbox.MAX_ATTEMPTS
    assert row["failed_at"] is not None
    assert row["delivered_at"] is None
    assert row["last_error"] == f"boom {outbox.MAX_ATTEMPTS - 1}"


def test_deliver_due_sends_records_and_retries(db: str) -> None:
    sent: list[str] = []
    failures = {"k1": 1}  # k1 fails once, k2 never succeeds, k3 gives up at once

    async def send(row):
        key = row["dedupe_key"]
        if key == "k2":
            raise ConnectionError("refused")
        if key == "k3":
            raise outbox.GiveUp("gone")
        if failures.get(key):
            failures[key] -= 1
            raise RuntimeError("HTTP 500")
        sent.append(key)

    def after(conn, row):
        conn.execute("INSERT INTO job_runs (name) VALUES (?)", (f"after:{row['dedupe_key']}",))

    async def scenario(store: Store):
        for key in ("k0", "k1", "k2", "k3"):
            await queue(store, key)
        first = await outbox.deliver_due(store, "test", send, T0, on_delivered=after)
        nothing_due = await outbox.deliver_due(store, "test", send, T0 + timedelta(seconds=1), on_delivered=after)
        retried = await outbox.deliver_due(store, "test", send, T0 + timedelta(seconds=6), on_delivered=after)
        rows = {row["dedupe_key"]: row for row in await store.query("SELECT * FROM outbox")}
        marks = [row["name"] for row in await store.query("SELECT name FROM job_runs ORDER BY name")]
        return first, nothing_due, retried, rows, marks

    first, nothing_due, retried, rows, marks = run(with_store(db, scenario))
    assert (first, nothing_due, retried) == (1, 0, 1)
    assert sent == ["k0", "k1"]
    assert rows["k0"]["delivered_at"] and rows["k0"]["attempts"] == 1
    assert rows["k1"]["delivered_at"] and rows["k1"]["attempts"] == 2
    assert rows["k1"]["last_error"] == "RuntimeError: HTTP 500"
    assert rows["k2"]["delivered_at"] is None and rows["k2"]["attempts"] == 2
    assert rows["k2"]["claimed_until"] is None
    assert rows["k3"]["failed_at"] and rows["k3"]["attempts"] == 1
    assert marks == ["after:k0", "after:k1"]


def test_a_sender_that_died_leaves_its_rows_to_the_next_after_the_lease(db: str) -> None:
    sent: list[str] = []

    async def send(row):
        sent.append(row["dedupe_key"])

    async def scenario(store: Store):
        await queue(store, "k")
        await store.write(lambda conn: outbox.claim(conn, "test", T0))  # claimed, then the process died
        during = await outbox.deliver_due(store, "test", send, T0 + timedelta(seconds=30))
        after = await outbox.deliver_due(store, "test", send, T0 + timedelta(seconds=61))
        return during, after

    assert run(with_store(db, scenario)) == (0, 1)
    assert sent == ["k"]


def test_nudges_during_a_round_coalesce_into_one_more(db: str) -> None:
    rounds: list[int] = []

    async def scenario() -> None:
        nudger = outbox.Nudger()
        gate = asyncio.Event()

        async def round_() -> None:
            rounds.append(len(rounds))
            if len(rounds) == 1:
                await gate.wait()

        nudger.nudge("c", round_)
        await asyncio.sleep(0)
        for _ in range(5):
            nudger.nudge("c", round_)
        gate.set()
        for _ in range(20):
            await asyncio.sleep(0)

    run(scenario())
    assert rounds == [0, 1]


def test_deliveries_are_due_when_their_event_happened_never_later_than_now() -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    assert outbox.due_at(past.isoformat()) == past
    before = datetime.now(UTC)
    for created_at in ((before + timedelta(days=3)).isoformat(), "not a time", None, "2020-01-01T00:00:00"):
        assert before <= outbox.due_at(created_at) <= datetime.now(UTC)
