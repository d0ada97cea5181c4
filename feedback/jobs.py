"""Periodic work: objective evaluation, deadlines, effectiveness checks, deliveries, digests, pruning.

A `Job` runs every `every` seconds inside the server (at most once per interval across all worker
processes: a run is claimed in `job_runs` first) and once per `feedback tick`, which cron may call
and which takes `--now` so a missed day can be caught up. Jobs must be idempotent: everything they
open or send is keyed, so a second run finds nothing left to do. This module holds what a job is
(the core's modules and plugins build on it); `feedback.scheduler` collects and runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedback.catalog import Catalog, Snapshot
    from feedback.db import Store
    from feedback.settings import Settings


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
