"""Quality objectives: objectives, their versions and the states judged per period."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar, unique


def unit_of(conn: Connection, objective_id: int) -> str | None:
    """The unit an objective belongs to (for scope checks before anything else is read), or None."""
    return scalar(conn, "SELECT unit FROM objectives WHERE id = ?", (objective_id,))


def latest_version(conn: Connection, objective_id: int) -> dict[str, Any] | None:
    """Title (and `titles`), metric, indicator, comparator, target and period of an objective's newest version."""
    found = first_row(
        conn,
        "SELECT title, titles, metric, indicator, comparator, target, period FROM objective_versions"
        " WHERE objective = ? ORDER BY version DESC LIMIT 1",
        (objective_id,),
    )
    if found is not None:
        found["titles"] = decode_titles(found["titles"])
    return found


def latest_state(conn: Connection, objective_id: int) -> dict[str, Any] | None:
    """status, value and n of an objective's most recently judged period, or None."""
    return first_row(
        conn,
        "SELECT status, value, n FROM objective_states WHERE objective = ? ORDER BY evaluated_at DESC, period DESC"
        " LIMIT 1",
        (objective_id,),
    )


def versions(conn: Connection, objective_id: int | None = None) -> list[dict[str, Any]]:
    """Objective versions with their objective's unit and retirement day, by objective and version
    (only one objective's when given)."""
    where, params = (" WHERE v.objective = ?", (objective_id,)) if objective_id is not None else ("", ())
    found = all_rows(
        conn,
        "SELECT v.*, o.unit, o.retired_from FROM objective_versions v JOIN objectives o ON o.id = v.objective"
        f"{where} ORDER BY v.objective, v.version",
        params,
    )
    for row in found:
        row["titles"] = decode_titles(row.get("titles"))
    return found


def decode_titles(text: str | None) -> dict[str, str] | None:
    """The `titles` column (a JSON object of language -> title) as a dict; None when absent or unreadable."""
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else None


def insert_objective(conn: Connection, unit: str, created_at: str, created_by: str | None) -> int:
    """A new objective of a unit (its versions come separately); returns its id."""
    return int(
        scalar(
            conn,
            "INSERT INTO objectives (unit, created_at, created_by) VALUES (?, ?, ?) RETURNING id",
            (unit, created_at, created_by),
        )
    )


VERSION_COLUMNS = (
    "objective",
    "version",
    "valid_from",
    "title",
    "titles",
    "metric",
    "indicator",
    "service",
    "comparator",
    "target",
    "period",
    "min_n",
    "owner",
    "method",
    "created_at",
    "created_by",
)


def insert_version(conn: Connection, values: dict[str, Any]) -> None:
    """Store a version (VERSION_COLUMNS); the (objective, version) key refuses a second version of the
    same number, so two people saving a change at once cannot both make version n + 1."""
    with unique(
        conn,
        f"id: objective {values['objective']} got a new version at the same moment; reload it and save again",
        "id",
    ):
        conn.execute(
            f"INSERT INTO objective_versions ({', '.join(VERSION_COLUMNS)}) VALUES ({marks(VERSION_COLUMNS)})",
            [values[c] for c in VERSION_COLUMNS],
        )


def retire(conn: Connection, objective_id: int, from_day: str, at: str, by: str | None) -> bool:
    """Retire an objective from a local day, unless it is retired already (one statement); True when it was."""
    cursor = conn.execute(
        "UPDATE objectives SET retired_from = ?, retired_at = ?, retired_by = ? WHERE id = ? AND retired_from IS NULL",
        (from_day, at, by, objective_id),
    )
    return cursor.rowcount == 1


def head(conn: Connection, objective_id: int) -> dict[str, Any] | None:
    """unit, created_at, created_by, retired_from, retired_at and retired_by of an objective, or None."""
    return first_row(
        conn,
        "SELECT unit, created_at, created_by, retired_from, retired_at, retired_by FROM objectives WHERE id = ?",
        (objective_id,),
    )


def version_stamps(conn: Connection, objective_id: int) -> dict[int, dict[str, Any]]:
    """version → {created_at, created_by} of an objective's versions."""
    rows = all_rows(
        conn, "SELECT version, created_at, created_by FROM objective_versions WHERE objective = ?", (objective_id,)
    )
    return {row["version"]: {"created_at": row["created_at"], "created_by": row["created_by"]} for row in rows}


def ids_of(conn: Connection, units: Sequence[str]) -> list[int]:
    """The objectives of these units, by unit and id."""
    if not units:
        return []
    rows = all_rows(conn, f"SELECT id FROM objectives WHERE unit IN ({marks(units)}) ORDER BY unit, id", units)
    return [row["id"] for row in rows]


def states(conn: Connection, objective_id: int) -> list[dict[str, Any]]:
    """period, status and signals (JSON) of every judged period of an objective."""
    return all_rows(conn, "SELECT period, status, signals FROM objective_states WHERE objective = ?", (objective_id,))


def upsert_state(
    conn: Connection,
    objective_id: int,
    period: str,
    status: str,
    value: float | None,
    n: int,
    low: float | None,
    high: float | None,
    signals: str,
    evaluated_at: str,
) -> None:
    """Store the judgement of one period, replacing an earlier one of the same period."""
    conn.execute(
        "INSERT INTO objective_states (objective, period, status, value, n, low, high, signals, evaluated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (objective, period) DO UPDATE SET status = excluded.status,"
        " value = excluded.value, n = excluded.n, low = excluded.low, high = excluded.high,"
        " signals = excluded.signals, evaluated_at = excluded.evaluated_at",
        (objective_id, period, status, value, n, low, high, signals, evaluated_at),
    )
