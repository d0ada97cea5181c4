"""Recompute every rollup table from the stored responses: `feedback rebuild-rollups`.

Ingest keeps the rollups response by response (`store.responses.add_to_rollups`); anything that writes
`responses` another way (a bulk import, a repair, a restored backup of responses alone) leaves them
behind. This module rebuilds `rollups`, `rollups_unit_day`, `heatmap_rollups` and
`rollup_indicators` with set-based SQL and the same rules as ingest:

- a response with any flag that is not merely informational (`models.INFORMATIONAL_FLAGS`) is
  suspect: counted in `suspect`, not in `n` and the other measures, and never in the indicators;
- an upheld appeal adds the `appeal_upheld` flag and moves the response out of the rates
  (`actions._take_out_of_kpis` counts it out with `sign=-1` and in again as suspect). Its indicator
  rows stay behind with nothing in them, so they are rebuilt the same way: a response counts towards
  the existence of an indicator row if it was not suspect when stored, and towards `n` and `sum`
  only while its appeal is not upheld.

The responses are read in chunks (rowid ranges for the whole history, each unit's index range for a
period), each chunk summed into a temporary table; the rollup tables are then filled from those sums.
Everything runs in one `BEGIN IMMEDIATE` transaction: readers keep seeing the old rollups until the
commit, and a running server's writer waits on SQLite's write lock (busy timeout) meanwhile. The SQL
is SQLite's own (JSON flags, FILTER, temporary tables, rowid ranges), so it lives in
`feedback.store.dialect`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from feedback.db import connect_writer
from feedback.errors import InvalidInput
from feedback.store import Connection, dialect
from feedback.store import responses as response_store

# Rowids per chunk of a whole-history rebuild: large enough for set-based speed, small enough for
# progress that moves.
CHUNK_ROWS = 100_000

# (phase, steps done, steps in all, responses read so far)
ProgressCallback = Callable[[str, int, int, int], None]


@dataclass
class Summary:
    """What a rebuild did: the period, the responses read and how they counted, rows per table."""

    date_from: str | None
    date_to: str | None
    responses: int = 0
    suspect: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.date_from,
            "to": self.date_to,
            "responses": self.responses,
            "counted": self.responses - self.suspect,
            "suspect": self.suspect,
            "rows": self.tables,
            "seconds": round(self.seconds, 3),
        }


def check_period(date_from: str | None, date_to: str | None) -> None:
    """Both bounds are local days (YYYY-MM-DD), `from` not after `to`; InvalidInput names the bad one."""
    for name, value in (("from", date_from), ("to", date_to)):
        if value is None:
            continue
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{name}: not a day (YYYY-MM-DD): {value!r}", name) from None
        if parsed.isoformat() != value:
            raise InvalidInput(f"{name}: write the day as YYYY-MM-DD, not {value!r}", name)
    if date_from and date_to and date_from > date_to:
        raise InvalidInput(f"to: {date_to} is before from: {date_from}", "to")


def rebuild(
    conn: Connection,
    date_from: str | None = None,
    date_to: str | None = None,
    progress: ProgressCallback | None = None,
) -> Summary:
    """Rebuild every rollup table (only the days `date_from`..`date_to` when given) inside the caller's
    transaction, which should be `BEGIN IMMEDIATE` so no response arrives between the read and the fill."""
    check_period(date_from, date_to)
    started = time.monotonic()
    summary = Summary(date_from, date_to)
    report = progress or (lambda *_: None)
    dialect.of(conn).rebuild_begin(conn)
    chunks = dialect.of(conn).rebuild_chunks(conn, date_from, date_to, CHUNK_ROWS)
    steps = len(chunks) + len(response_store.ROLLUP_TABLES)
    report("reading responses", 0, steps, 0)
    staged = 0  # the last staged cell already added to the summary
    for done, chunk in enumerate(chunks, start=1):
        staged, responses, suspect = dialect.of(conn).rebuild_stage(conn, chunk, staged)
        summary.responses += responses
        summary.suspect += suspect
        report("reading responses", done, steps, summary.responses)
    response_store.clear_rollups(conn, date_from, date_to)
    for done, table in enumerate(response_store.ROLLUP_TABLES, start=len(chunks) + 1):
        summary.tables[table] = dialect.of(conn).rebuild_fill(conn, table)
        report(f"writing {table}", done, steps, summary.responses)
    dialect.of(conn).rebuild_end(conn)
    summary.seconds = time.monotonic() - started
    return summary


def rebuild_file(
    path: str, date_from: str | None = None, date_to: str | None = None, progress: ProgressCallback | None = None
) -> Summary:
    """Rebuild on a database file in one transaction, on a writer connection of its own (WAL, FULL sync,
    busy timeout), so it queues behind a running server's writer and the server's behind it."""
    check_period(date_from, date_to)
    conn = connect_writer(path)
    try:
        dialect.of(conn).large_cache(conn)  # the GROUP BY sorts stay in memory longer
        dialect.of(conn).begin_write(conn)  # the write lock (cluster-wide on PostgreSQL) from the start
        try:
            summary = rebuild(conn, date_from, date_to, progress)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return summary
    finally:
        conn.close()
