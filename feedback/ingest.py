"""The one path into the store. Every channel (JSON API, survey page, kiosk) calls `ingest`.

`ingest` takes a batch of submissions and the channel's `Policy`, and for each: validates it against
the survey version in force → scores it through plugins → plans what follows (the objectives it
counts towards, the corrective actions it opens and their owners: every plugin call happens here,
before the write) → one write job for the whole batch: idempotent inserts with their rollups, the
actions they open and the `response.stored` and `action.opened` events in the same transaction (and
the policy's own state, such as a kiosk's recent presses, read and recorded in it too) → acknowledge;
the dispatcher hands the events to `track_event` after commit. It answers an `Outcome` per
submission, which the channel maps to its own reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from feedback import actions
from feedback.catalog import Snapshot
from feedback.db import Store, deferred, optimistic
from feedback.erasure import ERASED_HASH
from feedback.errors import Conflict, FeedbackError, Gone, InvalidInput, NotFound
from feedback.events import record_response_stored
from feedback.models import (
    ActionRequest,
    ChoiceQuestion,
    ContactQuestion,
    Event,
    RatingQuestion,
    Score,
    StoredResponse,
    Submission,
    SurveyDefinition,
    SurveyVersion,
    TextQuestion,
    is_suspect,
)
from feedback.plugins import PluginManager, flatten
from feedback.store import Connection, responses
from feedback.store.responses import RollupBatch, add_to_rollups

# How far a client clock may be ahead of ours, and how old an offline answer may be, before the
# client time is distrusted (the server time is used instead and the response flagged).
MAX_CLOCK_AHEAD = timedelta(minutes=5)
MAX_AGE = timedelta(days=30)
# 32 symbols without 0/O and 1/I, so a receipt read aloud or typed is hard to get wrong.
RECEIPT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

_hash_encoder = msgspec.json.Encoder(order="sorted")
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class IngestResult:
    id: str
    receipt: str
    created: bool
    flags: tuple[str, ...] = ()
    level: int | None = None
    actions: tuple[dict[str, Any], ...] = ()  # corrective actions this response opened

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "receipt": self.receipt}


class RandomBytes:
    """Bytes from `os.urandom`, fetched 4 KiB at a time: one system call for hundreds of receipts and
    ids instead of one each. On the hot path a system call also hands the interpreter lock to the
    writer thread and waits to get it back, which showed as a tenth of the request's time. Each
    process draws its own bytes (the buffer is dropped in a forked child)."""

    SIZE = 4096

    def __init__(self) -> None:
        self._buffer = b""
        self._used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._used + n > len(self._buffer):
                self._buffer, self._used = os.urandom(self.SIZE), 0
            start = self._used
            self._used += n
            return self._buffer[start : self._used]

    def forget(self) -> None:
        self._buffer, self._used = b"", 0


_random = RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def random_bytes(n: int) -> bytes:
    """`n` random bytes from the shared pool (for ids and codes made on a request's path)."""
    return _random.take(n)


def new_response_id_bytes() -> bytes:
    """The 16 bytes of a time-ordered UUID (v7 layout): B-tree inserts stay local, unlike random v4 keys."""
    ms = time.time_ns() // 1_000_000
    raw = bytearray(ms.to_bytes(6, "big") + _random.take(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


def new_response_id() -> str:
    return str(uuid.UUID(bytes=new_response_id_bytes()))


# Each pair of receipt symbols for 10 bits, most significant first: the same symbols as Base32 over the
# 40 bits with RECEIPT_ALPHABET for its alphabet, at half the cost on the busiest path.
_RECEIPT_PAIRS = tuple(first + second for first in RECEIPT_ALPHABET for second in RECEIPT_ALPHABET)


def new_receipt() -> str:
    return receipt_from(int.from_bytes(_random.take(5)))  # 40 random bits


def receipt_from(bits: int) -> str:
    """The receipt of 40 bits, ABCD-EFGH: each symbol 5 of them, most significant first (Base32's order)."""
    pairs = _RECEIPT_PAIRS
    return f"{pairs[bits >> 30]}{pairs[bits >> 20 & 1023]}-{pairs[bits >> 10 & 1023]}{pairs[bits & 1023]}"


def normalise_receipt(text: str) -> str | None:
    """A receipt as typed ("abcd efgh", "ABCDEFGH", " abcd-efgh ") in its stored form "ABCD-EFGH", or
    None when it cannot be one."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != 8 or any(symbol not in RECEIPT_ALPHABET for symbol in code):
        return None
    return f"{code[:4]}-{code[4:]}"


def parse_time(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field}: not an RFC 3339 date-time", field) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{field}: an RFC 3339 date-time needs a UTC offset", field)
    return parsed.astimezone(UTC)


def validate_answers(
    survey: SurveyDefinition, answers: dict[str, Any], *, primary_only: bool = False
) -> tuple[dict[str, Any], str | None]:
    """Check answers against a survey version. Returns (answers to store, contact kept apart).

    `primary_only`: a one-tap channel (a kiosk) answers the primary rating; nothing else is required.
    """
    cleaned: dict[str, Any] = {}
    contact: str | None = None
    for key, value in answers.items():
        field = f"answers.{key}"
        question = survey.question(key)
        if question is None:
            raise InvalidInput(f"{field}: no such question in survey {survey.slug}", field)
        if isinstance(value, str) and not value.strip() and not isinstance(question, RatingQuestion):
            continue  # an empty optional field of a form
        if isinstance(question, RatingQuestion):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= question.scale:
                raise InvalidInput(f"{field}: must be a whole number from 1 to {question.scale}", field)
            cleaned[key] = value
        elif isinstance(question, ChoiceQuestion):
            option_keys = {option.key for option in question.options}
            if question.multiple:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidInput(f"{field}: must be a list of option keys", field)
                if len(set(value)) != len(value):
                    raise InvalidInput(f"{field}: an option is chosen twice", field)
                unknown = [v for v in value if v not in option_keys]
                if unknown:
                    raise InvalidInput(f"{field}: unknown option {unknown[0]!r}", field)
                if value:
                    cleaned[key] = list(value)
            else:
                if not isinstance(value, str) or value not in option_keys:
                    raise InvalidInput(f"{field}: must be one of {sorted(option_keys)}", field)
                cleaned[key] = value
        elif isinstance(question, TextQuestion | ContactQuestion):
            if not isinstance(value, str):
                raise InvalidInput(f"{field}: must be text", field)
            if len(value) > question.max_length:
                raise InvalidInput(f"{field}: longer than {question.max_length} characters", field)
            if isinstance(question, ContactQuestion):
                contact = value.strip()
            else:
                cleaned[key] = value
        else:  # a plugin's question kind validates its own answers
            validate = getattr(question, "validate_answer", None)
            if validate is not None:
                try:
                    value = validate(value)
                except (TypeError, ValueError) as error:
                    raise InvalidInput(f"{field}: {error}", field) from None
            cleaned[key] = value
    primary = survey.primary_rating()
    for question in survey.questions:
        required = question is primary if primary_only else question.required
        if required and question.key not in cleaned:
            if question.show_if is not None and not question.show_if.holds(cleaned):
                continue
            field = f"answers.{question.key}"
            raise InvalidInput(f"{field}: an answer is required", field)
    if not cleaned and contact is None:
        raise InvalidInput("answers: at least one answer is needed", "answers")
    return cleaned, contact


def score(
    version: SurveyVersion, answers: dict[str, Any], submission: Submission, plugins: PluginManager
) -> tuple[Score, bool]:
    """Ask the plugins; a failing scorer never loses the response (it is stored unscored)."""
    result = plugins.hook.score_response(survey=version.definition, answers=answers, submission=submission)
    if isinstance(result, Score):
        return result, False
    return Score(level=None, satisfied=False, dissatisfied=False, score=None), True


def content_hash(submission: Submission) -> str:
    """What makes a replay "the same": every field the client sent except the id."""
    data = msgspec.to_builtins(submission)
    data.pop("id", None)
    return hashlib.sha256(_hash_encoder.encode(data)).hexdigest()


def stored_hash(digest: str, salt: str | None = None) -> str:
    """What `responses.content_hash` keeps of a submission's `content_hash`: salted with 16 random bytes
    (`salt$hash`). Every digest of the row (the audit log's, the seals') covers this value, and an
    erasure replaces it (`feedback.erasure`), so none of them can be rebuilt from guessed erased values."""
    salt = _random.take(16).hex() if salt is None else salt  # the pool: no system call per response
    return f"{salt}${hashlib.sha256(f'{salt}${digest}'.encode()).hexdigest()}"


def same_content(stored: str, digest: str) -> bool:
    """Whether a stored content hash is of a submission with this `content_hash`. A response whose data
    was erased has nothing left to compare: a resend of its id is taken for the duplicate it most
    likely is."""
    if stored.startswith(ERASED_HASH):
        return True
    salt, salted, _ = stored.partition("$")
    if not salted:  # stored before content hashes were salted
        return hmac.compare_digest(stored, digest)
    return hmac.compare_digest(stored, stored_hash(digest, salt))


@dataclass
class Prepared:
    """A validated, scored response, ready for the writer."""

    row: dict[str, Any]
    contact: str | None
    indicators: dict[str, float]
    flags: list[str]
    # Objectives the response counts towards, and the corrective actions plugins asked to open.
    hits: list[int] = field(default_factory=list)
    requests: list[ActionRequest] = field(default_factory=list)
    snapshot: Snapshot | None = None
    answers: dict[str, Any] = field(default_factory=dict)  # decoded, for the event after commit
    plugins: PluginManager | None = None  # the plugins that scored it, asked for its action's owner
    # The owner of each requested action, chosen before the write (None: not chosen yet, so the
    # writer asks; only callers that write without `ingest`, such as the demo loader, leave it so).
    owners: list[str | None] | None = None
    digest: str = ""  # the submission's content_hash, unsalted: what a replay of its id is compared with


def prepare(
    submission: Submission,
    snapshot: Snapshot,
    *,
    plugins: PluginManager,
    flags: list[str] | None = None,
    now: datetime | None = None,
    device: str | None = None,
    case_verified: bool = False,
    primary_only: bool = False,
    keyed: Keyed | None = None,
) -> Prepared:
    """Validate and score (no I/O): raises InvalidInput, NotFound or Gone naming the field.

    `plugins` score it and say which objectives it counts towards and which actions it opens.

    `case_verified`: the channel vouches for the case reference (a signed link, the kiosk's own
    invitation, an authenticated integration); only such a reference makes a later rating of the same
    case a duplicate (see `store_job`).

    `keyed`: a person keyed it in from a paper form or a call sheet (see `Keyed`); None on every other
    channel, which then pays for nothing of it."""
    touchpoint = snapshot.touchpoint(submission.touchpoint)
    if touchpoint is None:
        raise NotFound(f"touchpoint: no touchpoint {submission.touchpoint!r}", "touchpoint")
    if keyed is None:
        version = snapshot.current.get(touchpoint.survey)
        if version is None:
            raise NotFound(f"touchpoint: survey {touchpoint.survey!r} has no published version", "touchpoint")
    else:
        version = keyed.version_in(snapshot)
    survey = version.definition
    response_id = canonical_uuid(submission.id) if submission.id is not None else new_response_id()
    lang = submission.lang or touchpoint.lang
    if lang not in survey.languages:
        raise InvalidInput(f"lang: must be one of {survey.languages}", "lang")
    service = submission.service or touchpoint.service
    if service is not None and service not in snapshot.services:
        raise InvalidInput(f"service: no service {service!r}", "service")
    if submission.service is not None and not snapshot.service_offered_at(service, touchpoint.unit):
        # The manager forms' rule, for every channel: an agency's service is rated only within its tree.
        agency = snapshot.services[service]["agency"]
        raise InvalidInput(
            f"service: {service!r} belongs to agency {agency!r}, which unit {touchpoint.unit!r} does not offer",
            "service",
        )
    answers, contact = validate_answers(
        survey, dict(submission.answers), primary_only=primary_only or device is not None
    )

    now = now or datetime.now(UTC)
    flags = list(flags or [])
    occurred = now
    client_time = None
    if keyed is not None:
        # A date a person wrote is no client clock: never clock skew, only a date outside the form's life.
        occurred = keyed.moment(ZoneInfo(snapshot.units[touchpoint.unit].tz), now)
        contact = keyed.contact or contact
    elif submission.submitted_at is not None:
        client = parse_time(submission.submitted_at, "submitted_at")
        client_time = client.isoformat()
        if client > now + MAX_CLOCK_AHEAD or client < now - MAX_AGE:
            flags.append("clock_skew")
        else:
            occurred = client
    refuse_if_retired(snapshot, touchpoint.token, occurred)
    result, failed = score(version, answers, submission, plugins)
    if failed:
        flags.append("scoring_failed")
    unit = snapshot.units[touchpoint.unit]
    day = local_day_text(occurred, unit.tz)
    digest = content_hash(submission)
    if keyed is not None:
        digest = keyed.digest(digest)
    row = {
        "id": response_id,
        "receipt": new_receipt(),
        "touchpoint": touchpoint.token,
        "unit": touchpoint.unit,
        "service": service,
        "survey": version.slug,
        "survey_version": version.version,
        "channel": submission.channel,
        "transaction_point": submission.transaction_point,
        "case_ref": submission.case_ref,
        "case_verified": int(bool(submission.case_ref) and case_verified),
        "counter": submission.counter or touchpoint.counter,
        "officer": submission.officer,
        "lang": lang,
        "answers": _json.encode(answers).decode(),
        "client_time": client_time,
        "server_time": (server_time := now.isoformat()),
        "occurred_at": server_time if occurred is now else occurred.isoformat(),
        "day": day,
        "level": result.level,
        "satisfied": int(result.satisfied),
        "dissatisfied": int(result.dissatisfied),
        "score": result.score,
        "indicators": _json.encode(result.indicators).decode(),
        "flags": "",  # filled by the writer, which may add duplicate_case
        "content_hash": stored_hash(digest),
        "device": device,
    }
    if keyed is not None:
        row["entered_by"] = keyed.entered_by
    prepared = Prepared(
        row=row,
        contact=contact,
        indicators=result.indicators,
        flags=flags,
        snapshot=snapshot,
        answers=answers,
        plugins=plugins,
        digest=digest,
    )
    if plugins.has_impls("map_response") or plugins.has_impls("evaluate_triggers"):
        prepared.hits, prepared.requests = evaluate_response(prepared, answers, result, snapshot, plugins)
    return prepared


# The form `str(uuid.UUID(...))` gives: an id a client already sends so is taken as it is.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(text: str) -> str:
    """A client's response id in its one stored form (lower case, hyphenated), or InvalidInput naming `id`.
    An id already in that form (what clients send) is taken as it is, without parsing it."""
    if _CANONICAL_UUID.fullmatch(text):
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidInput("id: not a UUID", "id") from None


# Each time zone's last minute seen: (minute since the epoch, the local day throughout it).
_days_by_minute: dict[str, tuple[int, str]] = {}


def local_day_text(moment: datetime, tz: str) -> str:
    """The day (YYYY-MM-DD) in zone `tz` at `moment`. Every response of a minute asks the same, so each
    zone keeps the answer for its last minute: the local day is the same all through a UTC minute whose
    start and end have the same offset, a whole number of minutes (true of every zone today; an offset in
    seconds, such as a local mean time, is never kept)."""
    minute = int(moment.timestamp() // 60)
    kept = _days_by_minute.get(tz)
    if kept is not None and kept[0] == minute:
        return kept[1]
    zone = ZoneInfo(tz)
    local = moment.astimezone(zone)
    start = datetime.fromtimestamp(minute * 60, UTC)
    offset = local.utcoffset()
    steady = (
        offset is not None
        and offset.total_seconds() % 60 == 0
        and start.astimezone(zone).utcoffset() == offset == (start + timedelta(seconds=59)).astimezone(zone).utcoffset()
    )
    if steady:
        _days_by_minute[tz] = (minute, local.date().isoformat())
    return local.date().isoformat()


def refuse_if_retired(snapshot: Snapshot, token: str, occurred: datetime) -> None:
    """A retired touchpoint keeps what was given while it was live (a kiosk's offline queue, an answer
    timed by its client before the retirement) and takes nothing given after."""
    retired_at = snapshot.retired.get(token)
    if retired_at is not None and occurred >= retired_at:
        raise Gone(f"touchpoint: {token!r} was retired at {retired_at.isoformat()}", "touchpoint")


def evaluate_response(
    prepared: Prepared, answers: dict[str, Any], result: Score, snapshot: Snapshot, plugins: PluginManager
) -> tuple[list[int], list[ActionRequest]]:
    """Ask the plugins which objectives a response counts towards and which actions it opens (no I/O)."""
    row = prepared.row
    response = StoredResponse(
        **{k: row[k] for k in _PLAIN_COLUMNS},
        answers=answers,
        indicators=result.indicators,
        flags=list(prepared.flags),
        satisfied=result.satisfied,
        dissatisfied=result.dissatisfied,
        case_verified=bool(row["case_verified"]),
    )
    objectives = snapshot.objectives_in_force(row["unit"], row["day"])
    hits: list[int] = []
    if objectives:
        found = plugins.hook.map_response(response=response, objectives=objectives, snapshot=snapshot)
        hits = sorted({int(h) for h in flatten(found) if isinstance(h, int)})
    found = plugins.hook.evaluate_triggers(response=response, objective=None, status=None, hits=hits, snapshot=snapshot)
    requests = [r for r in flatten(found) if isinstance(r, ActionRequest)]
    return hits, requests


RESPONSE_COLUMNS = responses.COLUMNS
# The columns a StoredResponse takes as stored (the others are decoded or typed first).
_TYPED = ("answers", "indicators", "flags", "content_hash", "satisfied", "dissatisfied", "device", "case_verified")
_PLAIN_COLUMNS = tuple(k for k in RESPONSE_COLUMNS if k not in _TYPED)
# What a `response.stored` event's data takes from the row as it is.
_EVENT_COLUMNS = tuple(k for k in RESPONSE_COLUMNS if k not in ("answers", "indicators", "flags", "content_hash"))


def open_requested_actions(
    conn: Connection, prepared: Prepared, now: datetime, default_days: int
) -> tuple[dict[str, Any], ...]:
    """Open what the plugins asked for, in the response's own transaction: a crash never leaves a bad
    review without its action, and a replay never opens a second one (actions are keyed on the id)."""
    opened = []
    owners = prepared.owners if prepared.owners is not None else [None] * len(prepared.requests)
    for request, owner in zip(prepared.requests, owners, strict=True):
        if request.unit not in prepared.snapshot.units:
            continue
        action = actions.open_action(
            conn,
            request,
            snapshot=prepared.snapshot,
            now=now,
            default_days=default_days,
            plugins=prepared.plugins,
            owner=owner,
            assigned=prepared.owners is not None,
            # This job stored the response and its contact (if any): no need to read it back.
            response_contact=bool(prepared.contact) if request.response_id == prepared.row["id"] else None,
        )
        if action is not None:
            opened.append(action)
    return tuple(opened)


def store_job(prepared: Prepared, default_action_days: int = 10):
    """One response as a writer job of its own (the demo loader's path): returns (IngestResult, stored
    row or None) and raises Conflict for an id stored with other content."""

    def job(conn: Connection) -> tuple[IngestResult, dict[str, Any] | None]:
        outcome, row = store_response(conn, prepared, (), default_action_days)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result, row

    return job


def store_response(
    conn: Connection, prepared: Prepared, extra_flags: Sequence[str], default_action_days: int
) -> tuple[Outcome, dict[str, Any] | None]:
    """Store one prepared response in the writer's transaction: the idempotent insert, its contact,
    its `response.stored` event, rollups and the actions it opens. Returns its outcome and the stored
    row (None for a replay).

    A conflict is found before anything is written, so it is an outcome, not a rollback; run again
    (the writer replays a batch when another job in it failed), it gives the same answer."""
    row = prepared.row
    all_flags = [*prepared.flags, *extra_flags]
    # Only a verified reference claims a case: see `responses.case_claimed`.
    if row["case_ref"] and responses.case_claimed(conn, row["touchpoint"], row["case_ref"], row["id"]):
        all_flags.append("duplicate_case")
    flags = tuple(sorted(set(all_flags)))
    row["flags"] = _json.encode(flags).decode()
    # The common case is a new id. A group commit takes it for new and inserts it with the others
    # at the end (the batch is replayed if one was not); a case reference is judged against the rows
    # stored before it, so that one goes in at once. Else: try the insert, look at the row on a clash.
    # A keyed form's row goes in at once too (it names who keyed it, and its id is often seen before).
    new_rows = None if row["case_ref"] or "entered_by" in row else optimistic("new_responses", responses.NewResponses)
    if new_rows is not None:
        new_rows.add(row)
    elif not responses.insert(conn, row):
        return replay_outcome(responses.stored_receipt(conn, row["id"]), row["id"], prepared.digest), None
    if prepared.contact:
        responses.add_contact(conn, row["id"], prepared.contact, row["server_time"])
    # In the response's own transaction: the event commits with it, or neither does.
    record_response_stored(
        conn,
        row["id"],
        row["server_time"],
        prepared.hits,
        lambda: stored_event(row, flags, prepared.hits, prepared.answers, prepared.indicators),
    )
    suspect = is_suspect(all_flags)
    batch = deferred("rollups", RollupBatch)
    if batch is None:
        add_to_rollups(conn, row, prepared.indicators, suspect)
    else:
        batch.add(row, prepared.indicators, suspect)
    opened: tuple[dict[str, Any], ...] = ()
    if prepared.requests and not suspect:  # a press burst or a flood opens no work orders
        opened = open_requested_actions(conn, prepared, datetime.fromisoformat(row["server_time"]), default_action_days)
    result = IngestResult(row["id"], row["receipt"], True, flags, row["level"], opened)
    return Outcome("stored", row["id"], result), row


CONFLICT = "id: a different response was already stored with this id"


def replay_outcome(stored: dict[str, Any] | None, response_id: str, digest: str) -> Outcome:
    """A response id seen before: its stored answer again when the content is the same, else a conflict."""
    if stored is None or not same_content(stored["content_hash"], digest):
        return Outcome("conflict", response_id, error=Conflict(CONFLICT, "id"))
    flags = tuple(msgspec.json.decode(stored["flags"]))
    return Outcome(
        "duplicate", response_id, IngestResult(response_id, stored["receipt"], False, flags, stored["level"])
    )


def stored_event(
    row: dict[str, Any],
    flags: tuple[str, ...],
    hits: list[int] | None = None,
    answers: dict[str, Any] | None = None,
    indicators: dict[str, float] | None = None,
) -> Event:
    data = {k: row[k] for k in _EVENT_COLUMNS}
    data["answers"] = answers if answers is not None else msgspec.json.decode(row["answers"])
    data["indicators"] = indicators if indicators is not None else msgspec.json.decode(row["indicators"])
    data["flags"] = list(flags)
    data["case_verified"] = bool(row["case_verified"])
    data["suspect"] = is_suspect(list(flags))
    data["objectives"] = list(hits or [])
    return Event(type="response.stored", id=f"response.stored:{row['id']}", created_at=row["server_time"], data=data)


def replay_key(submission: Submission) -> tuple[str, str] | None:
    """(normalised id, content hash) of a submission that names its id, else None."""
    if submission.id is None:
        return None
    try:
        return canonical_uuid(submission.id), content_hash(submission)
    except InvalidInput:
        return None


# -- keyed in by a person ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keyed:
    """What a person keyed in beside the answers of a paper form or a hotline call sheet
    (`feedback.paper_entry`). The response is judged against the survey version the form was printed
    with, not the one in force; it happened on the date of service written on the form (`occurred_on`,
    a local day of the unit from the form's print day, `earliest_day`, to today), stored as noon of that
    day in the unit's time zone (or the moment of keying, when that is earlier), never flagged as clock
    skew; `entered_by` names who keyed it; `contact` is a call-back contact the person consented to."""

    survey: str
    survey_version: int
    occurred_on: str
    earliest_day: str
    entered_by: str
    contact: str | None = None

    def version_in(self, snapshot: Snapshot) -> SurveyVersion:
        version = snapshot.versions.get((self.survey, self.survey_version))
        if version is None:
            raise NotFound(f"serial: survey {self.survey!r} has no version {self.survey_version}", "serial")
        return version

    def moment(self, zone: ZoneInfo, now: datetime) -> datetime:
        """When it happened: noon of `occurred_on` in the unit's zone, or `now` when that is earlier.
        InvalidInput naming `occurred_on` for a day before the form was printed or after today."""
        day = parse_day(self.occurred_on, "occurred_on")
        if day.isoformat() < self.earliest_day:
            printed = self.earliest_day
            raise InvalidInput(f"occurred_on: {day} is before the form was printed ({printed})", "occurred_on")
        if day > now.astimezone(zone).date():
            raise InvalidInput(f"occurred_on: {day} is in the future", "occurred_on")
        return min(datetime.combine(day, dt_time(12), zone).astimezone(UTC), now)

    def digest(self, submitted: str) -> str:
        """The content hash of a keyed entry: its answers and channel (`submitted`) and its date."""
        return hashlib.sha256(f"{submitted}|{self.occurred_on}".encode()).hexdigest()


def parse_day(value: str, field: str) -> date:
    """A day written YYYY-MM-DD, or InvalidInput naming `field`."""
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: not a day (YYYY-MM-DD)", field) from None
    if day.isoformat() != value:
        raise InvalidInput(f"{field}: write the day as YYYY-MM-DD", field)
    return day


# -- the one path -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One submission as a channel hands it to `ingest`, with what the channel itself saw."""

    submission: Submission
    flags: tuple[str, ...] = ()  # e.g. a honeypot hit or a repeat from the same browser
    case_verified: bool = False  # the channel vouches for the case reference (see `prepare`)
    # When the server rendered the form this came from (the survey page's signed form ids): a form
    # opened while its touchpoint was live is still taken after the retirement, counted for then.
    opened_at: datetime | None = None
    keyed: Keyed | None = None  # keyed in by a person from a paper form or a call sheet


Status = Literal["stored", "duplicate", "rejected", "conflict", "gone"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one submission. `stored` and `duplicate` (the same id and content again) carry
    the `result`; `rejected` (invalid: 400, or naming nothing: 404), `conflict` (the id was stored with
    other content: 409) and `gone` (its touchpoint was retired first: 410) carry the `error`, whose
    message starts with the offending field."""

    status: Status
    id: str | None = None  # the normalised response id, once the submission got that far
    result: IngestResult | None = None
    error: FeedbackError | None = None


class Policy:
    """What a channel changes on the one path. The defaults are the JSON API's and the survey page's.

    A channel that judges submissions against state of its own (the kiosk misuse filter, against the
    device's earlier presses) does it in `flags_in_write`, which runs inside the write job: the read,
    the check and the record of that state are one transaction, however many workers write."""

    device: str | None = None  # stored with each response; a device need only answer the primary rating
    always_write = False  # run the write job even when no submission reaches it (to record state)
    primary_only = False  # the channel answers the primary rating alone (a reply by SMS), as a device does

    def flags_in_write(self, conn: Connection, prepared: list[Prepared]) -> dict[str, list[str]]:
        """Extra flags, by response id, for the batch's prepared responses (no plugin calls here)."""
        return {}


DEFAULT_POLICY = Policy()


@dataclass(slots=True)
class Refused:
    """A submission refused because its touchpoint was retired first. A retry of one stored while
    the touchpoint was live still gets its stored answer (`keys`: the id and content hash as sent);
    a form opened while it was live is stored as of its opening (`fallback`)."""

    error: Gone
    keys: list[tuple[str, str]]
    fallback: Prepared | None = None


async def ingest(
    items: Sequence[Item],
    store: Store,
    snapshot: Snapshot,
    *,
    policy: Policy = DEFAULT_POLICY,
    default_action_days: int = 10,
) -> list[Outcome]:
    """Validate, score and plan each submission, then store the batch in one write job with its
    events. Returns an outcome per submission, in order, once the commit is on disk."""
    outcomes: list[Outcome | None] = [None] * len(items)
    planned: list[tuple[int, Prepared]] = []
    refused: list[tuple[int, Refused]] = []
    for index, item in enumerate(items):
        try:
            planned.append((index, prepare_item(item, snapshot, policy, store.plugins)))
        except Gone as error:
            refusal = refuse_retired(item, snapshot, policy, store.plugins, error)
            if refusal.keys or refusal.fallback is not None:
                refused.append((index, refusal))
            else:
                outcomes[index] = Outcome("gone", error=error)
        except FeedbackError as error:
            outcomes[index] = Outcome("rejected", error=error)
    await assign_owners([p for _, p in planned] + [r.fallback for _, r in refused if r.fallback is not None])
    if planned or refused or policy.always_write:
        # The events it logs reach the dispatcher once it commits.
        written = await store.write(write_job(planned, refused, policy, default_action_days))
        for index, outcome in written.items():
            outcomes[index] = outcome
    return outcomes  # type: ignore[return-value]  # every index is answered above


def prepare_item(item: Item, snapshot: Snapshot, policy: Policy, plugins: PluginManager) -> Prepared:
    return prepare(
        item.submission,
        snapshot,
        plugins=plugins,
        flags=list(item.flags),
        device=policy.device,
        primary_only=policy.primary_only,
        case_verified=item.case_verified,
        keyed=item.keyed,
    )


def refuse_retired(item: Item, snapshot: Snapshot, policy: Policy, plugins: PluginManager, error: Gone) -> Refused:
    """What may still come of a submission its retired touchpoint refused (see `Refused`).

    A form rendered while the touchpoint was live and sent after its retirement is taken with
    `submitted_at` = its render time: the rating was begun on a form the server handed out while the
    code was live, so it counts for that moment (as a kiosk's offline tap counts for when it was
    tapped), while server_time still says when it arrived (moving `now` back would falsify it). The
    submission as sent is looked up first, so a resend of a form stored while live is answered as the
    replay it is."""
    key = replay_key(item.submission)
    refusal = Refused(error, [key] if key else [])
    if item.opened_at is not None:
        opened = msgspec.structs.replace(item.submission, submitted_at=item.opened_at.isoformat())
        try:
            refusal.fallback = prepare_item(Item(opened, item.flags, item.case_verified), snapshot, policy, plugins)
        except Gone:
            # Opened too long ago to be believed: only a resend of one stored back then is answered.
            if later := replay_key(opened):
                refusal.keys.append(later)
    return refusal


async def assign_owners(prepared: list[Prepared]) -> None:
    """Ask `corrective_action_assignee` who owns each action the batch asks for, before the write and
    on a worker thread: an assignee that looks people up (a directory, a duty roster) holds up only
    its own response, never the writer or the event loop. Most responses ask for nothing."""
    asking = [p for p in prepared if p.requests]
    if not asking:
        return

    def choose() -> None:
        for p in asking:
            p.owners = [actions.choose_owner(request, p.snapshot, p.plugins) for request in p.requests]

    await asyncio.to_thread(choose)


# The most responses a write job may hold and still be `quick` (see `write_job`).
QUICK_JOB_RESPONSES = 16


def write_job(
    planned: list[tuple[int, Prepared]], refused: list[tuple[int, Refused]], policy: Policy, default_action_days: int
):
    """The batch's one writer job: the policy's flags, each response, then the refused submissions'
    stored answers. Returns {index: Outcome}."""

    def job(conn: Connection) -> dict[int, Outcome]:
        extra = policy.flags_in_write(conn, [p for _, p in planned])
        outcomes: dict[int, Outcome] = {}
        for index, prepared in planned:
            outcomes[index] = store_response(conn, prepared, extra.get(prepared.row["id"], ()), default_action_days)[0]
        if refused and (new_rows := optimistic("new_responses", responses.NewResponses)) is not None:
            new_rows.flush(conn)  # a retry of a response this batch holds reads it stored
        for index, refusal in refused:
            for response_id, digest in refusal.keys:
                replay = replay_outcome(responses.stored_receipt(conn, response_id), response_id, digest)
                if replay.status == "duplicate":
                    outcomes[index] = replay
                    break
            else:
                if refusal.fallback is not None:
                    outcomes[index] = store_response(conn, refusal.fallback, (), default_action_days)[0]
                else:
                    outcomes[index] = Outcome("gone", error=refusal.error)
        return outcomes

    job.defers = True  # its rollups join the transaction's RollupBatch (see feedback.db.deferred)
    # A few responses' job is quick: the writer may run it before answering the batch it committed
    # last (see feedback.db.Store._run_batch); a kiosk's queue of hundreds is not.
    job.quick = len(planned) + len(refused) <= QUICK_JOB_RESPONSES
    return job
