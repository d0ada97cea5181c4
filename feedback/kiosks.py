"""Kiosk tablets: enrollment codes, device tokens, the misuse filter and case invitations.

Functions here take a `sqlite3.Connection` inside the caller's transaction (the CLI's, or the
web app's writer thread), like `organisation.py`.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from feedback import attempts
from feedback.errors import Conflict, InvalidInput, NotFound

ENROLL_CODE_MINUTES = 15
# Wrong enrollment codes one client may try within the window: 6-digit codes must not be guessable.
ENROLL_GUESSES = 10
ENROLL_GUESS_WINDOW = timedelta(minutes=15)
INVITATION_MINUTES = 10
DEVICE_TOKEN_PREFIX = "fbd_"


def now() -> datetime:
    return datetime.now(UTC)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def create_enrollment(conn: sqlite3.Connection, touchpoint: str, created_by: str | None = None) -> tuple[str, str]:
    """A one-time 6-digit code for a kiosk touchpoint, valid 15 minutes. Returns (code, expires_at)."""
    row = conn.execute("SELECT kind, retired_at FROM touchpoints WHERE token = ?", (touchpoint,)).fetchone()
    if row is None:
        raise NotFound(f"touchpoint: no touchpoint {touchpoint!r}", "touchpoint")
    if row[1]:
        raise Conflict(f"touchpoint: {touchpoint!r} is retired", "touchpoint")
    issued = now()
    expires = (issued + timedelta(minutes=ENROLL_CODE_MINUTES)).isoformat()
    # Codes are short, so an active code must be unique among the active ones.
    conn.execute("DELETE FROM kiosk_enrollments WHERE expires_at < ? AND used_at IS NULL", (issued.isoformat(),))
    while True:
        code = f"{secrets.randbelow(1_000_000):06d}"
        if not conn.execute("SELECT 1 FROM kiosk_enrollments WHERE code_hash = ?", (hash_secret(code),)).fetchone():
            break
    conn.execute(
        "INSERT INTO kiosk_enrollments (code_hash, touchpoint, created_at, created_by, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (hash_secret(code), touchpoint, issued.isoformat(), created_by, expires),
    )
    return code, expires


def redeem_enrollment(conn: sqlite3.Connection, code: str, name: str | None = None) -> dict:
    """Trade a valid code for a device token bound to the code's touchpoint (the code is then spent)."""
    if not (len(code) == 6 and code.isdigit()):
        raise InvalidInput("code: must be the 6 digits shown by the enrollment", "code")
    row = conn.execute(
        "SELECT touchpoint, expires_at, used_at FROM kiosk_enrollments WHERE code_hash = ?", (hash_secret(code),)
    ).fetchone()
    issued = now()
    if row is None or row[2] is not None or row[1] < issued.isoformat():
        raise NotFound("code: unknown, expired or already used", "code")
    token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    kiosk_id = "k" + secrets.token_hex(4)
    conn.execute(
        "INSERT INTO kiosks (id, touchpoint, name, token_hash, enrolled_at, backlog, dead_letters, recent_presses)"
        " VALUES (?, ?, ?, ?, ?, 0, 0, '[]')",
        (kiosk_id, row[0], name or f"kiosk {kiosk_id}", hash_secret(token), issued.isoformat()),
    )
    conn.execute(
        "UPDATE kiosk_enrollments SET used_at = ?, kiosk = ? WHERE code_hash = ?",
        (issued.isoformat(), kiosk_id, hash_secret(code)),
    )
    return {"device_token": token, "kiosk": {"id": kiosk_id, "touchpoint": row[0], "name": name or f"kiosk {kiosk_id}"}}


def reserve_enrollment_attempt(conn: sqlite3.Connection, client: str, at: datetime | None = None) -> int | None:
    """Count a code against the client before it is checked; None when the client has had its
    `ENROLL_GUESSES` within the window (the code must then not be checked at all)."""
    return attempts.reserve(conn, attempts.KIOSK_ENROLL, client, at or now(), ENROLL_GUESS_WINDOW, ENROLL_GUESSES)


def redeem_reserved(conn: sqlite3.Connection, attempt: int, code: str, name: str | None = None) -> dict:
    """`redeem_enrollment` for a reserved attempt: a good code takes the attempt back; a bad one raises,
    so this job rolls back and the attempt stays counted as a wrong code."""
    result = redeem_enrollment(conn, code, name)
    attempts.release(conn, attempts.KIOSK_ENROLL, attempt)
    return result


def misuse_flags(
    press_times: Iterable[datetime],
    recent: list[datetime],
    min_interval: float,
    burst_count: int,
    burst_window: float,
) -> list[list[str]]:
    """Flags for presses on one device, in device-time order, given the device's recent presses.

    A press closer than `min_interval` seconds to the one before is `fast_repeat`; the
    `burst_count`-th press (and later ones) within `burst_window` seconds is `burst`. Both are stored
    and left out of rates, never dropped. `min_interval` 0 turns every filter off. `recent` is
    extended in place with the presses seen.
    """
    flags: list[list[str]] = []
    for pressed in press_times:
        found: list[str] = []
        if min_interval > 0:
            if recent and (pressed - recent[-1]).total_seconds() < min_interval:
                found.append("fast_repeat")
            window_start = pressed - timedelta(seconds=burst_window)
            in_window = [t for t in recent if t > window_start]
            if len(in_window) + 1 >= burst_count:
                found.append("burst")
        recent.append(pressed)
        flags.append(found)
    return flags


def load_recent(raw: str | None) -> list[datetime]:
    return sorted(datetime.fromisoformat(value) for value in msgspec.json.decode(raw or "[]"))


def dump_recent(recent: list[datetime], keep: int) -> str:
    return msgspec.json.encode([t.isoformat() for t in sorted(recent)[-keep:]]).decode()


def create_invitation(
    conn: sqlite3.Connection,
    kiosk_id: str,
    case_ref: str,
    service: str | None,
    officer: str | None,
    created_by: str | None,
) -> dict:
    row = conn.execute("SELECT revoked_at FROM kiosks WHERE id = ?", (kiosk_id,)).fetchone()
    if row is None:
        raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
    if row[0]:
        raise Conflict(f"id: kiosk {kiosk_id!r} is revoked", "id")
    issued = now()
    invitation = {
        "id": "inv" + secrets.token_hex(6),
        "kiosk": kiosk_id,
        "case_ref": case_ref,
        "service": service,
        "officer": officer,
        "created_at": issued.isoformat(),
        "created_by": created_by,
        "expires_at": (issued + timedelta(minutes=INVITATION_MINUTES)).isoformat(),
    }
    conn.execute(
        "INSERT INTO kiosk_invitations (id, kiosk, case_ref, service, officer, created_at, created_by, expires_at)"
        " VALUES (:id, :kiosk, :case_ref, :service, :officer, :created_at, :created_by, :expires_at)",
        invitation,
    )
    return invitation


def invited_cases(conn: sqlite3.Connection, kiosk_id: str, cases: Iterable[str]) -> set[str]:
    """Of `cases`, those this server delivered to the kiosk in an invitation: a tap carrying one of them
    has its case reference from us, so it is verified."""
    wanted = sorted(set(cases))
    if not wanted:
        return set()
    marks = ",".join("?" for _ in wanted)
    return {
        row[0]
        for row in conn.execute(
            f"SELECT case_ref FROM kiosk_invitations WHERE kiosk = ? AND delivered_at IS NOT NULL"
            f" AND case_ref IN ({marks})",
            [kiosk_id, *wanted],
        )
    }


def take_invitation(conn: sqlite3.Connection, kiosk_id: str) -> dict | None:
    """The oldest pending invitation of a kiosk, marked delivered; older ones for it are superseded."""
    issued = now().isoformat()
    rows = conn.execute(
        "SELECT id, case_ref, service, officer FROM kiosk_invitations WHERE kiosk = ? AND delivered_at IS NULL"
        " AND expires_at > ? ORDER BY created_at DESC",
        (kiosk_id, issued),
    ).fetchall()
    if not rows:
        return None
    # The counter has moved on: only the newest case matters; the others are marked delivered too.
    conn.execute(
        "UPDATE kiosk_invitations SET delivered_at = ? WHERE kiosk = ? AND delivered_at IS NULL", (issued, kiosk_id)
    )
    newest = rows[0]
    return {"id": newest[0], "case_ref": newest[1], "service": newest[2], "officer": newest[3]}


def revoke(conn: sqlite3.Connection, kiosk_id: str) -> None:
    if conn.execute("SELECT 1 FROM kiosks WHERE id = ?", (kiosk_id,)).fetchone() is None:
        raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
    conn.execute("UPDATE kiosks SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now().isoformat(), kiosk_id))


def mark_silent(conn: sqlite3.Connection, cutoff: str, marked_at: str) -> list[dict]:
    """Kiosks not heard from since `cutoff` and not yet reported: mark and return them."""
    rows = conn.execute(
        "SELECT k.id, k.touchpoint, t.unit, coalesce(k.last_seen, k.enrolled_at) AS last_seen"
        " FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint WHERE k.revoked_at IS NULL"
        " AND k.silent_since IS NULL AND coalesce(k.last_seen, k.enrolled_at) < ?",
        (cutoff,),
    ).fetchall()
    for row in rows:
        conn.execute("UPDATE kiosks SET silent_since = ? WHERE id = ?", (marked_at, row[0]))
    return [dict(zip(("kiosk", "touchpoint", "unit", "last_seen"), tuple(row), strict=True)) for row in rows]


def health(conn: sqlite3.Connection, now: datetime, silent_after: timedelta) -> list[dict]:
    """Every enrolled kiosk with its unit and last report, oldest enrolment first: `revoked`, and `silent`
    when a live one has not been heard from for `silent_after`."""
    found = []
    for row in conn.execute(
        "SELECT k.id, k.touchpoint, k.name, k.enrolled_at, k.revoked_at, k.last_seen, k.backlog,"
        " k.dead_letters, k.app_version, k.last_sync, k.battery, t.unit"
        " FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint ORDER BY k.enrolled_at"
    ):
        item = dict(row)
        last = datetime.fromisoformat(item["last_seen"] or item["enrolled_at"])
        item["revoked"] = item["revoked_at"] is not None
        item["silent"] = not item["revoked"] and now - last > silent_after
        found.append(item)
    return found
