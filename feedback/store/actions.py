"""Corrective actions and their append-only step records (`actions`, `action_events`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from feedback.store import Connection, all_rows, first_row, marks, scalar

OPEN = "status NOT IN ('closed', 'appeal_upheld')"


def get(conn: Connection, action_id: int) -> dict[str, Any] | None:
    """The `actions` row, or None."""
    return first_row(conn, "SELECT * FROM actions WHERE id = ?", (action_id,))


def unit_of(conn: Connection, action_id: int) -> str | None:
    """The unit an action belongs to (for scope checks before anything else is read), or None."""
    return scalar(conn, "SELECT unit FROM actions WHERE id = ?", (action_id,))


def insert(conn: Connection, row: dict[str, Any]) -> dict[str, Any] | None:
    """A new action: its stored row, or None when its `source_key` has one already (the key is
    unique, so a replayed cause opens nothing however it races)."""
    columns = list(row)
    return first_row(
        conn,
        f"INSERT INTO actions ({', '.join(columns)}) VALUES ({marks(columns)})"
        " ON CONFLICT (source_key) DO NOTHING RETURNING *",
        [row[c] for c in columns],
    )


def move(conn: Connection, action_id: int, expected: str, updates: dict[str, Any]) -> bool:
    """Compare and set: apply `updates` (which carry the new status) only while the action is still in
    state `expected`. False when another step moved it first, so two conflicting steps cannot both win."""
    assignments = ", ".join(f"{column} = ?" for column in updates)
    cursor = conn.execute(
        f"UPDATE actions SET {assignments} WHERE id = ? AND status = ?", (*updates.values(), action_id, expected)
    )
    return cursor.rowcount == 1


def update(conn: Connection, action_id: int, **values: Any) -> None:
    """Set bookkeeping columns that do not change the state (deadline marks, the effectiveness watch)."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(f"UPDATE actions SET {assignments} WHERE id = ?", (*values.values(), action_id))


def extend_watch(conn: Connection, action_id: int, until: str, at: str) -> None:
    """Watch a week longer (too few responses to judge yet)."""
    conn.execute(
        "UPDATE actions SET watch_until = ?, watch_extensions = watch_extensions + 1, updated_at = ? WHERE id = ?",
        (until, at, action_id),
    )


def append_event(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """One step of the record; returns the stored row. The database refuses to change or delete it later."""
    columns = list(values)
    found = first_row(
        conn,
        f"INSERT INTO action_events ({', '.join(columns)}) VALUES ({marks(columns)}) RETURNING *",
        [values[c] for c in columns],
    )
    assert found is not None  # an INSERT … RETURNING always returns its row
    return found


def events_of(conn: Connection, action_id: int) -> list[dict[str, Any]]:
    """Every step of an action, oldest first."""
    return all_rows(conn, "SELECT * FROM action_events WHERE action = ? ORDER BY seq", (action_id,))


def appellant(conn: Connection, action_id: int) -> str | None:
    """Who made the latest appeal of an action."""
    return scalar(
        conn,
        "SELECT actor FROM action_events WHERE action = ? AND to_status = 'appealed' ORDER BY seq DESC LIMIT 1",
        (action_id,),
    )


def listing(
    conn: Connection,
    units: Sequence[str] | None,
    status: str | None = None,
    kind: str | None = None,
    due_and_open: bool = False,
) -> list[dict[str, Any]]:
    """Actions of these units (every unit when None); `status` "open" means any state but the closed ones."""
    where, params = [], []
    if units is not None:
        where.append(f"unit IN ({marks(units)})")
        params.extend(units)
    if status == "open":
        where.append(OPEN)
    elif status is not None:
        where.append("status = ?")
        params.append(status)
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if due_and_open:
        where.append(f"due IS NOT NULL AND {OPEN}")
    return all_rows(conn, "SELECT * FROM actions" + (f" WHERE {' AND '.join(where)}" if where else ""), params)


def open_in_period(conn: Connection, units: Sequence[str], before: str, after: str) -> list[dict[str, Any]]:
    """The actions of these units opened before `before` and not closed before `after` (for KPIs)."""
    return all_rows(
        conn,
        f"SELECT unit, kind, status, due, opened_at, closed_at FROM actions WHERE unit IN ({marks(units)})"
        " AND opened_at < ? AND (closed_at IS NULL OR closed_at >= ?)",
        (*units, before, after),
    )


def awaiting_deadline(conn: Connection) -> list[dict[str, Any]]:
    """Open actions with a due day that are not overdue yet (once overdue nothing more waits for them)."""
    return all_rows(conn, f"SELECT * FROM actions WHERE {OPEN} AND due IS NOT NULL AND overdue_at IS NULL ORDER BY id")


def watched(conn: Connection) -> list[dict[str, Any]]:
    """Actions whose effectiveness is being watched."""
    return all_rows(
        conn,
        "SELECT * FROM actions WHERE watch_until IS NOT NULL AND status IN ('effectiveness_review', 'closed')"
        " ORDER BY id",
    )


def latest_change(conn: Connection) -> str | None:
    """The newest `updated_at` of any action."""
    return scalar(conn, "SELECT max(updated_at) FROM actions")


def changed_since(conn: Connection, watermark: str, limit: int = 500) -> list[dict[str, Any]]:
    """Actions changed after `watermark`, oldest change first (what live pages are told)."""
    return all_rows(
        conn,
        "SELECT id, unit, status, title, owner, due, opened_at, updated_at FROM actions"
        " WHERE updated_at > ? ORDER BY updated_at LIMIT ?",
        (watermark, limit),
    )


def closed_since(conn: Connection, units: Sequence[str], since: str, limit: int) -> list[dict[str, Any]]:
    """Actions of these units closed since a moment, newest first, with their response's personal
    fields (so that a public page can scrub them out of the text)."""
    return all_rows(
        conn,
        "SELECT a.id, a.unit, a.title, a.closed_at, r.case_ref, r.officer, r.counter FROM actions a"
        f" LEFT JOIN responses r ON r.id = a.response_id WHERE a.unit IN ({marks(units)}) AND a.status = 'closed'"
        " AND a.closed_at >= ? ORDER BY a.closed_at DESC LIMIT ?",
        (*units, since, limit),
    )


def done_records(conn: Connection, action_id: int) -> list[dict[str, Any]]:
    """What was done, step by step: the result, the action taken and the correction of each event."""
    return all_rows(
        conn, "SELECT result, action_taken, correction FROM action_events WHERE action = ? ORDER BY seq", (action_id,)
    )


def effectiveness_data(conn: Connection, units: Sequence[str], low: str, high: str) -> list[str]:
    """The data (JSON) of the steps of these units' actions in [low, high) that judged effectiveness."""
    return [
        row["data"]
        for row in all_rows(
            conn,
            f"SELECT e.data FROM action_events e JOIN actions a ON a.id = e.action WHERE a.unit IN ({marks(units)})"
            " AND e.at >= ? AND e.at < ? AND e.data LIKE '%effectiveness%'",
            (*units, low, high),
        )
    ]


def active_in(conn: Connection, units: Sequence[str], low: str, high: str, limit: int) -> list[dict[str, Any]]:
    """Actions of these units opened or closed in [low, high), or still open at its end; oldest first."""
    return all_rows(
        conn,
        f"SELECT * FROM actions WHERE unit IN ({marks(units)}) AND ((opened_at >= ? AND opened_at < ?)"
        " OR (closed_at >= ? AND closed_at < ?) OR (closed_at IS NULL AND opened_at < ?))"
        " ORDER BY opened_at LIMIT ?",
        (*units, low, high, low, high, high, limit),
    )


def records_newest_first(conn: Connection, action_id: int) -> list[dict[str, Any]]:
    """result, action_taken, correction and explanation of every step, newest first."""
    return all_rows(
        conn,
        "SELECT result, action_taken, correction, explanation FROM action_events WHERE action = ? ORDER BY seq DESC",
        (action_id,),
    )


def overdue_of(conn: Connection, units: Sequence[str], today: str, limit: int = 50) -> list[dict[str, Any]]:
    """id, title, due and owner of these units' open actions due before `today`, earliest due first."""
    return all_rows(
        conn,
        f"SELECT id, title, due, owner FROM actions WHERE unit IN ({marks(units)}) AND due IS NOT NULL AND due < ?"
        f" AND {OPEN} ORDER BY due, id LIMIT ?",
        (*units, today, limit),
    )


def opened_for(conn: Connection, response_ids: Sequence[str]) -> list[dict[str, Any]]:
    """id, response_id, kind, unit, status, due, opened_at and closed_at of the actions these responses
    opened: what a respondent may learn of them (no title, owner or record)."""
    if not response_ids:
        return []
    return all_rows(
        conn,
        "SELECT id, response_id, kind, unit, status, due, opened_at, closed_at FROM actions"
        f" WHERE response_id IN ({marks(response_ids)}) ORDER BY opened_at, id",
        response_ids,
    )


def opened_by(conn: Connection, response_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """response id → {id, status} of the action each of these responses opened (if any)."""
    if not response_ids:
        return {}
    rows = all_rows(
        conn, f"SELECT id, response_id, status FROM actions WHERE response_id IN ({marks(response_ids)})", response_ids
    )
    return {row["response_id"]: {"id": row["id"], "status": row["status"]} for row in rows}


# -- the queue: filtered, sorted, a page at a time ---------------------------------------------------------


class QueueFilter(NamedTuple):
    """What the queue pages filter on; None (or empty) leaves a criterion out.

    `overdue_before` pairs each local today with the units whose today it is: an action is overdue
    when it is open, has a due day and that day is before its unit's today.
    """

    units: Sequence[str] | None = None
    states: Sequence[str] | None = None
    open_only: bool = False
    kinds: Sequence[str] | None = None
    owner: str | None = None
    overdue: bool | None = None
    overdue_before: Sequence[tuple[str, Sequence[str]]] = ()
    opened_from: str | None = None  # an instant (ISO, UTC): opened at or after it
    opened_before: str | None = None  # an instant (ISO, UTC): opened before it


# The orders a queue can be read in; each ends with the id, so a page boundary is stable.
QUEUE_ORDERS = {
    "due": "overdue_rank, a.due IS NULL, a.due, a.id",
    "opened": "a.opened_at DESC, a.id DESC",
    "updated": "a.updated_at DESC, a.id DESC",
    "unit": "u.path, overdue_rank, a.due IS NULL, a.due, a.id",
    "closed": "a.closed_at DESC, a.id DESC",
}


def _overdue_condition(groups: Sequence[tuple[str, Sequence[str]]]) -> tuple[str, list[Any]]:
    if not groups:
        return "1 = 0", []
    parts, params = [], []
    for today, units in groups:
        parts.append(f"(a.unit IN ({marks(units)}) AND a.due < ?)")
        params.extend([*units, today])
    return f"(a.due IS NOT NULL AND a.{OPEN} AND ({' OR '.join(parts)}))", params


def _queue_where(query: QueueFilter) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.units is not None:
        where.append(f"a.unit IN ({marks(query.units)})" if query.units else "1 = 0")
        params.extend(query.units)
    if query.open_only:
        where.append(f"a.{OPEN}")
    if query.states:
        where.append(f"a.status IN ({marks(query.states)})")
        params.extend(query.states)
    if query.kinds:
        where.append(f"a.kind IN ({marks(query.kinds)})")
        params.extend(query.kinds)
    if query.owner is not None:
        where.append("a.owner = ?")
        params.append(query.owner)
    if query.overdue is not None:
        condition, values = _overdue_condition(query.overdue_before)
        where.append(condition if query.overdue else f"NOT ({condition})")
        params.extend(values)
    if query.opened_from is not None:
        where.append("a.opened_at >= ?")
        params.append(query.opened_from)
    if query.opened_before is not None:
        where.append("a.opened_at < ?")
        params.append(query.opened_before)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def queue_page(conn: Connection, query: QueueFilter, order: str, limit: int, offset: int) -> list[dict[str, Any]]:
    """One page of the actions that match, in one of `QUEUE_ORDERS`; each row also carries `overdue_rank`
    (0 when overdue)."""
    if order not in QUEUE_ORDERS:
        raise ValueError(f"not a queue order: {order}")
    overdue, overdue_params = _overdue_condition(query.overdue_before)
    where, params = _queue_where(query)
    return all_rows(
        conn,
        f"SELECT a.*, CASE WHEN {overdue} THEN 0 ELSE 1 END AS overdue_rank"
        f" FROM actions a LEFT JOIN units u ON u.code = a.unit{where}"
        f" ORDER BY {QUEUE_ORDERS[order]} LIMIT ? OFFSET ?",
        (*overdue_params, *params, limit, offset),
    )


def queue_totals(conn: Connection, query: QueueFilter) -> dict[str, int]:
    """How many actions match (`total`), and how many of those are overdue (`overdue`)."""
    overdue, overdue_params = _overdue_condition(query.overdue_before)
    where, params = _queue_where(query)
    found = first_row(
        conn,
        f"SELECT count(*) AS total, coalesce(sum(CASE WHEN {overdue} THEN 1 ELSE 0 END), 0) AS overdue"
        f" FROM actions a{where}",
        (*overdue_params, *params),
    )
    return {"total": found["total"], "overdue": found["overdue"]} if found else {"total": 0, "overdue": 0}


def queue_counts_by_status(conn: Connection, query: QueueFilter) -> dict[str, int]:
    """status -> how many of the matching actions are in it (for the board's column counts)."""
    where, params = _queue_where(query)
    return {
        row["status"]: row["n"]
        for row in all_rows(conn, f"SELECT a.status, count(*) AS n FROM actions a{where} GROUP BY a.status", params)
    }


def owners_of(conn: Connection, units: Sequence[str] | None) -> list[str]:
    """The distinct owners of these units' actions (every unit's when None), by name."""
    where, params = _queue_where(QueueFilter(units=units))
    return [
        row["owner"]
        for row in all_rows(
            conn,
            f"SELECT DISTINCT a.owner FROM actions a{where}{' AND' if where else ' WHERE'} a.owner IS NOT NULL"
            " ORDER BY a.owner",
            params,
        )
    ]


def open_for_objectives(conn: Connection, objective_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The open actions these objectives opened (id, kind, unit, objective_id, period, target, title,
    data, status, opened_at), oldest first."""
    if not objective_ids:
        return []
    return all_rows(
        conn,
        "SELECT id, kind, unit, objective_id, period, target, title, data, status, opened_at FROM actions"
        f" WHERE objective_id IN ({marks(objective_ids)}) AND {OPEN} ORDER BY opened_at, id",
        objective_ids,
    )
