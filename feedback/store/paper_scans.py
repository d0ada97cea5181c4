"""Scanned pages of paper forms waiting for a person (`paper_scans`; the rules are in
`feedback.paper_review`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar

#: Every column but the image, which only the page that shows it reads.
COLUMNS = (
    "id",
    "digest",
    "source",
    "uploaded_at",
    "uploaded_by",
    "unit",
    "serial",
    "paper",
    "proposed",
    "reasons",
    "status",
    "resolved_by",
    "resolved_at",
    "note",
    "response_id",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM paper_scans"
_NEW = ("digest", "source", "uploaded_at", "uploaded_by", "unit", "serial", "paper", "image", "proposed", "reasons")


def add(conn: Connection, page: dict[str, Any]) -> tuple[int, bool]:
    """Keep a page (a dict of `_NEW`) unless a waiting one has its key (`digest`): (its id, whether it is new).
    The unique key decides, so the same page uploaded on two nodes at once waits once; a page decided
    meanwhile has given its key up, and the insert is tried again."""
    for _ in range(3):
        found = conn.execute(
            f"INSERT INTO paper_scans ({', '.join(_NEW)}) VALUES ({marks(_NEW)})"
            " ON CONFLICT (digest) DO NOTHING RETURNING id",
            tuple(page[c] for c in _NEW),
        ).fetchone()
        if found is not None:
            return int(found[0]), True
        holder = first_row(conn, "SELECT id, status FROM paper_scans WHERE digest = ?", (page["digest"],))
        if holder is not None and holder["status"] == "waiting":
            return int(holder["id"]), False
        if holder is not None:  # decided before decided pages gave their keys up: it gives it up now
            conn.execute(
                "UPDATE paper_scans SET digest = 'decided:' || CAST(id AS TEXT) WHERE id = ? AND status <> 'waiting'",
                (holder["id"],),
            )
    raise RuntimeError(f"paper_scans: the key {page['digest']!r} is taken and given up over and over")


def get(conn: Connection, scan_id: int) -> dict[str, Any] | None:
    """One kept page without its image, or None."""
    return first_row(conn, f"{_SELECT} WHERE id = ?", (scan_id,))


def image(conn: Connection, scan_id: int) -> tuple[str | None, bytes] | None:
    """(unit, PNG) of a kept page, or None."""
    row = first_row(conn, "SELECT unit, image FROM paper_scans WHERE id = ?", (scan_id,))
    return None if row is None else (row["unit"], bytes(row["image"]))


def listed(
    conn: Connection, units: Sequence[str] | None, *, status: str | None, limit: int, unitless: bool
) -> list[dict[str, Any]]:
    """Kept pages of these units (None: every unit), oldest first; `unitless` adds those of no unit
    (uploaded by an installation-wide user while their serial is unknown); `status` None: any."""
    clauses, params = [], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if units is not None:
        scope = [f"unit IN ({marks(units)})"] if units else []
        params.extend(units)
        if unitless:
            scope.append("unit IS NULL")
        if not scope:
            return []
        clauses.append(f"({' OR '.join(scope)})")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return all_rows(conn, f"{_SELECT}{where} ORDER BY id LIMIT ?", (*params, limit))


def set_reading(conn: Connection, scan_id: int, *, serial: str, unit: str, proposed: str, reasons: str) -> bool:
    """Put what was read with a typed serial on a waiting page; False when it is no longer waiting."""
    changed = conn.execute(
        "UPDATE paper_scans SET serial = ?, unit = ?, proposed = ?, reasons = ? WHERE id = ? AND status = 'waiting'",
        (serial, unit, proposed, reasons, scan_id),
    )
    return changed.rowcount == 1


def resolve(
    conn: Connection,
    scan_id: int,
    status: str,
    *,
    by: str,
    at: str,
    note: str | None = None,
    serial: str | None = None,
    response_id: str | None = None,
) -> bool:
    """Close a waiting page (compare-and-set: of two people deciding at once, one wins), giving its key up
    so that a later scan of the form waits anew; False when it was no longer waiting."""
    changed = conn.execute(
        "UPDATE paper_scans SET status = ?, resolved_by = ?, resolved_at = ?, note = ?,"
        " serial = coalesce(?, serial), response_id = ?, digest = 'decided:' || CAST(id AS TEXT)"
        " WHERE id = ? AND status = 'waiting'",
        (status, by, at, note, serial, response_id, scan_id),
    )
    return changed.rowcount == 1


def count_waiting(conn: Connection, units: Sequence[str] | None, unitless: bool) -> int:
    """How many pages of these units (None: every unit) wait for a person."""
    if units is None:
        return int(scalar(conn, "SELECT count(*) FROM paper_scans WHERE status = 'waiting'", default=0))
    scope = [f"unit IN ({marks(units)})"] if units else []
    if unitless:
        scope.append("unit IS NULL")
    if not scope:
        return 0
    sql = f"SELECT count(*) FROM paper_scans WHERE status = 'waiting' AND ({' OR '.join(scope)})"
    return int(scalar(conn, sql, tuple(units), default=0))


def drop_decided_images(conn: Connection, unit: str, before: str) -> int:
    """Empty the images of the unit's pages decided before `before` (an ISO time): a scan shows the person
    who filled the form in. The row stays (who decided it, and how)."""
    return conn.execute(
        "UPDATE paper_scans SET image = ? WHERE unit = ? AND status <> 'waiting' AND resolved_at < ?"
        " AND length(image) > 0",
        (b"", unit, before),
    ).rowcount
