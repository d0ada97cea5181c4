"""Kiosk sync throughput: 10,000 queued taps sent in batches, beside single POSTs as a floor.

Run from the repository root:  python bench/kiosk_sync.py [--count 10000] [--batches 100,500]

What a kiosk does after a day offline. For each pass: a fresh organisation (tests.conftest.make_org)
in a temp dir, the real server (`feedback serve`, FEEDBACK_RATE_LIMIT=0) on a free 127.0.0.1 port, a
device enrolled the way a tablet is (a code from `feedback kiosk enroll`, then
POST /api/v1/kiosk/enroll), and --count queued taps with device times 7 s apart (so the misuse
filter runs on every item but flags none: fast repeats are < 2 s, bursts 10 in 60 s).
  * POST /api/v1/kiosk/sync in batches of N, sequentially, one keep-alive connection (httpx), each
    item checked `stored`; then every batch again, as after a crash before the acknowledgement
    (each item must come back `duplicate` and nothing new be stored).
  * The floor: the same number of single POST /api/v1/responses, sequentially, on one keep-alive
    connection: what the same taps would cost one request each.
Every pass checks the SQLite file holds exactly --count kiosk rows, each id once. Figures are
responses/s over the whole run and the median request time; read them beside the floor measured
in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import environment, load_average, log, serving  # noqa: E402

from tests.conftest import make_org, run_cli  # noqa: E402

TOUCHPOINT = "tp-a1a"  # a kiosk touchpoint answering 好差评 (primary `overall`, `bad_reasons` when <= 2)
SPACING = timedelta(seconds=7)
BAD_REASONS = ["over_time_limit", "extra_documents", "poor_attitude", "unclear_guidance", "repeated_visits"]


def queued_taps(count: int, seed: int) -> list[dict]:
    """What a tablet's IndexedDB queue holds after `count` taps: ids, answers, device times, languages."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - SPACING * (count + 10)
    items = []
    for n in range(count):
        overall = rng.choices([1, 2, 3, 4, 5], weights=[4, 6, 15, 35, 40])[0]
        answers: dict = {"overall": overall}
        if overall <= 2 and rng.random() < 0.6:
            answers["bad_reasons"] = rng.sample(BAD_REASONS, rng.randint(1, 2))
        if rng.random() < 0.3:
            answers["attitude"] = rng.randint(1, 5)
        items.append(
            {
                "id": str(uuid.uuid4()),
                "answers": answers,
                "submitted_at": (start + SPACING * n).isoformat(),
                "lang": rng.choice(["zh", "vi", "en"]),
            }
        )
    return items


def enroll_device(url: str, db: Path) -> str:
    result = run_cli("kiosk", "enroll", "--db", str(db), "--touchpoint", TOUCHPOINT)
    if result.returncode != 0:
        raise RuntimeError(f"feedback kiosk enroll failed: {result.stderr}")
    code = result.stdout.strip().splitlines()[-1]
    reply = httpx.post(f"{url}/api/v1/kiosk/enroll", json={"code": code})
    reply.raise_for_status()
    return reply.json()["device_token"]


def stored_rows(db: Path) -> tuple[int, int, int]:
    """(kiosk rows, distinct ids, rows with a flag) in the SQLite file."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT count(*), count(DISTINCT id), sum(flags != '[]') FROM responses WHERE channel = 'kiosk'"
        ).fetchone()
    finally:
        conn.close()


def post_batches(
    client: httpx.Client, token: str, items: list[dict], size: int, expect: str
) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    started = time.perf_counter()
    for at in range(0, len(items), size):
        batch = items[at : at + size]
        t0 = time.perf_counter()
        reply = client.post("/api/v1/kiosk/sync", json={"items": batch}, headers=headers)
        times.append(time.perf_counter() - t0)
        if reply.status_code != 200:
            raise RuntimeError(f"sync answered {reply.status_code}: {reply.text[:300]}")
        statuses = [r["status"] for r in reply.json()["results"]]
        if len(statuses) != len(batch) or any(s != expect for s in statuses):
            wrong = next((r for r in reply.json()["results"] if r["status"] != expect), None)
            raise RuntimeError(f"expected every item {expect!r}, got e.g. {wrong}")
    return time.perf_counter() - started, times


def bench_sync(tmp: Path, count: int, size: int, workers: int) -> tuple[list[str], float]:
    org = make_org(tmp / f"sync-{size}.db")
    items = queued_taps(count, seed=size)
    with serving(org.db, workers) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        token = enroll_device(server.url, org.db)
        log(f"  sync: {count:,} taps in batches of {size}")
        total, times = post_batches(client, token, items, size, "stored")
        rows, distinct, flagged = stored_rows(org.db)
        log("  sync: the same batches again (lost acknowledgements)")
        again, again_times = post_batches(client, token, items, size, "duplicate")
        rows_after, _, _ = stored_rows(org.db)
    ok = rows == distinct == count and rows_after == count
    lines = [
        f"{f'POST /api/v1/kiosk/sync, {size}/batch':<34}{count:>7,}  {total:7.2f} s  {count / total:9,.0f}/s"
        f"  {statistics.median(times) * 1000:8.1f} ms/request",
        f"{'  resent (all duplicate)':<34}{count:>7,}  {again:7.2f} s  {count / again:9,.0f}/s"
        f"  {statistics.median(again_times) * 1000:8.1f} ms/request",
        f"  stored {rows:,} rows, {distinct:,} distinct ids, {flagged or 0:,} flagged; after the resend "
        f"{rows_after:,}: {'OK' if ok else 'FAILED'}",
    ]
    return lines, count / total if ok else 0.0


def bench_singles(tmp: Path, count: int, workers: int) -> tuple[list[str], float]:
    org = make_org(tmp / "singles.db")
    items = queued_taps(count, seed=1)
    with serving(org.db, workers) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        log(f"  floor: {count:,} single POST /api/v1/responses")
        times: list[float] = []
        started = time.perf_counter()
        for item in items:
            body = {
                "id": item["id"],
                "touchpoint": TOUCHPOINT,
                "answers": item["answers"],
                "submitted_at": item["submitted_at"],
                "lang": item["lang"],
            }
            t0 = time.perf_counter()
            reply = client.post("/api/v1/responses", json=body)
            times.append(time.perf_counter() - t0)
            if reply.status_code != 201:
                raise RuntimeError(f"POST /api/v1/responses answered {reply.status_code}: {reply.text[:300]}")
        total = time.perf_counter() - started
    conn = sqlite3.connect(org.db)
    try:
        rows = conn.execute(
            "SELECT count(*) FROM responses WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([i["id"] for i in items]),),
        ).fetchone()[0]
    finally:
        conn.close()
    lines = [
        f"{'POST /api/v1/responses, single':<34}{count:>7,}  {total:7.2f} s  {count / total:9,.0f}/s"
        f"  {statistics.median(times) * 1000:8.1f} ms/request   (floor)",
        f"  stored {rows:,} rows: {'OK' if rows == count else 'FAILED'}",
    ]
    return lines, count / total if rows == count else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="queued taps per pass (default 10000)")
    parser.add_argument("--batches", default="100,500", help="batch sizes, comma-separated (at most 500)")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--output", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batches.split(",") if s.strip()]
    if any(not 1 <= s <= 500 for s in sizes):
        parser.error("batch sizes must be 1..500 (the server's limit)")

    report = [line.replace("bench/ingest.py", "bench/kiosk_sync.py") for line in environment(args.workers)]
    report += [
        "",
        f"{args.count:,} queued kiosk taps, sent sequentially on one keep-alive connection",
        "",
        f"{'request':<34}{'taps':>7}  {'time':>9}  {'rate':>11}  {'median':>16}",
    ]
    started = time.monotonic()
    failed = False
    with tempfile.TemporaryDirectory(prefix="feedback-kiosk-sync-", dir="/tmp") as tmp:
        floor_lines, floor = bench_singles(Path(tmp), args.count, args.workers)
        rates = {}
        for size in sizes:
            lines, rate = bench_sync(Path(tmp), args.count, size, args.workers)
            report += lines
            rates[size] = rate
            failed |= rate == 0.0
        report += floor_lines
        failed |= floor == 0.0
    report.append("")
    for size, rate in rates.items():
        if floor:
            report.append(f"batches of {size}: {rate / floor:.1f}x the single-request rate")
    report.append(f"total {time.monotonic() - started:.0f} s; load average at end: {load_average()}")
    text = "\n".join(report) + "\n"
    print(text, end="")
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
