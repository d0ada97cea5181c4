"""Satisfaction rates from rollups: n, satisfied, Wilson 95 % intervals and the minimum-n rule.

Dashboards and the API read rollups only (unit × service × touchpoint × day), never raw responses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, get_args

from feedback.catalog import Snapshot
from feedback.store import Connection
from feedback.store import exposure as exposure_store
from feedback.store import responses as response_store

Grouping = Literal["unit", "service", "touchpoint", "day", "week", "month"]
GROUPINGS: tuple[str, ...] = get_args(Grouping)
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval: honest at small n and near 0 % or 100 %, unlike the normal one."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 % and 100 % the bound is exact; rounding must not pull it inside the observed rate.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def proportion(
    successes: int, n: int, min_n: int | None = None, *, prefix: str = "", rate: str = "rate"
) -> dict[str, Any]:
    """A rate as every row shows it: the share (None without n), its Wilson 95 % interval (a list, or None)
    and, given `min_n`, whether n is enough to judge it; `prefix` names several in one row."""
    interval = wilson(successes, n)
    found: dict[str, Any] = {
        f"{prefix}{rate}": successes / n if n else None,
        f"{prefix}ci95": list(interval) if interval else None,
    }
    if min_n is not None:
        found[f"{prefix}sufficient"] = n >= min_n
    return found


def decimals(value: float | None, scale: float = 100.0, most: int = 4) -> int:
    """How many decimals `value × scale` was written with: at least one, at most `most`.

    A target of 0.9947 is 99.47 %; printing it, or a rate beside it, with one decimal would show
    99.5 % and change the target."""
    if value is None:
        return 1
    text = f"{value * scale:.{most}f}".rstrip("0")  # float noise (99.47000000000001) ends at `most`
    return max(1, len(text.partition(".")[2]))


# The summed rollup columns, in the order the store returns them.
MEASURES = response_store.ROLLUP_MEASURES


def rate_row(key: str | None, sums: Sequence[float], min_n: int) -> dict[str, Any]:
    """One ROW of the contract from summed MEASURES."""
    n, satisfied, dissatisfied, score_n, score_sum, l1, l2, l3, l4, l5, suspect = sums
    return {
        "key": key,
        "n": n,
        "satisfied": satisfied,
        **proportion(satisfied, n, min_n),
        # Beyond the contract: the other honest views of the same responses.
        "dissatisfied": dissatisfied,
        "not_dissatisfied_rate": (n - dissatisfied) / n if n else None,
        "mean_score": score_sum / score_n if score_n else None,
        "levels": {"1": l1, "2": l2, "3": l3, "4": l4, "5": l5},
        "suspect": suspect,
        "raw_n": n + suspect,
    }


@dataclass
class Tally:
    n: int = 0
    satisfied: int = 0
    dissatisfied: int = 0
    score_n: int = 0
    score_sum: float = 0.0
    suspect: int = 0
    levels: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])

    def add(self, row: dict[str, Any]) -> None:
        self.n += row["n"]
        self.satisfied += row["satisfied"]
        self.dissatisfied += row["dissatisfied"]
        self.score_n += row["score_n"]
        self.score_sum += row["score_sum"]
        self.suspect += row["suspect"]
        for i in range(5):
            self.levels[i] += row[f"l{i + 1}"]

    def as_row(self, key: str | None, min_n: int) -> dict[str, Any]:
        return rate_row(
            key,
            (self.n, self.satisfied, self.dissatisfied, self.score_n, self.score_sum, *self.levels, self.suspect),
            min_n,
        )


def week_key(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def bucket_function(by: str, root: str, snapshot: Snapshot) -> Callable[[dict[str, Any]], str | None]:
    """The row key `by` gives a rollup or exposure row (a dict with unit, service, touchpoint and day)."""
    if by == "unit":
        child = child_of(root, snapshot)
        return lambda row: child(row["unit"])
    if by == "service":
        return lambda row: row["service"] or None
    if by == "touchpoint":
        return lambda row: row["touchpoint"]
    if by == "day":
        return lambda row: row["day"]
    if by == "week":
        return lambda row: week_key(row["day"])
    return lambda row: row["day"][:7]


def child_of(root: str, snapshot: Snapshot) -> Callable[[str], str]:
    """Each direct child's whole subtree rolls up into the child; the root's own responses stay under its code."""
    depth = snapshot.units[root].path.count("/")

    def child(unit: str) -> str:
        parts = snapshot.units[unit].path.strip("/").split("/")
        return parts[depth - 1] if len(parts) >= depth else root

    return child


# What the store groups by for each `by`; unit and week are then merged further in Python.
STORE_GROUP = {
    "unit": "unit",
    "service": "service",
    "touchpoint": "touchpoint",
    "day": "day",
    "week": "day",
    "month": "month",
}


def satisfaction(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    by: str,
    min_n: int,
    filters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Rates for a unit's subtree between two local days (inclusive), grouped `by`."""
    units = snapshot.subtree(unit)
    groups = response_store.rollup_groups(conn, units, date_from, date_to, STORE_GROUP[by], filters)
    merge = {"unit": child_of(unit, snapshot), "week": week_key}.get(by)
    sums: dict[str | None, Sequence[float]] = {}
    for group, *measures in groups:
        key = merge(group) if merge else (group or None)
        if key in sums:
            measures = [a + b for a, b in zip(sums[key], measures, strict=True)]
        sums[key] = measures
    total = [sum(column) for column in zip(*sums.values(), strict=True)] if sums else [0] * len(MEASURES)
    rows = [rate_row(key, measures, min_n) for key, measures in sorted(sums.items(), key=lambda kv: kv[0] or "")]
    total_row = rate_row(None, total, min_n)
    add_response_rates(
        conn, units, date_from, date_to, by, bucket_function(by, unit, snapshot), rows, total_row, filters or {}
    )
    return {
        "unit": unit,
        "from": date_from,
        "to": date_to,
        "by": by,
        "min_n": min_n,
        "rows": rows,
        "total": total_row,
    }


def exposure_cells(
    conn: Connection,
    units: list[str],
    date_from: str,
    date_to: str,
    *,
    by_service: bool = False,
    service: str | None = None,
) -> list[dict[str, Any]]:
    """Cells (unit, day[, service]) that have exposure counts: customers served and respondents.

    Respondents count every stored response, suspect ones too (a person still answered), capped at
    the customers served that day so a data-entry slip cannot push a response rate over 100 %.
    Only days with exposure count: a day without counts says nothing about the response rate.
    """
    keyed = by_service or service is not None
    served = exposure_store.served_cells(conn, units, date_from, date_to, keyed, service)
    if not served:
        return []
    answered = response_store.answered_cells(conn, units, date_from, date_to, keyed, service)
    cells = []
    for row in served:
        key, count = tuple(row[:-1]), row[-1] or 0
        cells.append(
            {
                "unit": key[0],
                "service": (key[1] or None) if keyed else None,
                "day": key[-1],
                "served": count,
                "respondents": min(answered.get(key, 0), count),
            }
        )
    return cells


def response_rate(served: int | None, respondents: int) -> float | None:
    return respondents / served if served else None


def add_response_rates(
    conn: Connection,
    units: list[str],
    date_from: str,
    date_to: str,
    by: str,
    bucket: Callable[[dict[str, Any]], str | None],
    rows: list[dict[str, Any]],
    total: dict[str, Any],
    filters: dict[str, str],
) -> None:
    """Put `served` and `response_rate` beside each rate (null where there is no exposure count).

    A touchpoint is not something customers are counted at, so by=touchpoint (or a touchpoint
    filter) leaves both null on the rows; the total still carries the subtree's response rate
    unless a touchpoint filter narrows it.
    """
    for row in (*rows, total):
        row["served"] = None
        row["response_rate"] = None
    if "touchpoint" in filters:
        return
    cells = exposure_cells(conn, units, date_from, date_to, by_service=by == "service", service=filters.get("service"))
    if not cells:
        return
    sums: dict[str | None, list[int]] = {}
    total_served = total_respondents = 0
    for cell in cells:
        total_served += cell["served"]
        total_respondents += cell["respondents"]
        if by != "touchpoint":
            pair = sums.setdefault(bucket(cell), [0, 0])
            pair[0] += cell["served"]
            pair[1] += cell["respondents"]
    for row in rows:
        if row["key"] in sums:
            served, respondents = sums[row["key"]]
            row["served"] = served
            row["response_rate"] = response_rate(served, respondents)
    total["served"] = total_served
    total["response_rate"] = response_rate(total_served, total_respondents)
