"""Latency of the manager dashboard and unit page at scale, beside /healthz measured the same way.

Run from the repository root:  python bench/dashboard.py [--sizes 1000000,10000000] [--requests 200]

For each size N a database is bulk-loaded the way bench/ingest.py part 2 does it (its `build_big`:
one SQL statement per million synthetic responses, rollups by INSERT ... SELECT), but over the
365 days ending today, so "the last 30 days" holds data. Then the hourly heatmap rollup is filled
the same way, customers served are added for every unit and day (response rates), and each root
and leaf unit gets a satisfaction objective (so the dashboard judges objectives as it would in use).

The real server (`feedback serve`) is started, a session signed in through the form, and these
are timed with sequential keep-alive requests (httpx):
  * GET /manage/                 - the admin's dashboard: every unit of the installation
  * GET /manage/units/<root>     - a root agency's unit page (default period: the last 30 days)
  * GET /manage/units/<leaf>     - a leaf unit's page
  * GET /manage/units/<root>?from=<a year ago> - the same root over a year (extra, no target)
  * GET /healthz                 - the floor: the framework with no database work
Target: p95 < 300 ms for the dashboard and the unit pages at 10 M responses. Both read rollups
only; the response list (not timed here) reads 50 rows a page through the (unit, day) index.
The "heatmap from responses" line times the query the heatmap would need without its rollup
(a root unit, 30 days, straight over `responses`), which is why the rollup exists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import ingest as bulk  # noqa: E402 - bench/ingest.py, for its bulk loader

from feedback import objectives  # noqa: E402
from feedback.db import open_utils  # noqa: E402
from tests.conftest import ProcessServer as Server  # noqa: E402 - benchmarks measure `feedback serve` itself
from tests.manage_helpers import add_user, sign_in  # noqa: E402

TARGET_MS = 300.0
TARGET_SIZE = 10_000_000
PASSWORD = "bench password 1"

HEATMAP_FILL = """
INSERT INTO heatmap_rollups (unit, day, hour, n, satisfied, dissatisfied, score_n, score_sum, l1, l2, l3, l4, l5,
                             suspect)
SELECT unit, day, CAST(substr(occurred_at, 12, 2) AS INTEGER), count(level), sum(satisfied), sum(dissatisfied),
       count(score), total(score), sum(level = 1), sum(level = 2), sum(level = 3), sum(level = 4), sum(level = 5), 0
FROM responses GROUP BY 1, 2, 3
"""
EXPOSURE_FILL = """
INSERT OR REPLACE INTO exposure (unit, service, day, served, source, updated_at)
SELECT unit, '', day, (n + suspect) * 3, 'bench', '2024-01-01T00:00:00+00:00' FROM rollups_unit_day
"""
RAW_HEATMAP = """
SELECT day, substr(occurred_at, 12, 2), count(level), sum(satisfied) FROM responses
WHERE unit IN ({marks}) AND day BETWEEN ? AND ? GROUP BY 1, 2
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(db: Path, size: int) -> bulk.BigOrg:
    """bench/ingest.py's bulk load over the 365 days ending today (UTC+7), then our extra tables."""
    first = datetime.now(UTC).date() - timedelta(days=bulk.DAYS - 1)
    bulk.START_MS = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000) - 7 * 3_600_000
    org, _ = bulk.build_big(db, size)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        log("    heatmap rollup, exposure, objectives ...")
        conn.execute("BEGIN")
        conn.execute(HEATMAP_FILL)
        conn.execute(EXPOSURE_FILL)
        conn.execute("COMMIT")
    finally:
        conn.close()
    database = open_utils(str(db))
    try:
        with database.conn:
            for unit in [*org.roots, *org.leaves]:
                objectives.create_objective(
                    database.conn,
                    unit,
                    {"metric": "satisfaction", "target": 0.8, "period": "rolling_30", "title": "CSAT ≥ 80 %"},
                    actor="bench",
                    today=first,
                )
    finally:
        database.close()
    add_user(db, "bench-admin", PASSWORD, "admin", None)
    return org


def timed(client: httpx.Client, path: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        reply = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"GET {path}: {reply.status_code} {reply.text[:300]}")
    return samples


def raw_heatmap_ms(db: Path, units: list[str]) -> float:
    end = datetime.now(UTC).date()
    start = end - timedelta(days=29)
    uri = db.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        started = time.perf_counter()
        conn.execute(
            RAW_HEATMAP.format(marks=",".join("?" for _ in units)), [*units, start.isoformat(), end.isoformat()]
        ).fetchall()
        return (time.perf_counter() - started) * 1000


def bench_size(tmp: Path, size: int, requests: int, quiet: float) -> list[str]:
    db = tmp / f"dash-{size}.db"
    log(f"{size:,} responses")
    started = time.monotonic()
    org = build(db, size)
    build_s = time.monotonic() - started
    os.sync()
    root, leaf = org.roots[0], org.leaves[0]
    year_ago = (date.today() - timedelta(days=364)).isoformat()
    paths = [
        ("GET /manage/ (admin, all units)", "/manage/"),
        (f"GET /manage/units/{root} (root)", f"/manage/units/{root}"),
        (f"GET /manage/units/{leaf} (leaf)", f"/manage/units/{leaf}"),
        (f"GET /manage/units/{root}?from=... (root, a year)", f"/manage/units/{root}?from={year_ago}"),
        ("GET /healthz (floor)", "/healthz"),
    ]
    lines = [
        f"{size:,} responses (built in {build_s:.0f} s, "
        f"{sum(p.stat().st_size for p in tmp.glob(db.name + '*')) / 2**20:,.0f} MiB)",
        f"  {'request':<46} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'others':>7}  verdict",
    ]
    bulk.wait_for_quiet(quiet)
    server = Server(db, env={"FEEDBACK_JOBS": "0"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            sign_in(client, server, "bench-admin", PASSWORD)
            for _, path in paths:
                timed(client, path, 3)  # warm-up
            pgid = server.process.pid if server.process else None
            for label, path in paths:
                with bulk.CpuWatch(pgid) as watch:
                    p50, p95, p99 = bulk.percentiles(timed(client, path, requests))
                targeted = path.startswith("/manage/") and "from=" not in path
                verdict = ("ok" if p95 < TARGET_MS else "SLOW") if targeted else ""
                lines.append(f"  {label:<46} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {watch.others:>6.0%}  {verdict}")
    finally:
        server.stop()
    raw = min(raw_heatmap_ms(db, org.subtree[root]) for _ in range(2))
    lines.append(f"  heatmap from responses instead of its rollup ({root}, 30 days): {raw:,.0f} ms")
    db_files = list(tmp.glob(db.name + "*"))
    for path in db_files:
        path.unlink()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=str(TARGET_SIZE), help="comma-separated response counts")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per path")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait for idle CPUs")
    parser.add_argument("--tmp", default=None, help="directory for the databases (default: a temp dir)")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    print(f"dashboard latency, target p95 < {TARGET_MS:.0f} ms at {TARGET_SIZE:,}; load {bulk.load_average()}")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for size in sizes:
            for line in bench_size(Path(tmp), size, args.requests, args.quiet_wait):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
