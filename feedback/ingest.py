"""The one path into the store. Every channel (survey page, kiosk, JSON API, CSV) calls `ingest`.

validate against the survey version in force → score through plugins → store idempotently with
rollups in the same transaction → acknowledge → fire `track_event` after commit.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import plugins
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import Conflict, Gone, InvalidInput, NotFound
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
)

# Flags that only annotate a response; every other flag marks it suspect (left out of rates).
INFORMATIONAL_FLAGS = frozenset({"clock_skew", "scoring_failed"})
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


def new_response_id_bytes() -> bytes:
    """The 16 bytes of a time-ordered UUID (v7 layout): B-tree inserts stay local, unlike random v4 keys."""
    ms = time.time_ns() // 1_000_000
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


def new_response_id() -> str:
    return str(uuid.UUID(bytes=new_response_id_bytes()))


def new_receipt() -> str:
    bits = int.from_bytes(secrets.token_bytes(5), "big")  # 40 random bits, 5 per symbol
    code = "".join(RECEIPT_ALPHABET[(bits >> shift) & 31] for shift in range(35, -1, -5))
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


def score(version: SurveyVersion, answers: dict[str, Any], submission: Submission) -> tuple[Score, bool]:
    """Ask the plugins; a failing scorer never loses the response (it is stored unscored)."""
    result = plugins.call_isolated(
        "score_response", firstresult=True, survey=version.definition, answers=answers, submission=submission
    )
    if isinstance(result, Score):
        return result, False
    return Score(level=None, satisfied=False, dissatisfied=False, score=None), True


def content_hash(submission: Submission) -> str:
    """What makes a replay "the same": every field the client sent except the id."""
    data = msgspec.to_builtins(submission)
    data.pop("id", None)
    return hashlib.sha256(_hash_encoder.encode(data)).hexdigest()


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


def prepare(
    submission: Submission,
    snapshot: Snapshot,
    *,
    flags: list[str] | None = None,
    now: datetime | None = None,
    device: str | None = None,
    case_verified: bool = False,
) -> Prepared:
    """Validate and score (no I/O): raises InvalidInput, NotFound or Gone naming the field.

    `case_verified`: the channel vouches for the case reference (a signed link, the kiosk's own
    invitation, an authenticated integration); only such a reference makes a later rating of the same
    case a duplicate (see `store_job`)."""
    touchpoint = snapshot.touchpoint(submission.touchpoint)
    if touchpoint is None:
        raise NotFound(f"touchpoint: no touchpoint {submission.touchpoint!r}", "touchpoint")
    version = snapshot.current.get(touchpoint.survey)
    if version is None:
        raise NotFound(f"touchpoint: survey {touchpoint.survey!r} has no published version", "touchpoint")
    survey = version.definition
    if submission.id is not None:
        try:
            response_id = str(uuid.UUID(submission.id))
        except ValueError:
            raise InvalidInput("id: not a UUID", "id") from None
    else:
        response_id = new_response_id()
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
    answers, contact = validate_answers(survey, dict(submission.answers), primary_only=device is not None)

    now = now or datetime.now(UTC)
    flags = list(flags or [])
    occurred = now
    client_time = None
    if submission.submitted_at is not None:
        client = parse_time(submission.submitted_at, "submitted_at")
        client_time = client.isoformat()
        if client > now + MAX_CLOCK_AHEAD or client < now - MAX_AGE:
            flags.append("clock_skew")
        else:
            occurred = client
    refuse_if_retired(snapshot, touchpoint.token, occurred)
    result, failed = score(version, answers, submission)
    if failed:
        flags.append("scoring_failed")
    unit = snapshot.units[touchpoint.unit]
    day = occurred.astimezone(ZoneInfo(unit.tz)).date().isoformat()
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
        "server_time": now.isoformat(),
        "occurred_at": occurred.isoformat(),
        "day": day,
        "level": result.level,
        "satisfied": int(result.satisfied),
        "dissatisfied": int(result.dissatisfied),
        "score": result.score,
        "indicators": _json.encode(result.indicators).decode(),
        "flags": "",  # filled by the writer, which may add duplicate_case
        "content_hash": content_hash(submission),
        "device": device,
    }
    prepared = Prepared(
        row=row, contact=contact, indicators=result.indicators, flags=flags, snapshot=snapshot, answers=answers
    )
    if _has_impls("map_response") or _has_impls("evaluate_triggers"):
        prepared.hits, prepared.requests = evaluate_response(prepared, answers, result, snapshot)
    return prepared


def refuse_if_retired(snapshot: Snapshot, token: str, occurred: datetime) -> None:
    """A retired touchpoint keeps what was given while it was live (a kiosk's offline queue, an answer
    timed by its client before the retirement) and takes nothing given after."""
    retired_at = snapshot.retired.get(token)
    if retired_at is not None and occurred >= retired_at:
        raise Gone(f"touchpoint: {token!r} was retired at {retired_at.isoformat()}", "touchpoint")


def _has_impls(hook_name: str) -> bool:
    return bool(getattr(plugins.pm.hook, hook_name).get_hookimpls())


def evaluate_response(
    prepared: Prepared, answers: dict[str, Any], result: Score, snapshot: Snapshot
) -> tuple[list[int], list[ActionRequest]]:
    """Ask the plugins which objectives a response counts towards and which actions it opens (no I/O)."""
    row = prepared.row
    response = StoredResponse(
        **{
            k: row[k]
            for k in RESPONSE_COLUMNS
            if k
            not in (
                "answers",
                "indicators",
                "flags",
                "content_hash",
                "satisfied",
                "dissatisfied",
                "device",
                "case_verified",
            )
        },
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
        found = plugins.call_isolated("map_response", response=response, objectives=objectives, snapshot=snapshot)
        hits = sorted({int(h) for h in plugins.flatten(found) if isinstance(h, int)})
    found = plugins.call_isolated(
        "evaluate_triggers", response=response, objective=None, status=None, hits=hits, snapshot=snapshot
    )
    requests = [r for r in plugins.flatten(found) if isinstance(r, ActionRequest)]
    return hits, requests


RESPONSE_COLUMNS = (
    "id",
    "receipt",
    "touchpoint",
    "unit",
    "service",
    "survey",
    "survey_version",
    "channel",
    "transaction_point",
    "case_ref",
    "counter",
    "officer",
    "lang",
    "answers",
    "client_time",
    "server_time",
    "occurred_at",
    "day",
    "level",
    "satisfied",
    "dissatisfied",
    "score",
    "indicators",
    "flags",
    "content_hash",
    "device",
    "case_verified",
)
INSERT_RESPONSE = (
    f"INSERT INTO responses ({', '.join(RESPONSE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in RESPONSE_COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)
# What a rollup row adds up, in the order add_to_rollups passes the values.
ROLLUP_MEASURES = ("n", "satisfied", "dissatisfied", "score_n", "score_sum", "l1", "l2", "l3", "l4", "l5", "suspect")


def rollup_upsert(table: str, key: tuple[str, ...]) -> str:
    """INSERT … ON CONFLICT DO UPDATE that adds one response's measures to a rollup row."""
    columns = (*key, *ROLLUP_MEASURES)
    additions = ", ".join(f"{m} = {m} + excluded.{m}" for m in ROLLUP_MEASURES)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {additions}"
    )


UPSERT_ROLLUP = rollup_upsert("rollups", ("unit", "day", "service", "touchpoint"))
UPSERT_UNIT_DAY = rollup_upsert("rollups_unit_day", ("unit", "day"))
# The weekday × hour heatmap: local day and UTC hour of occurred_at (the unit's time zone turns it
# into a local hour when read).
UPSERT_HEATMAP = rollup_upsert("heatmap_rollups", ("unit", "day", "hour"))
UPSERT_INDICATOR = """
INSERT INTO rollup_indicators (unit, day, service, touchpoint, indicator, n, sum)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (unit, day, service, touchpoint, indicator) DO UPDATE SET
  n = n + excluded.n, sum = sum + excluded.sum
"""


def is_suspect(flags: list[str]) -> bool:
    return any(flag not in INFORMATIONAL_FLAGS for flag in flags)


def add_to_rollups(
    conn: sqlite3.Connection, row: dict[str, Any], indicators: dict[str, float], suspect: bool, sign: int = 1
) -> None:
    """Count one response into (or, with sign=-1, out of) the rollups, in the caller's transaction."""
    key = (row["unit"], row["day"], row["service"] or "", row["touchpoint"])
    if suspect:
        measures = (0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0, sign)
    else:
        level = row["level"]
        has_score = row["score"] is not None
        levels = [sign if level == i else 0 for i in range(1, 6)]
        measures = (
            sign if level is not None else 0,
            sign * row["satisfied"],
            sign * row["dissatisfied"],
            sign if has_score else 0,
            sign * (row["score"] or 0.0),
            *levels,
            0,
        )
    conn.execute(UPSERT_ROLLUP, (*key, *measures))
    conn.execute(UPSERT_UNIT_DAY, (row["unit"], row["day"], *measures))
    conn.execute(UPSERT_HEATMAP, (row["unit"], row["day"], int(row["occurred_at"][11:13]), *measures))
    if suspect:
        return
    for indicator, value in indicators.items():
        conn.execute(UPSERT_INDICATOR, (*key, indicator, sign, sign * value))


def open_requested_actions(
    conn: sqlite3.Connection, prepared: Prepared, now: datetime, default_days: int
) -> tuple[dict[str, Any], ...]:
    """Open what the plugins asked for, in the response's own transaction: a crash never leaves a bad
    review without its action, and a replay never opens a second one (actions are keyed on the id)."""
    from feedback import actions  # actions build on ingest's rollup helpers

    opened = []
    for request in prepared.requests:
        if request.unit not in prepared.snapshot.units:
            continue
        action = actions.open_action(conn, request, snapshot=prepared.snapshot, now=now, default_days=default_days)
        if action is not None:
            opened.append(action)
    return tuple(opened)


def store_job(prepared: Prepared, default_action_days: int = 10):
    """The writer job: idempotent insert + rollups + actions. Returns (IngestResult, stored row or None)."""
    row = prepared.row

    def job(conn: sqlite3.Connection) -> tuple[IngestResult, dict[str, Any] | None]:
        all_flags = list(prepared.flags)
        if row["case_ref"] and earlier_verified_rating(conn, row):
            all_flags.append("duplicate_case")
        row["flags"] = _json.encode(sorted(set(all_flags))).decode()
        # The common case is a new id: try the insert first and look at the stored row only on a clash.
        if conn.execute(INSERT_RESPONSE, [row[c] for c in RESPONSE_COLUMNS]).rowcount == 0:
            existing = conn.execute(
                "SELECT receipt, content_hash, flags, level FROM responses WHERE id = ?", (row["id"],)
            ).fetchone()
            if existing["content_hash"] != row["content_hash"]:
                raise Conflict("id: a different response was already stored with this id", "id")
            stored_flags = tuple(msgspec.json.decode(existing["flags"]))
            return IngestResult(row["id"], existing["receipt"], False, stored_flags, existing["level"]), None
        if prepared.contact:
            conn.execute(
                "INSERT INTO contacts (response_id, contact, created_at) VALUES (?, ?, ?)",
                (row["id"], prepared.contact, row["server_time"]),
            )
        suspect = is_suspect(all_flags)
        add_to_rollups(conn, row, prepared.indicators, suspect)
        opened: tuple[dict[str, Any], ...] = ()
        if prepared.requests and not suspect:  # a press burst or a flood opens no work orders
            opened = open_requested_actions(
                conn, prepared, datetime.fromisoformat(row["server_time"]), default_action_days
            )
        result = IngestResult(row["id"], row["receipt"], True, tuple(sorted(set(all_flags))), row["level"], opened)
        return result, row

    return job


def earlier_verified_rating(conn: sqlite3.Connection, row: dict[str, Any]) -> bool:
    """Whether the case of `row` was already rated at its touchpoint under a verified reference.

    Only a verified reference claims a case: an unverified one (anyone can type a case number) is kept
    and counted, but never makes another rating a duplicate, so nobody can pre-empt a citizen's rating.
    A later rating of a case already claimed is a duplicate whether verified or not: after the real
    rating, an unverified one is a second rating or a forgery, and either way stays out of the rates.
    """
    return (
        conn.execute(
            "SELECT 1 FROM responses WHERE touchpoint = ? AND case_ref = ? AND case_verified = 1 AND id != ? LIMIT 1",
            (row["touchpoint"], row["case_ref"], row["id"]),
        ).fetchone()
        is not None
    )


def stored_event(
    row: dict[str, Any],
    flags: tuple[str, ...],
    hits: list[int] | None = None,
    answers: dict[str, Any] | None = None,
    indicators: dict[str, float] | None = None,
) -> Event:
    skip = ("answers", "indicators", "flags", "content_hash")
    data = {k: row[k] for k in RESPONSE_COLUMNS if k not in skip}
    data["answers"] = answers if answers is not None else msgspec.json.decode(row["answers"])
    data["indicators"] = indicators if indicators is not None else msgspec.json.decode(row["indicators"])
    data["flags"] = list(flags)
    data["case_verified"] = bool(row["case_verified"])
    data["suspect"] = is_suspect(list(flags))
    data["objectives"] = list(hits or [])
    return Event(type="response.stored", id=f"response.stored:{row['id']}", created_at=row["server_time"], data=data)


async def fire_event(event: Event, store: Store) -> None:
    """Fire `track_event` after commit; each plugin isolated, awaitables awaited."""
    for result in plugins.call_isolated("track_event", event=event, store=store):
        try:
            await plugins.await_me_maybe(result)
        except Exception as error:  # noqa: BLE001 - a plugin must never take the core down
            plugins.failures.record("track_event", "track_event", error)


def action_event(action: dict[str, Any], kind: str = "action.opened") -> Event:
    return Event(type=kind, id=f"{kind}:{action['id']}", created_at=action["opened_at"], data=action)


async def after_commit(result: IngestResult, row: dict[str, Any] | None, prepared: Prepared, store: Store) -> None:
    """The events of a stored response: `response.stored`, then `action.opened` for what it opened."""
    if row is None or not plugins.pm.hook.track_event.get_hookimpls():
        return
    await fire_event(stored_event(row, result.flags, prepared.hits, prepared.answers, prepared.indicators), store)
    for action in result.actions:
        await fire_event(action_event(action), store)


def stored_replays(conn: sqlite3.Connection, wanted: dict[str, str]) -> dict[str, IngestResult]:
    """Of `wanted` (response id -> content hash), those already stored with that very content, as the
    result a replay answers (a reader-side check, for when prepare refused before the writer could)."""
    if not wanted:
        return {}
    marks = ",".join("?" for _ in wanted)
    found = {}
    for rid, receipt, digest, flags, level in conn.execute(
        f"SELECT id, receipt, content_hash, flags, level FROM responses WHERE id IN ({marks})", list(wanted)
    ):
        if wanted[rid] == digest:
            found[rid] = IngestResult(rid, receipt, False, tuple(msgspec.json.decode(flags)), level)
    return found


def replay_key(submission: Submission) -> tuple[str, str] | None:
    """(normalised id, content hash) of a submission that names its id, else None."""
    if submission.id is None:
        return None
    try:
        return str(uuid.UUID(submission.id)), content_hash(submission)
    except ValueError:
        return None


async def ingest(
    submission: Submission,
    store: Store,
    snapshot: Snapshot,
    *,
    flags: list[str] | None = None,
    default_action_days: int = 10,
    case_verified: bool = False,
) -> IngestResult:
    """Validate, score, store durably and idempotently; returns once the commit is on disk."""
    try:
        prepared = prepare(submission, snapshot, flags=flags, case_verified=case_verified)
    except Gone:
        # A retry of a response the touchpoint took while live still gets its stored answer (200).
        key = replay_key(submission)
        found = await store.read(lambda conn: stored_replays(conn, dict([key]))) if key else {}
        if not found:
            raise
        return next(iter(found.values()))
    result, row = await store.write(store_job(prepared, default_action_days))
    await after_commit(result, row, prepared, store)
    return result
