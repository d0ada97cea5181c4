"""SMS invitations: a counter's software asks a citizen by SMS to rate the service they just had.

`POST /api/v1/invitations` stores an invitation and queues its SMS (`feedback.sms`) in one write. The
SMS carries a signed short link, `<public URL>/i/<code>`: the code is the invitation's id (12 random
URL-safe characters) and an HMAC of it with the installation's secret (8 more), so a code this server
did not make is refused without a look-up. The link opens the survey of the invitation's touchpoint for
its case, the case reference verified (the server handed it out), and a reply by SMS with one digit is
taken as the primary rating (`feedback.sms_inbound`). Both store under one response id derived from the
invitation's id, so an invitation gets one response however it is answered and however often: a
second submit is the replay or the conflict of the first. The write that stores it closes the invitation.

Rules, each holding under any number of writers and app nodes: a number that sent STOP gets none (409
naming `phone`); a number gets at most one invitation per local day of the touchpoint's unit (429 naming
`phone`; the unique index on the number's keyed hash and the day refuses the second, whoever writes it).

What is kept: the number until its SMS is delivered or given up (`feedback.sms`; erased too in the write
that stores an answer, at STOP and when the invitation expires), then only its keyed hash (`feedback.phones`);
the case reference until the invitation expires (the response keeps its own copy); the invitation itself
(touchpoint, language, times, the keyed hash) until `KEEP_DAYS` after it expired. The "sms.purge" job
erases and deletes on that schedule.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from feedback import audit, sms
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import Conflict, FeedbackError, Gone, InvalidInput, NotFound
from feedback.events import stamp
from feedback.ingest import Policy, Prepared
from feedback.jobs import JobContext
from feedback.models import LANGUAGES, Touchpoint
from feedback.phones import normalise_phone, phone_key
from feedback.qr import parse_case
from feedback.settings import Settings
from feedback.sms_texts import invitation_text
from feedback.store import Connection, unique
from feedback.store import sms as sms_store

ID_BYTES = 9  # 72 random bits: 12 URL-safe characters
SIG_BYTES = 6  # 48 bits of HMAC: 8 characters
ID_LENGTH, CODE_LENGTH = 12, 20
# An invitation (without its number, erased before) is deleted this long after it expired; the gateway's
# inbound message ids are kept as long.
KEEP_DAYS = 30
# Response ids of invitations live in their own UUID namespace (uuid5 of the invitation's id).
_RESPONSE_NAMESPACE = uuid.UUID("0b7d3f52-8a61-5c4e-b9f0-3e2d71c6a845")


class DailyLimit(FeedbackError):
    """The number was invited today already."""

    status_code = 429


class SmsOff(FeedbackError):
    """No gateway is configured: nothing could be sent."""

    status_code = 503


# -- codes and links -------------------------------------------------------------------------------------


def _sig(secret: str, invitation_id: str) -> str:
    digest = hmac.digest(secret.encode(), b"sms-invitation:" + invitation_id.encode(), "sha256")[:SIG_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def link_code(secret: str, invitation_id: str) -> str:
    """What the link carries: the id and its signature."""
    return invitation_id + _sig(secret, invitation_id)


def invitation_id_of(secret: str, code: str) -> str | None:
    """The invitation id a link's code names, or None when this server did not make the code."""
    if not isinstance(code, str) or len(code) != CODE_LENGTH:
        return None
    invitation_id, sig = code[:ID_LENGTH], code[ID_LENGTH:]
    return invitation_id if hmac.compare_digest(sig.encode(), _sig(secret, invitation_id).encode()) else None


def link(public_url: str, secret: str, invitation_id: str) -> str:
    return f"{public_url.rstrip('/')}/i/{link_code(secret, invitation_id)}"


def response_id(invitation_id: str) -> str:
    """The id every answer to this invitation is stored under: the link's survey and a reply alike."""
    return str(uuid.uuid5(_RESPONSE_NAMESPACE, invitation_id))


# -- inviting ----------------------------------------------------------------------------------------------


def check_lang(lang: Any, touchpoint: Touchpoint) -> str:
    if lang is None:
        return touchpoint.lang if touchpoint.lang in LANGUAGES else "en"
    if lang not in LANGUAGES:
        raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
    return lang


async def invite(
    store: Store,
    snapshot: Snapshot,
    settings: Settings,
    *,
    touchpoint: Touchpoint,
    phone: str,
    case_ref: str | None,
    lang: str | None,
    public_url: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store an invitation and queue its SMS. Raises InvalidInput (phone, case_ref, lang), NotFound or Gone
    (touchpoint), Conflict (phone: it sent STOP), DailyLimit (phone) or SmsOff."""
    now = now or datetime.now(UTC)
    retired_at = snapshot.retired.get(touchpoint.token)
    if retired_at is not None:
        raise Gone(f"touchpoint: {touchpoint.token!r} was retired at {retired_at.isoformat()}", "touchpoint")
    version = snapshot.current.get(touchpoint.survey)
    primary = version.definition.primary_rating() if version else None
    if primary is None:
        raise NotFound(f"touchpoint: survey {touchpoint.survey!r} has no published rating to answer", "touchpoint")
    number = normalise_phone(phone)
    case_ref = parse_case(case_ref.strip() if isinstance(case_ref, str) else case_ref, "case_ref")
    lang = check_lang(lang, touchpoint)
    if sms.gateway(store, settings) is None:
        raise SmsOff("sms: no SMS gateway is configured (FEEDBACK_SMS_URL), so no invitation can be sent", "sms")
    unit = snapshot.units[touchpoint.unit]
    invitation_id = secrets.token_urlsafe(ID_BYTES)
    expires_at = stamp(now + timedelta(days=settings.sms_invitation_days))
    key = phone_key(settings.secret, number)
    row = {
        "id": invitation_id,
        "touchpoint": touchpoint.token,
        "unit": unit.code,
        "lang": lang,
        "case_ref": case_ref,
        "phone": number,
        "phone_key": key,
        "day": now.astimezone(ZoneInfo(unit.tz)).date().isoformat(),
        "response_id": response_id(invitation_id),
        "created_at": stamp(now),
        "expires_at": expires_at,
    }
    text = invitation_text(
        snapshot.unit_name(unit.code, lang), primary.scale, link(public_url, settings.secret, invitation_id), lang
    )

    def job(conn: Connection) -> None:
        if sms_store.opted_out(conn, key):
            raise Conflict("phone: this number sent STOP and gets no more SMS", "phone")
        try:
            with unique(conn, "phone: taken", "phone"):
                sms_store.insert_invitation(conn, row)
        except Conflict:
            raise DailyLimit("phone: this number was invited today already (one invitation a day)", "phone") from None
        sms.queue(
            conn, key=f"invitation:{invitation_id}", target=f"invitation:{invitation_id}", text=text, lang=lang, now=now
        )
        # Never the number, nor the case reference (the log is kept for good): that there was one.
        after = {"touchpoint": touchpoint.token, "lang": lang, "case": case_ref is not None, "expires_at": expires_at}
        audit.record(conn, "invitation", invitation_id, "create", after=after, unit=unit.code)

    await store.write(job)
    sms.nudge(store)
    return {
        "id": invitation_id,
        "touchpoint": touchpoint.token,
        "lang": lang,
        "case_ref": case_ref,
        "expires_at": expires_at,
    }


# -- answering ---------------------------------------------------------------------------------------------


class InvitationPolicy(Policy):
    """The one ingest path for an answer to an invitation: the write that stores it closes the invitation.
    `primary_only`: a reply by SMS answers the primary rating alone. `when_closed` runs in that write when it
    is the one that closes the invitation (so it is the one storing its response): a reply by SMS keeps its
    answer there, committed with the rating or not at all."""

    def __init__(
        self,
        invitation_id: str,
        *,
        primary_only: bool = False,
        when_closed: Callable[[Connection], None] | None = None,
    ) -> None:
        self.invitation_id = invitation_id
        self.primary_only = primary_only
        self.when_closed = when_closed

    def flags_in_write(self, conn: Connection, prepared: list[Prepared]) -> dict[str, list[str]]:
        closed = bool(prepared) and sms_store.close_invitation(conn, self.invitation_id, stamp(datetime.now(UTC)))
        if closed and self.when_closed is not None:
            self.when_closed(conn)
        return {}


def status_of(invitation: dict[str, Any], now: datetime) -> str:
    """open, answered or expired."""
    if invitation["answered_at"] is not None:
        return "answered"
    return "expired" if invitation["expires_at"] <= stamp(now) else "open"


async def find(store: Store, secret: str, code: str) -> dict[str, Any] | None:
    """The invitation a link's code names, or None (a code this server did not make, or one deleted)."""
    invitation_id = invitation_id_of(secret, code)
    if invitation_id is None:
        return None
    return await store.read(lambda conn: sms_store.invitation(conn, invitation_id))


# -- what is kept, and for how long ---------------------------------------------------------------------------


def purge(conn: Connection, now: datetime) -> dict[str, int]:
    """Erase the number and case reference of every invitation answered or expired, delete invitations and
    inbound message ids older than KEEP_DAYS; counts in the audit log (never content)."""
    old = stamp(now - timedelta(days=KEEP_DAYS))
    done = {
        "numbers_erased": sms_store.erase_finished(conn, stamp(now)),
        "invitations_deleted": sms_store.delete_invitations(conn, old),
        "inbound_deleted": sms_store.delete_inbound(conn, old),
    }
    if any(done.values()):
        audit.record(conn, "sms", stamp(now), "purge", after=done)
    return done


async def run_purge(ctx: JobContext) -> dict[str, int]:
    """The "sms.purge" job."""
    return await ctx.store.write(lambda conn: purge(conn, ctx.now))
