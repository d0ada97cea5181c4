"""Kiosk tablets: enrollment codes, device tokens, the misuse filter and case invitations.

Functions here take a connection inside the caller's transaction (the CLI's, or the
web app's writer thread), like `organisation.py`.
"""

from __future__ import annotations

import hashlib
import secrets
from bisect import bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from feedback import audit
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.events import record
from feedback.ingest import Policy, Prepared
from feedback.models import Event
from feedback.store import Connection
from feedback.store import kiosks as kiosk_store
from feedback.store import responses as response_store
from feedback.store import users as user_store

ENROLL_CODE_MINUTES = 15
# Wrong enrollment codes one client may try within the window: 6-digit codes must not be guessable.
ENROLL_GUESSES = 10
ENROLL_GUESS_WINDOW = timedelta(minutes=15)
INVITATION_MINUTES = 10
SKEWED = "clock_skew"  # ingest's flag for a device time too far ahead or too old to believe
# How far before its batch's arrival a skewed tap may be placed: beyond any filter window, and within
# the range of a date, however absurd the device's clock.
MAX_ANCHORED_GAP = timedelta(days=30)
DEVICE_TOKEN_PREFIX = "fbd_"


def now() -> datetime:
    return datetime.now(UTC)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def create_enrollment(conn: Connection, touchpoint: str, created_by: str | None = None) -> tuple[str, str]:
    """A one-time 6-digit code for a kiosk touchpoint, valid 15 minutes. Returns (code, expires_at)."""
    row = kiosk_store.touchpoint_state(conn, touchpoint)
    if row is None:
        raise NotFound(f"touchpoint: no touchpoint {touchpoint!r}", "touchpoint")
    if row["retired_at"]:
        raise Conflict(f"touchpoint: {touchpoint!r} is retired", "touchpoint")
    issued = now()
    expires = (issued + timedelta(minutes=ENROLL_CODE_MINUTES)).isoformat()
    # Codes are short, so a code must be unique among the stored ones: the digest is the key, and
    # digits that are taken are drawn again.
    kiosk_store.drop_expired_enrollments(conn, issued.isoformat())
    while True:
        code = f"{secrets.randbelow(1_000_000):06d}"
        if kiosk_store.insert_enrollment(conn, hash_secret(code), touchpoint, issued.isoformat(), created_by, expires):
            # Who let a tablet in: the enrolment that follows is made by the tablet itself, with no user.
            after = {"touchpoint": touchpoint, "expires_at": expires, "created_by": created_by}
            audit.record(conn, "kiosk_enrollment", touchpoint, "create", after=after, unit=row["unit"])
            return code, expires


def redeem_enrollment(conn: Connection, code: str, name: str | None = None) -> dict:
    """Trade a valid code for a device token bound to the code's touchpoint (the code is then spent)."""
    if not (len(code) == 6 and code.isdigit()):
        raise InvalidInput("code: must be the 6 digits shown by the enrollment", "code")
    issued = now()
    token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    kiosk_id = "k" + secrets.token_hex(4)
    # Spent in one statement: of two tablets sending the same code at once, one gets the kiosk.
    touchpoint = kiosk_store.spend_enrollment(conn, hash_secret(code), issued.isoformat(), kiosk_id)
    if touchpoint is None:
        raise NotFound("code: unknown, expired or already used", "code")
    with audit.tracked(conn, "kiosk", kiosk_id, "enrol") as change:
        kiosk_store.insert(
            conn, kiosk_id, touchpoint, name or f"kiosk {kiosk_id}", hash_secret(token), issued.isoformat()
        )
        change.unit = kiosk_store.unit_of(conn, kiosk_id)
    return {
        "device_token": token,
        "kiosk": {"id": kiosk_id, "touchpoint": touchpoint, "name": name or f"kiosk {kiosk_id}"},
    }


def reserve_enrollment_attempt(conn: Connection, client: str, at: datetime | None = None) -> int | None:
    """Count a code against the client before it is checked; None when the client has had its
    `ENROLL_GUESSES` within the window (the code must then not be checked at all)."""
    return user_store.reserve_attempt(
        conn, user_store.KIOSK_ENROLL, client, at or now(), ENROLL_GUESS_WINDOW, ENROLL_GUESSES
    )


def redeem_reserved(conn: Connection, attempt: int, code: str, name: str | None = None) -> dict:
    """`redeem_enrollment` for a reserved attempt: a good code takes the attempt back; a bad one raises,
    so this job rolls back and the attempt stays counted as a wrong code."""
    result = redeem_enrollment(conn, code, name)
    user_store.release_attempt(conn, user_store.KIOSK_ENROLL, attempt)
    return result


def misuse_flags(
    press_times: Iterable[datetime],
    recent: list[datetime],
    min_interval: float,
    burst_count: int,
    burst_window: float,
) -> list[list[str]]:
    """Flags for presses on one device, in time order, given the device's recent presses (sorted).

    A press closer than `min_interval` seconds to the one before is `fast_repeat`; the
    `burst_count`-th press (and later ones) within `burst_window` seconds is `burst`. Both are stored
    and left out of rates, never dropped. `min_interval` 0 turns every filter off. `recent` gains the
    presses seen, kept sorted. Only presses at or before a press judge it: one recorded later (a clock
    that was put back) says nothing about how fast this one followed the one before.
    """
    flags: list[list[str]] = []
    for pressed in press_times:
        found: list[str] = []
        if min_interval > 0:
            before = bisect_right(recent, pressed)
            if before and (pressed - recent[before - 1]).total_seconds() < min_interval:
                found.append("fast_repeat")
            window_start = pressed - timedelta(seconds=burst_window)
            if before - bisect_right(recent, window_start) + 1 >= burst_count:
                found.append("burst")
        insort(recent, pressed)
        flags.append(found)
    return flags


def load_recent(raw: str | None) -> list[datetime]:
    return sorted(datetime.fromisoformat(value) for value in msgspec.json.decode(raw or "[]"))


def dump_recent(recent: list[datetime], keep: int) -> str:
    return msgspec.json.encode([t.isoformat() for t in sorted(recent)[-keep:]]).decode()


@dataclass(frozen=True, kw_only=True)
class KioskPolicy(Policy):
    """The kiosk channel on the one ingest path: each response keeps its device, only the primary
    rating is required, and the misuse filter flags presses against the device's earlier ones."""

    device: str
    min_interval: float
    burst_count: int
    burst_window: float
    always_write = True  # a sync records when the tablet last synced, even if every tap was refused

    def flags_in_write(self, conn: Connection, prepared: list[Prepared]) -> dict[str, list[str]]:
        """`fast_repeat` and `burst` by response id, judged on the device's own clock (even a wrong one)
        across batches; a tap stored before (a retried batch) is no new press. Runs in the write job:
        the device's presses are claimed, judged and recorded in one transaction."""
        recent = load_recent(kiosk_store.claim_presses(conn, self.device))
        known = response_store.existing_ids(conn, [p.row["id"] for p in prepared])
        fresh = [p for p in prepared if p.row["id"] not in known]
        timed = sorted(zip(filter_times(fresh), fresh, strict=True), key=lambda pair: pair[0])
        found = misuse_flags([t for t, _ in timed], recent, self.min_interval, self.burst_count, self.burst_window)
        synced = now().isoformat()
        kiosk_store.record_presses(conn, self.device, dump_recent(recent, max(self.burst_count, 2)), synced)
        return {p.row["id"]: flags for (_, p), flags in zip(timed, found, strict=True) if flags}


def pressed_at(prepared: Prepared) -> str:
    """When the tap happened by the device's clock (the server's time when the device gave none)."""
    return prepared.row["client_time"] or prepared.row["occurred_at"]


def filter_times(prepared: list[Prepared]) -> list[datetime]:
    """When each tap happened, as the misuse filter judges it: by the device's clock, except for taps
    whose device time was already flagged `clock_skew`. Those are put on the server's clock: the
    latest of them at its arrival and the others before it by their spacing on the device (a clock
    set wrong still ticks evenly). So one tap stamped days ahead never makes the genuine taps after
    it look like repeats, and a tablet whose clock is wrong all along is still judged on its own
    spacing, not flagged for arriving in one batch."""
    skewed = [p for p in prepared if SKEWED in p.flags]
    if skewed:
        latest = max(datetime.fromisoformat(p.row["client_time"]) for p in skewed)
        arrival = max(datetime.fromisoformat(p.row["server_time"]) for p in skewed)
    times = []
    for p in prepared:
        if SKEWED in p.flags:
            gap = min(latest - datetime.fromisoformat(p.row["client_time"]), MAX_ANCHORED_GAP)
            times.append(arrival - gap)
        else:
            times.append(datetime.fromisoformat(pressed_at(p)))
    return times


def create_invitation(
    conn: Connection,
    kiosk_id: str,
    case_ref: str,
    service: str | None,
    officer: str | None,
    created_by: str | None,
) -> dict:
    exists, revoked_at = kiosk_store.revoked_at(conn, kiosk_id)
    if not exists:
        raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
    if revoked_at:
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
    kiosk_store.insert_invitation(conn, invitation)
    return invitation


def invited_cases(conn: Connection, kiosk_id: str, cases: Iterable[str]) -> set[str]:
    """Of `cases`, those this server delivered to the kiosk in an invitation: a tap carrying one of them
    has its case reference from us, so it is verified."""
    return kiosk_store.delivered_cases(conn, kiosk_id, sorted(set(cases)))


def take_invitation(conn: Connection, kiosk_id: str) -> dict | None:
    """The oldest pending invitation of a kiosk, marked delivered; older ones for it are superseded."""
    issued = now().isoformat()
    rows = kiosk_store.pending_invitations(conn, kiosk_id, issued)
    if not rows:
        return None
    # The counter has moved on: only the newest case matters; the others are marked delivered too.
    kiosk_store.mark_invitations_delivered(conn, kiosk_id, issued)
    return rows[0]


def revoke(conn: Connection, kiosk_id: str) -> None:
    if not kiosk_store.revoked_at(conn, kiosk_id)[0]:
        raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
    with audit.tracked(conn, "kiosk", kiosk_id, "revoke", kiosk_store.unit_of(conn, kiosk_id)):
        kiosk_store.revoke(conn, kiosk_id, now().isoformat())


def mark_silent(conn: Connection, cutoff: str, marked_at: str) -> list[dict]:
    """Kiosks not heard from since `cutoff` and not yet reported: mark them, log a `kiosk.silent` event
    for each in the same transaction, and return them."""
    # Each kiosk is reported by the call that marks it, so two workers never both report one.
    found = [
        row for row in kiosk_store.newly_silent(conn, cutoff) if kiosk_store.mark_silent(conn, row["kiosk"], marked_at)
    ]
    record(conn, [silent_event(data, marked_at) for data in found])
    return found


def silent_event(data: dict, marked_at: str) -> Event:
    return Event(
        type="kiosk.silent", id=f"kiosk.silent:{data['kiosk']}:{data['last_seen']}", created_at=marked_at, data=data
    )


def health(conn: Connection, now: datetime, silent_after: timedelta) -> list[dict]:
    """Every enrolled kiosk with its unit and last report, oldest enrolment first: `revoked`, and `silent`
    when a live one has not been heard from for `silent_after`."""
    found = []
    for item in kiosk_store.fleet(conn):
        last = datetime.fromisoformat(item["last_seen"] or item["enrolled_at"])
        item["revoked"] = item["revoked_at"] is not None
        item["silent"] = not item["revoked"] and now - last > silent_after
        found.append(item)
    return found
