"""Erasing the personal data of stored responses: by the retention job (`feedback.retention`), at the
citizen's request from the receipt page, and by a manager with a reason.

What goes: the free text (each free-text answer becomes `MARKER`), the consented contact, the case
reference and the officer code, as asked; the rating, its level, the answers to closed questions and the
rollups stay, so every rate is what it was. `responses.erased` lists what was erased. A call-back mail
not yet sent to an erased contact is withdrawn. Each change is logged in the audit log in the
transaction that makes it (`audit.response_changed`: the row's digest before and after, never the
content), so the daily seals still verify; erasures on request add an "erasure" entry with the fields
and the reason.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from feedback import audit
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput, NotFound
from feedback.models import ChoiceQuestion
from feedback.store import Connection, dialect
from feedback.store import actions as action_store
from feedback.store import events as event_store
from feedback.store import responses as response_store

#: What an erased free-text answer holds instead of the text (pages show it in the reader's language).
MARKER = "[erased]"
#: The personal data of a response that can be erased.
FIELDS = ("comment", "contact", "case_ref", "officer")
#: What a citizen erases from the receipt page: what they wrote and where to reach them.
CITIZEN_FIELDS = ("comment", "contact")
#: What a manager's erasure takes by default: the respondent's data (the officer code is the staff's).
MANAGER_FIELDS = ("comment", "contact", "case_ref")
#: Corrective actions in these states are finished with their response.
CLOSED_ACTIONS = frozenset({"closed", "appeal_upheld"})
MAX_REASON = 500
#: How `responses.content_hash` begins once personal data of the response was erased.
ERASED_HASH = "erased:"

_json = msgspec.json.Encoder()


def callback_key(response_id: str) -> str:
    """The outbox key of the call-back mail to a response's contact (the mail plugin's)."""
    return f"callback:{response_id}"


def stored_event_id(response_id: str) -> str:
    """The id of the event a stored response raised (its data: the response as stored)."""
    return f"response.stored:{response_id}"


def erased_hash(old: str) -> str:
    """A response's new content hash at each erasure: from the old one and 16 random bytes kept nowhere,
    so neither it nor any digest of the row as it was (audit log, seals) can be rebuilt from guesses."""
    return ERASED_HASH + hashlib.sha256(old.encode() + secrets.token_bytes(16)).hexdigest()


def erased_fields(row: dict[str, Any]) -> list[str]:
    """What was erased of a stored response (its `erased` column), in FIELDS order."""
    text = row.get("erased")
    found = set(msgspec.json.decode(text)) if text else set()
    return [field for field in FIELDS if field in found]


def json_answers(row: dict[str, Any]) -> dict[str, Any]:
    """A stored response's answers, decoded."""
    return msgspec.json.decode(row["answers"]) if row.get("answers") else {}


def _identifier(value: str) -> bool:
    return value.isascii() and all(c.islower() or c.isdigit() or c == "_" for c in value)


def free_text(snapshot: Snapshot, row: dict[str, Any], answers: dict[str, Any]) -> list[str]:
    """The keys of a response's answers that hold text someone typed: every string answer but those to
    closed (choice) questions. For a survey version the snapshot does not know, the search index's rule:
    the `comment` key and any string that is not an identifier."""
    version = snapshot.versions.get((row["survey"], row["survey_version"]))
    keys = []
    for key, value in answers.items():
        if not isinstance(value, str) or value == MARKER:
            continue
        if version is None:
            typed = key == "comment" or not _identifier(value)
        else:
            typed = not isinstance(version.definition.question(key), ChoiceQuestion)
        if typed:
            keys.append(key)
    return keys


def _erase_row(
    conn: Connection, snapshot: Snapshot, row: dict[str, Any], fields: Iterable[str], mark_all: bool
) -> list[str]:
    """Erase `fields` of one response row; what was erased (with `mark_all`, every field asked counts as
    erased, present or not: a citizen's request). Changes nothing when nothing is left to erase."""
    fields = set(fields)
    answers = json_answers(row)
    erased: list[str] = []
    if "comment" in fields:
        typed = free_text(snapshot, row, answers)
        for key in typed:
            answers[key] = MARKER
        if typed:
            erased.append("comment")
            dialect.of(conn).forget_comments(conn, [row["id"]])
    if "contact" in fields and response_store.delete_contacts(conn, [row["id"]]):
        erased.append("contact")
        event_store.withdraw(conn, [callback_key(row["id"])])
    for field in ("case_ref", "officer"):
        if field in fields and row[field] is not None:
            erased.append(field)
    before = set(erased_fields(row))
    marked = before | set(erased) | (fields if mark_all else set())
    if not erased and marked == before:
        return []
    response_store.set_erased(
        conn,
        row["id"],
        _json.encode(answers).decode(),
        None if "case_ref" in erased else row["case_ref"],
        None if "officer" in erased else row["officer"],
        _json.encode([field for field in FIELDS if field in marked]).decode(),
        erased_hash(row["content_hash"]),
    )
    # The event's deliveries carry the response as stored (a webhook's body).
    event_store.withdraw_events(conn, [stored_event_id(row["id"])])
    return [field for field in FIELDS if field in erased or (mark_all and field in fields)]


def held_by_actions(conn: Connection, response_ids: Sequence[str]) -> set[str]:
    """Those of these responses whose corrective action is still open: its work needs them."""
    return {
        action["response_id"]
        for action in action_store.opened_for(conn, response_ids)
        if action["status"] not in CLOSED_ACTIONS
    }


def erase(
    conn: Connection,
    snapshot: Snapshot,
    response_ids: Sequence[str],
    fields: Sequence[str],
    *,
    by: str,
    mark_all: bool = False,
) -> dict[str, list[str]]:
    """Erase `fields` of these responses in the calling write transaction, logging each change; returns
    response id → what was erased (responses left unchanged are left out). `by` says why in the log
    ("retention", "citizen", "manager")."""
    done: dict[str, list[str]] = {}
    dialect.of(conn).overwrite_deleted(conn)
    for row in response_store.rows_of(conn, response_ids):
        erased = _erase_row(conn, snapshot, row, fields, mark_all)
        if not erased:
            continue
        after = audit.response_row(conn, row["id"])
        audit.response_changed(conn, row["id"], "erase", row, after, extra={"erased": erased, "by": by})
        done[row["id"]] = erased
    return done


def delete(conn: Connection, response_ids: Sequence[str]) -> list[str]:
    """Delete these responses (their retention ended) in the calling write transaction, logging each; the
    rollups keep counting them. Returns the ids deleted."""
    rows = response_store.rows_of(conn, response_ids)
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    dialect.of(conn).overwrite_deleted(conn)
    # Only call-backs to a contact are withdrawn: each key withdrawn is kept for good.
    event_store.withdraw(conn, [callback_key(i) for i in response_store.delete_contacts(conn, ids)])
    event_store.withdraw_events(conn, [stored_event_id(i) for i in ids])
    response_store.delete_responses(conn, ids)
    for row in rows:
        audit.response_changed(conn, row["id"], "delete", row, None, extra={"by": "retention"})
    return ids


def delete_day(conn: Connection, unit: str, day: str, response_ids: Sequence[str]) -> int:
    """Delete every response of one unit-day (`response_ids`, all of them, read in this transaction) and
    log it as one purge of the day, not one entry per response; the rollups keep counting them."""
    if not response_ids:
        return 0
    dialect.of(conn).overwrite_deleted(conn)
    event_store.withdraw(conn, [callback_key(i) for i in response_store.delete_contacts(conn, response_ids)])
    event_store.withdraw_events(conn, [stored_event_id(i) for i in response_ids])
    deleted = response_store.delete_responses(conn, response_ids)
    audit.day_purged(conn, unit, day, deleted)
    return deleted


# -- on request --------------------------------------------------------------------------------------------


def erase_receipt(conn: Connection, snapshot: Snapshot, receipt: str) -> list[str]:
    """The citizen's request from the receipt page: erase the comment and contact of every response with
    this receipt (the receipt is their proof). Returns the ids changed; NotFound for an unknown receipt."""
    ids = response_store.ids_with_receipt(conn, receipt)
    if not ids:
        raise NotFound("receipt: no response has this receipt", "receipt")
    done = erase(conn, snapshot, ids, CITIZEN_FIELDS, by="citizen", mark_all=True)
    for response_id, erased in done.items():
        audit.record(
            conn,
            "erasure",
            response_id,
            "erase",
            after={"fields": erased, "reason": "requested by the respondent (receipt page)"},
            unit=_unit_of(conn, response_id),
        )
    return list(done)


def check_reason(body: Any) -> str:
    """The `reason` of a manager's erasure: required, plain text, at most MAX_REASON characters."""
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason: why the data is erased is required (e.g. the respondent's request)", "reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason: at most {MAX_REASON} characters", "reason")
    return reason.strip()


def check_fields(body: Any) -> tuple[str, ...]:
    """The optional `fields` of a manager's erasure (default MANAGER_FIELDS)."""
    fields = body.get("fields") if isinstance(body, dict) else None
    if fields is None:
        return MANAGER_FIELDS
    if not isinstance(fields, list) or not fields or any(f not in FIELDS for f in fields):
        raise InvalidInput(f"fields: a non-empty list of {list(FIELDS)}", "fields")
    return tuple(f for f in FIELDS if f in fields)


def erase_by_manager(
    conn: Connection, snapshot: Snapshot, response_id: str, may_see: Any, reason: str, fields: Sequence[str]
) -> dict[str, Any]:
    """A manager's erasure of one response's personal data, with a reason. `may_see(unit)` says whether
    the caller's subtree holds the response's unit: one it does not is answered as unknown (404)."""
    row = audit.response_row(conn, response_id)
    if row is None or not may_see(row["unit"]):
        raise NotFound(f"id: no response {response_id!r}", "id")
    done = erase(conn, snapshot, [response_id], fields, by="manager", mark_all=True)
    if done:
        audit.record(
            conn,
            "erasure",
            response_id,
            "erase",
            after={"fields": done[response_id], "reason": reason},
            unit=row["unit"],
        )
    after = audit.response_row(conn, response_id) or row
    return {"id": response_id, "erased": erased_fields(after)}


def _unit_of(conn: Connection, response_id: str) -> str | None:
    row = response_store.summary(conn, response_id)
    return row["unit"] if row else None
