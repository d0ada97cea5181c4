"""Kiosk tablets: devices, enrollment codes, invitations and health.

Device tokens and enrollment codes are stored only as SHA-256 digests; callers hash before they call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar

# -- devices -------------------------------------------------------------------------------------------


def device(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    """id and touchpoint of the live (not revoked) kiosk holding this device token, or None."""
    return first_row(
        conn, "SELECT id, touchpoint FROM kiosks WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
    )


def unit_of(conn: Connection, kiosk_id: str) -> str | None:
    """The unit of a kiosk's touchpoint (for scope checks), or None for an unknown kiosk."""
    return scalar(
        conn, "SELECT t.unit FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint WHERE k.id = ?", (kiosk_id,)
    )


def revoked_at(conn: Connection, kiosk_id: str) -> tuple[bool, str | None]:
    """(whether the kiosk exists, when it was revoked)."""
    found = first_row(conn, "SELECT revoked_at FROM kiosks WHERE id = ?", (kiosk_id,))
    return (found is not None, found["revoked_at"] if found else None)


def insert(conn: Connection, kiosk_id: str, touchpoint: str, name: str, token_hash: str, enrolled_at: str) -> None:
    """A newly enrolled kiosk."""
    conn.execute(
        "INSERT INTO kiosks (id, touchpoint, name, token_hash, enrolled_at, backlog, dead_letters, recent_presses)"
        " VALUES (?, ?, ?, ?, ?, 0, 0, '[]')",
        (kiosk_id, touchpoint, name, token_hash, enrolled_at),
    )


def revoke(conn: Connection, kiosk_id: str, at: str) -> None:
    """Revoke a kiosk (a second revocation keeps the first time)."""
    conn.execute("UPDATE kiosks SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, kiosk_id))


def record_heartbeat(
    conn: Connection,
    kiosk_id: str,
    seen: str,
    backlog: int,
    dead_letters: int,
    app_version: str | None,
    last_sync: str | None,
    battery: float | None,
) -> None:
    """What a kiosk reports on its heartbeat; a kiosk heard from is no longer silent."""
    conn.execute(
        "UPDATE kiosks SET last_seen = ?, backlog = ?, dead_letters = ?, app_version = ?,"
        " last_sync = coalesce(?, last_sync), battery = ?, silent_since = NULL WHERE id = ?",
        (seen, backlog, dead_letters, app_version, last_sync, battery, kiosk_id),
    )


def newly_silent(conn: Connection, cutoff: str) -> list[dict[str, Any]]:
    """Live kiosks not heard from since `cutoff` and not yet reported: kiosk, touchpoint, unit, last_seen."""
    return all_rows(
        conn,
        "SELECT k.id AS kiosk, k.touchpoint, t.unit, coalesce(k.last_seen, k.enrolled_at) AS last_seen"
        " FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint WHERE k.revoked_at IS NULL"
        " AND k.silent_since IS NULL AND coalesce(k.last_seen, k.enrolled_at) < ?",
        (cutoff,),
    )


def mark_silent(conn: Connection, kiosk_id: str, at: str) -> bool:
    """Mark a kiosk silent unless it is already (or spoke meanwhile); True when this call marked it."""
    return (
        conn.execute(
            "UPDATE kiosks SET silent_since = ? WHERE id = ? AND silent_since IS NULL", (at, kiosk_id)
        ).rowcount
        == 1
    )


def silent_count(conn: Connection, cutoff: str) -> int:
    """How many live (not revoked) kiosks have not been heard from since `cutoff` (as `health` counts
    them silent)."""
    return (
        scalar(
            conn,
            "SELECT count(*) FROM kiosks WHERE revoked_at IS NULL AND coalesce(last_seen, enrolled_at) < ?",
            (cutoff,),
        )
        or 0
    )


def fleet(conn: Connection) -> list[dict[str, Any]]:
    """Every enrolled kiosk with its touchpoint's unit and its last report, oldest enrolment first."""
    return all_rows(
        conn,
        "SELECT k.id, k.touchpoint, k.name, k.enrolled_at, k.revoked_at, k.last_seen, k.backlog,"
        " k.dead_letters, k.app_version, k.last_sync, k.battery, t.unit"
        " FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint ORDER BY k.enrolled_at",
    )


# -- enrollment codes ----------------------------------------------------------------------------------


def touchpoint_state(conn: Connection, token: str) -> dict[str, Any] | None:
    """kind, retired_at and unit of a touchpoint, or None."""
    return first_row(conn, "SELECT kind, retired_at, unit FROM touchpoints WHERE token = ?", (token,))


def drop_expired_enrollments(conn: Connection, now: str) -> None:
    """Forget unused codes that have expired (their digits may be handed out again)."""
    conn.execute("DELETE FROM kiosk_enrollments WHERE expires_at < ? AND used_at IS NULL", (now,))


def insert_enrollment(
    conn: Connection, code_hash: str, touchpoint: str, created_at: str, created_by: str | None, expires_at: str
) -> bool:
    """Store a new code; False when an active code has the same digits (the digest is the key: draw again)."""
    cursor = conn.execute(
        "INSERT INTO kiosk_enrollments (code_hash, touchpoint, created_at, created_by, expires_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (code_hash) DO NOTHING",
        (code_hash, touchpoint, created_at, created_by, expires_at),
    )
    return cursor.rowcount == 1


def spend_enrollment(conn: Connection, code_hash: str, now: str, kiosk_id: str) -> str | None:
    """Use an unused, unexpired code for `kiosk_id`, in one statement (a code is spent once however
    many tablets send it at the same time); returns its touchpoint, or None."""
    return scalar(
        conn,
        "UPDATE kiosk_enrollments SET used_at = ?, kiosk = ? WHERE code_hash = ? AND used_at IS NULL"
        " AND expires_at >= ? RETURNING touchpoint",
        (now, kiosk_id, code_hash, now),
    )


# -- case invitations ----------------------------------------------------------------------------------


def insert_invitation(conn: Connection, invitation: dict[str, Any]) -> None:
    """Store an invitation (id, kiosk, case_ref, service, officer, created_at, created_by, expires_at)."""
    conn.execute(
        "INSERT INTO kiosk_invitations (id, kiosk, case_ref, service, officer, created_at, created_by, expires_at)"
        " VALUES (:id, :kiosk, :case_ref, :service, :officer, :created_at, :created_by, :expires_at)",
        invitation,
    )


def delivered_cases(conn: Connection, kiosk_id: str, cases: Sequence[str]) -> set[str]:
    """Of `cases`, those delivered to the kiosk in an invitation."""
    if not cases:
        return set()
    rows = all_rows(
        conn,
        f"SELECT case_ref FROM kiosk_invitations WHERE kiosk = ? AND delivered_at IS NOT NULL"
        f" AND case_ref IN ({marks(cases)})",
        (kiosk_id, *cases),
    )
    return {row["case_ref"] for row in rows}


def has_pending_invitation(conn: Connection, kiosk_id: str, now: str) -> bool:
    return (
        scalar(
            conn,
            "SELECT 1 FROM kiosk_invitations WHERE kiosk = ? AND delivered_at IS NULL AND expires_at > ? LIMIT 1",
            (kiosk_id, now),
        )
        is not None
    )


def pending_invitations(conn: Connection, kiosk_id: str, now: str) -> list[dict[str, Any]]:
    """A kiosk's undelivered, unexpired invitations, newest first: id, case_ref, service, officer."""
    return all_rows(
        conn,
        "SELECT id, case_ref, service, officer FROM kiosk_invitations WHERE kiosk = ? AND delivered_at IS NULL"
        " AND expires_at > ? ORDER BY created_at DESC",
        (kiosk_id, now),
    )


def mark_invitations_delivered(conn: Connection, kiosk_id: str, at: str) -> None:
    """Every undelivered invitation of the kiosk counts as delivered now."""
    conn.execute(
        "UPDATE kiosk_invitations SET delivered_at = ? WHERE kiosk = ? AND delivered_at IS NULL", (at, kiosk_id)
    )


# -- the misuse filter's state -----------------------------------------------------------------------


def claim_presses(conn: Connection, kiosk: str) -> str | None:
    """A device's recent presses (a JSON list of device times), read by a write that locks its row
    until the transaction ends, so two syncs of one tablet never judge against the same presses;
    None for an unknown kiosk."""
    found = conn.execute(
        "UPDATE kiosks SET recent_presses = recent_presses WHERE id = ? RETURNING recent_presses", (kiosk,)
    ).fetchone()
    return found[0] if found else None


def record_presses(conn: Connection, kiosk: str, presses: str, at: str) -> None:
    """Keep a device's recent presses after a sync, and when it synced."""
    conn.execute(
        "UPDATE kiosks SET recent_presses = ?, last_sync = ?, last_seen = ? WHERE id = ?", (presses, at, at, kiosk)
    )


def delete_invitations_before(conn: Connection, touchpoints: Sequence[str], before: str) -> int:
    """Delete the invitations sent to these touchpoints' kiosks before `before` (their case references and
    officer codes have reached the end of their retention); how many went."""
    if not touchpoints:
        return 0
    return conn.execute(
        "DELETE FROM kiosk_invitations WHERE created_at < ? AND kiosk IN"
        f" (SELECT id FROM kiosks WHERE touchpoint IN ({marks(touchpoints)}))",
        (before, *touchpoints),
    ).rowcount
