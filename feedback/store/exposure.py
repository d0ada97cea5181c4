"""Exposure counts: customers served and offered a survey, per unit, service and day."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, marks, scalar


def served_total(conn: Connection, units: Sequence[str], day_from: str, day_to: str, service: str | None = None) -> int:
    """Customers served in these units over local days (one service's when given)."""
    return int(
        scalar(
            conn,
            f"SELECT coalesce(sum(served), 0) FROM exposure WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?"
            + (" AND service = ?" if service else ""),
            (*units, day_from, day_to, *([service] if service else [])),
            0,
        )
    )


def has_source(conn: Connection, source: str) -> bool:
    """Whether any exposure row came from `source` (`feedback demo` writes its history as "demo")."""
    return scalar(conn, "SELECT 1 FROM exposure WHERE source = ? LIMIT 1", (source,)) is not None


def service_days(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, services: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows `{service, day, served, offered}` of these units and services over local days."""
    if not units or not services:
        return []
    return all_rows(
        conn,
        f"SELECT service, day, served, offered FROM exposure WHERE unit IN ({marks(units)})"
        f" AND day BETWEEN ? AND ? AND service IN ({marks(services)})",
        (*units, day_from, day_to, *services),
    )


def upsert(
    conn: Connection,
    unit: str,
    service: str,
    day: str,
    served: int,
    offered: int | None,
    source: str,
    updated_at: str,
) -> None:
    """Store the counts of a unit, service ("" for all) and day, replacing earlier ones."""
    conn.execute(
        "INSERT INTO exposure (unit, service, day, served, offered, source, updated_at) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT (unit, service, day) DO UPDATE SET served = excluded.served,"
        " offered = excluded.offered, source = excluded.source, updated_at = excluded.updated_at",
        (unit, service, day, served, offered, source, updated_at),
    )


def listing(conn: Connection, units: Sequence[str], day_from: str, day_to: str) -> list[dict[str, Any]]:
    """Every stored count of these units over local days: unit, service ("" for all), day, served,
    offered, source, updated_at; by day, unit and service."""
    return all_rows(
        conn,
        "SELECT unit, service, day, served, offered, source, updated_at FROM exposure"
        f" WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ? ORDER BY day, unit, service",
        (*units, day_from, day_to),
    )


def served_cells(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, by_service: bool, service: str | None = None
) -> list[tuple[Any, ...]]:
    """(unit, [service,] day, customers served) for every cell with a count."""
    group = "unit, service, day" if by_service else "unit, day"
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(
        f"SELECT {group}, sum(served) FROM exposure WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?"
        + (" AND service = ?" if service is not None else "")
        + f" GROUP BY {group}",
        (*units, day_from, day_to, *([service] if service is not None else [])),
    ).fetchall()
