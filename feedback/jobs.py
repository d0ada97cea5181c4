"""Periodic work: objective evaluation, deadlines, effectiveness checks, deliveries, digests, pruning.

A `Job` runs every `every` seconds inside the server (at most once per interval across all worker
processes: a run is claimed in `job_runs` first) and once per `feedback tick`, which cron may call
and which takes `--now` so a missed day can be caught up. Jobs must be idempotent: everything they
open or send is keyed, so a second run finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # plugins import this module while the plugin manager is still loading
    from feedback.catalog import Catalog, Snapshot
    from feedback.db import Store
    from feedback.settings import Settings

log = logging.getLogger("feedback.jobs")


@dataclass(frozen=True)
class JobContext:
    store: Store
    settings: Settings
    snapshot: Snapshot
    now: datetime  # aware, UTC
    catalog: Catalog | None = None


@dataclass(frozen=True)
class Job:
    name: str
    every: float  # seconds between runs in the server
    run: Callable[[JobContext], Any]  # may return an awaitable


def collect_jobs(settings: Settings) -> list[Job]:
    """The core's jobs, then every plugin's, then the outbox's pruning: evaluation before delivery,
    delivery before pruning."""
    from feedback import actions, objectives, outbox, plugins  # the modules that own the work

    jobs = [*objectives.jobs(), *actions.jobs()]
    jobs.extend(plugins.flatten(plugins.call_isolated("register_jobs", settings=settings)))
    jobs.extend(outbox.jobs())
    names = [job.name for job in jobs]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"job names registered twice: {sorted(duplicates)}")
    return jobs


def _claim(name: str, now: datetime, every: float, force: bool) -> Callable[[sqlite3.Connection], bool]:
    def claim(conn: sqlite3.Connection) -> bool:
        conn.execute("INSERT OR IGNORE INTO job_runs (name) VALUES (?)", (name,))
        if force:
            conn.execute(
                "UPDATE job_runs SET last_started_at = ?, runs = runs + 1 WHERE name = ?", (now.isoformat(), name)
            )
            return True
        # Slightly under the interval, so a job that ran late is not skipped a whole round.
        cutoff = (now - timedelta(seconds=every * 0.9)).isoformat()
        return (
            conn.execute(
                "UPDATE job_runs SET last_started_at = ?, runs = runs + 1"
                " WHERE name = ? AND (last_started_at IS NULL OR last_started_at <= ?)",
                (now.isoformat(), name, cutoff),
            ).rowcount
            == 1
        )

    return claim


async def run_job(job: Job, context: JobContext, *, force: bool = False) -> bool:
    """Run one job if its interval has passed (or `force`); failures are logged, counted and kept."""
    from feedback import plugins

    if not await context.store.write(_claim(job.name, context.now, job.every, force)):
        return False
    error_text = None
    try:
        await plugins.await_me_maybe(job.run(context))
    except Exception as error:  # noqa: BLE001 - one failing job must not stop the others
        plugins.failures.record(f"job:{job.name}", "run", error)
        error_text = f"{type(error).__name__}: {error}"
    finished = datetime.now(UTC).isoformat()
    await context.store.write(
        lambda conn: conn.execute(
            "UPDATE job_runs SET last_finished_at = ?, last_error = ? WHERE name = ?", (finished, error_text, job.name)
        )
    )
    return error_text is None


async def run_all(
    store: Store, settings: Settings, catalog: Catalog, now: datetime | None = None, only: list[str] | None = None
) -> dict[str, bool]:
    """`feedback tick`: every job once, in order, whatever its interval."""
    results = {}
    for job in collect_jobs(settings):
        if only and job.name not in only:
            continue
        snapshot = await store.read(catalog.reload)
        context = JobContext(store, settings, snapshot, now or datetime.now(UTC), catalog)
        results[job.name] = await run_job(job, context, force=True)
    return results


async def run_forever(store: Store, settings: Settings, catalog: Catalog, poll: float = 1.0) -> None:
    """The server's scheduler: check every `poll` seconds which jobs are due."""
    jobs = collect_jobs(settings)
    next_due = {job.name: 0.0 for job in jobs}
    loop = asyncio.get_running_loop()
    while True:
        for job in jobs:
            if loop.time() < next_due[job.name]:
                continue
            next_due[job.name] = loop.time() + job.every
            try:
                snapshot = await store.read(catalog.reload) if catalog.needs_reload() else catalog.snapshot
                await run_job(job, JobContext(store, settings, snapshot, datetime.now(UTC), catalog))
            except Exception:  # noqa: BLE001 - the scheduler must outlive a bad round
                log.exception("job %s could not run", job.name)
        await asyncio.sleep(poll)


def job_status(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute("SELECT * FROM job_runs ORDER BY name")]
