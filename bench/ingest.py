"""Ingest throughput and satisfaction-query latency, each printed beside a floor measured in the same run.

Run from the repository root:  python bench/ingest.py [--quick] [--workers N] [--output FILE]
                               [--postgres | --db postgresql://...]

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

PostgreSQL. `--postgres` starts a throwaway durable cluster (tests/postgres.py: fsync on,
synchronous_commit on, a Unix socket in a temp folder) and `--db postgresql://...` uses a database
of your own, which must be empty (no tables outside the system schemas; the script refuses
otherwise): the script works in schemas of its own there (feedback_bench_*, first on the
search_path of every URL it hands the servers) and drops them again at the end, so the database is
empty again afterwards (schemas left by an interrupted run are dropped at the start). With either,
part 1 measures, in the same run and in one table: /healthz, ingest on SQLite (as above), then
ingest on PostgreSQL with one app process and with two (`feedback serve` twice on one database,
two ports; wrk cannot spread over two URLs, so two wrk run at once with 1 thread and 32
connections each: their rates are added, and p50/p99 are the worse of the two; no nginx in front,
whose own CPU would be taken from the servers on this 2-core machine), /healthz again on the
one-process PostgreSQL server, and SQLite's ingest once more. It prints PostgreSQL's rate as a share
of SQLite's (the mean of SQLite's run before and after the PostgreSQL runs: target >= 60 %),
its p99 (target <= 100 ms at 64 connections) and the same accounting check against the PostgreSQL
database. Where the time goes: the one process's writer counters from /healthz as for SQLite, and
the writer's database session as PostgreSQL saw it (pg_stat_activity sampled every 20 ms: waiting
for work, waiting inside a transaction for the app's next statement, executing, flushing WAL at
COMMIT, waiting for the cluster-wide writer lock or another transaction's rows), rows inserted and
WAL per response and WAL fsyncs per group commit (pg_stat_database, pg_stat_wal), and for every row
of the table the CPU time per request of the app's processes, PostgreSQL's and wrk's (from /proc:
what each part costs, which other load on the machine moves far less than the rates). The cluster's
processes count as "ours" in the others column. Part 2 then runs on PostgreSQL only (a plain run
gives SQLite's): the same synthetic responses, generated in SQL by generate_series one million rows
per statement (the comment-search trigger and the secondary indexes off meanwhile, synchronous_commit
off for the load session; then the indexes, the rollups, VACUUM ANALYZE and a CHECKPOINT), target
satisfaction p95 <= 30 ms at 10 M.
With --postgres, the throwaway cluster gets max_wal_size = 16GB so the bulk load is not one
checkpoint per gigabyte; a database of your own keeps its settings.

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
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from feedback import auth, organisation, surveys
from feedback.db import open_database
from feedback.migrations import apply_all
from feedback.plugins import build_plugin_manager
from feedback.settings import Settings
from feedback.store.dialect import is_postgres_url

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
PG_SHARE_TARGET = 0.60  # PostgreSQL's ingest rate as a share of SQLite's in the same run
PG_P99_TARGET_MS = 100.0
PG_SATISFACTION_P95_TARGET_MS = 30.0

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
PG_BYTES_PER_ROW = 1000  # the same for PostgreSQL's tables, indexes and WAL
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


def our_ticks(pgid: int | Collection[int] | None, postmaster: int | None = None) -> int:
    """Clock ticks used by this script, its finished children (wrk), the servers' process groups and,
    given its pid, a local PostgreSQL."""
    return sum(tick_parts(pgid, postmaster).values())


def tick_parts(pgid: int | Collection[int] | None, postmaster: int | None = None) -> dict[str, int]:
    """Clock ticks used so far by this script and its finished children (wrk), by the servers' process
    groups, and by a local PostgreSQL (the postmaster, its finished children and its running ones)."""
    times = os.times()
    parts = {"wrk": round((times.user + times.system + times.children_user + times.children_system) * TICKS)}
    parts["server"] = parts["PostgreSQL"] = 0
    groups = {pgid} if isinstance(pgid, int) else set(pgid or ())
    if groups or postmaster is not None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid, group = int(stat.parent.name), int(fields[1]), int(fields[2])
            if pid == postmaster:
                parts["PostgreSQL"] += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
            elif ppid == postmaster:
                parts["PostgreSQL"] += int(fields[11]) + int(fields[12])
            elif group in groups:
                parts["server"] += int(fields[11]) + int(fields[12])
    return parts


class CpuWatch:
    """The share of all CPUs that *other* processes used while a measurement ran."""

    def __init__(self, pgid: int | Collection[int] | None = None, postmaster: int | None = None) -> None:
        self.pgid = pgid
        self.postmaster = postmaster
        self.others = 0.0
        self.seconds: dict[str, float] = {}  # CPU seconds used meanwhile: wrk (and this script), server, PostgreSQL

    def __enter__(self) -> CpuWatch:
        self._start = (*system_ticks(), tick_parts(self.pgid, self.postmaster))
        return self

    def __exit__(self, *exc: object) -> None:
        busy0, total0, parts0 = self._start
        busy1, total1 = system_ticks()
        parts1 = tick_parts(self.pgid, self.postmaster)
        self.seconds = {key: (parts1[key] - parts0[key]) / TICKS for key in parts1}
        ours = sum(parts1.values()) - sum(parts0.values())
        self.others = max(0.0, ((busy1 - busy0) - ours) / max(1, total1 - total0))


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
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds meanwhile: wrk, server, PostgreSQL
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
    label: str,
    server: Server,
    path: str,
    duration: int,
    script: Path | None = None,
    args: tuple[str, ...] = (),
    postmaster: int | None = None,
) -> WrkResult:
    return run_wrks(label, [server], path, duration, script, [args], postmaster)


def run_wrks(
    label: str,
    servers: list[Server],
    path: str,
    duration: int,
    script: Path | None = None,
    args: list[tuple[str, ...]] | None = None,
    postmaster: int | None = None,
) -> WrkResult:
    """One wrk per server, all at once, sharing out the threads and connections (wrk drives one URL):
    one result, with rates and counts added and p50/p99 the worse of the runs."""
    threads, connections = max(1, THREADS // len(servers)), CONNECTIONS // len(servers)
    commands = []
    for server, extra in zip(servers, args or [()] * len(servers), strict=True):
        command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
        if script is not None:
            command += ["-s", str(script)]
        command.append(f"{server.url}{path}")
        if extra:
            command += ["--", *extra]
        commands.append(command)
    log(f"  wrk {label}: {duration} s ...")
    groups = [server.process.pid for server in servers if server.process]
    with CpuWatch(groups, postmaster) as watch:
        running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
        outputs = [process.communicate(timeout=duration + 60) for process in running]
    for process, (stdout, stderr) in zip(running, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed ({process.returncode}): {stderr or stdout}")
    result = combined(label, [parse_wrk(label, stdout) for stdout, _ in outputs])
    result.others = watch.others
    result.cpu = watch.seconds
    return result


def combined(label: str, results: list[WrkResult]) -> WrkResult:
    """Concurrent wrk runs as one: requests, rates and status counts added, latencies the worse."""
    if len(results) == 1:
        return results[0]
    total = WrkResult(label=label, raw="\n".join(r.raw for r in results))
    total.requests = sum(r.requests for r in results)
    total.seconds = max(r.seconds for r in results)
    total.rps = sum(r.rps for r in results)
    total.p50_ms = max(r.p50_ms for r in results)
    total.p99_ms = max(r.p99_ms for r in results)
    total.non2xx = sum(r.non2xx for r in results)
    total.socket_errors = added([r.socket_errors for r in results])
    total.status = added([r.status for r in results])
    return total


def added(counts: list[dict[str, int]]) -> dict[str, int]:
    return {key: sum(c.get(key, 0) for c in counts) for key in dict.fromkeys(k for c in counts for k in c)}


# -- the server --------------------------------------------------------------------------------


@contextlib.contextmanager
def serving(db: Path | str, workers: int) -> Iterator[Server]:
    server = Server(db, workers=workers).start()
    try:
        yield server
    finally:
        server.stop()


def wait_for_writes_to_settle(db: Path | str, quiet_seconds: float = 1.0, limit: float = 30.0) -> None:
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


# -- PostgreSQL --------------------------------------------------------------------------------

SCHEMA_PREFIX = "feedback_bench_"
SETTINGS_SHOWN = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_wal_size",
)
SAMPLE_SECONDS = 0.02  # how often the writer sessions are looked at in pg_stat_activity


def pg_connect(url: str) -> Any:
    import psycopg  # only runs with PostgreSQL need it

    return psycopg.connect(url, autocommit=True)


def postmaster_of(conn: Any) -> int | None:
    """The local postmaster's pid (the parent of this connection's backend), or None for a remote server."""
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        parent = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        comm = Path(f"/proc/{parent}/comm").read_text()
    except (OSError, IndexError, ValueError):
        return None
    return parent if comm.startswith("postgres") else None


class Postgres:
    """The PostgreSQL a run measures: a throwaway durable cluster (`--postgres`) or an empty database of
    the operator's (`--db`). Each measurement gets a schema of its own (`fresh`), first on the search_path
    of the URL the servers get, and `drop` removes it again: the database ends as empty as it began."""

    def __init__(self, url: str, cluster: Any = None) -> None:
        self.url = url
        self.cluster = cluster
        self.prefix = f"{SCHEMA_PREFIX}{secrets.token_hex(3)}_"
        self.schemas: dict[str, str] = {}  # URL -> schema
        with contextlib.closing(pg_connect(url)) as conn:
            self.postmaster = postmaster_of(conn)
            self.version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
            self.settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SETTINGS_SHOWN}

    @classmethod
    def throwaway(cls) -> Postgres:
        from tests.postgres import Cluster  # noqa: PLC0415 - only with --postgres

        cluster = Cluster(durable=True).start()
        try:
            url = cluster.create_database("feedback_bench")
            with contextlib.closing(pg_connect(url)) as conn:
                # A bulk load of 10 M rows would otherwise checkpoint at every gigabyte of WAL.
                conn.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
                conn.execute("SELECT pg_reload_conf()")
            return cls(url, cluster)
        except BaseException:
            cluster.stop()
            raise

    @classmethod
    def given(cls, url: str) -> Postgres:
        """The operator's database: refused unless empty (schemas an interrupted run left are dropped)."""
        if "options=" in url:
            raise SystemExit("--db: the URL must not set options= (the benchmark sets the search_path there)")
        with contextlib.closing(pg_connect(url)) as conn:
            leftovers = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (SCHEMA_PREFIX,)
            ).fetchall()
            for (schema,) in leftovers:
                log(f"dropping schema {schema}, left by an interrupted run")
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            tables = conn.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 3"
            ).fetchall()
        if tables:
            raise SystemExit(
                f"--db: the database is not empty ({', '.join(t for (t,) in tables)}, ...): "
                "the benchmark needs an empty database of its own"
            )
        return cls(url)

    def fresh(self, label: str) -> str:
        """A new empty schema; the URL whose connections create and find everything in it."""
        schema = self.prefix + label
        with contextlib.closing(pg_connect(self.url)) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{self.url}{'&' if '?' in self.url else '?'}options={quote(f'-csearch_path={schema},public')}"
        self.schemas[url] = schema
        return url

    def drop(self, url: str) -> None:
        schema = self.schemas.pop(url)
        with contextlib.closing(pg_connect(self.url)) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    def close(self) -> None:
        for url in list(self.schemas):
            self.drop(url)
        if self.cluster is not None:
            self.cluster.stop()

    def describe(self) -> list[str]:
        where = "a throwaway cluster (tests/postgres.py)" if self.cluster else "the database given by --db"
        lines = [
            f"PostgreSQL {self.version}, {where}: "
            + ", ".join(f"{name} {value}" for name, value in self.settings.items())
            + ("" if self.postmaster else "; not on this machine: its CPU time is not in the others column")
        ]
        if self.settings["fsync"] != "on" or self.settings["synchronous_commit"] not in ("on", "remote_apply"):
            lines.append("WARNING: commits are not durable on this server: its ingest figures are not comparable")
        return lines


class SessionSampler:
    """What PostgreSQL saw the app's writer sessions do: pg_stat_activity, every SAMPLE_SECONDS, on a
    thread of its own while the block runs (one cheap query; this script's CPU counts as ours)."""

    QUERY = (
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
        " WHERE application_name = 'feedback-writer' AND datname = current_database()"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: dict[str, int] = dict.fromkeys(SESSION_STATES, 0)
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> SessionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with contextlib.closing(pg_connect(self.url)) as conn:
            while not self._stop.wait(SAMPLE_SECONDS):
                self.rounds += 1
                for state, kind, event in conn.execute(self.QUERY).fetchall():
                    self.counts[session_state(state, kind, event)] += 1

    def report(self) -> str:
        total = sum(self.counts.values())
        if not total:
            return "PostgreSQL's view of the writer session: no samples"
        sessions = round(total / max(1, self.rounds))
        shares = ", ".join(f"{SESSION_STATES[key]} {n / total:.0%}" for key, n in self.counts.items() if n)
        return (
            f"PostgreSQL's view of the {'writer session' if sessions == 1 else f'{sessions} writer sessions'} "
            f"(pg_stat_activity every {SAMPLE_SECONDS * 1000:.0f} ms, {total:,} samples): {shares}"
        )


SESSION_STATES = {
    "idle": "no transaction open (the writer waits for requests)",
    "app": "in a transaction, waiting for the app's next statement",
    "executing": "executing",
    "wal": "flushing WAL at COMMIT",
    "lock": "waiting for the writer lock",
    "rows": "waiting for another transaction's rows",
    "other": "other",
}


def session_state(state: str | None, kind: str | None, event: str | None) -> str:
    if state == "idle":
        return "idle"
    if state == "idle in transaction":
        return "app"
    if state != "active":
        return "other"
    if kind == "Lock":
        return "lock" if event == "advisory" else "rows"
    if event in ("WALSync", "WALWrite", "WALInitSync", "WALInitWrite"):
        return "wal"
    return "executing"


def pg_counters(url: str) -> dict[str, float]:
    """The database's transaction and row counters and the cluster's WAL counters (cumulative)."""
    with contextlib.closing(pg_connect(url)) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        wal = conn.execute("SELECT wal_records, wal_bytes, wal_sync FROM pg_stat_wal").fetchone()
    names = ("commits", "inserted", "updated", "wal_records", "wal_bytes", "wal_syncs")
    return {name: float(value) for name, value in zip(names, (*row, *wal), strict=True)}


def counters_report(before: dict[str, float], after: dict[str, float], stored: int, batches: float) -> str:
    delta = {key: after[key] - before[key] for key in after}
    per = max(1, stored)
    return (
        f"per response stored: {delta['inserted'] / per:.1f} rows inserted, {delta['updated'] / per:.2f} updated, "
        f"{delta['wal_records'] / per:.1f} WAL records, {delta['wal_bytes'] / per / 1024:.1f} KiB of WAL; "
        + (f"{delta['wal_syncs'] / batches:.2f} WAL fsyncs per group commit " if batches else "")
        + "(pg_stat_database, pg_stat_wal: every session of the server, the app's jobs and reads too)"
    )


@dataclass
class PgRun:
    """One PostgreSQL ingest measurement: `processes` servers on one database."""

    processes: int
    ingest: WrkResult
    health: WrkResult | None = None
    stored: int = 0
    counted: dict[str, int] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)  # where the time goes


def bench_ingest_postgres(pg: Postgres, duration: int, workers: int, quiet: float, mix: str) -> list[PgRun]:
    runs = []
    for processes in (1, 2):
        url = pg.fresh(f"ingest{processes}")
        try:
            runs.append(pg_ingest_run(pg, url, processes, duration, workers, quiet, mix))
        finally:
            pg.drop(url)
    return runs


def pg_ingest_run(pg: Postgres, url: str, processes: int, duration: int, workers: int, quiet: float, mix: str) -> PgRun:
    log(f"part 1: ingest on PostgreSQL, {processes} app process{'es' if processes > 1 else ''}")
    make_org(url)
    label = f"POST /responses PG {processes} proc{'s' if processes > 1 else ''}"
    nonces = [(secrets.token_hex(4), mix) for _ in range(processes)]
    wait_for_quiet(quiet)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(serving(url, workers)) for _ in range(processes)]
        for server in servers:
            run_wrk("warm-up", server, "/healthz", 1, postmaster=pg.postmaster)
        before = count_stored(url)
        counters_before = pg_counters(url)
        writer_before = [writer_figures(server) for server in servers]
        with SessionSampler(url) as sampler:
            ingest = run_wrks(label, servers, "", duration, LUA, nonces, pg.postmaster)
        writer_after = [writer_figures(server) for server in servers]
        wait_for_writes_to_settle(url)
        time.sleep(1.0)  # a session passes its statistics to pg_stat_* at most once a second
        counters_after = pg_counters(url)
        run = PgRun(processes, ingest, stored=count_stored(url) - before, counted=rollup_totals(url))
        if processes == 1:
            run.health = run_wrk(
                "GET  /healthz (PG server)", servers[0], "/healthz", duration, postmaster=pg.postmaster
            )
    if processes == 1 and workers == 1:
        run.where = writer_report(writer_before[0], writer_after[0], ingest, duration)
    # /healthz answers for one worker: all group commits are known only with one worker per process.
    batches = sum(
        after["batches"] - before["batches"] for before, after in zip(writer_before, writer_after, strict=True)
    )
    batches = batches if workers == 1 else 0
    run.where += [sampler.report(), counters_report(counters_before, counters_after, run.stored, batches)]
    return run


# -- part 1: ingest ----------------------------------------------------------------------------


def bench_ingest(
    tmp: Path, duration: int, workers: int, quiet: float, mix: str = "typical", pg: Postgres | None = None
) -> list[str]:
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
        ingest = run_wrk(
            "POST /responses SQLite" if pg else "POST /api/v1/responses", server, "", duration, LUA, (nonce, mix)
        )
        writer_after = writer_figures(server)
        wait_for_writes_to_settle(db)
        health_after = run_wrk("GET  /healthz (again)", server, "/healthz", duration)
    stored = count_stored(db) - before
    counted = rollup_totals(db)
    runs = bench_ingest_postgres(pg, duration, workers, quiet, mix) if pg else []
    sqlite_runs = [ingest, *([sqlite_again(db, workers, duration, quiet, mix)] if pg else [])]
    floor = (health.rps + health_after.rps) / 2
    share = ingest.rps / floor if floor else 0.0
    floors = [health.rps, health_after.rps, *(run.health.rps for run in runs if run.health)]
    drift = (max(floors) - min(floors)) / floor if floor else 0.0
    results = [health, ingest, health_after, *(run.ingest for run in runs), *(run.health for run in runs if run.health)]
    results += sqlite_runs[1:]
    width = max(26, *(len(result.label) + 2 for result in results))

    lines = [
        f"Part 1 - ingest: {workers} server worker(s), wrk {THREADS} threads x {CONNECTIONS} connections, "
        f"{duration} s each; other processes used {busy:.0%} of the CPUs just before",
        f"ratings posted: {mix} mix ({'5 %' if mix == 'typical' else '40 %'} at levels 1-2, each opening a "
        "complaint action)",
        "",
    ]
    lines.append(f"{'endpoint':<{width}}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'others':>8}")
    for result in results:
        lines.append(
            f"{result.label:<{width}}{result.rps:>10,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
            f"{result.errors:>8}{result.others:>8.0%}"
        )
    lines.append("(others: the share of the CPUs used by processes other than wrk, the server and this script)")
    if pg:
        lines.append(
            "(PG: PostgreSQL, a fresh database for each; 2 procs: two servers on one database, each driven by "
            f"its own wrk with 1 thread x {CONNECTIONS // 2} connections, rates added, p50/p99 the worse of the two)"
        )
    lines.append("")
    lines.append(
        f"ingest / healthz: {share:.1%} of the mean of both healthz runs  "
        f"(target >= {INGEST_SHARE_TARGET:.0%}: {verdict(share >= INGEST_SHARE_TARGET)})"
    )
    if drift > 0.15:
        lines.append(
            f"WARNING: the {'two' if len(floors) == 2 else len(floors)} healthz runs differ by {drift:.0%}: "
            "the ratio is unreliable - run again on a quiet machine"
        )
    lines.append(
        f"ingest p99: {ingest.p99_ms:.1f} ms  (target <= {INGEST_P99_TARGET_MS:.0f} ms: "
        f"{verdict(ingest.p99_ms <= INGEST_P99_TARGET_MS)})"
    )
    lines += postgres_targets(sqlite_runs, runs)
    if pg:
        lines += ["", *cpu_report(results, width)]
    for result in results:
        if any(result.socket_errors.values()):
            lines.append(f"socket errors {result.label.strip()}: {result.socket_errors}")
    if workers == 1:
        lines += ["", *(["SQLite:"] if pg else []), *writer_report(writer_before, writer_after, ingest, duration)]
    for run in runs:
        lines += ["", f"PostgreSQL, {run.processes} app process{'es' if run.processes > 1 else ''}:", *run.where]
    lines += ["", *accounting(ingest, stored, counted)]
    for run in runs:
        title = f"Accounting (PostgreSQL, {run.processes} app process{'es' if run.processes > 1 else ''}, vs wrk):"
        lines += ["", *accounting(run.ingest, run.stored, run.counted, title)]
    return lines


def cpu_report(results: list[WrkResult], width: int) -> list[str]:
    """CPU time per request answered: what each part costs, which the others column does not skew much."""
    lines = [f"{'CPU per request, us':<{width}}{'server':>10}{'PG':>9}{'wrk':>9}"]
    for result in results:
        per = {key: 1e6 * seconds / max(1, result.requests) for key, seconds in result.cpu.items()}
        lines.append(
            f"{result.label:<{width}}{per.get('server', 0):>10,.0f}{per.get('PostgreSQL', 0):>9,.0f}"
            f"{per.get('wrk', 0):>9,.0f}"
        )
    lines.append(
        "(server: the app's process(es); PG: PostgreSQL's processes, if on this machine; wrk: wrk and this script)"
    )
    return lines


def sqlite_again(db: Path, workers: int, duration: int, quiet: float, mix: str) -> WrkResult:
    """SQLite's ingest once more, after PostgreSQL's: its share is of the mean of SQLite's runs before
    and after, so a change in what else runs on the machine meanwhile tilts it less."""
    log("part 1: ingest on SQLite again")
    wait_for_quiet(quiet)
    with serving(db, workers) as server:
        run_wrk("warm-up", server, "/healthz", 1)
        result = run_wrk("POST /responses SQLite again", server, "", duration, LUA, (secrets.token_hex(4), mix))
        wait_for_writes_to_settle(db)
    return result


def postgres_targets(sqlite_runs: list[WrkResult], runs: list[PgRun]) -> list[str]:
    """PostgreSQL's ingest beside SQLite's in the same run (the mean of SQLite's runs before and after),
    for one and two app processes."""
    if not runs:
        return []
    sqlite = statistics.mean(run.rps for run in sqlite_runs)
    shares = [run.ingest.rps / sqlite if sqlite else 0.0 for run in runs]
    names = [f"{run.processes} process{'es' if run.processes > 1 else ''}" for run in runs]
    spread = (max(r.rps for r in sqlite_runs) - min(r.rps for r in sqlite_runs)) / sqlite if sqlite else 0.0
    return [
        "PostgreSQL / SQLite ingest (the mean of SQLite's two runs): "
        + ", ".join(f"{name} {share:.1%}" for name, share in zip(names, shares, strict=True))
        + f"  (target >= {PG_SHARE_TARGET:.0%}: "
        + ", ".join(verdict(share >= PG_SHARE_TARGET) for share in shares)
        + ")",
        *(
            [f"WARNING: SQLite's two ingest runs differ by {spread:.0%}: the shares are unreliable - run again"]
            if spread > 0.15
            else []
        ),
        "PostgreSQL ingest p99: "
        + ", ".join(f"{name} {run.ingest.p99_ms:.1f} ms" for name, run in zip(names, runs, strict=True))
        + f"  (target <= {PG_P99_TARGET_MS:.0f} ms at {CONNECTIONS} connections: "
        + ", ".join(verdict(run.ingest.p99_ms <= PG_P99_TARGET_MS) for run in runs)
        + ")",
    ]


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


def connect_to(db: Path | str) -> Any:
    """A plain DB-API connection to the SQLite file or (autocommit) the PostgreSQL database."""
    if is_postgres_url(str(db)):
        return pg_connect(str(db))
    return sqlite3.connect(db)


def count_stored(db: Path | str) -> int:
    with contextlib.closing(connect_to(db)) as conn:
        return conn.execute("SELECT count(*) FROM responses").fetchone()[0]


def rollup_tables(conn: Any) -> list[str]:
    """`rollups` and any coarser rollup the schema has grown (rollups_unit_day, ...)."""
    if isinstance(conn, sqlite3.Connection):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    return sorted(
        (name for (name,) in conn.execute(sql).fetchall() if name == "rollups" or name.startswith("rollups_")),
        key=lambda name: (name != "rollups", name),
    )


def rollup_totals(db: Path | str) -> dict[str, int]:
    """n + suspect summed over each rollup table: each must count every stored response once."""
    with contextlib.closing(connect_to(db)) as conn:
        return {
            table: conn.execute(f"SELECT coalesce(sum(n) + sum(suspect), 0) FROM {table}").fetchone()[0]
            for table in rollup_tables(conn)
        }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def accounting(
    ingest: WrkResult, stored: int, counted: dict[str, int], title: str = "Accounting (SQLite file vs wrk):"
) -> list[str]:
    """Compare what wrk saw acknowledged with what the database holds."""
    status = ingest.status
    created, other2xx, failed, sent = status["created"], status["other2xx"], status["failed"], status["sent"]
    answered = created + other2xx + failed
    in_flight = sent - answered
    derived = ingest.requests - ingest.non2xx - other2xx
    lines = [
        title,
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


def build_organisation(db_path: Path | str) -> tuple[BigOrg, list[tuple]]:
    """Units, services, touchpoints and an admin token through the library, like an operator would."""
    plugins = build_plugin_manager(Settings())
    db = open_database(str(db_path))
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


# -- part 2: the synthetic database in PostgreSQL --------------------------------------------------

# The SQLite generator's rows, in PostgreSQL's SQL: the same ids, touchpoints, services, ratings and
# times (only content_hash differs, a hash of n instead of random bytes). Numbers are inlined: setup SQL.
PG_INSERT_CHUNK = """
INSERT INTO responses (id, receipt, touchpoint, unit, service, survey, survey_version, channel, lang, counter,
                       answers, server_time, occurred_at, day, level, satisfied, dissatisfied, score,
                       indicators, flags, content_hash)
SELECT lpad(to_hex(ms / 65536), 8, '0') || '-' || lpad(to_hex(ms % 65536), 4, '0') || '-7'
       || lpad(to_hex(n % 4096), 3, '0') || '-' || lpad(to_hex(32768 + n / 4096 % 16384), 4, '0')
       || '-' || lpad(to_hex(n), 12, '0'),
       {receipt},
       tp.token, tp.unit,
       coalesce(tp.fixed, CASE h3 % 3 WHEN 0 THEN tp.svc_a WHEN 1 THEN tp.svc_b END),
       'csat', {version}, tp.channel, 'vi', tp.counter,
       lv.answers, stamp, stamp, day,
       lv.level, lv.satisfied, lv.dissatisfied, lv.score, lv.indicators, '[]',
       encode(sha256(int8send(n)), 'hex')
FROM (
  SELECT n, ms, h1, h2, h3, hr,
         to_char(to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') || '+00:00' AS stamp,
         to_char(to_timestamp(ms / 1000 + 25200) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
  FROM (
    SELECT n, {start_ms} + (n * {days} / {total}) * 86400000 + 28800000
              + (n * {days} % {total}) * 32400000 / {total} AS ms,
           (n * 2654435761) % 4294967296 AS h1,
           (n * 2246822519) % 4294967296 AS h2,
           (n * 3266489917) % 4294967296 AS h3,
           (n * 668265263) % 656100000000 AS hr
    FROM generate_series({lo}::bigint, {hi}::bigint - 1) AS n
  ) AS seq
) AS src
JOIN bench_slot slot ON slot.i = src.h1 * {slots} / 4294967296
JOIN bench_tp tp ON tp.k = slot.k
JOIN bench_level lv ON lv.pct = src.h2 * 100 / 4294967296 + tp.quality
"""

PG_BUILD_ROLLUPS = """
INSERT INTO rollups (unit, service, touchpoint, day, n, satisfied, dissatisfied, score_n, score_sum,
                     l1, l2, l3, l4, l5, suspect)
SELECT unit, coalesce(service, ''), touchpoint, day, count(level), coalesce(sum(satisfied), 0),
       coalesce(sum(dissatisfied), 0), count(score), coalesce(sum(score), 0),
       count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2), count(*) FILTER (WHERE level = 3),
       count(*) FILTER (WHERE level = 4), count(*) FILTER (WHERE level = 5), 0
FROM responses GROUP BY unit, coalesce(service, ''), touchpoint, day
"""


def pg_receipt_sql() -> str:
    """receipt_sql() for PostgreSQL, whose substr wants an integer position."""
    chars = [f"substr('{RECEIPT_ALPHABET}', (1 + hr / {30**i} % 30)::int, 1)" for i in range(8)]
    return " || ".join([*chars[:4], "'-'", *chars[4:]])


def pg_columns(conn: Any, table: str) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]


def pg_coarser_rollup_sql(conn: Any, table: str) -> str:
    columns = pg_columns(conn, table)
    keys = [c for c in ROLLUP_KEYS if c in columns]
    measures = [c for c in ROLLUP_MEASURES if c in columns]
    return (
        f"INSERT INTO {table} ({', '.join(keys + measures)}) "
        f"SELECT {', '.join(keys)}, {', '.join(f'sum({m})' for m in measures)} FROM rollups "
        f"GROUP BY {', '.join(keys)}"
    )


def build_big_pg(url: str, total: int) -> tuple[BigOrg, dict[str, int]]:
    """`build_big` in PostgreSQL: one INSERT ... SELECT generate_series per million rows with the
    secondary indexes and the comment-search trigger off (the synthetic answers carry no comments),
    then the indexes, the rollups, VACUUM ANALYZE (what autovacuum would do later) and a CHECKPOINT."""
    org, touchpoints = build_organisation(url)
    with contextlib.closing(pg_connect(url)) as conn:
        # Setup, not the measured path: commits need not wait for the WAL flush.
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        version = conn.execute("SELECT max(version) FROM survey_versions WHERE slug = 'csat'").fetchone()[0]
        conn.execute(
            "CREATE TEMP TABLE bench_tp (k INTEGER PRIMARY KEY, token TEXT, unit TEXT, fixed TEXT, svc_a TEXT,"
            " svc_b TEXT, channel TEXT, counter TEXT, quality INTEGER)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_tp VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(k, *row) for k, row in enumerate(touchpoints)],
            )
            conn.execute("CREATE TEMP TABLE bench_slot (i INTEGER PRIMARY KEY, k INTEGER)")
            cursor.executemany("INSERT INTO bench_slot VALUES (%s, %s)", slot_table(len(touchpoints)))
            conn.execute(
                "CREATE TEMP TABLE bench_level (pct INTEGER PRIMARY KEY, level INTEGER, satisfied INTEGER,"
                " dissatisfied INTEGER, score DOUBLE PRECISION, answers TEXT, indicators TEXT)"
            )
            cursor.executemany("INSERT INTO bench_level VALUES (%s, %s, %s, %s, %s, %s, %s)", level_table())
        conn.execute("ANALYZE bench_tp, bench_slot, bench_level")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = 'responses' AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint WHERE conrelid = 'responses'::regclass)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("ALTER TABLE responses DISABLE TRIGGER USER")
        started = time.monotonic()
        for lo in range(0, total, CHUNK):
            hi = min(total, lo + CHUNK)
            conn.execute(
                PG_INSERT_CHUNK.format(
                    receipt=pg_receipt_sql(),
                    slots=TOUCHPOINT_SLOTS,
                    version=int(version),
                    start_ms=START_MS,
                    days=DAYS,
                    total=total,
                    lo=lo,
                    hi=hi,
                )
            )
            log(f"    {hi:>11,} rows  ({hi / (time.monotonic() - started):,.0f} rows/s)")
        conn.execute("ALTER TABLE responses ENABLE TRIGGER USER")
        log(f"    building {len(indexes)} indexes ...")
        for _, definition in indexes:
            conn.execute(definition)
        log("    rollups ...")
        conn.execute(PG_BUILD_ROLLUPS)
        tables = rollup_tables(conn)
        for table in tables[1:]:
            conn.execute(pg_coarser_rollup_sql(conn, table))
        log("    vacuum analyze ...")
        for table in ("responses", *tables):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        rollups = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
        checkpoint(conn)
    return org, rollups


def checkpoint(conn: Any) -> None:
    """Write the load's dirty pages out now, or the checkpointer competes with the server later."""
    import psycopg

    try:
        conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        log("    (no privilege for CHECKPOINT: the load's dirty pages are written out meanwhile)")


def pg_size(url: str) -> int:
    """Bytes of every table in the schema, with its indexes and TOAST."""
    with contextlib.closing(pg_connect(url)) as conn:
        return int(
            conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM pg_class"
                " WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
            ).fetchone()[0]
        )


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


PG_RAW_SCAN = """
SELECT unit, count(level) AS n, sum(satisfied), sum(dissatisfied), count(score), sum(score),
       count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2), count(*) FILTER (WHERE level = 3),
       count(*) FILTER (WHERE level = 4), count(*) FILTER (WHERE level = 5)
FROM responses WHERE unit IN ({marks}) AND day BETWEEN ? AND ? GROUP BY unit
"""


def time_query(db: Path | str, sql: str, units: list[str]) -> tuple[float, int]:
    """One run on a fresh read-only connection (empty SQLite cache; the OS cache is whatever it is;
    PostgreSQL's shared buffers are the server's)."""
    if is_postgres_url(str(db)):
        with contextlib.closing(pg_connect(str(db))) as conn:
            statement = sql.format(marks=",".join("?" * len(units))).replace("?", "%s")
            started = time.perf_counter()
            rows = conn.execute(statement, [*units, YEAR_FROM, YEAR_TO]).fetchall()
            elapsed = (time.perf_counter() - started) * 1000
        return elapsed, sum(row[1] for row in rows)
    uri = Path(db).resolve().as_uri() + "?mode=ro"
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


def bench_size(
    tmp: Path, size: int, requests: int, workers: int, quiet: float, pg: Postgres | None = None
) -> SizeResult:
    if pg is None:
        return measure_size(tmp, size, requests, workers, quiet, tmp / f"big-{size}.db")
    url = pg.fresh(f"reads{size}")
    try:
        return measure_size(tmp, size, requests, workers, quiet, url, pg)
    finally:
        pg.drop(url)


def measure_size(
    tmp: Path, size: int, requests: int, workers: int, quiet: float, db: Path | str, pg: Postgres | None = None
) -> SizeResult:
    result = SizeResult(size=size)
    log(f"part 2: {size:,} responses{' in PostgreSQL' if pg else ''}")
    started = time.monotonic()
    if pg is None:
        org, result.rollups = build_big(Path(db), size)
    else:
        org, result.rollups = build_big_pg(str(db), size)
    result.build_s = time.monotonic() - started
    # The load ran with synchronous=OFF: flush its dirty pages now, or the kernel's writeback
    # competes with the server during the measurement.
    log("    sync ...")
    os.sync()
    result.file_bytes = pg_size(str(db)) if pg else sum(p.stat().st_size for p in tmp.glob(f"{Path(db).name}*"))
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
        postmaster = pg.postmaster if pg else None
        with CpuWatch(pgid, postmaster) as watch_satisfaction:
            samples = timed_gets(client, mix, headers)
        result.satisfaction = percentiles(samples)
        kinds: dict[str, list[float]] = {}
        for (_, params), ms in zip(mix, samples, strict=True):
            kind = "root" if params["unit"] in org.roots else "leaf"
            kinds.setdefault(f"{kind} {params['by']}", []).append(ms)
        result.by_kind = {kind: statistics.median(values) for kind, values in sorted(kinds.items())}
        with CpuWatch(pgid, postmaster) as watch_health:
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
        elapsed, result.raw_n = time_query(db, PG_RAW_SCAN if pg else RAW_SCAN, units)
        result.raw_ms.append(elapsed)
        for table in result.rollups:
            elapsed, _ = time_query(db, ROLLUP_SCAN.replace("{table}", table), units)
            result.rollup_ms.setdefault(table, []).append(elapsed)
    return result


def bench_reads(
    tmp: Path, sizes: list[int], requests: int, workers: int, quiet: float, pg: Postgres | None = None
) -> list[str]:
    results: list[SizeResult] = []
    bytes_per_row = float(PG_BYTES_PER_ROW if pg else BYTES_PER_ROW)
    # A local throwaway cluster's disk can be checked; a database of your own is on its own.
    where = (pg.cluster.root if pg.cluster else None) if pg else tmp
    for size in sizes:
        need = size * bytes_per_row * 1.5 + 2**28
        free = shutil.disk_usage(where).free if where else need
        if free < need:
            results.append(SizeResult(size=size, skipped=f"needs ~{mib(need)}, {mib(free)} free in {where}"))
            log(f"part 2: skipping {size:,}: {results[-1].skipped}")
            continue
        result = bench_size(tmp, size, requests, workers, quiet, pg)
        results.append(result)
        bytes_per_row = result.file_bytes / size
        for path in tmp.glob(f"big-{size}.*"):
            path.unlink()

    lines = [
        f"Part 2 - satisfaction over stored responses{' in PostgreSQL' if pg else ''}: {requests} sequential "
        f"keep-alive requests each (httpx), {YEAR_FROM}..{YEAR_TO}, by={'/'.join(BYS)} over root and leaf units",
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
        f"{'responses':>11}  {'size' if pg else 'file':>9}  {'load s':>6}  {'raw scan ms':>13}  {'rows in scan':>12}"
        "  api n = raw n"
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
    lines.append(
        f" straight in {'PostgreSQL' if pg else 'SQLite'} on a fresh connection, first/second run; "
        "api n: the API's total for it)"
    )
    if pg:
        lines.append("(size: tables with their indexes; load s: rows, indexes, rollups, VACUUM ANALYZE and CHECKPOINT)")
    lines.append("")
    target = PG_SATISFACTION_P95_TARGET_MS if pg else SATISFACTION_P95_TARGET_MS
    at_target = [r for r in results if not r.skipped and r.size >= TARGET_SIZE]
    if at_target:
        p95 = at_target[-1].satisfaction[1]
        lines.append(
            f"satisfaction p95 at {at_target[-1].size:,}: {p95:.1f} ms  "
            f"(target <= {target:.0f} ms at 10 M: {verdict(p95 <= target)})"
        )
    else:
        lines.append(f"satisfaction p95 target (<= {target:.0f} ms at 10 M): not measured in this run")
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
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument(
        "--postgres",
        action="store_true",
        help="also measure PostgreSQL, on a throwaway durable cluster (Debian's postgresql package)",
    )
    backend.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="also measure PostgreSQL, on this empty database (postgresql://...); it is left empty again",
    )
    args = parser.parse_args(argv)
    duration = args.duration or (3 if args.quick else 10)
    sizes = [
        int(float(s))
        for s in (args.sizes or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")
        if s.strip()
    ]
    if not Path(WRK).exists():
        parser.error("wrk is not installed (apt-get install wrk)")
    if args.db is not None and not is_postgres_url(args.db):
        parser.error("--db takes a postgresql:// URL (SQLite is measured in a temporary file anyway)")

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        pg = None
        if args.postgres or args.db:
            log("starting a throwaway PostgreSQL cluster ..." if args.postgres else "checking the database ...")
            pg = Postgres.throwaway() if args.postgres else Postgres.given(args.db)
            stack.callback(pg.close)
        report = [*environment(args.workers), *(pg.describe() if pg else []), ""]
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="feedback-bench-", dir="/tmp")))
        if not args.skip_ingest:
            report += [*bench_ingest(tmp, duration, args.workers, args.quiet_wait, args.mix, pg), ""]
        if not args.skip_reads:
            report += [*bench_reads(tmp, sizes, args.requests, args.workers, args.quiet_wait, pg), ""]
    report.append(f"total {time.monotonic() - started:.0f} s; load average at end: {load_average()}")
    text = "\n".join(report) + "\n"
    print(text, end="")
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
