"""SMS: invitations, numbers that sent STOP, and the gateway's inbound messages already answered."""

from __future__ import annotations

from typing import Any

from feedback.store import Connection, first_row, scalar

INVITATION_COLUMNS = (
    "id",
    "touchpoint",
    "unit",
    "lang",
    "case_ref",
    "phone",
    "phone_key",
    "day",
    "response_id",
    "created_at",
    "expires_at",
    "answered_at",
)


# -- invitations -----------------------------------------------------------------------------------------


def insert_invitation(conn: Connection, row: dict[str, Any]) -> None:
    """Store a new invitation (a dict of INVITATION_COLUMNS). The unique (phone_key, day) index refuses a
    second invitation of a number on one day: run it inside `feedback.store.unique`."""
    columns = [c for c in INVITATION_COLUMNS if c in row]
    conn.execute(
        f"INSERT INTO sms_invitations ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        tuple(row[c] for c in columns),
    )


def invitation(conn: Connection, invitation_id: str) -> dict[str, Any] | None:
    return first_row(
        conn, f"SELECT {', '.join(INVITATION_COLUMNS)} FROM sms_invitations WHERE id = ?", (invitation_id,)
    )


def open_invitation(conn: Connection, phone_key: str, now: str) -> dict[str, Any] | None:
    """The newest invitation of a number that is neither answered nor expired, or None."""
    return first_row(
        conn,
        f"SELECT {', '.join(INVITATION_COLUMNS)} FROM sms_invitations"
        " WHERE phone_key = ? AND answered_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id LIMIT 1",
        (phone_key, now),
    )


def close_invitation(conn: Connection, invitation_id: str, at: str) -> bool:
    """Mark an invitation answered (once), its number erased with it; True when this call did."""
    return (
        conn.execute(
            "UPDATE sms_invitations SET answered_at = ?, phone = NULL WHERE id = ? AND answered_at IS NULL",
            (at, invitation_id),
        ).rowcount
        == 1
    )


def erase_phone(conn: Connection, invitation_id: str) -> bool:
    """Erase the number of one invitation (its SMS is delivered or given up); True when it held one."""
    return (
        conn.execute(
            "UPDATE sms_invitations SET phone = NULL WHERE id = ? AND phone IS NOT NULL", (invitation_id,)
        ).rowcount
        == 1
    )


def erase_pending_phones(conn: Connection, phone_key: str) -> list[str]:
    """Erase the number from every invitation of it that still holds it; returns their ids."""
    return [
        row[0]
        for row in conn.execute(
            "UPDATE sms_invitations SET phone = NULL WHERE phone_key = ? AND phone IS NOT NULL RETURNING id",
            (phone_key,),
        ).fetchall()
    ]


def erase_finished(conn: Connection, now: str) -> int:
    """Erase the number of every invitation answered or expired by `now`, and the case reference of every
    one expired (a resent answer of an answered one still names its case until then); how many changed."""
    erased = conn.execute(
        "UPDATE sms_invitations SET phone = NULL, case_ref = NULL WHERE expires_at <= ?"
        " AND (phone IS NOT NULL OR case_ref IS NOT NULL)",
        (now,),
    ).rowcount
    answered = conn.execute(
        "UPDATE sms_invitations SET phone = NULL WHERE answered_at IS NOT NULL AND phone IS NOT NULL"
    ).rowcount
    return erased + answered


def delete_invitations(conn: Connection, expired_before: str) -> int:
    """Delete the invitations that expired before `expired_before`; how many."""
    return conn.execute("DELETE FROM sms_invitations WHERE expires_at < ?", (expired_before,)).rowcount


# -- STOP ------------------------------------------------------------------------------------------------


def opted_out(conn: Connection, phone_key: str) -> bool:
    return scalar(conn, "SELECT 1 FROM sms_optouts WHERE phone_key = ?", (phone_key,)) is not None


def opt_out(conn: Connection, phone_key: str, at: str) -> bool:
    """Record that a number sent STOP; False when it had already."""
    return (
        conn.execute(
            "INSERT INTO sms_optouts (phone_key, created_at) VALUES (?, ?) ON CONFLICT (phone_key) DO NOTHING",
            (phone_key, at),
        ).rowcount
        == 1
    )


# -- inbound messages ------------------------------------------------------------------------------------


def inbound_answer(conn: Connection, message_id: str) -> str | None:
    """The answer (JSON) given to an inbound message id, or None for an id not seen."""
    return scalar(conn, "SELECT answer FROM sms_inbound WHERE id = ?", (message_id,))


def record_inbound(conn: Connection, message_id: str, at: str, answer: str) -> str:
    """Keep the answer to an inbound message id (the first one kept wins); returns the answer kept."""
    conn.execute(
        "INSERT INTO sms_inbound (id, received_at, answer) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (message_id, at, answer),
    )
    return scalar(conn, "SELECT answer FROM sms_inbound WHERE id = ?", (message_id,))


def delete_inbound(conn: Connection, received_before: str) -> int:
    return conn.execute("DELETE FROM sms_inbound WHERE received_at < ?", (received_before,)).rowcount
