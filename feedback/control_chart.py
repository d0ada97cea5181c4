"""The weekly p-chart of a unit's subtree: 3-sigma limits per week and the run-of-eight rule.

A p-chart (Shewhart) separates common-cause week-to-week noise from special causes: a week whose
share falls outside p̄ ± 3√(p̄(1−p̄)/nᵢ), or eight weeks in a row on one side of the centre line,
is unlikely to be chance and deserves a look (ISO 9001 9.1.3 analysis and evaluation).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from feedback.catalog import Snapshot
from feedback.errors import InvalidInput
from feedback.store import Connection
from feedback.store import responses as response_store

# Which share each chart plots: the successes counted from a rollup row, and whether a high share
# is the good side (a bad-review rate is better low).
CHART_METRICS: dict[str, tuple[str, bool]] = {
    "satisfaction": ("satisfied", True),
    "not_dissatisfied": ("not_dissatisfied", True),
    "bad_review_rate": ("dissatisfied", False),
}
RUN_LENGTH = 8
MAX_WEEKS = 156


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def daily_counts(
    conn: Connection, units: list[str], date_from: str, date_to: str, service: str | None = None
) -> dict[str, tuple[int, int, int]]:
    """day -> (n, satisfied, dissatisfied) over the given units, from the rollups."""
    return {
        row["day"]: (row["n"], row["satisfied"], row["dissatisfied"])
        for row in response_store.daily_rollups(conn, units, date_from, date_to, service)
    }


def p_chart(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    end: date,
    weeks: int = 26,
    service: str | None = None,
    metric: str = "satisfaction",
) -> dict[str, Any]:
    """ISO weeks (Monday to Sunday, local days) ending with the week that contains `end`.

    The last week stops at `end`, so a chart drawn for a past day never sees later responses.
    """
    if metric not in CHART_METRICS:
        raise InvalidInput(f"metric: must be one of {list(CHART_METRICS)}", "metric")
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks: must be from 1 to {MAX_WEEKS}", "weeks")
    if unit not in snapshot.units:
        raise InvalidInput(f"unit: no unit {unit!r}", "unit")
    column, high_is_good = CHART_METRICS[metric]
    last_monday = end - timedelta(days=end.weekday())
    first_monday = last_monday - timedelta(weeks=weeks - 1)
    counts = daily_counts(conn, snapshot.subtree(unit), first_monday.isoformat(), end.isoformat(), service)

    rows: list[dict[str, Any]] = []
    for i in range(weeks):
        monday = first_monday + timedelta(weeks=i)
        sunday = min(monday + timedelta(days=6), end)
        n = x = 0
        day = monday
        while day <= sunday:
            day_n, satisfied, dissatisfied = counts.get(day.isoformat(), (0, 0, 0))
            n += day_n
            x += {"satisfied": satisfied, "dissatisfied": dissatisfied, "not_dissatisfied": day_n - dissatisfied}[
                column
            ]
            day += timedelta(days=1)
        rows.append(
            {
                "week": week_label(monday),
                "from": monday.isoformat(),
                "to": sunday.isoformat(),
                "n": n,
                "x": x,
                "p": x / n if n else None,
                "lcl": None,
                "ucl": None,
            }
        )

    total_n = sum(row["n"] for row in rows)
    centre = sum(row["x"] for row in rows) / total_n if total_n else None
    signals: list[dict[str, Any]] = []
    if centre is not None:
        for row in rows:
            if not row["n"]:
                continue
            sigma = math.sqrt(centre * (1 - centre) / row["n"])
            row["lcl"] = max(0.0, centre - 3 * sigma)
            row["ucl"] = min(1.0, centre + 3 * sigma)
            if row["p"] < row["lcl"]:
                signals.append(_signal("beyond_limits", row["week"], "below", high_is_good))
            elif row["p"] > row["ucl"]:
                signals.append(_signal("beyond_limits", row["week"], "above", high_is_good))
        signals.extend(_runs(rows, centre, high_is_good))
    signals.sort(key=lambda s: (s["week"], s["rule"]))
    return {
        "unit": unit,
        "metric": metric,
        "service": service,
        "from": first_monday.isoformat(),
        "to": end.isoformat(),
        "centre": centre,
        "weeks": rows,
        "signals": signals,
    }


def _signal(rule: str, week: str, side: str, high_is_good: bool) -> dict[str, Any]:
    # `adverse`: the side that means worse service (low satisfaction, high bad-review rate).
    return {"rule": rule, "week": week, "side": side, "adverse": (side == "below") == high_is_good}


def _runs(rows: list[dict[str, Any]], centre: float, high_is_good: bool) -> list[dict[str, Any]]:
    """One signal per run, at its eighth week; empty weeks are skipped, a point on the centre ends a run."""
    found = []
    side, length = None, 0
    for row in rows:
        if not row["n"]:
            continue
        here = "above" if row["p"] > centre else "below" if row["p"] < centre else None
        length = length + 1 if here is not None and here == side else (1 if here else 0)
        side = here
        if length == RUN_LENGTH:
            found.append(_signal("run_of_eight", row["week"], side, high_is_good))
    return found
