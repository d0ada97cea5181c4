"""Call-back messages by SMS: when the corrective action of a response closes and the respondent left a
consented phone number, the "what we did" message goes to that number (the mail plugin sends it to an
e-mail address; a contact holding an address is the mail plugin's), in the respondent's language.

The message is an SMS outbox row keyed `callback:<response id>` (one call-back per response, whatever
the channel; an erasure of the contact withdraws it by that key). What became of it is recorded on the
action when it is delivered or given up (`feedback.sms`), and the contact is purged then. A contact
nothing can be sent to — no gateway, no international number in it, an upheld appeal, a number that
sent STOP — is purged when the action closes, as the mail plugin did before for every phone number
(the officer's call has been made); a number that sent STOP records the call-back as declined.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from feedback import callbacks, sms
from feedback.catalog import decode_names
from feedback.db import Store
from feedback.errors import FeedbackError
from feedback.i18n import name_in
from feedback.models import LANGUAGES, Event
from feedback.outbox import due_at
from feedback.phones import find_phone, phone_key
from feedback.sms_texts import callback_text
from feedback.store import Connection
from feedback.store import actions as action_store
from feedback.store import organisation as organisation_store
from feedback.store import responses as response_store
from feedback.store import sms as sms_store

log = logging.getLogger("feedback.sms")

CLOSED = ("closed", "appeal_upheld")


def wants(event: Event) -> bool:
    """An action of a response closed or its appeal upheld: its call-back may be due."""
    data = event.data
    return (
        event.type == "action.changed"
        and data.get("status") in CLOSED
        and bool(data.get("response_id") or (data.get("source") or {}).get("response_id"))
    )


def _facts(conn: Connection, response_id: str, action_id: int) -> dict[str, Any] | None:
    found = response_store.contact_with_response(conn, response_id)
    if found is None:
        return None
    [unit] = organisation_store.units_named(conn, [found["unit"]]) or [None]
    found["unit_row"] = unit
    found["records"] = action_store.records_newest_first(conn, action_id)
    return found


def _latest(records: list[dict[str, Any]], *columns: str) -> str | None:
    for column in columns:
        for record in records:  # newest first
            if record.get(column):
                return record[column]
    return None


def _purge(conn: Connection, response_id: str, reason: str) -> None:
    if response_store.delete_contact(conn, response_id):
        log.info("contact of response %s purged: %s", response_id, reason)


def _declined(conn: Connection, response_id: str, action_id: int, at: datetime) -> None:
    _purge(conn, response_id, "the number sent STOP")
    try:
        callbacks.record_attempt(
            conn, action_id, via="sms", outcome="declined", by="system", at=at, note="the number sent STOP"
        )
    except FeedbackError as error:  # raised before it wrote anything: settled otherwise
        log.info("call-back of action %s not recorded: %s", action_id, error.message)


async def send_callback(event: Event, store: Store) -> None:
    """Queue the call-back SMS of a closed action, or purge a contact it cannot go to."""
    action = event.data
    action_id = int(action["id"])
    response_id = action.get("response_id") or (action.get("source") or {}).get("response_id")
    found = await store.read(lambda conn: _facts(conn, response_id, action_id))
    if found is None or "@" in found["contact"]:
        return  # no contact left, or an e-mail address: the mail plugin's
    settings = sms.current_settings(store)
    phone = find_phone(found["contact"])
    if action.get("status") != "closed" or phone is None or sms.gateway(store, settings) is None:
        reason = f"action {action_id} {action.get('status')}"
        await store.write(lambda conn: _purge(conn, response_id, reason))
        return
    at = due_at(event.created_at)
    if await store.read(lambda conn: sms_store.opted_out(conn, phone_key(settings.secret, phone))):
        await store.write(lambda conn: _declined(conn, response_id, action_id, at))
        return
    unit = found["unit_row"] or {}
    lang = found["lang"] if found["lang"] in LANGUAGES else unit.get("lang") if unit.get("lang") in LANGUAGES else "en"
    text = callback_text(
        name_in(decode_names(unit.get("names")), lang, unit.get("lang"), unit.get("name") or ""),
        found["receipt"],
        _latest(found["records"], "result", "action_taken", "correction"),
        _latest(found["records"], "explanation"),
        lang,
    )
    queued = await store.write(
        lambda conn: sms.queue(
            conn,
            key=f"{sms.CALLBACK}{response_id}",
            target=f"contact:{response_id}",
            text=text,
            lang=lang,
            now=at,
            event_id=event.id,
            event_type=event.type,
            action=action_id,
            response=response_id,
        )
    )
    if queued:
        sms.nudge(store)
