"""The SMS channel: every SMS is a row of the durable outbox (channel "sms"), sent through the gateway a
plugin provides (`sms_gateway`; the built-in one is `feedback_plugins.sms`, over HTTP).

A row is queued once per key (`invitation:<id>`, `callback:<response id>`), in the transaction that
decides it, and sent by the "sms.deliver" job and, inside the server, at once after queueing. The row
names whom it is for (`target`: `invitation:<id>` or `contact:<response id>`) rather than holding the
number: the number is read where it lives when the message is sent, so a number erased meanwhile (STOP,
the end of an invitation, an erasure) is never sent to, and no copy of it outlives its record. An
invitation's number is erased once its SMS is delivered or given up (a reply is matched by its keyed hash). A number
that sent STOP gets nothing more. Failures are retried with the outbox's backoff and given up after its
last attempt. A call-back message ("what we did", `feedback.sms_callbacks`) records on its action what
became of it (`feedback.callbacks.record_attempt`, via "sms": reached once the gateway took it, not
reached once given up) and purges the contact, in the transaction that records the delivery or failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from feedback import callbacks
from feedback.db import Store
from feedback.errors import FeedbackError
from feedback.outbox import GiveUp, Nudger, deliver_due, enqueue, stamp
from feedback.phones import find_phone, phone_key
from feedback.settings import Settings, load_settings
from feedback.store import Connection
from feedback.store import events as outbox_store
from feedback.store import responses as response_store
from feedback.store import sms as sms_store

log = logging.getLogger("feedback.sms")

CHANNEL = "sms"
CALLBACK = "callback:"  # the key prefix of call-back messages (the mail plugin's too: one call-back per response)
CONCURRENCY = 4  # messages handed to the gateway at once
LEASE_SECONDS = 120.0  # a gateway call has its own timeout, far below this


class Gateway(Protocol):
    """What `sms_gateway` returns: `send` raises when the gateway did not take the message
    (`feedback.outbox.GiveUp` when trying again cannot help)."""

    async def send(self, to: str, text: str, message_id: str) -> None: ...


@dataclass
class _State:
    settings: Settings | None = None
    serving: bool = False  # inside the server (not `feedback tick`): deliver promptly after queueing
    said: set[str] = field(default_factory=set)
    nudger: Nudger = field(default_factory=Nudger)


def _state_of(store: Store) -> _State:
    return store.local("feedback.sms", _State)


def start(store: Store, settings: Settings) -> None:
    """The server starts: this app's settings, and prompt delivery after each queueing."""
    state = _state_of(store)
    state.settings = settings
    state.serving = True
    gateway(store, settings)  # says in the log, once, when SMS is off


def current_settings(store: Store) -> Settings:
    """The app's settings (handed over at start-up); outside the server (`feedback tick`), the environment's."""
    state = _state_of(store)
    if state.settings is None:
        # The secret of this database too: a number is looked up by its keyed hash.
        state.settings = load_settings(db=store.path)
    return state.settings


def _once(store: Store, key: str, message: str, *args: Any) -> None:
    said = _state_of(store).said
    if key not in said:
        said.add(key)
        log.warning(message, *args)


def gateway(store: Store, settings: Settings) -> Gateway | None:
    """The gateway the plugins offer (the first that has one), or None: SMS is off (said once in the log)."""
    found = store.plugins.hook.sms_gateway(settings=settings) if store.plugins is not None else None
    if found is None:
        _once(store, "off", "SMS is off: no gateway is configured (FEEDBACK_SMS_URL), so no SMS is sent")
    return found


def queue(
    conn: Connection,
    *,
    key: str,
    target: str,
    text: str,
    lang: str,
    now: datetime,
    event_id: str | None = None,
    event_type: str | None = None,
    **extra: Any,
) -> bool:
    """Queue one SMS for `target` (`invitation:<id>` or `contact:<response id>`) in the caller's write;
    False when `key` was queued before."""
    payload = json.dumps({"text": text, "lang": lang, **extra}, ensure_ascii=False)
    return enqueue(
        conn,
        channel=CHANNEL,
        dedupe_key=key,
        target=target,
        payload=payload,
        event_id=event_id,
        event_type=event_type,
        now=now,
    )


def message_id(row: dict[str, Any]) -> str:
    """The same id on every attempt of one message, so the gateway can drop a copy it already has."""
    return f"{row['id']}.{hashlib.sha256(row['dedupe_key'].encode()).hexdigest()[:16]}"


def number_for(conn: Connection, target: str, now: str, secret: str) -> tuple[str | None, str]:
    """(number, "") to send to now, or (None, why not): the invitation is answered, expired or erased, the
    contact gone or no number, or the number sent STOP."""
    kind, _, ident = target.partition(":")
    if kind == "invitation":
        found = sms_store.invitation(conn, ident)
        if found is None or found["phone"] is None:
            return None, "the invitation's number was erased"
        if found["answered_at"] is not None:
            return None, "the invitation was answered"
        if found["expires_at"] <= now:
            return None, "the invitation expired"
        phone = found["phone"]
    elif kind == "contact":
        phone = find_phone(response_store.contact_of(conn, ident))
        if phone is None:
            return None, "the contact was erased or holds no international number"
    else:
        return None, f"unknown target {target!r}"
    if sms_store.opted_out(conn, phone_key(secret, phone)):
        return None, "the number sent STOP"
    return phone, ""


async def deliver(store: Store, now: datetime, settings: Settings) -> int:
    """One delivery round of the SMS outbox; returns how many went."""
    found = gateway(store, settings)
    if found is None:
        return 0

    async def send(row: dict[str, Any]) -> None:
        at = stamp(datetime.now(UTC))
        phone, why = await store.read(lambda conn: number_for(conn, row["target"], at, settings.secret))
        if phone is None:
            raise GiveUp(why)
        await found.send(phone, json.loads(row["payload"])["text"], message_id(row))

    def delivered(conn: Connection, row: dict[str, Any]) -> None:
        if row["dedupe_key"].startswith(CALLBACK):
            settle_callback(conn, row, "reached", row["delivered_at"])
        settle_invitation(conn, row)

    def given_up(conn: Connection, row: dict[str, Any]) -> None:
        if row["dedupe_key"].startswith(CALLBACK):
            settle_callback(conn, row, "not_reached", row["failed_at"])
        settle_invitation(conn, row)

    return await deliver_due(
        store,
        CHANNEL,
        send,
        now,
        lease_seconds=LEASE_SECONDS,
        on_delivered=delivered,
        on_given_up=given_up,
        concurrency=CONCURRENCY,
        batch=CONCURRENCY * 4,
    )


def settle_invitation(conn: Connection, row: dict[str, Any]) -> None:
    """An invitation's SMS was delivered or given up: nothing more goes to its number, and a reply is matched
    by the number's keyed hash alone, so the number itself goes now."""
    kind, _, invitation_id = (row["target"] or "").partition(":")
    if kind == "invitation":
        sms_store.erase_phone(conn, invitation_id)


def settle_callback(conn: Connection, row: dict[str, Any], outcome: str, at: str) -> None:
    """A call-back message was delivered ("reached") or given up ("not_reached"): say so on its action,
    and purge the contact, whose work is done either way (the action is closed), and the row's copy."""
    payload = json.loads(row["payload"] or "{}")
    response_id, action_id = payload.get("response"), payload.get("action")
    if response_id and response_store.delete_contact(conn, response_id):
        log.info("contact of response %s purged: call-back SMS %s", response_id, outcome.replace("_", " "))
    outbox_store.forget_target(conn, row["id"])
    if action_id is None:
        return
    try:
        callbacks.record_attempt(
            conn, int(action_id), via="sms", outcome=outcome, by="system", at=datetime.fromisoformat(at)
        )
    except FeedbackError as error:  # raised before it wrote anything: the call-back was settled otherwise
        log.info("call-back of action %s not recorded: %s", action_id, error.message)


def nudge(store: Store) -> None:
    """Inside the server, send what was just queued now rather than at the next job run."""
    state = _state_of(store)
    if state.serving:
        state.nudger.nudge(CHANNEL, lambda: deliver(store, datetime.now(UTC), current_settings(store)))


async def deliver_job(store: Store, now: datetime, settings: Settings) -> None:
    """The "sms.deliver" job: in the server a round runs in the background, so a backlog never holds up
    the other jobs; in `feedback tick`, here and now (and the settings it runs with are the ones the
    call-backs it queues after each job use)."""
    state = _state_of(store)
    if state.serving:
        nudge(store)
        return
    state.settings = state.settings or settings
    await deliver(store, now, settings)
