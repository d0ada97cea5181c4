"""The scheduler: which jobs there are, and running them in the server or once per `feedback tick`.

The core's jobs come first, then every plugin's (`register_jobs`), then the pruning of the outbox
and of the event log: evaluation before delivery, delivery before pruning. A run is claimed in `job_runs` first, so each
job runs at most once per interval across all worker processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from feedback import actions, audit, audit_seals, dispatch, federation_child, objectives, outbox, retention
from feedback.catalog import Catalog
from feedback.db import Store
from feedback.jobs import Job, JobContext
from feedback.plugins import PluginManager, await_me_maybe, flatten
from feedback.settings import Settings
from feedback.store import Connection
from feedback.store import jobs as job_store

log = logging.getLogger("feedback.jobs")


def collect_jobs(settings: Settings, plugins: PluginManager) -> list[Job]:
    """The core's jobs, then every plugin's, then the outbox's pruning."""
    jobs = [*objectives.jobs(), *actions.jobs(), *retention.jobs(), *federation_child.jobs()]
    jobs.extend(flatten(plugins.hook.register_jobs(settings=settings)))
    jobs.extend(outbox.jobs())
    jobs.extend(dispatch.jobs())
    jobs.extend(audit_seals.jobs())  # last: a day's seal covers what the other jobs changed in it
    names = [job.name for job in jobs]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"job names registered twice: {sorted(duplicates)}")
    return jobs


def _claim(name: str, now: datetime, every: float, force: bool) -> Callable[[Connection], bool]:
    # Slightly under the interval, so a job that ran late is not skipped a whole round.
    not_after = None if force else (now - timedelta(seconds=every * 0.9)).isoformat()
    return lambda conn: job_store.claim_run(conn, name, now.isoformat(), not_after)


async def run_job(job: Job, context: JobContext, *, force: bool = False) -> bool:
    """Run one job if its interval has passed (or `force`); failures are logged, counted and kept."""
    if not await context.store.write(_claim(job.name, context.now, job.every, force)):
        return False
    error_text = None
    try:
        with audit.acting_as(audit.Actor("job", job.name)):  # what the job changes, the log says it did
            await await_me_maybe(job.run(context))
    except Exception as error:  # noqa: BLE001 - one failing job must not stop the others
        if context.store.plugins is not None:
            context.store.plugins.failures.record(f"job:{job.name}", "run", error)
        else:
            log.exception("job %s failed", job.name)
        error_text = f"{type(error).__name__}: {error}"
    finished = datetime.now(UTC).isoformat()
    await context.store.write(lambda conn: job_store.finish_run(conn, job.name, finished, error_text))
    return error_text is None


async def run_all(
    store: Store, settings: Settings, catalog: Catalog, now: datetime | None = None, only: list[str] | None = None
) -> dict[str, bool]:
    """`feedback tick`: every job once, in order, whatever its interval. After each, the events in the
    log are dispatched (what a job logs reaches `track_event` before the next job runs, so one tick
    judges, queues the mails and sends them)."""
    results = {}
    dispatcher = dispatch.Dispatcher(store)
    for job in collect_jobs(settings, store.plugins):
        if only and job.name not in only:
            continue
        snapshot = await store.read(catalog.reload)
        context = JobContext(store, settings, snapshot, now or datetime.now(UTC), catalog)
        results[job.name] = await run_job(job, context, force=True)
        await dispatcher.drain()
    return results


async def run_forever(store: Store, settings: Settings, catalog: Catalog, poll: float = 1.0) -> None:
    """The server's scheduler: check every `poll` seconds which jobs are due."""
    jobs = collect_jobs(settings, store.plugins)
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
