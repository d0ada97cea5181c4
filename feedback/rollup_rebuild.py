"""Recompute every rollup table from the stored responses: `feedback rebuild-rollups`.

Ingest keeps the rollups response by response (`ingest.add_to_rollups`); anything that writes
`responses` another way (a bulk import, a repair, a restored backup of responses alone) leaves them
behind. This module rebuilds `rollups`, `rollups_unit_day`, `heatmap_rollups` and
`rollup_indicators` with set-based SQL and the same rules as ingest:

- a response with any flag that is not merely informational (`ingest.INFORMATIONAL_FLAGS`) is
  suspect: counted in `suspect`, not in `n` and the other measures, and never in the indicators;
- an upheld appeal adds the `appeal_upheld` flag and moves the response out of the rates
  (`actions._take_out_of_kpis` counts it out with `sign=-1` and in again as suspect). Its indicator
  rows stay behind with nothing in them, so they are rebuilt the same way: a response counts towards
  the existence of an indicator row if it was not suspect when stored, and towards `n` and `sum`
  only while its appeal is not upheld.

The responses are read in chunks (rowid ranges for the whole history, each unit's index range for a
period), each chunk summed into a temporary table; the rollup tables are then filled from those sums.
Everything runs in one `BEGIN IMMEDIATE` transaction: readers keep seeing the old rollups until the
commit, and a running server's writer waits on SQLite's write lock (busy timeout) meanwhile.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from feedback.db import connect_writer
from feedback.errors import InvalidInput
from feedback.ingest import INFORMATIONAL_FLAGS, ROLLUP_MEASURES

# The flag `actions._take_out_of_kpis` adds when an appeal is upheld.
APPEAL_UPHELD = "appeal_upheld"
ROLLUP_TABLES = ("rollups", "rollups_unit_day", "heatmap_rollups", "rollup_indicators")
# Rowids per chunk of a whole-history rebuild: large enough for set-based speed, small enough for
# progress that moves.
CHUNK_ROWS = 100_000
FIRST_DAY, LAST_DAY = "0000-00-00", "9999-99-99"

# (phase, steps done, steps in all, responses read so far)
ProgressCallback = Callable[[str, int, int, int], None]


def _any_flag_but(allowed: list[str]) -> str:
    """SQL: true when `flags` holds a flag outside `allowed` (the common empty list costs no JSON parse)."""
    names = ", ".join(f"'{name}'" for name in sorted(allowed))
    return (
        f"(CASE WHEN flags = '[]' THEN 0 ELSE EXISTS (SELECT 1 FROM json_each(flags) WHERE value NOT IN ({names})) END)"
    )


SUSPECT_NOW = _any_flag_but(list(INFORMATIONAL_FLAGS))
SUSPECT_WHEN_STORED = _any_flag_but([*INFORMATIONAL_FLAGS, APPEAL_UPHELD])
APPEALED = f"(flags != '[]' AND EXISTS (SELECT 1 FROM json_each(flags) WHERE value = '{APPEAL_UPHELD}'))"

# One row per unit × day × service × touchpoint × UTC hour: the finest grain any rollup needs.
_MEASURE_COLUMNS = ", ".join(m + (" REAL" if m == "score_sum" else " INTEGER") for m in ROLLUP_MEASURES)
CREATE_CELLS = f"""CREATE TEMP TABLE rebuild_cells (
    unit TEXT, day TEXT, service TEXT, touchpoint TEXT, hour INTEGER, responses INTEGER,
    {_MEASURE_COLUMNS})"""
CREATE_INDICATOR_CELLS = """CREATE TEMP TABLE rebuild_indicators (
    unit TEXT, day TEXT, service TEXT, touchpoint TEXT, indicator TEXT, n INTEGER, sum REAL)"""

_COUNTED = "NOT suspect"
STAGE_CELLS = f"""
INSERT INTO temp.rebuild_cells
SELECT unit, day, service, touchpoint, hour, count(*),
       count(level) FILTER (WHERE {_COUNTED}),
       coalesce(sum(satisfied) FILTER (WHERE {_COUNTED}), 0),
       coalesce(sum(dissatisfied) FILTER (WHERE {_COUNTED}), 0),
       count(score) FILTER (WHERE {_COUNTED}),
       total(score) FILTER (WHERE {_COUNTED}),
       {", ".join(f"count(*) FILTER (WHERE level = {i} AND {_COUNTED})" for i in range(1, 6))},
       count(*) FILTER (WHERE suspect)
FROM (SELECT unit, day, coalesce(service, '') AS service, touchpoint,
             CAST(substr(occurred_at, 12, 2) AS INTEGER) AS hour,  -- ingest: int(occurred_at[11:13])
             level, satisfied, dissatisfied, score, {SUSPECT_NOW} AS suspect
      FROM {{source}} WHERE {{where}})
GROUP BY unit, day, service, touchpoint, hour
"""
STAGE_INDICATORS = f"""
INSERT INTO temp.rebuild_indicators
SELECT r.unit, r.day, r.service, r.touchpoint, j.key,
       count(*) FILTER (WHERE NOT r.appealed), total(j.value) FILTER (WHERE NOT r.appealed)
FROM (SELECT unit, day, coalesce(service, '') AS service, touchpoint, indicators, {APPEALED} AS appealed
      FROM {{source}}
      WHERE ({{where}}) AND indicators IS NOT NULL AND indicators != '{{{{}}}}' AND NOT {SUSPECT_WHEN_STORED}) AS r,
     json_each(r.indicators) AS j
GROUP BY r.unit, r.day, r.service, r.touchpoint, j.key
"""


def _fill(table: str, keys: tuple[str, ...]) -> str:
    measures = ", ".join(ROLLUP_MEASURES)
    sums = ", ".join(f"sum({m})" for m in ROLLUP_MEASURES)
    key = ", ".join(keys)
    return f"INSERT INTO {table} ({key}, {measures}) SELECT {key}, {sums} FROM temp.rebuild_cells GROUP BY {key}"


FILL = {
    "rollups": _fill("rollups", ("unit", "day", "service", "touchpoint")),
    "rollups_unit_day": _fill("rollups_unit_day", ("unit", "day")),
    "heatmap_rollups": _fill("heatmap_rollups", ("unit", "day", "hour")),
    "rollup_indicators": """INSERT INTO rollup_indicators (unit, day, service, touchpoint, indicator, n, sum)
        SELECT unit, day, service, touchpoint, indicator, sum(n), sum(sum) FROM temp.rebuild_indicators
        GROUP BY unit, day, service, touchpoint, indicator""",
}
# Every unit that has responses, one index seek each (the index on responses (unit, day)).
UNITS_WITH_RESPONSES = """
WITH RECURSIVE u(unit) AS (
    SELECT min(unit) FROM responses
    UNION ALL SELECT (SELECT min(unit) FROM responses WHERE unit > u.unit) FROM u WHERE u.unit IS NOT NULL)
SELECT unit FROM u WHERE unit IS NOT NULL
"""


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


def _chunks(conn: sqlite3.Connection, date_from: str | None, date_to: str | None) -> list[dict[str, Any]]:
    """The table to read, the WHERE clause and its parameters, for each slice of the responses."""
    if date_from is None and date_to is None:
        low, high = conn.execute("SELECT min(rowid), max(rowid) FROM responses").fetchone()
        if low is None:
            return []
        # NOT INDEXED: a rowid range only; left free, the planner may walk the whole (unit, day)
        # index for the GROUP BY order, once per chunk.
        return [
            {
                "source": "responses NOT INDEXED",
                "where": "rowid BETWEEN ? AND ?",
                "params": (start, min(start + CHUNK_ROWS - 1, high)),
            }
            for start in range(low, high + 1, CHUNK_ROWS)
        ]
    bounds = (date_from or FIRST_DAY, date_to or LAST_DAY)
    return [
        {"source": "responses", "where": "unit = ? AND day BETWEEN ? AND ?", "params": (unit, *bounds)}
        for (unit,) in conn.execute(UNITS_WITH_RESPONSES).fetchall()
    ]


def _clear(conn: sqlite3.Connection, date_from: str | None, date_to: str | None) -> None:
    for table in ROLLUP_TABLES:
        if date_from is None and date_to is None:
            conn.execute(f"DELETE FROM {table}")
        else:
            conn.execute(
                f"DELETE FROM {table} WHERE day BETWEEN ? AND ?", (date_from or FIRST_DAY, date_to or LAST_DAY)
            )


def rebuild(
    conn: sqlite3.Connection,
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
    conn.execute("DROP TABLE IF EXISTS temp.rebuild_cells")
    conn.execute("DROP TABLE IF EXISTS temp.rebuild_indicators")
    conn.execute(CREATE_CELLS)
    conn.execute(CREATE_INDICATOR_CELLS)
    chunks = _chunks(conn, date_from, date_to)
    steps = len(chunks) + len(ROLLUP_TABLES)
    report("reading responses", 0, steps, 0)
    staged = 0  # the last rowid of temp.rebuild_cells already added to the summary
    for done, chunk in enumerate(chunks, start=1):
        conn.execute(STAGE_CELLS.format(source=chunk["source"], where=chunk["where"]), chunk["params"])
        conn.execute(STAGE_INDICATORS.format(source=chunk["source"], where=chunk["where"]), chunk["params"])
        last, responses, suspect = conn.execute(
            "SELECT max(rowid), coalesce(sum(responses), 0), coalesce(sum(suspect), 0) FROM temp.rebuild_cells"
            " WHERE rowid > ?",
            (staged,),
        ).fetchone()
        staged = last or staged
        summary.responses += responses
        summary.suspect += suspect
        report("reading responses", done, steps, summary.responses)
    _clear(conn, date_from, date_to)
    for done, table in enumerate(ROLLUP_TABLES, start=len(chunks) + 1):
        summary.tables[table] = conn.execute(FILL[table]).rowcount
        report(f"writing {table}", done, steps, summary.responses)
    conn.execute("DROP TABLE temp.rebuild_cells")
    conn.execute("DROP TABLE temp.rebuild_indicators")
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
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: the GROUP BY sorts stay in memory longer
        conn.execute("BEGIN IMMEDIATE")
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
