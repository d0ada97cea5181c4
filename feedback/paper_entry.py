"""Paper forms and hotline call sheets keyed in by a person, through the one ingest path.

A printed form's serial (`feedback.paper_forms`) names its touchpoint, its survey version and the day it
was printed. An entry gives the serial, the answers and the date of service written on the form; it is
stored as a response with the id the serial fixes (`paper_forms.response_id`), against the form's own
survey version, dated that day (`ingest.Keyed`), naming who keyed it. So a form keyed twice is stored
once: the same answers, date and channel again are a `duplicate`; other answers are a `conflict`, and
that second entry is kept (`paper_entry_conflicts`) without changing anything stored, until a person
keeps the first or takes the second (`keep_first`, `take_second`).

A hotline call is a form too: starting a call registers a call sheet (`paper` = `call`) in the caller's
language, and its answers are entered with channel `hotline`, with a call-back contact only when the
caller consented. Scanned forms (`feedback.paper_scan`) confirmed by a person come through `enter` as
well, with source `scanned`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from feedback import audit, ingest, paper_forms
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import Conflict, FeedbackError, Gone, InvalidInput, NotFound
from feedback.models import ContactQuestion, Submission, SurveyVersion, is_suspect
from feedback.store import Connection, dialect, responses
from feedback.store import paper as paper_store
from feedback.store import paper_entries as conflict_store

CHANNELS = ("paper", "hotline")
SOURCES = ("keyed", "scanned")
#: The `paper` of a hotline call sheet in `paper_forms` (printed forms are A4 or A5).
CALL_SHEET = "call"
#: The most entries one call of `enter` (one bulk request) takes.
MAX_ENTRIES = 500
MAX_CONTACT = 200
MAX_USER = 64
STATUSES = ("waiting", "kept_first", "took_second")

_json = msgspec.json.Encoder()
_sorted_json = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True)
class PaperEntry:
    serial: str  # as typed or read (normalised inside)
    answers: dict[str, Any]
    occurred_on: str  # "YYYY-MM-DD": the date of service written on the form
    channel: str = "paper"  # "paper" | "hotline"
    contact: str | None = None  # a call-back number or address, only with consent
    consent: bool = False
    source: str = "keyed"  # "keyed" | "scanned"


@dataclass(frozen=True)
class EntryOutcome:
    status: Literal["stored", "duplicate", "conflict", "rejected"]
    serial: str | None
    id: str | None  # the response id (paper_forms.response_id(secret, serial))
    receipt: str | None
    error: FeedbackError | None  # rejected / conflict: the message names the field


class EntryConflict(Conflict):
    """Other answers for a form stored before: the entry is kept for review as `review`."""

    def __init__(self, message: str, review: int) -> None:
        super().__init__(message, "answers")
        self.review = review


# -- entering ---------------------------------------------------------------------------------------------


def checked_serial(entry: PaperEntry) -> str:
    """The entry's serial, normalised, once what can be checked without the database holds: serial,
    channel, source, answers, the date's form, contact and consent. InvalidInput names the field."""
    serial = paper_forms.serial_from_typed(entry.serial) if isinstance(entry.serial, str) else None
    if serial is None:
        raise InvalidInput("serial: not a form serial (ten symbols such as ABCDE-FGHJK, or its QR code)", "serial")
    if entry.channel not in CHANNELS:
        raise InvalidInput(f"channel: must be one of {list(CHANNELS)}", "channel")
    if entry.source not in SOURCES:
        raise InvalidInput(f"source: must be one of {list(SOURCES)}", "source")
    if not isinstance(entry.answers, dict):
        raise InvalidInput("answers: must be an object of answers by question key", "answers")
    if not isinstance(entry.occurred_on, str):
        raise InvalidInput("occurred_on: the date of service (YYYY-MM-DD) is required", "occurred_on")
    ingest.parse_day(entry.occurred_on, "occurred_on")
    contact = entry.contact.strip() if isinstance(entry.contact, str) else entry.contact
    if contact is not None and not isinstance(contact, str):
        raise InvalidInput("contact: must be text", "contact")
    if contact and not entry.consent:
        raise InvalidInput("consent: a contact is kept only when its owner agreed to be called back", "consent")
    if contact and len(contact) > MAX_CONTACT:
        raise InvalidInput(f"contact: longer than {MAX_CONTACT} characters", "contact")
    return serial


def unknown_form(serial: str) -> NotFound:
    """What a serial never printed here, or printed for a unit outside the caller's subtree, is answered
    with: the same words, so nobody can probe another unit's serials."""
    return NotFound(f"serial: no form {serial} was printed here", "serial")


def _zone(unit: str, snapshot: Snapshot) -> ZoneInfo | Any:
    found = snapshot.units.get(unit)
    return ZoneInfo(found.tz) if found is not None else UTC


def printed_day(form: dict[str, Any], snapshot: Snapshot) -> str:
    """The local day of the form's unit on which it was printed (the first possible date of service)."""
    return datetime.fromisoformat(form["printed_at"]).astimezone(_zone(form["unit"], snapshot)).date().isoformat()


def local_today(unit: str, snapshot: Snapshot) -> str:
    """The unit's local day now (the last possible date of service)."""
    return datetime.now(_zone(unit, snapshot)).date().isoformat()


def _contact_keys(version: SurveyVersion | None) -> set[str]:
    if version is None:
        return set()
    return {q.key for q in version.definition.questions if isinstance(q, ContactQuestion)}


def as_item(
    entry: PaperEntry, serial: str, form: dict[str, Any], snapshot: Snapshot, entered_by: str, *, response_id: str
) -> ingest.Item:
    """The ingest item of an entry of this form, stored as `response_id` (`paper_forms.response_id`);
    InvalidInput naming the field when it cannot be one."""
    if form["paper"] == CALL_SHEET and entry.channel != "hotline":
        raise InvalidInput("channel: a call sheet is entered with channel hotline", "channel")
    answers = dict(entry.answers)
    contact = entry.contact.strip() if entry.contact else None
    for key in _contact_keys(snapshot.versions.get((form["survey"], form["survey_version"]))):
        given = answers.pop(key, None)
        if isinstance(given, str) and given.strip():
            if not entry.consent:
                raise InvalidInput("consent: a contact is kept only when its owner agreed to be called back", "consent")
            contact = contact or given.strip()
    submission = Submission(
        id=response_id,
        touchpoint=form["touchpoint"],
        answers=answers,
        lang=form["lang"],
        channel=entry.channel,  # type: ignore[arg-type]  # checked in checked_serial
    )
    keyed = ingest.Keyed(
        survey=form["survey"],
        survey_version=form["survey_version"],
        occurred_on=entry.occurred_on,
        earliest_day=printed_day(form, snapshot),
        entered_by=entered_by,
        contact=contact if entry.consent else None,
    )
    return ingest.Item(submission, keyed=keyed)


def entry_digest(serial: str, answers: dict[str, Any], occurred_on: str, channel: str) -> str:
    """What makes two entries of a form the same entry (who keyed them and the contact aside)."""
    content = {"serial": serial, "answers": answers, "occurred_on": occurred_on, "channel": channel}
    return hashlib.sha256(_sorted_json.encode(content)).hexdigest()


async def enter(
    store: Store,
    snapshot: Snapshot,
    entries: Sequence[PaperEntry],
    *,
    entered_by: str,
    secret: str,
    may_enter: Callable[[str], bool] | None = None,
    default_action_days: int = 10,
) -> list[EntryOutcome]:
    """Store keyed (or confirmed scanned) forms through the one ingest path; an outcome per entry, in
    order, once committed. `may_enter(unit)` says whether the caller may key forms of a unit (None:
    any); a form of another unit is answered as an unknown serial."""
    if len(entries) > MAX_ENTRIES:
        raise InvalidInput(f"items: at most {MAX_ENTRIES} entries at once", "items")
    entered_by = entered_by[:MAX_USER]
    outcomes: list[EntryOutcome | None] = [None] * len(entries)
    serials: dict[int, str] = {}
    for index, entry in enumerate(entries):
        try:
            serials[index] = checked_serial(entry)
        except FeedbackError as error:
            typed = paper_forms.serial_from_typed(entry.serial) if isinstance(entry.serial, str) else None
            outcomes[index] = EntryOutcome("rejected", typed, None, None, error)
    wanted = sorted(set(serials.values()))
    forms = await store.read(lambda conn: paper_store.forms(conn, wanted)) if wanted else {}
    items: list[tuple[int, ingest.Item]] = []
    for index, serial in serials.items():
        form = forms.get(serial)
        try:
            if form is None or (may_enter is not None and not may_enter(form["unit"])):
                raise unknown_form(serial)
            response_id = paper_forms.response_id(secret, serial)
            items.append((index, as_item(entries[index], serial, form, snapshot, entered_by, response_id=response_id)))
        except FeedbackError as error:
            outcomes[index] = EntryOutcome("rejected", serial, None, None, error)
    found = await ingest.ingest([item for _, item in items], store, snapshot, default_action_days=default_action_days)
    conflicts: list[tuple[int, dict[str, Any]]] = []
    now = datetime.now(UTC).isoformat()
    for (index, item), outcome in zip(items, found, strict=True):
        serial = serials[index]
        if outcome.status in ("stored", "duplicate") and outcome.result is not None:
            outcomes[index] = EntryOutcome(outcome.status, serial, outcome.result.id, outcome.result.receipt, None)  # type: ignore[arg-type]
        elif outcome.status == "conflict":
            conflicts.append((index, conflict_row(entries[index], serial, item, forms[serial], now)))
        else:  # rejected, or gone (the touchpoint was retired before the date of service)
            error = outcome.error or InvalidInput("serial: not stored", "serial")
            outcomes[index] = EntryOutcome("rejected", serial, None, None, error)
    if conflicts:
        kept = await store.write(lambda conn: [conflict_store.keep(conn, row) for _, row in conflicts])
        for (index, row), review in zip(conflicts, kept, strict=True):
            outcomes[index] = EntryOutcome("conflict", row["serial"], row["response_id"], None, conflict_error(review))
    return outcomes  # type: ignore[return-value]  # every index is answered above


def conflict_row(entry: PaperEntry, serial: str, item: ingest.Item, form: dict[str, Any], now: str) -> dict[str, Any]:
    """The kept row of a second entry with other answers (its contact only with consent)."""
    keyed = item.keyed
    assert keyed is not None
    answers = dict(item.submission.answers)
    return {
        "digest": entry_digest(serial, answers, entry.occurred_on, entry.channel),
        "serial": serial,
        "response_id": item.submission.id,
        "unit": form["unit"],
        "answers": _json.encode(answers).decode(),
        "occurred_on": entry.occurred_on,
        "channel": entry.channel,
        "contact": keyed.contact,
        "source": entry.source,
        "entered_by": keyed.entered_by,
        "entered_at": now,
    }


def conflict_error(review: dict[str, Any]) -> EntryConflict:
    if review["status"] == "waiting":
        message = (
            f"answers: the form was entered before with other answers; this entry is kept for review #{review['id']}"
        )
    else:
        message = f"answers: the form was entered before with other answers, and review #{review['id']} was decided"
    return EntryConflict(message, int(review["id"]))


# -- the hotline: a call sheet per call --------------------------------------------------------------------


def call_sheet(snapshot: Snapshot, token: str, lang: str | None, by: str | None) -> dict[str, Any]:
    """A new call sheet's record for a call taken at a touchpoint (not stored yet), in the caller's
    language (default the touchpoint's). NotFound/Gone naming `token`, InvalidInput naming `lang`."""
    touchpoint = snapshot.touchpoint(token)
    if touchpoint is None:
        raise NotFound(f"token: no touchpoint {token!r}", "token")
    if token in snapshot.retired or touchpoint.token in snapshot.retired:
        raise Gone(f"token: touchpoint {touchpoint.token!r} is retired", "token")
    version = snapshot.current.get(touchpoint.survey)
    if version is None:
        raise NotFound(f"token: survey {touchpoint.survey!r} has no published version", "token")
    lang = lang or touchpoint.lang
    if lang not in version.definition.languages:
        raise InvalidInput(f"lang: must be one of {version.definition.languages}", "lang")
    return {
        "serial": paper_forms.new_serial(),
        "touchpoint": touchpoint.token,
        "unit": touchpoint.unit,
        "survey": version.slug,
        "survey_version": version.version,
        "lang": lang,
        "paper": CALL_SHEET,
        "printed_at": datetime.now(UTC).isoformat(),
        "printed_by": by,
    }


async def start_call(store: Store, snapshot: Snapshot, token: str, *, lang: str | None, by: str | None) -> dict:
    """Register a call sheet for a call at this touchpoint; returns its record."""
    sheet = call_sheet(snapshot, token, lang, by)
    await store.write(lambda conn: paper_forms.register(conn, [sheet]))
    return sheet


# -- reading a form back --------------------------------------------------------------------------------


def form_state(conn: Connection, typed: str, may_see: Callable[[str], bool] | None, secret: str) -> dict[str, Any]:
    """A form as the entry screen loads it: its record, and what is stored of it ("entry": answers, date,
    channel, receipt, who keyed it; None while it was never entered). InvalidInput/NotFound naming `serial`
    (a form of a unit the caller may not see is unknown)."""
    form = paper_forms.find_form(conn, typed)
    if may_see is not None and not may_see(form["unit"]):
        raise unknown_form(form["serial"])
    row = responses.get(conn, paper_forms.response_id(secret, form["serial"]))
    return {**form, "entry": None if row is None else entry_view(row)}


def entry_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "receipt": row["receipt"],
        "answers": msgspec.json.decode(row["answers"]) if row["answers"] else {},
        "occurred_on": row["day"],
        "channel": row["channel"],
        "entered_by": row.get("entered_by"),
    }


# -- second entries: a person decides --------------------------------------------------------------------


def review_view(conn: Connection, conflict: dict[str, Any]) -> dict[str, Any]:
    """A kept second entry beside what is stored of its form (None when the response is gone)."""
    row = responses.get(conn, conflict["response_id"])
    form = paper_store.form(conn, conflict["serial"])
    return {
        **{k: v for k, v in conflict.items() if k not in ("digest", "contact")},
        "answers": msgspec.json.decode(conflict["answers"]),
        "has_contact": bool(conflict["contact"]),
        "form": form,
        "stored": None if row is None else entry_view(row),
    }


def waiting_reviews(conn: Connection, units: Sequence[str] | None, limit: int = 100) -> list[dict[str, Any]]:
    """Second entries waiting for a decision, oldest first, beside the stored ones (None: every unit)."""
    return [review_view(conn, conflict) for conflict in conflict_store.waiting(conn, units, limit)]


def waiting_count(conn: Connection, units: Sequence[str] | None) -> int:
    """How many second entries of these units (None: every unit) wait for a decision."""
    return conflict_store.count_waiting(conn, units)


def _waiting(conn: Connection, review: int, may_see: Callable[[str], bool]) -> dict[str, Any]:
    conflict = conflict_store.get(conn, review)
    if conflict is None or not may_see(conflict["unit"]):
        raise NotFound(f"review: no kept entry #{review}", "review")
    if conflict["status"] != "waiting":
        raise Conflict(f"review: #{review} was decided already ({conflict['status']})", "review")
    return conflict


async def keep_first(store: Store, review: int, *, by: str, may_see: Callable[[str], bool]) -> dict[str, Any]:
    """Decide for the stored entry: the second is marked `kept_first` (and forgets its contact); nothing
    stored changes. NotFound / Conflict naming `review`."""

    def job(conn: Connection) -> dict[str, Any]:
        conflict = _waiting(conn, review, may_see)
        at = datetime.now(UTC).isoformat()
        if not conflict_store.resolve(conn, review, "kept_first", by, at):
            raise Conflict(f"review: #{review} was decided meanwhile", "review")
        audit.record(
            conn, "paper_entry", conflict["serial"], "keep_first", after={"review": review}, unit=conflict["unit"]
        )
        return {"review": review, "status": "kept_first", "id": conflict["response_id"]}

    return await store.write(job)


async def take_second(
    store: Store,
    snapshot: Snapshot,
    review: int,
    *,
    by: str,
    may_see: Callable[[str], bool],
    default_action_days: int = 10,
) -> dict[str, Any]:
    """Decide for the second entry: the stored response's answers, date, channel, score, level and who
    keyed it become the second entry's, its rollups move with it, and the change is logged
    (`audit.response_changed`), all in one write job. The response keeps its id, receipt and arrival
    time; a contact the second entry brings replaces the stored one; an action the first opened stays
    (closing it is the owner's step), one the second asks for is opened. NotFound / Conflict naming
    `review`, InvalidInput when the entry no longer fits (e.g. the form's date is now outside its life)."""
    conflict, form = await store.read(lambda conn: _planned(conn, review, may_see))
    entry = PaperEntry(
        serial=conflict["serial"],
        answers=msgspec.json.decode(conflict["answers"]),
        occurred_on=conflict["occurred_on"],
        channel=conflict["channel"],
        contact=conflict["contact"],
        consent=bool(conflict["contact"]),
        source=conflict["source"],
    )
    entered_by = conflict["entered_by"] or by
    item = as_item(entry, conflict["serial"], form, snapshot, entered_by, response_id=conflict["response_id"])
    prepared = ingest.prepare(item.submission, snapshot, plugins=store.plugins, keyed=item.keyed)
    await ingest.assign_owners([prepared])

    def job(conn: Connection) -> dict[str, Any]:
        _waiting(conn, review, may_see)
        at = datetime.now(UTC)
        if not conflict_store.resolve(conn, review, "took_second", by, at.isoformat()):
            raise Conflict(f"review: #{review} was decided meanwhile", "review")
        response_id = conflict["response_id"]
        before = audit.response_row(conn, response_id)
        if before is None:
            raise NotFound(f"review: the response of form {conflict['serial']} is no longer stored", "review")
        if not responses.replace_content(conn, response_id, prepared.row, before["content_hash"]):
            raise Conflict(f"review: the response of form {conflict['serial']} changed meanwhile", "review")
        after = audit.response_row(conn, response_id)
        assert after is not None
        # Counted out as it was, in again as it is now: the rates are what a fresh entry would give.
        suspect = is_suspect(msgspec.json.decode(before["flags"]) if before["flags"] else [])
        old_indicators = msgspec.json.decode(before["indicators"]) if before["indicators"] else {}
        responses.add_to_rollups(conn, before, old_indicators, suspect, sign=-1)
        responses.add_to_rollups(conn, after, prepared.indicators, suspect)
        if prepared.contact:
            responses.delete_contacts(conn, [response_id])
            responses.add_contact(conn, response_id, prepared.contact, at.isoformat())
        comments = dialect.of(conn)
        comments.forget_comments(conn, [response_id])
        comments.index_comments(conn, response_id)
        audit.response_changed(conn, response_id, "entry_taken", before, after, extra={"review": review})
        opened: tuple[dict[str, Any], ...] = ()
        if prepared.requests and not suspect:
            opened = ingest.open_requested_actions(conn, prepared, at, default_action_days)
        return {
            "review": review,
            "status": "took_second",
            "id": response_id,
            "receipt": before["receipt"],
            "actions": [action["id"] for action in opened],
        }

    return await store.write(job)


def _planned(conn: Connection, review: int, may_see: Callable[[str], bool]) -> tuple[dict, dict]:
    conflict = _waiting(conn, review, may_see)
    form = paper_store.form(conn, conflict["serial"])
    if form is None:
        raise NotFound(f"review: form {conflict['serial']} is not registered", "review")
    return conflict, form
