"""Second entries of paper forms with other answers than the stored ones, kept for a person to decide
(`paper_entry_conflicts`; the domain rules are in `feedback.paper_entry`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks

COLUMNS = (
    "id",
    "digest",
    "serial",
    "response_id",
    "unit",
    "answers",
    "occurred_on",
    "channel",
    "contact",
    "source",
    "entered_by",
    "entered_at",
    "status",
    "resolved_by",
    "resolved_at",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM paper_entry_conflicts"
_NEW = tuple(c for c in COLUMNS if c not in ("id", "status", "resolved_by", "resolved_at"))


def keep(conn: Connection, entry: dict[str, Any]) -> dict[str, Any]:
    """Keep a second entry (a dict of the columns but id, status and the resolution) unless the same one
    (its `digest`) is kept already; returns {"id", "status"} of the row that holds it. One statement
    decides, so two nodes keeping the same entry at once keep it once."""
    found = conn.execute(
        f"INSERT INTO paper_entry_conflicts ({', '.join(_NEW)}) VALUES ({marks(_NEW)})"
        " ON CONFLICT (digest) DO NOTHING RETURNING id, status",
        tuple(entry[c] for c in _NEW),
    ).fetchone()
    if found is not None:
        return {"id": found[0], "status": found[1]}
    row = first_row(conn, "SELECT id, status FROM paper_entry_conflicts WHERE digest = ?", (entry["digest"],))
    assert row is not None  # the insert found it there
    return row


def get(conn: Connection, conflict_id: int) -> dict[str, Any] | None:
    """One kept entry, or None."""
    return first_row(conn, f"{_SELECT} WHERE id = ?", (conflict_id,))


def waiting(conn: Connection, units: Sequence[str] | None, limit: int) -> list[dict[str, Any]]:
    """Kept entries nobody decided yet, oldest first, of these units (None: every unit)."""
    if units is not None and not units:
        return []
    where = "" if units is None else f" AND unit IN ({marks(units)})"
    return all_rows(
        conn,
        f"{_SELECT} WHERE status = 'waiting'{where} ORDER BY id LIMIT ?",
        (*(units or ()), limit),
    )


def count_waiting(conn: Connection, units: Sequence[str] | None) -> int:
    """How many kept entries of these units (None: every unit) wait for a decision."""
    if units is not None and not units:
        return 0
    where = "" if units is None else f" AND unit IN ({marks(units)})"
    found = conn.execute(
        f"SELECT count(*) FROM paper_entry_conflicts WHERE status = 'waiting'{where}", tuple(units or ())
    ).fetchone()
    return int(found[0])


def resolve(conn: Connection, conflict_id: int, status: str, by: str, at: str) -> bool:
    """Record the decision on a waiting entry (a compare-and-set: False when it was decided meanwhile).
    A decided entry keeps no contact: one taken is stored with the response (read before this), one not
    taken is dropped."""
    return (
        conn.execute(
            "UPDATE paper_entry_conflicts SET status = ?, resolved_by = ?, resolved_at = ?, contact = NULL"
            " WHERE id = ? AND status = 'waiting'",
            (status, by, at, conflict_id),
        ).rowcount
        == 1
    )


def delete_decided(conn: Connection, unit: str, before: str) -> int:
    """Delete the unit's second entries decided before `before` (an ISO time): their answers are copies."""
    return conn.execute(
        "DELETE FROM paper_entry_conflicts WHERE unit = ? AND status <> 'waiting' AND resolved_at < ?",
        (unit, before),
    ).rowcount
