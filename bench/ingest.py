"""Ingest throughput and satisfaction-query latency, each printed beside a floor measured in the same run.

Run from the repository root:  python bench/ingest.py [--quick] [--workers N] [--output FILE]

Part 1 - ingest. A fresh organisation (tests.conftest.make_org) in a temp dir, the real server
(`feedback serve`, FEEDBACK_RATE_LIMIT=0) on a free 127.0.0.1 port, then wrk with 64 connections
and 2 threads for --duration seconds each:
  * GET /healthz - the floor: granian + Litestar + our middleware, no database work.
  * POST /api/v1/responses - every request a unique body (bench/ingest.lua): validation, scoring,
    and a durable commit (synchronous=FULL) through the single writer thread's group commit.
  * GET /healthz again - if the two floor runs differ by more than 15 %, something else was using
    the CPUs and the report says the ratio is unreliable.
The table gives req/s, p50 and p99 (wrk's latency distribution) and errors (non-2xx responses
plus socket errors); "ingest / healthz" is the share of the framework's own rate (the mean of the
two floor runs) that survives the real work. Targets: ingest >= 40 % of the healthz rate, ingest
p99 <= 50 ms, in five consecutive runs on a quiet machine (report the range, never the best run).
With one worker, the writer's counters from /healthz show where a request's time goes: the group
commit it waits for (jobs per commit, time per commit, of which the fsync) and the rest, queued for
the one interpreter lock.
The accounting check then compares rows in the SQLite file with the 201s wrk counted.
wrk stops on a timer with up to one request in flight per connection: the server still stores
those, but wrk never reads their 201. So "stored == 201s" holds exactly only when nothing was in
flight; in general 201s <= stored <= requests sent must hold, and stored - 201s must not exceed
the requests in flight at the stop (sent - answered). An acknowledged response missing from the
file, or more rows than requests, is a failure. Rollups must count every stored row.

Part 2 - reads at scale. For each --sizes N a database is bulk-loaded directly (setup, not the
measured path: one SQL statement per million rows, synchronous=OFF, indexes built afterwards)
with N synthetic responses over 365 days of 2024, 6 root agencies with children (36 units),
40 touchpoints and 12 services; `rollups` computed by one INSERT ... SELECT ... GROUP BY, and each coarser
rollup table the schema has (rollups_unit_day, ...) from it the same way. The real
server then answers sequential keep-alive requests (httpx), a mix of by=unit/day/month/service
over root and leaf units for the whole year, beside /healthz measured the same way. The API
reads rollups only, so its latency should not grow with N. Target: satisfaction p95 <= 20 ms at
10 M. The raw-scan line times the same aggregation straight over `responses` for one root unit
and the year, i.e. what every dashboard request would cost without rollups.

Read every figure beside its floor: on a 2-core machine wrk, the server and its writer thread
share the CPUs, so absolute numbers matter less than the ratios. Before each measurement the
script waits (up to --quiet-wait seconds) for other processes to leave the CPUs, and the "others"
column gives the share of the CPUs that processes other than wrk, the server and this script used
during it: anything above a few per cent inflates the tails (p95/p99) first, so rerun. The report
goes to stdout (and --output FILE), progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx

from feedback import auth, organisation, surveys
from feedback.db import open_utils
from feedback.migrations import apply_all
from feedback.plugins import build_plugin_manager
from feedback.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import ProcessServer as Server  # noqa: E402 - needs the repository root on sys.path
from tests.conftest import make_org  # noqa: E402 - benchmarks measure `feedback serve` itself, in its own process

LUA = Path(__file__).resolve().parent / "ingest.lua"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CONNECTIONS = 64
THREADS = 2
INGEST_SHARE_TARGET = 0.40
INGEST_P99_TARGET_MS = 50.0
SATISFACTION_P95_TARGET_MS = 20.0
TARGET_SIZE = 10_000_000

# Synthetic data for part 2: the year 2024 (365 days from 1 January), office hours in UTC+7.
YEAR_FROM, YEAR_TO = "2024-01-01", "2024-12-31"
START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000) - 7 * 3_600_000
DAYS = 365
CHUNK = 1_000_000
ROOTS = ("TAX", "CUS", "LAND", "POL", "HLTH", "EDU")
N_TOUCHPOINTS = 40
TOUCHPOINT_SLOTS = 128  # touchpoints get unequal shares of the traffic via weighted slots
RECEIPT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
BYTES_PER_ROW = 700  # a generous first guess at file bytes per response; refined after each build
BYS = ("unit", "day", "month", "service")


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the report."""
    print(message, file=sys.stderr, flush=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"


# -- a quiet machine ---------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def system_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot. Busy is user + nice + system + steal: interrupt
    time is left out, since loopback networking for our own requests lands there."""
    with open("/proc/stat", encoding="ascii") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    return user + nice + system + steal, user + nice + system + idle + iowait + irq + softirq + steal


def our_ticks(pgid: int | None) -> int:
    """Clock ticks used by this script, its finished children (wrk) and the server's process group."""
    times = os.times()
    ours = round((times.user + times.system + times.children_user + times.children_system) * TICKS)
    if pgid is not None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                ours += int(fields[11]) + int(fields[12])
    return ours


class CpuWatch:
    """The share of all CPUs that *other* processes used while a measurement ran."""

    def __init__(self, pgid: int | None = None) -> None:
        self.pgid = pgid
        self.others = 0.0

    def __enter__(self) -> CpuWatch:
        self._start = (*system_ticks(), our_ticks(self.pgid))
        return self

    def __exit__(self, *exc: object) -> None:
        busy0, total0, ours0 = self._start
        busy1, total1 = system_ticks()
        ours1 = our_ticks(self.pgid)
        self.others = max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / max(1, total1 - total0))


def cpu_busy(seconds: float = 2.0) -> float:
    """The share of all CPUs other processes use over `seconds`, while this script sits idle."""
    with CpuWatch() as watch:
        time.sleep(seconds)
    return watch.others


def wait_for_quiet(limit: float, threshold: float = 0.10) -> float:
    """Wait up to `limit` seconds for other processes to leave the CPUs alone; returns the last busy share."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        log(f"  waiting for a quiet machine: CPUs {busy:.0%} busy")
        busy = cpu_busy(5.0)
    return busy


# -- wrk ----------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    label: str
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    non2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # from ingest.lua's STATUS line
    others: float = 0.0  # share of the CPUs other processes used meanwhile
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values())


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(label: str, output: str) -> WrkResult:
    result = WrkResult(label=label, raw=output)
    if match := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output):
        result.requests = int(match[1])
        result.seconds = to_ms(match[2], match[3]) / 1e3
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result.rps = float(match[1])
    percentiles = {
        m[1]: to_ms(m[2], m[3]) for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    }
    result.p50_ms = percentiles.get("50", float("nan"))
    result.p99_ms = percentiles.get("99", float("nan"))
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result.non2xx = int(match[1])
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        result.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, match.groups()), strict=True))
    if match := re.search(r"^STATUS (.*)$", output, re.MULTILINE):
        result.status = {key: int(value) for key, value in (pair.split("=") for pair in match[1].split())}
    return result


def run_wrk(
    label: str, server: Server, path: str, duration: int, script: Path | None = None, args: tuple[str, ...] = ()
) -> WrkResult:
    command = [WRK, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(f"{server.url}{path}")
    if args:
        command += ["--", *args]
    log(f"  wrk {label}: {duration} s ...")
    with CpuWatch(server.process.pid if server.process else None) as watch:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(label, done.stdout)
    result.others = watch.others
    return result


# -- the server --------------------------------------------------------------------------------


@contextlib.contextmanager
def serving(db: Path, workers: int) -> Iterator[Server]:
    server = Server(db, workers=workers).start()
    try:
        yield server
    finally:
        server.stop()


def wait_for_writes_to_settle(db: Path, quiet_seconds: float = 1.0, limit: float = 30.0) -> None:
    """Wait until the row count stops moving: requests wrk left in flight still commit (in any worker)."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        stored = count_stored(db)
        if stored != last:
            last, last_change = stored, time.monotonic()
        elif time.monotonic() - last_change >= quiet_seconds:
            return
        time.sleep(0.1)


# -- part 1: ingest ----------------------------------------------------------------------------


def bench_ingest(tmp: Path, duration: int, workers: int, quiet: float, mix: str = "typical") -> list[str]:
    log(
        f"part 1: ingest ({workers} worker{'s' if workers > 1 else ''}, {CONNECTIONS} connections, "
        f"{THREADS} wrk threads)"
    )
    db = tmp / "ingest.db"
    make_org(db)
    nonce = secrets.token_hex(4)
    busy = wait_for_quiet(quiet)
    with serving(db, workers) as server:
        run_wrk("warm-up", server, "/healthz", 1)
        health = run_wrk("GET  /healthz (floor)", server, "/healthz", duration)
        before = count_stored(db)
        writer_before = writer_figures(server)
        ingest = run_wrk("POST /api/v1/responses", server, "", duration, LUA, (nonce, mix))
        writer_after = writer_figures(server)
        wait_for_writes_to_settle(db)
        health_after = run_wrk("GET  /healthz (again)", server, "/healthz", duration)
    stored = count_stored(db) - before
    counted = rollup_totals(db)
    floor = (health.rps + health_after.rps) / 2
    share = ingest.rps / floor if floor else 0.0
    drift = abs(health.rps - health_after.rps) / floor if floor else 0.0

    lines = [
        f"Part 1 - ingest: {workers} server worker(s), wrk {THREADS} threads x {CONNECTIONS} connections, "
        f"{duration} s each; other processes used {busy:.0%} of the CPUs just before",
        f"ratings posted: {mix} mix ({'5 %' if mix == 'typical' else '40 %'} at levels 1-2, each opening a "
        "complaint action)",
        "",
    ]
    lines.append(f"{'endpoint':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'others':>8}")
    for result in (health, ingest, health_after):
        lines.append(
            f"{result.label:<26}{result.rps:>10,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
            f"{result.errors:>8}{result.others:>8.0%}"
        )
    lines.append("(others: the share of the CPUs used by processes other than wrk, the server and this script)")
    lines.append("")
    lines.append(
        f"ingest / healthz: {share:.1%} of the mean of both healthz runs  "
        f"(target >= {INGEST_SHARE_TARGET:.0%}: {verdict(share >= INGEST_SHARE_TARGET)})"
    )
    if drift > 0.15:
        lines.append(
            f"WARNING: the two healthz runs differ by {drift:.0%}: the ratio is unreliable - run again on "
            f"a quiet machine"
        )
    lines.append(
        f"ingest p99: {ingest.p99_ms:.1f} ms  (target <= {INGEST_P99_TARGET_MS:.0f} ms: "
        f"{verdict(ingest.p99_ms <= INGEST_P99_TARGET_MS)})"
    )
    for result in (health, ingest, health_after):
        if any(result.socket_errors.values()):
            lines.append(f"socket errors {result.label.strip()}: {result.socket_errors}")
    if workers == 1:
        lines += ["", *writer_report(writer_before, writer_after, ingest, duration)]
    lines += ["", *accounting(ingest, stored, counted)]
    return lines


def writer_figures(server: Server) -> dict[str, float]:
    """The server's writer counters from /healthz (one worker: every request reaches the same one)."""
    health = httpx.get(f"{server.url}/healthz", timeout=10).json()
    return {key: float(health[key]) for key in ("writes", "batches", "write_seconds", "commit_seconds")}


def writer_report(before: dict[str, float], after: dict[str, float], ingest: WrkResult, duration: int) -> list[str]:
    """Where an ingest request's time goes: the group commit it waits for, and the rest (queued for the
    one interpreter the event loop, the writer thread and granian's threads share)."""
    delta = {key: after[key] - before[key] for key in after}
    if delta["batches"] <= 0:
        return ["writer: no group commit during the run"]
    per_batch_ms = 1000 * delta["write_seconds"] / delta["batches"]
    commit_ms = 1000 * delta["commit_seconds"] / delta["batches"]
    # Little's law: with every connection always waiting, the mean time in the server is N / rate.
    mean_ms = 1000 * CONNECTIONS / ingest.rps if ingest.rps else 0.0
    # A request arrives while a batch is being written (half of one, on average) and then waits
    # for its own.
    commit_wait_ms = 1.5 * per_batch_ms
    return [
        f"writer: {delta['writes']:,.0f} write jobs in {delta['batches']:,.0f} group commits "
        f"({delta['writes'] / delta['batches']:.1f} per commit), busy {delta['write_seconds'] / duration:.0%} of the "
        f"run; a commit takes {per_batch_ms:.2f} ms, of which COMMIT (the fsync) {commit_ms:.2f} ms",
        f"an ingest request spends {mean_ms:.1f} ms in the server on average (64 connections / rate): an estimated "
        f"{commit_wait_ms:.1f} ms waiting for its group commit, the other {max(mean_ms - commit_wait_ms, 0):.1f} ms "
        "queued behind other requests' Python for the one interpreter lock (validation, scoring, the "
        "framework, the event hand-over); the p99 is that queue at its longest",
    ]


def count_stored(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM responses").fetchone()[0]


def rollup_tables(conn: sqlite3.Connection) -> list[str]:
    """`rollups` and any coarser rollup the schema has grown (rollups_unit_day, ...)."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND (name = 'rollups' OR substr(name, 1, 8) = 'rollups_') ORDER BY name = 'rollups' DESC, name"
        )
    ]


def rollup_totals(db: Path) -> dict[str, int]:
    """n + suspect summed over each rollup table: each must count every stored response once."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {
            table: conn.execute(f"SELECT coalesce(sum(n) + sum(suspect), 0) FROM {table}").fetchone()[0]
            for table in rollup_tables(conn)
        }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def accounting(ingest: WrkResult, stored: int, counted: dict[str, int]) -> list[str]:
    """Compare what wrk saw acknowledged with what the SQLite file holds."""
    status = ingest.status
    created, other2xx, failed, sent = status["created"], status["other2xx"], status["failed"], status["sent"]
    answered = created + other2xx + failed
    in_flight = sent - answered
    derived = ingest.requests - ingest.non2xx - other2xx
    lines = [
        "Accounting (SQLite file vs wrk):",
        f"  wrk answered requests           {ingest.requests:>10,}   (lua: {answered:,}; non-2xx {ingest.non2xx:,}, "
        f"other 2xx {other2xx:,})",
        f"  wrk 201 Created                 {created:>10,}   (answered - non-2xx - other 2xx = {derived:,})",
        f"  rows stored in responses        {stored:>10,}",
        f"  requests sent by wrk            {sent:>10,}   (in flight when wrk stopped: {in_flight:,})",
    ]
    lines += [f"  {table + ' n + suspect':<32}{total:>10,}" for table, total in counted.items()]
    lost = max(0, created - stored)
    extra = stored - created
    if stored == created:
        lines.append("  stored == 201s: exact match")
    elif lost == 0 and extra <= in_flight:
        lines.append(
            f"  stored == 201s + {extra} answered after wrk's clock stopped (<= {in_flight} in flight): "
            f"consistent, nothing acknowledged was lost"
        )
    else:
        lines.append(
            f"  MISMATCH: {lost} acknowledged responses missing, {max(0, extra - in_flight)} rows "
            f"beyond the requests in flight"
        )
    if derived != created:
        lines.append(f"  MISMATCH: wrk's own counts give {derived:,} 201s, the Lua tally {created:,}")
    for table, total in counted.items():
        lines.append(f"  {table} counts every stored row: {'yes' if total == stored else 'NO'}")
    return lines


# -- part 2: the synthetic database ------------------------------------------------------------


@dataclass
class BigOrg:
    roots: list[str]
    leaves: list[str]
    subtree: dict[str, list[str]]
    token: str


def build_organisation(db_path: Path) -> tuple[BigOrg, list[tuple]]:
    """Units, services, touchpoints and an admin token through the library, like an operator would."""
    plugins = build_plugin_manager(Settings())
    db = open_utils(str(db_path))
    apply_all(db, plugins)
    conn = db.conn
    conn.execute("BEGIN")
    surveys.publish_template(conn, "csat", plugins)
    roots, leaves, subtree = [], [], {}
    touchpoint_units: list[str] = []
    services: dict[str, list[str]] = {}
    for root in ROOTS:
        organisation.add_unit(conn, root, f"Agency {root}", lang="vi", tz="Asia/Ho_Chi_Minh")
        units = [root]
        for child in range(1, 4):
            code = f"{root}-{child}"
            organisation.add_unit(conn, code, f"Office {code}", parent=root, lang="vi", tz="Asia/Ho_Chi_Minh")
            units.append(code)
            if child == 1:
                for grandchild in ("a", "b"):
                    organisation.add_unit(
                        conn,
                        f"{code}{grandchild}",
                        f"Desk {code}{grandchild}",
                        parent=code,
                        lang="vi",
                        tz="Asia/Ho_Chi_Minh",
                    )
                    units.append(f"{code}{grandchild}")
                    leaves.append(f"{code}{grandchild}")
            else:
                leaves.append(code)
        roots.append(root)
        subtree[root] = units
        touchpoint_units += units
        services[root] = [f"{root}-S{i}" for i in (1, 2)]
        for code in services[root]:
            organisation.add_service(conn, code, f"Procedure {code}", agency=root)
    rows = []  # (token, unit, fixed service, choice a, choice b, channel, counter, quality)
    for k in range(N_TOUCHPOINTS):
        unit = touchpoint_units[k % len(touchpoint_units)]
        root = unit.split("-")[0]
        fixed = services[root][k % 2] if k % 3 != 2 else None
        kind = "kiosk" if k % 4 == 3 else "qr"
        token = f"tp{k:02d}"
        organisation.add_touchpoint(
            conn, unit, f"Counter {k}", "csat", kind=kind, counter=str(k % 5 + 1), service=fixed, token=token
        )
        rows.append((token, unit, fixed, *services[root], kind, str(k % 5 + 1), (k * 7) % 21))
    token = auth.create_token(conn, "bench", "admin", None)
    conn.execute("COMMIT")
    db.close()
    return BigOrg(roots, leaves, subtree, token), rows


def level_table() -> list[tuple]:
    """pct (0..119, a 0..99 draw plus the touchpoint's quality) -> level and what scoring derives from it."""
    rows = []
    for pct in range(120):
        level = 1 if pct < 5 else 2 if pct < 12 else 3 if pct < 25 else 4 if pct < 55 else 5
        score = 25.0 * (level - 1)
        rows.append(
            (pct, level, int(level >= 4), int(level <= 2), score, f'{{"overall":{level}}}', f'{{"overall":{score}}}')
        )
    return rows


def slot_table(n_touchpoints: int) -> list[tuple[int, int]]:
    """Weighted slots: busy touchpoints own several of the TOUCHPOINT_SLOTS, quiet ones one."""
    weights = [1 + (k * 7) % 5 for k in range(n_touchpoints)]
    total = sum(weights)
    bounds = [sum(weights[: k + 1]) for k in range(n_touchpoints)]
    slots = []
    for i in range(TOUCHPOINT_SLOTS):
        point = (i + 0.5) * total / TOUCHPOINT_SLOTS
        slots.append((i, next(k for k, bound in enumerate(bounds) if point < bound)))
    return slots


def receipt_sql() -> str:
    """Eight characters of the receipt alphabet from a per-row hash `hr`, as XXXX-XXXX."""
    chars = [f"substr('{RECEIPT_ALPHABET}', 1 + hr / {30**i} % 30, 1)" for i in range(8)]
    return " || ".join([*chars[:4], "'-'", *chars[4:]])


INSERT_CHUNK = """
WITH RECURSIVE seq(n) AS (SELECT :lo UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < :hi),
src AS (
  SELECT n,
         -- time-ordered: day n*days/N, then spread over office hours 08:00-17:00 (UTC+7)
         :start_ms + (n * :days / :total) * 86400000 + 28800000 + (n * :days % :total) * 32400000 / :total AS ms,
         (n * 2654435761) % 4294967296 AS h1,
         (n * 2246822519) % 4294967296 AS h2,
         (n * 3266489917) % 4294967296 AS h3,
         (n * 668265263) % 656100000000 AS hr
  FROM seq
)
INSERT INTO responses (id, receipt, touchpoint, unit, service, survey, survey_version, channel, lang, counter,
                       answers, server_time, occurred_at, day, level, satisfied, dissatisfied, score,
                       indicators, flags, content_hash)
SELECT printf('%08x-%04x-7%03x-%04x-%012x', ms / 65536, ms % 65536, n % 4096, 32768 + n / 4096 % 16384, n),
       {receipt},
       tp.token, tp.unit,
       coalesce(tp.fixed, CASE h3 % 3 WHEN 0 THEN tp.svc_a WHEN 1 THEN tp.svc_b END),
       'csat', :version, tp.channel, 'vi', tp.counter,
       lv.answers,
       strftime('%Y-%m-%dT%H:%M:%f', ms / 1000.0, 'unixepoch') || '+00:00',
       strftime('%Y-%m-%dT%H:%M:%f', ms / 1000.0, 'unixepoch') || '+00:00',
       date(ms / 1000, 'unixepoch', '+7 hours'),
       lv.level, lv.satisfied, lv.dissatisfied, lv.score, lv.indicators, '[]',
       lower(hex(randomblob(32)))
FROM src
JOIN temp.bench_slot slot ON slot.i = h1 * {slots} / 4294967296
JOIN temp.bench_tp tp ON tp.k = slot.k
JOIN temp.bench_level lv ON lv.pct = h2 * 100 / 4294967296 + tp.quality
"""

BUILD_ROLLUPS = """
INSERT INTO rollups (unit, service, touchpoint, day, n, satisfied, dissatisfied, score_n, score_sum,
                     l1, l2, l3, l4, l5, suspect)
SELECT unit, coalesce(service, ''), touchpoint, day, count(level), sum(satisfied), sum(dissatisfied),
       count(score), total(score), sum(level = 1), sum(level = 2), sum(level = 3), sum(level = 4),
       sum(level = 5), 0
FROM responses GROUP BY unit, coalesce(service, ''), touchpoint, day
"""


ROLLUP_KEYS = ("unit", "day", "service", "touchpoint")
ROLLUP_MEASURES = ("n", "satisfied", "dissatisfied", "score_n", "score_sum", "l1", "l2", "l3", "l4", "l5", "suspect")


def coarser_rollup_sql(conn: sqlite3.Connection, table: str) -> str:
    """Fill a coarser rollup table from `rollups`, grouping by the key columns it keeps."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    keys = [c for c in ROLLUP_KEYS if c in columns]
    measures = [c for c in ROLLUP_MEASURES if c in columns]
    return (
        f"INSERT INTO {table} ({', '.join(keys + measures)}) "
        f"SELECT {', '.join(keys)}, {', '.join(f'sum({m})' for m in measures)} FROM rollups "
        f"GROUP BY {', '.join(keys)}"
    )


def build_big(db_path: Path, total: int) -> tuple[BigOrg, dict[str, int]]:
    """Bulk-load `total` synthetic responses and every rollup table. Returns the org and rows per rollup table."""
    org, touchpoints = build_organisation(db_path)
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        # Setup, not the measured path: no journal, no fsync, a big cache, indexes built afterwards.
        mode = conn.execute("PRAGMA journal_mode=OFF").fetchone()[0]
        if mode != "off":
            raise RuntimeError(f"could not switch {db_path} to journal_mode=OFF for the bulk load ({mode})")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1048576")
        conn.execute("PRAGMA temp_store=MEMORY")
        survey_version = conn.execute("SELECT max(version) FROM survey_versions WHERE slug = 'csat'").fetchone()[0]
        conn.execute(
            "CREATE TEMP TABLE bench_tp (k INTEGER PRIMARY KEY, token, unit, fixed, svc_a, svc_b, channel,"
            " counter, quality)"
        )
        conn.executemany(
            "INSERT INTO temp.bench_tp VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(k, *row) for k, row in enumerate(touchpoints)],
        )
        conn.execute("CREATE TEMP TABLE bench_slot (i INTEGER PRIMARY KEY, k)")
        conn.executemany("INSERT INTO temp.bench_slot VALUES (?, ?)", slot_table(len(touchpoints)))
        conn.execute(
            "CREATE TEMP TABLE bench_level (pct INTEGER PRIMARY KEY, level, satisfied, dissatisfied, score,"
            " answers, indicators)"
        )
        conn.executemany("INSERT INTO temp.bench_level VALUES (?, ?, ?, ?, ?, ?, ?)", level_table())
        indexes = [
            row[0]
            for row in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'responses' AND sql IS NOT NULL"
            )
        ]
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'responses' AND sql IS NOT NULL"
        ).fetchall():
            conn.execute(f"DROP INDEX {name}")
        sql = INSERT_CHUNK.format(receipt=receipt_sql(), slots=TOUCHPOINT_SLOTS)
        started = time.monotonic()
        for lo in range(0, total, CHUNK):
            hi = min(total, lo + CHUNK)
            conn.execute("BEGIN")
            conn.execute(
                sql, {"lo": lo, "hi": hi, "total": total, "days": DAYS, "start_ms": START_MS, "version": survey_version}
            )
            conn.execute("COMMIT")
            rate = hi / (time.monotonic() - started)
            log(f"    {hi:>11,} rows  ({rate:,.0f} rows/s)")
        log(f"    building {len(indexes)} indexes ...")
        conn.execute("BEGIN")
        for index_sql in indexes:
            conn.execute(index_sql)
        conn.execute("COMMIT")
        log("    rollups ...")
        conn.execute("BEGIN")
        conn.execute(BUILD_ROLLUPS)
        for table in rollup_tables(conn)[1:]:
            conn.execute(coarser_rollup_sql(conn, table))
        conn.execute("COMMIT")
        rollups = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in rollup_tables(conn)}
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return org, rollups


# -- part 2: measuring -------------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def timed_gets(client: httpx.Client, requests: list[tuple[str, dict]], headers: dict[str, str]) -> list[float]:
    samples = []
    for path, params in requests:
        started = time.perf_counter()
        response = client.get(path, params=params, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return samples


def satisfaction_mix(org: BigOrg, count: int) -> list[tuple[str, dict]]:
    units = [unit for pair in zip(org.roots, org.leaves[::2], strict=False) for unit in pair]
    combos = [(unit, by) for unit in units for by in BYS]
    return [
        ("/api/v1/satisfaction", {"unit": unit, "from": YEAR_FROM, "to": YEAR_TO, "by": by})
        for unit, by in (combos[i % len(combos)] for i in range(count))
    ]


RAW_SCAN = """
SELECT unit, count(level) AS n, sum(satisfied), sum(dissatisfied), count(score), total(score),
       sum(level = 1), sum(level = 2), sum(level = 3), sum(level = 4), sum(level = 5)
FROM responses WHERE unit IN ({marks}) AND day BETWEEN ? AND ? GROUP BY unit
"""
ROLLUP_SCAN = """
SELECT unit, sum(n) AS n, sum(satisfied), sum(dissatisfied), sum(score_n), sum(score_sum),
       sum(l1), sum(l2), sum(l3), sum(l4), sum(l5)
FROM {table} WHERE unit IN ({marks}) AND day BETWEEN ? AND ? GROUP BY unit
"""


def time_query(db: Path, sql: str, units: list[str]) -> tuple[float, int]:
    """One run on a fresh read-only connection (empty SQLite cache; the OS cache is whatever it is)."""
    uri = db.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        started = time.perf_counter()
        rows = conn.execute(sql.format(marks=",".join("?" * len(units))), [*units, YEAR_FROM, YEAR_TO]).fetchall()
        elapsed = (time.perf_counter() - started) * 1000
    return elapsed, sum(row[1] for row in rows)


@dataclass
class SizeResult:
    size: int
    skipped: str = ""
    build_s: float = 0.0
    file_bytes: int = 0
    rollups: dict[str, int] = field(default_factory=dict)  # rows per rollup table
    satisfaction: tuple[float, float, float] = (0.0, 0.0, 0.0)
    healthz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    raw_ms: list[float] = field(default_factory=list)
    rollup_ms: dict[str, list[float]] = field(default_factory=dict)
    raw_n: int = 0
    api_n: int = 0
    root: str = ""
    others: tuple[float, float] = (0.0, 0.0)  # CPUs used by other processes: satisfaction, healthz
    by_kind: dict[str, float] = field(default_factory=dict)  # "root day" -> p50 ms


def bench_size(tmp: Path, size: int, requests: int, workers: int, quiet: float) -> SizeResult:
    result = SizeResult(size=size)
    db = tmp / f"big-{size}.db"
    log(f"part 2: {size:,} responses")
    started = time.monotonic()
    org, result.rollups = build_big(db, size)
    result.build_s = time.monotonic() - started
    # The load ran with synchronous=OFF: flush its dirty pages now, or the kernel's writeback
    # competes with the server during the measurement.
    log("    sync ...")
    os.sync()
    result.file_bytes = sum(p.stat().st_size for p in tmp.glob(f"{db.name}*"))
    headers = {"Authorization": f"Bearer {org.token}"}
    root = result.root = org.roots[0]
    log(f"    built in {result.build_s:.0f} s: {mib(result.file_bytes)}, rollup rows {result.rollups}")
    wait_for_quiet(quiet)
    with serving(db, workers) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        mix = satisfaction_mix(org, requests)
        health = [("/healthz", {})] * requests
        timed_gets(client, mix[: len(BYS) * len(org.roots) * 2], headers)  # warm-up: every combination once
        timed_gets(client, health[:50], headers)
        log(f"    {requests} satisfaction + {requests} healthz requests ...")
        pgid = server.process.pid if server.process else None
        with CpuWatch(pgid) as watch_satisfaction:
            samples = timed_gets(client, mix, headers)
        result.satisfaction = percentiles(samples)
        kinds: dict[str, list[float]] = {}
        for (_, params), ms in zip(mix, samples, strict=True):
            kind = "root" if params["unit"] in org.roots else "leaf"
            kinds.setdefault(f"{kind} {params['by']}", []).append(ms)
        result.by_kind = {kind: statistics.median(values) for kind, values in sorted(kinds.items())}
        with CpuWatch(pgid) as watch_health:
            result.healthz = percentiles(timed_gets(client, health, headers))
        result.others = (watch_satisfaction.others, watch_health.others)
        api = client.get(
            "/api/v1/satisfaction",
            params={"unit": root, "from": YEAR_FROM, "to": YEAR_TO, "by": "unit"},
            headers=headers,
        ).json()
        result.api_n = api["total"]["n"]
    log("    raw scan vs rollups ...")
    units = org.subtree[root]
    for _ in range(2):
        elapsed, result.raw_n = time_query(db, RAW_SCAN, units)
        result.raw_ms.append(elapsed)
        for table in result.rollups:
            elapsed, _ = time_query(db, ROLLUP_SCAN.replace("{table}", table), units)
            result.rollup_ms.setdefault(table, []).append(elapsed)
    return result


def bench_reads(tmp: Path, sizes: list[int], requests: int, workers: int, quiet: float) -> list[str]:
    results: list[SizeResult] = []
    bytes_per_row = float(BYTES_PER_ROW)
    for size in sizes:
        need = size * bytes_per_row * 1.5 + 2**28
        free = shutil.disk_usage(tmp).free
        if free < need:
            results.append(SizeResult(size=size, skipped=f"needs ~{mib(need)}, {mib(free)} free in {tmp}"))
            log(f"part 2: skipping {size:,}: {results[-1].skipped}")
            continue
        result = bench_size(tmp, size, requests, workers, quiet)
        results.append(result)
        bytes_per_row = result.file_bytes / size
        for path in tmp.glob(f"big-{size}.*"):
            path.unlink()

    lines = [
        f"Part 2 - satisfaction over stored responses: {requests} sequential keep-alive requests each "
        f"(httpx), {YEAR_FROM}..{YEAR_TO}, by={'/'.join(BYS)} over root and leaf units",
        "",
    ]
    lines.append(f"{'responses':>11}  {'endpoint':<22}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'others':>8}")
    for result in results:
        if result.skipped:
            lines.append(f"{result.size:>11,}  skipped: {result.skipped}")
            continue
        for label, (p50, p95, p99), others in (
            ("GET /healthz (floor)", result.healthz, result.others[1]),
            ("GET /satisfaction", result.satisfaction, result.others[0]),
        ):
            lines.append(f"{result.size:>11,}  {label:<22}{p50:>8.2f}{p95:>8.2f}{p99:>8.2f}{others:>8.0%}")
    lines.append("")
    for result in results:
        if not result.skipped:
            lines.append(
                f"{result.size:>11,}  satisfaction p50 by unit kind and grouping (ms): "
                + ", ".join(f"{kind} {ms:.1f}" for kind, ms in result.by_kind.items())
            )
    lines.append("")
    lines.append(
        f"{'responses':>11}  {'file':>9}  {'load s':>6}  {'raw scan ms':>13}  {'rows in scan':>12}  api n = raw n"
    )
    for result in results:
        if result.skipped:
            continue
        raw = "/".join(f"{ms:,.0f}" for ms in result.raw_ms)
        lines.append(
            f"{result.size:>11,}  {mib(result.file_bytes):>9}  {result.build_s:>6.0f}  {raw:>13}  "
            f"{result.raw_n:>12,}  {'yes' if result.api_n == result.raw_n else f'NO ({result.api_n:,})'}"
        )
        lines.append(
            f"{'':>13}"
            + "; ".join(
                f"{table}: {result.rollups[table]:,} rows, " + "/".join(f"{ms:.1f}" for ms in times) + " ms"
                for table, times in result.rollup_ms.items()
            )
        )
    lines.append(
        f"(raw scan, and each rollup table below it: the same per-unit aggregation for root unit "
        f"{results[0].root or '-'} and the whole year,"
    )
    lines.append(" straight in SQLite on a fresh connection, first/second run; api n: the API's total for it)")
    lines.append("")
    at_target = [r for r in results if not r.skipped and r.size >= TARGET_SIZE]
    if at_target:
        p95 = at_target[-1].satisfaction[1]
        lines.append(
            f"satisfaction p95 at {at_target[-1].size:,}: {p95:.1f} ms  "
            f"(target <= {SATISFACTION_P95_TARGET_MS:.0f} ms at 10 M: "
            f"{verdict(p95 <= SATISFACTION_P95_TARGET_MS)})"
        )
    else:
        lines.append(
            f"satisfaction p95 target (<= {SATISFACTION_P95_TARGET_MS:.0f} ms at 10 M): not measured in this run"
        )
    return lines


# -- main --------------------------------------------------------------------------------------


def environment(workers: int) -> list[str]:
    commit = (
        subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "unknown"
    )
    wrk = subprocess.run([WRK, "--version"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout or wrk.stderr).split(" [")[0].strip()
    return [
        f"feedback bench/ingest.py  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  commit {commit}",
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, granian {version('granian')}, litestar {version('litestar')}, "
        f"{wrk_version}, {workers} server worker(s)",
        f"load average at start: {load_average()} (other processes on the machine skew every figure)",
    ]


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs, sizes 100k,1M")
    parser.add_argument(
        "--mix",
        choices=("typical", "uniform"),
        default="typical",
        help="ratings posted: typical (5 %% at levels 1-2, each opening a complaint action) or uniform 1..5 "
        "(40 %% open one: the writer's worst case)",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run (default 10, quick 3)")
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated response counts for part 2 (default 1000000,10000000; quick 100000,1000000)",
    )
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per read measurement")
    parser.add_argument("--skip-ingest", action="store_true", help="only part 2")
    parser.add_argument("--skip-reads", action="store_true", help="only part 1")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="seconds to wait, before each "
        "measurement, for other processes to leave the CPUs (default 120; 0: do not wait)",
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    duration = args.duration or (3 if args.quick else 10)
    sizes = [
        int(float(s))
        for s in (args.sizes or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")
        if s.strip()
    ]
    if not Path(WRK).exists():
        parser.error("wrk is not installed (apt-get install wrk)")

    report = [*environment(args.workers), ""]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feedback-bench-", dir="/tmp") as tmp:
        if not args.skip_ingest:
            report += [*bench_ingest(Path(tmp), duration, args.workers, args.quiet_wait, args.mix), ""]
        if not args.skip_reads:
            report += [*bench_reads(Path(tmp), sizes, args.requests, args.workers, args.quiet_wait), ""]
    report.append(f"total {time.monotonic() - started:.0f} s; load average at end: {load_average()}")
    text = "\n".join(report) + "\n"
    print(text, end="")
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
