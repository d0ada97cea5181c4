"""Reporting upward between installations: pairing codes, children, their daily reports and reported rollups
(on the parent), and the link to the parent with the days it acknowledged (on the child).

Pairing codes are stored as SHA-256 digests only; callers hash before they call. A code is spent by one
`UPDATE … RETURNING`, so of two children sending the same code at once one is paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks
from feedback.store.responses import ROLLUP_MEASURES
from feedback.store.users import Ledger

#: Wrong pairing codes tried per client (a keyed hash of its address), kept no longer than they count.
JOIN_ATTEMPTS = Ledger("federation_join_attempts", "client", keep=timedelta(0))

# -- the parent: pairing codes ------------------------------------------------------------------------


def insert_invite(
    conn: Connection,
    code_hash: str,
    unit: str,
    created_at: str,
    created_by: str | None,
    expires_at: str,
    replace: bool = False,
) -> None:
    """Store a new pairing code for a child whose tree will hang under `unit` (`replace`: the children under
    `unit` when it is used are removed)."""
    conn.execute(
        "INSERT INTO federation_invites (code_hash, unit, created_at, created_by, expires_at, replace_children)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (code_hash, unit, created_at, created_by, expires_at, int(replace)),
    )


def drop_expired_invites(conn: Connection, now: str) -> None:
    """Forget unused codes that have expired."""
    conn.execute("DELETE FROM federation_invites WHERE expires_at < ? AND used_at IS NULL", (now,))


def spend_invite(conn: Connection, code_hash: str, now: str, child: str) -> dict[str, Any] | None:
    """Use an unused, unexpired code for `child` in one statement; returns the unit it names and whether it
    replaces the children under it ({"unit", "replace_children"}), or None."""
    return first_row(
        conn,
        "UPDATE federation_invites SET used_at = ?, child = ? WHERE code_hash = ? AND used_at IS NULL"
        " AND expires_at >= ? RETURNING unit, replace_children",
        (now, child, code_hash, now),
    )


# -- the parent: children -------------------------------------------------------------------------------


def insert_child(conn: Connection, child: dict[str, Any]) -> None:
    """A newly paired child (id, name, public_key, unit, roots as JSON, joined_at)."""
    conn.execute(
        "INSERT INTO federation_children (id, name, public_key, unit, roots, joined_at)"
        " VALUES (:id, :name, :public_key, :unit, :roots, :joined_at)",
        child,
    )


def child_ids(conn: Connection) -> set[str]:
    """Every child id given out."""
    return {row["id"] for row in all_rows(conn, "SELECT id FROM federation_children")}


def get_child(conn: Connection, child: str, removed: bool = False) -> dict[str, Any] | None:
    """A paired child's row (with `removed`, a removed one's too), or None."""
    live = "" if removed else " AND removed_at IS NULL"
    return first_row(conn, f"SELECT * FROM federation_children WHERE id = ?{live}", (child,))


def children(conn: Connection) -> list[dict[str, Any]]:
    """Every child not removed: id, name, unit, roots (JSON), joined_at, as_of, last_report_at, by id."""
    return all_rows(
        conn,
        "SELECT id, name, unit, roots, joined_at, as_of, last_report_at FROM federation_children"
        " WHERE removed_at IS NULL ORDER BY id",
    )


def children_under(conn: Connection, unit: str) -> list[str]:
    """The ids of the children not removed whose trees hang under `unit`."""
    rows = all_rows(
        conn, "SELECT id FROM federation_children WHERE unit = ? AND removed_at IS NULL ORDER BY id", (unit,)
    )
    return [row["id"] for row in rows]


def remove_child(conn: Connection, child: str, at: str) -> int:
    """Mark a child removed and drop its reported rollups (its reports stay, for `verify`); returns the
    rollup rows dropped, or -1 when the child is unknown or removed already."""
    cursor = conn.execute(
        "UPDATE federation_children SET removed_at = ? WHERE id = ? AND removed_at IS NULL", (at, child)
    )
    if cursor.rowcount != 1:
        return -1
    return conn.execute("DELETE FROM federation_rollups WHERE child = ?", (child,)).rowcount


def mark_reported(conn: Connection, child: str, day: str, at: str) -> None:
    """A report of `day` was stored: the child is reported as of its latest day."""
    conn.execute(
        "UPDATE federation_children SET last_report_at = ?,"
        " as_of = CASE WHEN as_of IS NULL OR as_of < ? THEN ? ELSE as_of END WHERE id = ?",
        (at, day, day, child),
    )


# -- the parent: reports -----------------------------------------------------------------------------------


def stored_report(conn: Connection, child: str, day: str) -> dict[str, Any] | None:
    """content_hash and sent_at of the report stored for a child's day, or None."""
    return first_row(
        conn, "SELECT content_hash, sent_at FROM federation_reports WHERE child = ? AND day = ?", (child, day)
    )


def put_report(
    conn: Connection,
    child: str,
    day: str,
    content_hash: str,
    sent_at: str,
    received_at: str,
    summary: str,
    body: str | None = None,
    signature: str | None = None,
) -> None:
    """Store (or replace) a child's report of one day, with the exact body received and its signature."""
    conn.execute(
        "INSERT INTO federation_reports (child, day, content_hash, sent_at, received_at, summary, body, signature)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (child, day) DO UPDATE SET content_hash = excluded.content_hash,"
        " sent_at = excluded.sent_at, received_at = excluded.received_at, summary = excluded.summary,"
        " body = excluded.body, signature = excluded.signature",
        (child, day, content_hash, sent_at, received_at, summary, body, signature),
    )


def stored_reports(conn: Connection, child: str | None = None) -> list[dict[str, Any]]:
    """Every stored report (or one child's) with what re-checking it takes: child, day, content_hash, body,
    signature and the child's public key, by child and day."""
    where, params = ("WHERE r.child = ?", (child,)) if child is not None else ("", ())
    return all_rows(
        conn,
        "SELECT r.child, r.day, r.content_hash, r.body, r.signature, c.public_key FROM federation_reports r"
        f" LEFT JOIN federation_children c ON c.id = r.child {where} ORDER BY r.child, r.day",
        params,
    )


_ROLLUP_COLUMNS = ("unit", "day", "service", "child", *ROLLUP_MEASURES)
_INSERT_ROLLUP = (
    f"INSERT INTO federation_rollups ({', '.join(_ROLLUP_COLUMNS)}) VALUES ({marks(_ROLLUP_COLUMNS)})"
    " ON CONFLICT (unit, day, service) DO UPDATE SET "
    + ", ".join(f"{m} = federation_rollups.{m} + excluded.{m}" for m in ROLLUP_MEASURES)
)


def replace_rollups(conn: Connection, child: str, day: str, rows: Sequence[dict[str, Any]]) -> None:
    """Replace a child's rollups of one day with `rows` (unit as the parent names it, service or '',
    ROLLUP_MEASURES)."""
    conn.execute("DELETE FROM federation_rollups WHERE child = ? AND day = ?", (child, day))
    if rows:
        conn.executemany(
            _INSERT_ROLLUP,
            [(row["unit"], day, row["service"] or "", child, *(row[m] for m in ROLLUP_MEASURES)) for row in rows],
        )


def summaries(conn: Connection, child: str, day_from: str, day_to: str) -> list[dict[str, Any]]:
    """day and summary (JSON) of a child's reports between two days, oldest first."""
    return all_rows(
        conn,
        "SELECT day, summary FROM federation_reports WHERE child = ? AND day BETWEEN ? AND ? ORDER BY day",
        (child, day_from, day_to),
    )


# -- the child: the link and the acknowledged days ------------------------------------------------------------


def link(conn: Connection) -> dict[str, Any] | None:
    """The link to the parent, or None while this installation reports to none."""
    return first_row(conn, "SELECT * FROM federation_link WHERE id = 1")


def put_link(conn: Connection, values: dict[str, Any]) -> None:
    """Set the link to the parent (replacing an earlier one) and forget what the earlier parent acknowledged."""
    conn.execute("DELETE FROM federation_sent")
    conn.execute(
        "INSERT INTO federation_link (id, parent_url, child_id, name, public_key, private_key, units, joined_at)"
        " VALUES (1, :parent_url, :child_id, :name, :public_key, :private_key, :units, :joined_at)"
        " ON CONFLICT (id) DO UPDATE SET parent_url = excluded.parent_url, child_id = excluded.child_id,"
        " name = excluded.name, public_key = excluded.public_key, private_key = excluded.private_key,"
        " units = excluded.units, joined_at = excluded.joined_at, last_attempt_at = NULL,"
        " last_success_at = NULL, last_error = NULL",
        values,
    )


def note_attempt(conn: Connection, at: str, error: str | None) -> None:
    """How the latest run went: the time, and the error (None: it reached the parent)."""
    if error is None:
        conn.execute(
            "UPDATE federation_link SET last_attempt_at = ?, last_success_at = ?, last_error = NULL WHERE id = 1",
            (at, at),
        )
    else:
        conn.execute("UPDATE federation_link SET last_attempt_at = ?, last_error = ? WHERE id = 1", (at, error))


def acknowledged(conn: Connection) -> dict[str, str]:
    """day → content hash of every day the parent acknowledged."""
    return {row["day"]: row["content_hash"] for row in all_rows(conn, "SELECT day, content_hash FROM federation_sent")}


def reported_since_acknowledged(conn: Connection) -> set[str]:
    """Acknowledged days whose reported figures (this installation's own children's, when it is a middle tier)
    changed after the parent acknowledged them: a child's report of the day stored or replaced since, or a
    child with reports of the day removed since. A grandchild catching up after a long outage reaches the top."""
    rows = all_rows(
        conn,
        "SELECT s.day FROM federation_sent s WHERE EXISTS (SELECT 1 FROM federation_reports r"
        " LEFT JOIN federation_children c ON c.id = r.child WHERE r.day = s.day"
        " AND (r.received_at > s.acked_at OR c.removed_at > s.acked_at))",
    )
    return {row["day"] for row in rows}


def acknowledge(conn: Connection, day: str, content_hash: str, at: str) -> None:
    """The parent stored `day` with this content."""
    conn.execute(
        "INSERT INTO federation_sent (day, content_hash, acked_at) VALUES (?, ?, ?)"
        " ON CONFLICT (day) DO UPDATE SET content_hash = excluded.content_hash, acked_at = excluded.acked_at",
        (day, content_hash, at),
    )
