"""Outbox drain: a backlog of webhook deliveries sent by the real server, beside a floor measured in the
same run.

Run from the repository root:  python bench/outbox_drain.py [--count 10000] [--concurrency 16]

What a receiver that was down for a while gets once it is back. A fresh organisation
(tests.conftest.make_org) in a temp dir; a fast receiver (bench/webhook_receiver.py: granian, one
worker, answers every POST 204 at once and counts it by event id) on a free 127.0.0.1 port; a
webhook registered for it through the real server (`feedback serve`,
FEEDBACK_WEBHOOK_ALLOW_PRIVATE=1), which is then stopped. The backlog: --count `response.stored`
deliveries written straight into the outbox (setup, not the measured path: one transaction, bodies
as the webhooks plugin builds them). Then:
  * The floor: the same bodies POSTed to the receiver by a plain httpx.AsyncClient loop from this
    script, --concurrency at a time on pooled connections: the rate the receiver takes POSTs here.
  * The drain: the real server started again; its `webhooks.deliver` job claims, signs, checks the
    target's address and sends every delivery, recording each outcome in the outbox. The rate is
    deliveries over the time from the receiver's first POST to its last (start-up excluded); the
    wall time from starting the server to the last delivery is printed beside it.
  * The floor again: if the two floor runs differ by more than 15 %, something else used the CPUs.
Checks: the receiver got every event id exactly once, and every outbox row is delivered after one
attempt. Target: >= 200 deliveries/s. The report goes to stdout (and --output FILE), progress to
stderr; read the rate beside the floor: on a 2-core machine the server, the receiver and this
script share the CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from ingest import environment, load_average, log, wait_for_quiet  # noqa: E402

from feedback.models import Event  # noqa: E402
from feedback.outbox import enqueue  # noqa: E402
from feedback_plugins.webhooks import CHANNEL, body_of, signature  # noqa: E402
from tests.conftest import ProcessServer as Server  # noqa: E402 - benchmarks measure `feedback serve` itself
from tests.conftest import auth_header, free_port, make_org  # noqa: E402

TARGET = 200.0
SECRET = "bench-secret"


def start_receiver(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    process = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "1", "--no-ws", "--no-log", "webhook_receiver:app"],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("the receiver did not start")


def stats(url: str) -> dict:
    return httpx.get(f"{url}/stats", timeout=10).json()


def backlog(count: int) -> list[Event]:
    """`response.stored` events shaped as the ingest path writes them (about 700 bytes of JSON each)."""
    start = datetime.now(UTC) - timedelta(hours=1)
    events = []
    for n in range(count):
        rid = str(uuid.uuid4())
        at = (start + timedelta(milliseconds=n)).isoformat()
        data = {
            "id": rid,
            "receipt": f"BN{n:02d}-{n % 10000:04d}"[-9:],
            "touchpoint": "tp-a1",
            "unit": "A1",
            "service": "S1",
            "survey": "csat",
            "survey_version": 1,
            "channel": "qr",
            "transaction_point": None,
            "case_ref": None,
            "counter": "3",
            "officer": None,
            "lang": "vi",
            "client_time": None,
            "server_time": at,
            "occurred_at": at,
            "day": at[:10],
            "level": 1 + n % 5,
            "satisfied": int(n % 5 >= 3),
            "dissatisfied": int(n % 5 <= 1),
            "score": 25.0 * (n % 5),
            "device": None,
            "answers": {"overall": 1 + n % 5, "comment": "Chờ lâu quá"},
            "indicators": {"overall": 25.0 * (n % 5)},
            "flags": [],
            "case_verified": False,
            "suspect": False,
            "objectives": [],
        }
        events.append(Event(type="response.stored", id=f"response.stored:{rid}", created_at=at, data=data))
    return events


def write_backlog(db: Path, hook_id: int, events: list[Event]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        now = datetime.now(UTC)
        for event in events:
            enqueue(
                conn,
                channel=CHANNEL,
                dedupe_key=f"{event.id}|webhook:{hook_id}",
                target=str(hook_id),
                payload=body_of(event),
                event_id=event.id,
                event_type=event.type,
                now=now,
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def floor(url: str, events: list[Event], concurrency: int) -> float:
    """Deliveries/s of a plain httpx loop: the same signed bodies, `concurrency` at a time."""
    bodies = [body_of(event).encode() for event in events]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                headers = {
                    "Content-Type": "application/json",
                    "X-Feedback-Signature": signature(SECRET, body),
                    "X-Feedback-Event": "response.stored",
                }
                reply = await client.post(f"{url}/hook", content=body, headers=headers)
                reply.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - started)


def outbox_state(db: Path) -> tuple[int, int, int]:
    """(rows, delivered, delivered after exactly one attempt) of the webhook outbox."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT count(*), count(delivered_at), sum(delivered_at IS NOT NULL AND attempts = 1) FROM outbox"
            " WHERE channel = ?",
            (CHANNEL,),
        ).fetchone()
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="deliveries in the backlog (default 10000)")
    parser.add_argument("--floor-count", type=int, default=3_000, help="POSTs per floor run (default 3000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent POSTs of the floor loop")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the drain")
    parser.add_argument("--quiet-wait", type=float, default=60, help="seconds to wait for a quiet machine")
    parser.add_argument("--output", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)

    report = [line.replace("bench/ingest.py", "bench/outbox_drain.py") for line in environment(1)]
    started = time.monotonic()
    receiver_port = free_port()
    receiver = start_receiver(receiver_port)
    url = f"http://127.0.0.1:{receiver_port}"
    try:
        with tempfile.TemporaryDirectory(prefix="feedback-outbox-drain-", dir="/tmp") as tmp:
            org = make_org(Path(tmp) / "drain.db")
            env = {"FEEDBACK_WEBHOOK_ALLOW_PRIVATE": "1"}
            server = Server(org.db, env=env).start()
            try:
                reply = httpx.post(
                    f"{server.url}/api/v1/webhooks",
                    json={"url": f"{url}/hook", "secret": SECRET, "events": ["response.stored"]},
                    headers=auth_header(org.tokens["admin"]),
                )
                reply.raise_for_status()
                hook_id = reply.json()["id"]
            finally:
                server.stop()
            events = backlog(args.count)
            log(f"backlog: {args.count:,} webhook deliveries written to the outbox")
            write_backlog(org.db, hook_id, events)

            busy = wait_for_quiet(args.quiet_wait)
            log(f"floor: {args.floor_count:,} POSTs from a plain httpx loop, {args.concurrency} at a time")
            floor_before = asyncio.run(floor(url, events[: args.floor_count], args.concurrency))
            httpx.post(f"{url}/reset")

            log("drain: the real server sends the backlog")
            t0 = time.monotonic()
            server = Server(org.db, env=env).start()
            try:
                deadline = t0 + args.timeout
                got = stats(url)
                while got["count"] < args.count and time.monotonic() < deadline:
                    time.sleep(0.2)
                    got = stats(url)
                wall = time.monotonic() - t0
                # Let a duplicate show, were there one, before the server stops.
                time.sleep(1.0)
                got = stats(url)
            finally:
                server.stop()
            rows, delivered, first_try = outbox_state(org.db)
            sending = (got["last"] - got["first"]) if got["first"] is not None and got["last"] is not None else 0
            rate = got["count"] / sending if sending else 0.0
            httpx.post(f"{url}/reset")
            log("floor again")
            floor_after = asyncio.run(floor(url, events[: args.floor_count], args.concurrency))
    finally:
        os.killpg(receiver.pid, signal.SIGKILL)  # granian and its worker process
        receiver.wait(10)

    mean_floor = (floor_before + floor_after) / 2
    drift = abs(floor_before - floor_after) / mean_floor if mean_floor else 0.0
    exact = got["count"] == got["distinct"] == args.count
    report += [
        "",
        f"{args.count:,} webhook deliveries (response.stored, ~700-byte bodies) to a receiver on 127.0.0.1;"
        f" other processes used {busy:.0%} of the CPUs just before",
        "",
        f"{'what':<52}{'deliveries/s':>14}",
        f"{'plain httpx loop, ' + str(args.concurrency) + ' at a time (floor)':<52}{floor_before:>14,.0f}",
        f"{'the server draining its outbox':<52}{rate:>14,.0f}",
        f"{'plain httpx loop again (floor)':<52}{floor_after:>14,.0f}",
        "",
        f"drain / floor: {rate / mean_floor:.0%} of the mean floor; {args.count:,} sent in {sending:.1f} s"
        f" ({wall:.1f} s from starting the server)",
        f"target >= {TARGET:.0f} deliveries/s: {'met' if rate >= TARGET else 'MISSED'}",
        f"receiver: {got['count']:,} POSTs, {got['distinct']:,} distinct event ids"
        f" ({'each once' if exact else 'NOT each once'}); outbox: {delivered:,} of {rows:,} rows delivered,"
        f" {first_try or 0:,} at the first attempt",
    ]
    if drift > 0.15:
        report.append(f"WARNING: the two floor runs differ by {drift:.0%}: rerun on a quiet machine")
    report.append(f"\ntotal {time.monotonic() - started:.0f} s; load average at end: {load_average()}")
    text = "\n".join(report)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0 if exact and delivered == rows == args.count and rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
