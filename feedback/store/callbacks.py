"""Call-backs owed to respondents and the attempts to reach them (`callbacks`, `callback_attempts`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks

FINAL = ("reached", "declined", "not_reached")


def get(conn: Connection, action_id: int) -> dict[str, Any] | None:
    """The `callbacks` row of an action, or None when none was registered."""
    return first_row(conn, "SELECT * FROM callbacks WHERE action = ?", (action_id,))


def register(conn: Connection, action_id: int, unit: str, due: str | None, at: str) -> bool:
    """Note that an action owes a call-back (pending); False when it was noted before (the action is
    the key, so a replay or a race registers it once)."""
    cursor = conn.execute(
        "INSERT INTO callbacks (action, unit, due, state, tries, registered_at, updated_at)"
        " VALUES (?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (action) DO NOTHING",
        (action_id, unit, due, at, at),
    )
    return cursor.rowcount == 1


def settle(conn: Connection, action_id: int, outcome: str, tries_allowed: int, at: str) -> dict[str, Any] | None:
    """Count one attempt on a pending call-back in one statement: `reached` and `declined` are final at
    once, `not_reached` once it is the `tries_allowed`-th attempt that did not reach. Returns the row
    as it now is, or None when the call-back is not pending (none registered, or final already), so of
    two attempts racing on the last try exactly one counts."""
    return first_row(
        conn,
        "UPDATE callbacks SET"
        " tries = tries + CASE WHEN ? = 'not_reached' THEN 1 ELSE 0 END,"
        " state = CASE WHEN ? IN ('reached', 'declined') THEN ?"
        "  WHEN tries + 1 >= ? THEN 'not_reached' ELSE 'pending' END,"
        " settled_at = CASE WHEN ? IN ('reached', 'declined') OR tries + 1 >= ? THEN ? ELSE NULL END,"
        " updated_at = ?"
        " WHERE action = ? AND state = 'pending' RETURNING *",
        (outcome, outcome, outcome, tries_allowed, outcome, tries_allowed, at, at, action_id),
    )


def add_attempt(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """One attempt (action, via, outcome, actor, at, note); returns the stored row. The database refuses
    to change or delete it later."""
    columns = list(values)
    found = first_row(
        conn,
        f"INSERT INTO callback_attempts ({', '.join(columns)}) VALUES ({marks(columns)}) RETURNING *",
        [values[c] for c in columns],
    )
    assert found is not None  # an INSERT … RETURNING always returns its row
    return found


def attempts_of(conn: Connection, action_id: int) -> list[dict[str, Any]]:
    """Every attempt on an action's call-back, oldest first."""
    return all_rows(conn, "SELECT * FROM callback_attempts WHERE action = ? ORDER BY id", (action_id,))


def for_rate(conn: Connection, units: Sequence[str], before: str, settled_after: str, due_from: str) -> list[dict]:
    """The call-backs of these units that may fall due in a period (for the call-back rate): those of
    actions opened before `before`, not settled before `settled_after`, and due on or after `due_from`;
    with the action's status (an upheld appeal takes its call-back out of the rate)."""
    if not units:
        return []
    return all_rows(
        conn,
        "SELECT c.action, c.unit, c.due, c.state, c.settled_at, a.status FROM callbacks c"
        f" JOIN actions a ON a.id = c.action WHERE c.unit IN ({marks(units)}) AND a.opened_at < ?"
        " AND (c.settled_at IS NULL OR c.settled_at >= ?) AND (c.due IS NULL OR c.due >= ?)",
        (*units, before, settled_after, due_from),
    )
