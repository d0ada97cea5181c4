"""The figures behind the manager dashboard, the unit page and the response list (no web code).

The dashboard and the unit page read rollups only (unit × day, unit × day × service × touchpoint,
indicators, and the hourly heatmap rollup), so their cost does not grow with the number of
responses. Only the response list reads `responses`, a page of 50 at a time through the
(unit, day) index, with comment search through the `comment_search` FTS5 table.
"""

from __future__ import annotations

import heapq
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback.catalog import Snapshot
from feedback.control_chart import p_chart
from feedback.erasure import erased_fields
from feedback.ingest import normalise_receipt
from feedback.objectives import evaluate, interval, judge, measure, period_of, previous_period_end
from feedback.rates import Tally, exposure_cells, satisfaction, wilson
from feedback.store import Connection, dialect
from feedback.store import actions as action_store
from feedback.store import responses as response_store

WINDOW_DAYS = 30
SPARK_WEEKS = 12
CHART_WEEKS = 26
PAGE_SIZE = 50
# Worst first: the dashboard shows the worst status of a unit's objectives in force.
STATUS_ORDER = ("breached", "at_risk", "insufficient_data", "met")
# Trigram search needs three characters; shorter words (two-character Chinese words) use LIKE.
TRIGRAM = 3


def status_rank(doc: dict[str, Any]) -> int:
    """Where an objective's status stands in `STATUS_ORDER` (worst first; others last)."""
    return STATUS_ORDER.index(doc["status"]) if doc["status"] in STATUS_ORDER else len(STATUS_ORDER)


def worst_status(statuses: list[str]) -> str | None:
    ranked = [s for s in statuses if s in STATUS_ORDER]
    return min(ranked, key=STATUS_ORDER.index) if ranked else None


def _rate(n: int, satisfied: int) -> dict[str, Any]:
    interval = wilson(satisfied, n)
    return {
        "n": n,
        "satisfied": satisfied,
        "rate": satisfied / n if n else None,
        "ci95": list(interval) if interval else None,
    }


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def visible_roots(snapshot: Snapshot, unit: str | None) -> list[str]:
    """The tops of the tree a user sees: their own unit, or (no unit: the whole installation) every root."""
    if unit is not None:
        return [unit] if unit in snapshot.units else []
    return sorted(
        (u.code for u in snapshot.units.values() if u.parent is None), key=lambda code: snapshot.units[code].path
    )


def tree_units(snapshot: Snapshot, roots: list[str]) -> list[str]:
    """Every unit under the roots, in tree order (a parent right before its children)."""
    codes: list[str] = []
    for root in roots:
        codes.extend(snapshot.subtree(root))
    return sorted(set(codes), key=lambda code: snapshot.units[code].path)


def objective_statuses(conn: Connection, snapshot: Snapshot, unit: str, at: date) -> list[dict[str, Any]]:
    """The status document of each of the unit's own objectives in force on a day, each with the last
    complete period beside a period still too young to judge (`previous`) and the open actions the
    objective opened (`open_actions`)."""
    versions = snapshot.objectives_in_force(unit, at.isoformat(), with_ancestors=False)
    docs = []
    for version in sorted(versions, key=lambda v: v.objective):
        doc = evaluate(conn, snapshot, version, at)
        doc["titles"] = version.titles
        doc["previous"] = previous_judgement(conn, snapshot, doc, at)
        docs.append(doc)
    attach_open_actions(conn, docs)
    return docs


def judged(conn: Connection, snapshot: Snapshot, version: Any, at: date) -> dict[str, Any]:
    """What `evaluate` judges for the period containing `at` (status, value, n and the period's days),
    without the p-chart signals it also computes (the dashboard judges every unit's objectives at once)."""
    date_from, date_to, key = period_of(version.period, at)
    doc: dict[str, Any] = {
        "objective": version.objective,
        "unit": version.unit,
        "title": version.title,
        "titles": version.titles,
        "metric": version.metric,
        "indicator": version.indicator,
        "comparator": version.comparator,
        "target": version.target,
        "period": version.period,
        "period_key": key,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "min_n": version.min_n,
        "value": None,
        "n": 0,
        "status": "insufficient_data",
    }
    if version.retired_from is not None and at.isoformat() >= version.retired_from:
        doc["status"] = "retired"
        return doc
    value, n, successes = measure(conn, snapshot, version, date_from, date_to)
    bounds = interval(version, value, n, successes)
    doc.update(value=value, n=n)
    if bounds is not None and n >= version.min_n:
        doc["status"] = judge(version.comparator, version.target, *bounds)
    return doc


def previous_judgement(conn: Connection, snapshot: Snapshot, doc: dict[str, Any], at: date) -> dict[str, Any] | None:
    """The last complete period's judgement, when the current one has too few responses to judge yet
    (two days into a month), by the version in force on that period's last day; else None."""
    if doc["status"] != "insufficient_data":
        return None
    end = previous_period_end(doc["period"], at)
    versions = snapshot.objectives_in_force(doc["unit"], end.isoformat(), with_ancestors=False)
    version = next((v for v in versions if v.objective == doc["objective"]), None)
    return judged(conn, snapshot, version, end) if version is not None else None


def _decoded(text: str | None) -> dict[str, Any]:
    try:
        found = msgspec.json.decode(text) if text else {}
    except msgspec.DecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def attach_open_actions(conn: Connection, docs: list[dict[str, Any]]) -> None:
    """Put on each objective document the open corrective actions it opened (`open_actions`, with the
    data their titles are built from), so a badge is never read without the nonconformity still being
    worked on."""
    found: dict[int, list[dict[str, Any]]] = {}
    for row in action_store.open_for_objectives(conn, [doc["objective"] for doc in docs]):
        row["data"] = _decoded(row["data"])
        found.setdefault(row["objective_id"], []).append(row)
    for doc in docs:
        doc["open_actions"] = found.get(doc["objective"], [])


def dashboard(
    conn: Connection, snapshot: Snapshot, roots: list[str], today: dict[str, date], min_n: int
) -> list[dict[str, Any]]:
    """One row per unit of the tree: last-30-day rate with n and interval, 12 weekly rates for the
    sparkline, the response rate where customers are counted, and the worst objective status.

    `today` gives each unit's local day. Two queries for the figures, whatever the size of the tree,
    and those of each objective in force.
    """
    codes = tree_units(snapshot, roots)
    if not codes:
        return []
    first = min(
        min(today[c] - timedelta(days=WINDOW_DAYS - 1), _monday(today[c]) - timedelta(weeks=SPARK_WEEKS - 1))
        for c in codes
    )
    last = max(today[c] for c in codes)
    own: dict[str, list[tuple[str, int, int]]] = {}
    for unit, day, n, satisfied in response_store.unit_day_rollups(conn, codes, first.isoformat(), last.isoformat()):
        own.setdefault(unit, []).append((day, n, satisfied))
    # Response rates need the 30-day window only, not the sparkline's twelve weeks.
    window_first = min(today[c] - timedelta(days=WINDOW_DAYS - 1) for c in codes)
    exposure: dict[str, list[tuple[str, int, int]]] = {}
    for cell in exposure_cells(conn, codes, window_first.isoformat(), last.isoformat()):
        exposure.setdefault(cell["unit"], []).append((cell["day"], cell["served"], cell["respondents"]))

    def own_figures(member: str, end: date) -> list[int]:
        """[n, satisfied, served, respondents, then n and satisfied of each sparkline week] of one unit."""
        start_s, end_s = (end - timedelta(days=WINDOW_DAYS - 1)).isoformat(), end.isoformat()
        spark_start = _monday(end) - timedelta(weeks=SPARK_WEEKS - 1)
        spark_s = spark_start.isoformat()
        figures = [0] * (4 + 2 * SPARK_WEEKS)
        for day, n, satisfied in own.get(member, ()):
            if start_s <= day <= end_s:
                figures[0] += n
                figures[1] += satisfied
            if spark_s <= day <= end_s:
                index = 4 + 2 * ((date.fromisoformat(day) - spark_start).days // 7)
                figures[index] += n
                figures[index + 1] += satisfied
        for day, served, respondents in exposure.get(member, ()):
            if start_s <= day <= end_s:
                figures[2] += served
                figures[3] += respondents
        return figures

    cache: dict[tuple[str, date], list[int]] = {}
    rows = []
    depth0 = min(snapshot.units[c].path.count("/") for c in codes)
    for code in codes:
        end = today[code]
        start = end - timedelta(days=WINDOW_DAYS - 1)
        spark_start = _monday(end) - timedelta(weeks=SPARK_WEEKS - 1)
        sums = [0] * (4 + 2 * SPARK_WEEKS)
        for member in snapshot.subtree(code):
            figures = cache.get((member, end))
            if figures is None:
                figures = cache[(member, end)] = own_figures(member, end)
            for i, value in enumerate(figures):
                sums[i] += value
        weeks = [(sums[4 + 2 * i], sums[5 + 2 * i]) for i in range(SPARK_WEEKS)]
        window, served, respondents = sums[0:2], sums[2], sums[3]
        start_s, end_s = start.isoformat(), end.isoformat()
        objectives = [
            judged(conn, snapshot, version, end)
            for version in sorted(
                snapshot.objectives_in_force(code, end_s, with_ancestors=False), key=lambda v: v.objective
            )
        ]
        for doc in objectives:
            doc["previous"] = previous_judgement(conn, snapshot, doc, end)
        statuses = [doc["status"] for doc in objectives]
        unit = snapshot.units[code]
        rows.append(
            {
                "code": code,
                "parent": unit.parent,
                "depth": unit.path.count("/") - depth0,
                "from": start_s,
                "to": end_s,
                **_rate(*window),
                "sufficient": window[0] >= min_n,
                "spark": [
                    {"week": (spark_start + timedelta(weeks=i)).isoformat(), "n": n, "rate": s / n if n else None}
                    for i, (n, s) in enumerate(weeks)
                ],
                "served": served or None,
                "response_rate": respondents / served if served else None,
                "objectives": sorted(objectives, key=status_rank),
                "status": worst_status(statuses),
            }
        )
    attach_open_actions(conn, [doc for row in rows for doc in row["objectives"]])
    return rows


@lru_cache(maxsize=4096)
def _offset_minutes(tz: str, day: str) -> int:
    """The unit's UTC offset at local noon of a day (a DST change happens at night)."""
    local = datetime.combine(date.fromisoformat(day), time(12), tzinfo=ZoneInfo(tz))
    offset = local.utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


def heatmap(conn: Connection, snapshot: Snapshot, unit: str, start: str, end: str) -> dict[str, Any]:
    """Counted responses and satisfied ones by local weekday (0 = Monday) × local hour.

    `heatmap_rollups` keeps the local day and the UTC hour; each unit's time zone gives the local hour.
    """
    by_tz: dict[str, list[str]] = {}
    for code in snapshot.subtree(unit):
        by_tz.setdefault(snapshot.units[code].tz, []).append(code)
    cells = [[[0, 0] for _ in range(24)] for _ in range(7)]
    for tz, codes in by_tz.items():
        for day, hour, n, satisfied in response_store.heatmap_cells(conn, codes, start, end):
            local = (hour * 60 + _offset_minutes(tz, day)) // 60 % 24
            cell = cells[date.fromisoformat(day).weekday()][local]
            cell[0] += n or 0
            cell[1] += satisfied or 0
    hours = [h for h in range(24) if any(cells[d][h][0] for d in range(7))]
    first, last = (min(hours), max(hours)) if hours else (8, 17)
    return {
        "hours": list(range(first, last + 1)),
        "cells": [
            [
                {"n": cells[d][h][0], "rate": cells[d][h][1] / cells[d][h][0] if cells[d][h][0] else None}
                for h in range(first, last + 1)
            ]
            for d in range(7)
        ],
        "max_n": max((cells[d][h][0] for d in range(7) for h in range(24)), default=0),
    }


def indicator_profile(conn: Connection, units: list[str], start: str, end: str) -> list[dict[str, Any]]:
    """Mean of each indicator (0-100) over the period."""
    return [
        {"indicator": indicator, "n": n, "mean": total / n if n else None}
        for indicator, n, total in response_store.indicator_sums(conn, units, start, end)
    ]


def by_counter(snapshot: Snapshot, touchpoint_rows: list[dict[str, Any]], min_n: int) -> list[dict[str, Any]]:
    """Touchpoint rows added up by the counter each touchpoint stands at (touchpoints without one left out)."""
    tallies: dict[tuple[str, str], Tally] = {}
    for row in touchpoint_rows:
        touchpoint = snapshot.touchpoints.get(row["key"])
        if touchpoint is None or not touchpoint.counter:
            continue
        tally = tallies.setdefault((touchpoint.unit, touchpoint.counter), Tally())
        tally.add({**row, **{f"l{i}": row["levels"][str(i)] for i in range(1, 6)}, "score_n": 0, "score_sum": 0.0})
    rows = []
    for (unit, counter), tally in sorted(tallies.items()):
        row = tally.as_row(f"{unit}/{counter}", min_n)
        row.update(unit=unit, counter=counter)
        rows.append(row)
    return rows


def unit_page(conn: Connection, snapshot: Snapshot, unit: str, start: date, end: date, min_n: int) -> dict[str, Any]:
    """Everything the unit page shows for the unit's subtree and a period of local days."""
    start_s, end_s = start.isoformat(), end.isoformat()
    units = snapshot.subtree(unit)
    by_unit = satisfaction(conn, snapshot, unit, start_s, end_s, "unit", min_n)
    by_service = satisfaction(conn, snapshot, unit, start_s, end_s, "service", min_n)
    by_touchpoint = satisfaction(conn, snapshot, unit, start_s, end_s, "touchpoint", min_n)
    chart = p_chart(conn, snapshot, unit, end, CHART_WEEKS)
    return {
        "unit": unit,
        "from": start_s,
        "to": end_s,
        "total": by_unit["total"],
        "by_unit": by_unit["rows"],
        "by_service": by_service["rows"],
        "by_touchpoint": by_touchpoint["rows"],
        "by_counter": by_counter(snapshot, by_touchpoint["rows"], min_n),
        "heatmap": heatmap(conn, snapshot, unit, start_s, end_s),
        "p_chart": chart,
        "indicators": indicator_profile(conn, units, start_s, end_s),
        "objectives": objective_statuses(conn, snapshot, unit, end),
    }


# -- the response list --------------------------------------------------------------------------


def comment_text(answers: dict[str, Any]) -> str:
    """The typed text of a response, as the search index holds it (option keys left out)."""
    parts = []
    for key, value in answers.items():
        if isinstance(value, str) and (
            key == "comment" or any(not (c.islower() or c.isdigit() or c == "_") or not c.isascii() for c in value)
        ):
            parts.append(value)
    return "\n".join(parts)


def _fts_query(words: list[str]) -> str:
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def encode_cursor(row: dict[str, Any]) -> str:
    return f"{row['day']}|{row['server_time']}|{row['id']}"


def decode_cursor(cursor: str | None) -> tuple[str, str, str] | None:
    if not cursor:
        return None
    parts = cursor.split("|")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def list_responses(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    start: date,
    end: date,
    *,
    service: str | None = None,
    touchpoint: str | None = None,
    level: int | None = None,
    flagged: bool | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    """A page of the subtree's responses, newest first (local day, then server time, then id).

    Keyset paging: each unit's rows come in index order through (unit, day), at most `limit` + 1
    per unit, merged; the cursor is the last row's (day, server_time, id). A search that is a receipt
    code of a response in the subtree finds that response alone, whatever the period and filters.
    """
    receipt = normalise_receipt(search) if search and not cursor else None
    if receipt is not None:
        found = response_store.with_receipt_in(conn, receipt, snapshot.subtree(unit), response_store.BROWSE_COLUMNS)
        if found:
            return {"items": _listed(conn, found), "next": None}
    words = (search or "").split()
    long_words = [w for w in words if len(w) >= TRIGRAM]
    short_words = [
        "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        for word in words
        if len(word) < TRIGRAM
    ]
    after = decode_cursor(cursor)
    streams = [
        dialect.of(conn).browse_responses(
            conn,
            code,
            start.isoformat(),
            end.isoformat(),
            limit + 1,
            equal={"service": service or None, "touchpoint": touchpoint or None, "level": level},
            flagged=flagged,
            comment_match=_fts_query(long_words) if long_words else None,
            comment_like=short_words,
            before=after,
        )
        for code in snapshot.subtree(unit)
    ]
    merged = heapq.merge(*streams, key=lambda r: (r["day"], r["server_time"], r["id"]), reverse=True)
    items = []
    for row in merged:
        if len(items) == limit + 1:
            break
        items.append(row)
    more = len(items) > limit
    items = _listed(conn, items[:limit])
    return {"items": items, "next": encode_cursor(items[-1]) if more and items else None}


def _listed(conn: Connection, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the response list as shown: the comment out of the answers, the flags decoded, and the
    corrective action each opened, so a bad review leads straight to what is being done."""
    opened = action_store.opened_by(conn, [item["id"] for item in items])
    for item in items:
        answers = msgspec.json.decode(item.pop("answers"))
        item["erased"] = erased_fields(item)
        # An erased comment shows as the page's own word for it, not as the stored marker.
        item["comment"] = "" if "comment" in item["erased"] else comment_text(answers)
        item["flags"] = msgspec.json.decode(item["flags"]) if item["flags"] else []
        item["action"] = opened.get(item["id"])
    return items
