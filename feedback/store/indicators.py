"""Indicators defined by an administrator, and every indicator's figures per unit and period."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks

VALUE_COLUMNS = ("indicator", "unit", "period", "first_day", "last_day", "numerator", "denominator")


def definitions(conn: Connection) -> list[dict[str, Any]]:
    """Every defined indicator: key, names, direction, unit_of_measure (JSON text), created_at, created_by."""
    return all_rows(
        conn, "SELECT key, names, direction, unit_of_measure, created_at, created_by FROM indicators ORDER BY key"
    )


def insert_definition(
    conn: Connection,
    key: str,
    names: str,
    direction: str,
    unit_of_measure: str | None,
    created_at: str,
    created_by: str | None,
) -> None:
    """A new definition (a key taken is refused by the primary key)."""
    conn.execute(
        "INSERT INTO indicators (key, names, direction, unit_of_measure, created_at, created_by) VALUES (?,?,?,?,?,?)",
        (key, names, direction, unit_of_measure, created_at, created_by),
    )


def value(conn: Connection, indicator: str, unit: str, period: str) -> dict[str, Any] | None:
    """One stored figure (every column of VALUE_COLUMNS), or None."""
    return first_row(
        conn,
        f"SELECT {', '.join(VALUE_COLUMNS)} FROM indicator_values WHERE indicator = ? AND unit = ? AND period = ?",
        (indicator, unit, period),
    )


def upsert_value(conn: Connection, row: dict[str, Any], source: str, at: str) -> None:
    """Store a figure, replacing the one stored for the same indicator, unit and period."""
    conn.execute(
        "INSERT INTO indicator_values (indicator, unit, period, first_day, last_day, numerator, denominator,"
        " source, updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (indicator, unit, period) DO UPDATE SET"
        " numerator = excluded.numerator, denominator = excluded.denominator, source = excluded.source,"
        " updated_at = excluded.updated_at",
        (*(row[name] for name in VALUE_COLUMNS), source, at),
    )


def values_within(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, indicator: str | None = None
) -> list[dict[str, Any]]:
    """The figures of these units whose whole period lies between two days (one indicator's, or all),
    with updated_at and source; by indicator, unit and first day."""
    if not units:
        return []
    return all_rows(
        conn,
        f"SELECT {', '.join(VALUE_COLUMNS)}, source, updated_at FROM indicator_values"
        f" WHERE unit IN ({marks(units)}) AND first_day >= ? AND last_day <= ?"
        + (" AND indicator = ?" if indicator else "")
        + " ORDER BY indicator, unit, first_day, last_day DESC",
        (*units, day_from, day_to, *([indicator] if indicator else [])),
    )


def values_starting(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, indicator: str
) -> list[dict[str, Any]]:
    """One indicator's figures of these units whose period begins between two days, with updated_at and
    source; by unit and first day."""
    if not units:
        return []
    return all_rows(
        conn,
        f"SELECT {', '.join(VALUE_COLUMNS)}, source, updated_at FROM indicator_values"
        f" WHERE unit IN ({marks(units)}) AND first_day BETWEEN ? AND ? AND indicator = ?"
        " ORDER BY unit, first_day, last_day DESC",
        (*units, day_from, day_to, indicator),
    )
