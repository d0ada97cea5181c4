"""Inbound SMS: what the gateway hands over, `POST /api/v1/sms/inbound {"id", "from", "text"}`.

The body is signed by the gateway: `X-Feedback-Signature: sha256=<hex HMAC-SHA256 of the raw body with
FEEDBACK_SMS_SECRET>`, compared in constant time before anything in the body is read (missing: 401,
wrong: 403; without a secret configured the route answers 404, as if it were not there).

Each message id is answered once: the answer is kept (`sms_inbound`; a rating's in the write that stores
it, so a server killed after that commit still gives a redelivery the same answer) and a message delivered
again gets the same answer and changes nothing. What a message does:

- `STOP` (any case; also DỪNG/DUNG, СТОП, 退订, TD): the number's keyed hash joins the opt-outs, so it
  gets no further invitation or message, and every invitation still holding the number forgets it (its
  SMS, if not sent yet, is withdrawn) → `opted_out`;
- one digit within the primary rating's scale, from a number with an open invitation (the newest): the
  rating through the one ingest path (`feedback.ingest`), channel `sms`, with the invitation's case
  reference (verified: the server handed it out) and response id (so the link and a reply are still one
  response), in the write that closes the invitation → `stored`;
- anything else → `ignored`, with the reason: the gateway has delivered it and must not retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedback import audit
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import FeedbackError, Forbidden, InvalidInput, Unauthorized
from feedback.events import stamp
from feedback.ingest import Item, ingest
from feedback.invitations import InvitationPolicy
from feedback.models import Submission
from feedback.phones import normalise_phone, phone_key
from feedback.settings import Settings
from feedback.sms_texts import is_stop
from feedback.store import Connection
from feedback.store import events as outbox_store
from feedback.store import sms as sms_store

SIGNATURE_HEADER = "x-feedback-signature"
MAX_BODY = 16 * 1024
MAX_ID = 200
MAX_TEXT = 1600


@dataclass(frozen=True)
class Inbound:
    id: str
    sender: str  # normalised
    text: str


def check_signature(secret: str, body: bytes, header: str | None) -> None:
    """Unauthorized without a signature, Forbidden with one that is not the gateway's."""
    if not header:
        raise Unauthorized(f"{SIGNATURE_HEADER}: the gateway's signature is required", SIGNATURE_HEADER)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise Forbidden(f"{SIGNATURE_HEADER}: not the gateway's signature of this body", SIGNATURE_HEADER)


def parse(value: Any) -> Inbound:
    """A decoded body as an Inbound; InvalidInput naming the field (other keys are ignored)."""
    if not isinstance(value, dict):
        raise InvalidInput('body: a JSON object {"id", "from", "text"}', "body")
    message_id, sender, text = value.get("id"), value.get("from"), value.get("text")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID:
        raise InvalidInput(f"id: the gateway's message id, text of 1 to {MAX_ID} characters", "id")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise InvalidInput(f"text: the message, text of at most {MAX_TEXT} characters", "text")
    return Inbound(message_id, normalise_phone(sender, "from", prefixed=False), text)


def digit_of(text: str) -> int | None:
    """The value of a reply that is one digit (any script's, e.g. a full-width ４), else None."""
    stripped = text.strip()
    if len(stripped) != 1:
        return None
    return unicodedata.decimal(stripped, None)


def ignored(message: Inbound, reason: str) -> dict[str, Any]:
    return {"id": message.id, "status": "ignored", "reason": reason}


def opt_out(conn: Connection, key: str, message_id: str, now: datetime) -> None:
    """STOP: the number's keyed hash is kept; every invitation still holding the number forgets it, and
    their SMS not yet sent are withdrawn."""
    sms_store.opt_out(conn, key, stamp(now))
    erased = sms_store.erase_pending_phones(conn, key)
    outbox_store.withdraw(conn, [f"invitation:{invitation_id}" for invitation_id in erased])
    audit.record(conn, "sms_optout", message_id, "create", after={"invitations_erased": len(erased)})


async def answer(store: Store, snapshot: Snapshot, settings: Settings, message: Inbound) -> dict[str, Any]:
    """The answer to a message seen for the first time (what it did)."""
    now = datetime.now(UTC)
    key = phone_key(settings.secret, message.sender)
    if is_stop(message.text):
        await store.write(lambda conn: opt_out(conn, key, message.id, now))
        return {"id": message.id, "status": "opted_out"}
    digit = digit_of(message.text)
    if digit is None:
        return ignored(message, "not_a_rating")
    invitation = await store.read(lambda conn: sms_store.open_invitation(conn, key, stamp(now)))
    if invitation is None:
        return ignored(message, "no_open_invitation")
    touchpoint = snapshot.touchpoint(invitation["touchpoint"])
    version = snapshot.current.get(touchpoint.survey) if touchpoint else None
    primary = version.definition.primary_rating() if version else None
    if primary is None:
        return ignored(message, "no_survey")
    if not 1 <= digit <= primary.scale:
        return ignored(message, "not_a_rating")
    stored = {"id": message.id, "status": "stored", "response": invitation["response_id"]}

    def keep_answer(conn: Connection) -> None:
        # In the write that stores the rating and closes the invitation: were the answer kept in a write of
        # its own, a server killed between the two would answer the gateway's redelivery of this message
        # `no_open_invitation` though its rating is stored.
        sms_store.record_inbound(conn, message.id, stamp(now), json.dumps(stored, ensure_ascii=False))

    submission = Submission(
        touchpoint=touchpoint.token,
        answers={primary.key: digit},
        id=invitation["response_id"],
        lang=invitation["lang"] if invitation["lang"] in version.definition.languages else None,
        case_ref=invitation["case_ref"],
        channel="sms",
    )
    [outcome] = await ingest(
        [Item(submission, case_verified=True)],
        store,
        snapshot,
        policy=InvitationPolicy(invitation["id"], primary_only=True, when_closed=keep_answer),
        default_action_days=settings.default_action_days,
    )
    if outcome.status in ("stored", "duplicate"):
        return stored
    if outcome.status == "conflict":
        return ignored(message, "already_answered")
    if outcome.status == "gone":
        return ignored(message, "touchpoint_retired")
    if isinstance(outcome.error, FeedbackError) and outcome.error.status_code >= 500:
        raise outcome.error
    return ignored(message, "not_a_rating")


async def handle(store: Store, snapshot: Snapshot, settings: Settings, message: Inbound) -> dict[str, Any]:
    """The answer to an inbound message: the one kept for its id, else what it does now (then kept; of
    two deliveries of one message at once, both act, idempotently, and both answer what was kept first)."""
    known = await store.read(lambda conn: sms_store.inbound_answer(conn, message.id))
    if known is not None:
        return json.loads(known)
    found = await answer(store, snapshot, settings, message)
    encoded = json.dumps(found, ensure_ascii=False)
    kept = await store.write(lambda conn: sms_store.record_inbound(conn, message.id, stamp(datetime.now(UTC)), encoded))
    return json.loads(kept)
