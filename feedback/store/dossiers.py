"""Dossiers (cases) by reference: what a one-stop or customs system sends, and the counts read from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from feedback.store import Connection, all_rows, marks

COLUMNS = ("ref", "unit", "service", "received", "due", "returned", "status", "channel")
# Enough references in one IN list on both backends, few enough that a batch takes a handful of reads.
CHUNK = 500


def by_refs(conn: Connection, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored dossiers among these references, by reference (every column of COLUMNS)."""
    wanted = list(dict.fromkeys(refs))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for row in all_rows(conn, f"SELECT {', '.join(COLUMNS)} FROM cases WHERE ref IN ({marks(chunk)})", chunk):
            found[row["ref"]] = row
    return found


def upsert(conn: Connection, rows: Sequence[dict[str, Any]], source: str, at: str) -> None:
    """Store dossiers under their references, replacing what was stored (the creation time stays)."""
    conn.executemany(
        "INSERT INTO cases (ref, unit, service, received, due, returned, status, channel, source, created_at,"
        " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (ref) DO UPDATE SET unit = excluded.unit,"
        " service = excluded.service, received = excluded.received, due = excluded.due,"
        " returned = excluded.returned, status = excluded.status, channel = excluded.channel,"
        " source = excluded.source, updated_at = excluded.updated_at",
        [(*(row[name] for name in COLUMNS), source, at, at) for row in rows],
    )


def returned_counts(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, service: str | None = None
) -> list[dict[str, Any]]:
    """Returned dossiers due between two local days, per unit, service and month of the due day:
    `{unit, service, month, on_time, late}` (on time: returned on or before the due day)."""
    if not units:
        return []
    return all_rows(
        conn,
        "SELECT unit, service, substr(due, 1, 7) AS month,"
        " sum(CASE WHEN returned <= due THEN 1 ELSE 0 END) AS on_time,"
        " sum(CASE WHEN returned > due THEN 1 ELSE 0 END) AS late"
        f" FROM cases WHERE unit IN ({marks(units)}) AND due BETWEEN ? AND ?"
        " AND status = 'returned' AND returned IS NOT NULL"
        + (" AND service = ?" if service else "")
        + " GROUP BY unit, service, substr(due, 1, 7)",
        (*units, day_from, day_to, *([service] if service else [])),
    )


def open_counts(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, service: str | None = None
) -> list[dict[str, Any]]:
    """Open dossiers due between two local days, per unit, service and due day: `{unit, service, due, n}`
    (whether each is overdue depends on the unit's today, which the caller knows)."""
    if not units:
        return []
    return all_rows(
        conn,
        "SELECT unit, service, due, count(*) AS n"
        f" FROM cases WHERE unit IN ({marks(units)}) AND due BETWEEN ? AND ? AND status = 'open'"
        + (" AND service = ?" if service else "")
        + " GROUP BY unit, service, due",
        (*units, day_from, day_to, *([service] if service else [])),
    )


def rated(conn: Connection, units: Sequence[str], day_from: str, day_to: str) -> list[dict[str, Any]]:
    """The ratings of these units given between two local days whose case reference names a stored dossier:
    `{satisfied, flags, unit, due, returned, status, rated_at}` per response (the dossier's unit, due and
    return days; the rating's unit)."""
    if not units:
        return []
    return all_rows(
        conn,
        "SELECT r.satisfied AS satisfied, r.flags AS flags, c.unit AS unit, c.due AS due,"
        " c.returned AS returned, c.status AS status, r.unit AS rated_at"
        " FROM responses r JOIN cases c ON c.ref = r.case_ref"
        f" WHERE r.unit IN ({marks(units)}) AND r.day BETWEEN ? AND ?"
        " AND r.case_ref IS NOT NULL AND r.satisfied IS NOT NULL",
        (*units, day_from, day_to),
    )
