"""The bodies of the API's success responses, as msgspec Structs: the OpenAPI document's response schemas.

Handlers hand back the dicts the core builds (their shapes are the public contract and tests hold
them); these Structs describe those shapes for the document (`responses=success(Struct)`), and the
OpenAPI fuzz test checks every answer against them. A key that is sometimes left out is `UnsetType`;
a key that is always there but may be null is `X | None`.
"""

from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, Meta, Struct, UnsetType

from feedback.models import Question
from feedback.rates import Grouping


def success(body: Any, status: int = 200, description: str = "OK") -> dict[int, ResponseSpec]:
    """`responses=` for a route decorator: `body` documents the answer with status `status` (merge two
    with `{**success(…), **success(…)}` where a route answers two ways)."""
    return {status: ResponseSpec(data_container=body, description=description, generate_examples=False)}


def binary(media_type: str, description: str) -> dict[int, ResponseSpec]:
    """`responses=` for a file download (CSV, XLSX, PDF, images): a string body of that media type."""
    return {
        200: ResponseSpec(data_container=bytes, media_type=media_type, description=description, generate_examples=False)
    }


def _field(description: str) -> Meta:
    return Meta(description=description)


Day = Annotated[str, _field("a local day of the unit, YYYY-MM-DD")]
Moment = Annotated[str, _field("an RFC 3339 time")]
MaybeMoment = Annotated[str | None, _field("an RFC 3339 time, or null")]
Interval = Annotated[list[float] | None, _field("Wilson 95 % interval [low, high]; null where n is 0")]
Texts = Annotated[dict[str, str], _field("text per language code (vi, ru, zh, en)")]


# -- health and responses ------------------------------------------------------------------------


class PluginFailure(Struct, kw_only=True):
    count: Annotated[int, _field("failures since the process started")]
    last: Annotated[str, _field("the last failure's exception")]


class Health(Struct, kw_only=True):
    status: Annotated[str, _field('"ok" while the process serves')]
    version: Annotated[str, _field("the software version")]
    writes: Annotated[int, _field("write jobs committed by this process")]
    batches: Annotated[int, _field("group commits made by this process")]
    write_seconds: Annotated[float, _field("time the writer spent running jobs and committing, in seconds")]
    commit_seconds: Annotated[float, _field("of which in COMMIT (the fsync that makes a batch durable)")]
    plugin_failures: Annotated[dict[str, PluginFailure], _field("failures per plugin and hook")]


class DatabaseCheck(Struct, kw_only=True):
    ok: Annotated[bool, _field("a test write through the writer committed within its deadline")]
    detail: Annotated[str, _field("what was found, in words")]
    seconds: Annotated[float | None, _field("how long the test write took; null when it did not commit")]


class DiskCheck(Struct, kw_only=True):
    ok: Annotated[bool, _field("enough free space on the filesystem holding the database (or not checked)")]
    detail: Annotated[str, _field("what was found, in words (why it was not checked, for PostgreSQL)")]
    free_mb: Annotated[int | None, _field("free space in MB; null when not checked")]
    min_free_mb: Annotated[int, _field("FEEDBACK_READY_MIN_FREE_MB")]


class EventsCheck(Struct, kw_only=True):
    ok: Annotated[bool, _field("no event has waited longer than allowed to be dispatched")]
    detail: Annotated[str, _field("what was found, in words")]
    oldest_seconds: Annotated[float | None, _field("how long the oldest undispatched event has waited; null: none")]
    max_seconds: Annotated[float, _field("FEEDBACK_READY_MAX_EVENT_AGE")]


class ReadinessChecks(Struct, kw_only=True):
    database: DatabaseCheck
    disk: DiskCheck
    events: EventsCheck


class Ready(Struct, kw_only=True):
    status: Annotated[Literal["ready"], _field("every check passed")]
    checks: ReadinessChecks


class NotReady(Struct, kw_only=True):
    status: Annotated[Literal["not_ready"], _field("a check failed")]
    reasons: Annotated[
        list[str], _field("one per failing check, starting with its name (database, disk, events; server: stopping)")
    ]
    checks: ReadinessChecks


class Receipt(Struct, kw_only=True):
    id: Annotated[str, _field("the response id (a UUID)")]
    receipt: Annotated[str, _field("the short receipt code shown to the respondent")]


class Erasure(Struct, kw_only=True):
    id: Annotated[str, _field("the response id")]
    erased: Annotated[
        list[Literal["comment", "contact", "case_ref", "officer"]],
        _field("everything erased of the response so far (by retention or on request)"),
    ]


class ErrorBody(Struct, kw_only=True):
    """Every error answer of the API (what `feedback.web.errors` sends)."""

    status_code: Annotated[int, _field("the HTTP status")]
    detail: Annotated[str, _field("what is wrong, starting with the offending field")]
    field: Annotated[str, _field("the offending field, e.g. answers.overall")] | UnsetType = UNSET


# -- touchpoints, surveys and units --------------------------------------------------------------


class Survey(Struct, kw_only=True):
    slug: Annotated[str, _field("the survey's stable name")]
    version: Annotated[int, _field("the published version in force")]
    languages: Annotated[list[str], _field("language codes the survey is written in")]
    title: Texts
    description: Texts
    scoring: Annotated[str, _field("which scoring applies")]
    questions: Annotated[list[Question], _field("the questions, in order; `kind` tells them apart")]


class SurveyTouchpoint(Struct, kw_only=True):
    token: str
    name: str
    unit: Annotated[str, _field("unit code")]
    lang: Annotated[str, _field("the touchpoint's language")]
    kind: Literal["qr", "kiosk"]
    counter: Annotated[str | None, _field("counter label")]
    service: Annotated[str | None, _field("the service rated here by default")]


class TouchpointSurvey(Survey, kw_only=True):
    touchpoint: SurveyTouchpoint


class TouchpointItem(Struct, kw_only=True):
    token: str
    name: str
    unit: Annotated[str, _field("unit code")]
    lang: str
    survey: Annotated[str, _field("survey slug")]
    kind: Literal["qr", "kiosk"]
    service: str | None
    retired: Annotated[bool, _field("retired touchpoints take no new ratings")]
    counter: Annotated[str, _field("counter label, when it has one")] | UnsetType = UNSET
    short_code: Annotated[str, _field("the short typeable code, e.g. HP-7K3Q")] | UnsetType = UNSET


class RetentionDays(Struct, kw_only=True):
    """The kinds of personal data a unit sets itself, in days (a kind left out follows the unit above)."""

    comments_days: Annotated[int, _field("free-text comments")] | UnsetType = UNSET
    contacts_days: Annotated[int, _field("contacts left for a call-back")] | UnsetType = UNSET
    case_refs_days: Annotated[int, _field("case references")] | UnsetType = UNSET
    officers_days: Annotated[int, _field("officer codes")] | UnsetType = UNSET
    responses_days: Annotated[int, _field("the responses themselves (their rollups stay)")] | UnsetType = UNSET


class RetentionRule(Struct, kw_only=True):
    days: Annotated[int | None, _field("days kept; null: kept")]
    from_: Annotated[str, _field('the unit that sets it, or "default"')] = msgspec.field(name="from")


class RetentionInForce(Struct, kw_only=True):
    """Per kind, the days that apply to the unit and where they come from."""

    comments_days: RetentionRule
    contacts_days: RetentionRule
    case_refs_days: RetentionRule
    officers_days: RetentionRule
    responses_days: RetentionRule


class ReportedMark(Struct, kw_only=True):
    child: Annotated[str, _field("the child installation whose reports the figures come from")]
    name: Annotated[str, _field("the child installation's name")]
    as_of: Annotated[str | None, _field("the latest day the child reported (its local day); null before its first")]


class ReportedChild(ReportedMark, kw_only=True):
    unit: Annotated[str, _field("this installation's unit the child's tree hangs under")]


class UnitItem(Struct, kw_only=True):
    code: str
    name: Annotated[str, _field("the name in the unit's own language")]
    parent: Annotated[str | None, _field("parent unit code; null for an agency (a root)")]
    lang: str
    tz: Annotated[str, _field("IANA time zone of the unit's local days")]
    country: Annotated[str | None, _field("ISO 3166 code of its working-day calendar")]
    owner: Annotated[str | None, _field("the user who answers for the unit")]
    action_days: Annotated[int | None, _field("working days to rectify a bad review")]
    public_results: Annotated[bool, _field("whether /results/{code} is published")]
    complaint_levels: Annotated[
        list[int] | None, _field("levels at which one response opens a complaint action, as set here; null: inherited")
    ]
    complaint_levels_in_force: Annotated[
        list[int], _field("the levels that apply: this unit's, else the nearest unit above's, else [1, 2]")
    ]
    retention: Annotated[RetentionDays | None, _field("days of personal data kept, as set here; null: none set")]
    retention_in_force: RetentionInForce
    names: Annotated[dict[str, str], _field("the name per language, when given")] | UnsetType = UNSET
    reported: (
        Annotated[ReportedMark, _field("a child installation's unit, shown from its daily reports")] | UnsetType
    ) = UNSET


class UnitSettings(Struct, kw_only=True):
    code: str
    owner: str | None
    country: str | None
    action_days: int | None
    public_results: bool
    complaint_levels: Annotated[list[int] | None, _field("as set on this unit; null: as the unit above")]
    complaint_levels_in_force: Annotated[list[int], _field("the levels that apply, inherited where not set")]
    retention: Annotated[RetentionDays | None, _field("days of personal data kept, as set here; null: none set")]
    retention_in_force: RetentionInForce


class RateRow(Struct, kw_only=True):
    key: Annotated[str | None, _field("the group (unit, service, touchpoint, day, week or month); null in the total")]
    n: Annotated[int, _field("counted responses (suspect ones left out)")]
    satisfied: int
    rate: Annotated[float | None, _field("satisfied / n (top-2-box); null where n is 0")]
    ci95: Interval
    sufficient: Annotated[bool, _field("n reaches the minimum n")]
    dissatisfied: int
    not_dissatisfied_rate: float | None
    mean_score: Annotated[float | None, _field("mean score 0-100")]
    levels: Annotated[dict[str, int], _field("responses per level 1-5")]
    suspect: Annotated[int, _field("flagged responses, not in n")]
    raw_n: Annotated[int, _field("n + suspect")]
    served: Annotated[int | None, _field("customers served, where exposure was counted")]
    response_rate: float | None
    reported: (
        Annotated[ReportedMark, _field("by=unit: the row is a child installation's unit, from its reports")] | UnsetType
    ) = UNSET


class Satisfaction(Struct, kw_only=True):
    unit: str
    date_from: Day = msgspec.field(name="from")
    date_to: Day = msgspec.field(name="to")
    by: Grouping
    min_n: int
    rows: list[RateRow]
    total: RateRow
    reported: (
        Annotated[list[ReportedChild], _field("the child installations whose reported aggregates are counted in")]
        | UnsetType
    ) = UNSET


# -- kiosks ----------------------------------------------------------------------------------------


class EnrolledKiosk(Struct, kw_only=True):
    id: str
    touchpoint: str
    name: str


class KioskEnrolled(Struct, kw_only=True):
    device_token: Annotated[str, _field("the tablet's bearer token; shown once")]
    kiosk: EnrolledKiosk


class KioskIdentity(Struct, kw_only=True):
    id: str
    touchpoint: str
    unit: str
    unit_name: str
    unit_names: Texts
    counter: str | None


class KioskTimings(Struct, kw_only=True):
    thanks_seconds: float
    idle_seconds: float
    heartbeat_seconds: float
    sync_seconds: float


class KioskConfig(Struct, kw_only=True):
    kiosk: KioskIdentity
    lang: str
    retired_at: Annotated[str | None, _field("when the touchpoint was retired; null while live")]
    survey: Survey
    settings: KioskTimings


class SyncResult(Struct, kw_only=True):
    id: str
    status: Literal["stored", "duplicate", "rejected"]
    receipt: Annotated[str, _field("stored and duplicate items")] | UnsetType = UNSET
    reason: Annotated[str, _field("rejected items: why")] | UnsetType = UNSET
    field: Annotated[str | None, _field("rejected items: the offending field")] | UnsetType = UNSET


class SyncResults(Struct, kw_only=True):
    results: Annotated[list[SyncResult], _field("one per item, in the order sent")]


class HeartbeatReply(Struct, kw_only=True):
    survey_version: Annotated[int | None, _field("the survey version in force at the touchpoint")]
    time: Moment
    retired_at: MaybeMoment


class Invitation(Struct, kw_only=True):
    id: str
    case_ref: str
    service: str | None
    officer: str | None


class InvitationPoll(Struct, kw_only=True):
    invitation: Annotated[Invitation | None, _field("null when none came within `wait` seconds")]


class KioskHealth(Struct, kw_only=True):
    id: str
    touchpoint: str
    unit: str
    name: str
    enrolled_at: Moment
    last_seen: MaybeMoment
    backlog: Annotated[int, _field("taps queued on the tablet at its last heartbeat")]
    dead_letters: int
    app_version: str | None
    last_sync: MaybeMoment
    battery: Annotated[float | None, _field("0-1")]
    revoked: bool
    silent: Annotated[bool, _field("live but not heard from for FEEDBACK_KIOSK_SILENT_AFTER seconds")]


class EnrollmentCode(Struct, kw_only=True):
    code: Annotated[str, _field("the one-time 6-digit code")]
    expires_at: Moment
    touchpoint: str


class IssuedInvitation(Struct, kw_only=True):
    id: str
    kiosk: str
    case_ref: str
    service: str | None
    officer: str | None
    created_at: Moment
    created_by: str | None
    expires_at: Moment


class KioskRevoked(Struct, kw_only=True):
    id: str
    revoked: bool


# -- objectives, control charts, exposure ---------------------------------------------------------


class ObjectiveVersionDoc(Struct, kw_only=True):
    version: int
    valid_from: Day
    title: str | None
    titles: Annotated[dict[str, str] | None, _field("the title in other languages, by language code")]
    metric: str
    indicator: str | None
    service: str | None
    comparator: Literal[">=", "<="]
    target: Annotated[float, _field("a share 0-1, or a mean 0-100")]
    period: Annotated[str, _field("month, quarter or rolling_30")]
    min_n: int
    owner: str | None
    method: str
    created_at: Moment
    created_by: str | None


class _ObjectiveHead(Struct, kw_only=True):
    id: int
    unit: str
    version: Annotated[int, _field("the version in force today (else the first); its fields follow")]
    valid_from: Day
    title: str | None
    titles: Annotated[dict[str, str] | None, _field("the title in other languages, by language code")]
    metric: str
    indicator: str | None
    service: str | None
    comparator: Literal[">=", "<="]
    target: float
    period: str
    min_n: int
    owner: str | None
    method: str
    current: ObjectiveVersionDoc
    retired: bool
    retired_from: Annotated[str | None, _field("the local day it stops applying")]
    retired_at: MaybeMoment
    retired_by: str | None
    created_at: Moment
    created_by: str | None


class ObjectiveSummary(_ObjectiveHead, kw_only=True):
    versions: Annotated[int, _field("how many versions it has")]


class Objective(_ObjectiveHead, kw_only=True):
    versions: Annotated[list[ObjectiveVersionDoc], _field("every version, oldest first")]


class ChartSignal(Struct, kw_only=True):
    rule: Literal["beyond_limits", "run_of_eight"]
    week: str
    side: Literal["above", "below"]
    adverse: Annotated[bool, _field("on the side that means worse service")]


class ObjectiveStatus(Struct, kw_only=True):
    objective: int
    version: int
    unit: str
    title: str | None
    metric: str
    indicator: str | None
    service: str | None
    comparator: Literal[">=", "<="]
    target: float
    period: str
    period_key: Annotated[str, _field("e.g. 2024-05, 2024-Q2, R30:2024-05-31")]
    date_from: Day = msgspec.field(name="from")
    date_to: Day = msgspec.field(name="to")
    at: Day
    value: float | None
    n: int
    ci95: Interval
    status: Literal["met", "at_risk", "breached", "insufficient_data", "retired"]
    signals: list[ChartSignal]
    owner: str | None
    min_n: int
    successes: Annotated[int, _field("for share metrics")] | UnsetType = UNSET


class ChartWeek(Struct, kw_only=True):
    week: Annotated[str, _field("ISO week, e.g. 2024-W21")]
    date_from: Day = msgspec.field(name="from")
    date_to: Day = msgspec.field(name="to")
    n: int
    x: Annotated[int, _field("responses counted by the metric")]
    p: float | None
    lcl: float | None
    ucl: float | None


class ControlChart(Struct, kw_only=True):
    unit: str
    metric: str
    service: str | None
    date_from: Day = msgspec.field(name="from")
    date_to: Day = msgspec.field(name="to")
    centre: Annotated[float | None, _field("the centre line; null without responses")]
    weeks: list[ChartWeek]
    signals: list[ChartSignal]


class ExposureRow(Struct, kw_only=True):
    unit: str
    service: str | None
    day: Day
    served: int | None
    offered: int | None
    source: Annotated[str | None, _field("api or csv")]
    updated_at: MaybeMoment


class ExposureList(Struct, kw_only=True):
    unit: str
    date_from: Day = msgspec.field(name="from")
    date_to: Day = msgspec.field(name="to")
    rows: list[ExposureRow]
    served: Annotated[int, _field("customers served in all rows")]


class ExposureStored(Struct, kw_only=True):
    stored: Annotated[int, _field("rows stored")]


# -- corrective actions ----------------------------------------------------------------------------


class ActionSource(Struct, kw_only=True):
    type: Annotated[str, _field("response, objective or manual")]
    response_id: str | UnsetType = UNSET
    objective: int | UnsetType = UNSET
    period: str | None | UnsetType = UNSET


class Action(Struct, kw_only=True):
    id: int
    kind: Annotated[str, _field("work_order, callback, nonconformity, manual, or a plugin's")]
    unit: str
    service: str | None
    touchpoint: str | None
    indicator: str | None
    title: str
    status: str
    owner: str | None
    due: Annotated[str | None, _field("the local due day")]
    overdue: bool
    opened_at: Moment
    updated_at: Moment
    closed_at: MaybeMoment
    escalated_to: str | None
    source: ActionSource
    response_id: str | None
    objective_id: int | None
    period: str | None
    watch_from: str | None
    watch_until: str | None
    decision_needed: Annotated[
        bool,
        _field("under effectiveness review, the watch over without a verdict: the owner closes or reopens it"),
    ]
    reopen_count: int
    target: float | None
    baseline: float | None
    created_by: str | None


class ActionEvent(Struct, kw_only=True):
    seq: int
    action: int
    type: str
    from_status: str | None
    to_status: str
    actor: str
    at: Moment
    note: str | None
    correction: str | None
    root_cause: str | None
    similar_cases: str | None
    action_taken: str | None
    result: str | None
    explanation: str | None
    due: str | None
    data: dict[str, Any]


class CallbackAttempt(Struct, kw_only=True):
    id: int
    via: Annotated[str, _field("phone, mail or sms")]
    outcome: Annotated[str, _field("reached, not_reached or declined")]
    by: Annotated[str, _field("who recorded it (a user, or system for a delivered or given-up mail)")]
    at: Moment
    note: str | None


class Callback(Struct, kw_only=True):
    state: Annotated[str, _field("pending, reached, declined or not_reached (after FEEDBACK_CALLBACK_TRIES tries)")]
    tries: Annotated[int, _field("attempts that did not reach the respondent")]
    due: Annotated[str | None, _field("the local day the call-back is due (the action's due day when it opened)")]
    settled_at: Annotated[str | None, _field("when the state became final, or null while pending")]
    attempts: Annotated[list[CallbackAttempt], _field("every attempt, oldest first")]


class CallbackRecorded(Callback, kw_only=True):
    attempt: Annotated[CallbackAttempt, _field("the attempt just recorded")]


class ActionDetail(Action, kw_only=True):
    events: Annotated[list[ActionEvent], _field("every step, oldest first")]
    callback: Annotated[Callback | None, _field("the call-back the action owes its respondent; null: none")]
    data: Annotated[dict[str, Any], _field("opening details (admin, manager, auditor)")] | UnsetType = UNSET
    contact: Annotated[str | None, _field("the consented contact (admin, manager)")] | UnsetType = UNSET


class ActionStepped(Struct, kw_only=True):
    action: Action
    event: ActionEvent


class KpiRow(Struct, kw_only=True):
    unit: str
    opened: int
    closed: int
    closed_on_time: int
    overdue_open: int
    on_time_n: int
    on_time_rate: float | None
    on_time_ci95: Interval
    on_time_sufficient: bool
    callbacks: Annotated[int, _field("call-backs due in the period: final, or pending past their due day")]
    callbacks_reached: int
    callbacks_declined: int
    callbacks_not_reached: int
    callbacks_overdue: Annotated[int, _field("still pending past their due day at the period's end")]
    callback_rate: Annotated[float | None, _field("call-backs reached / call-backs due")]
    callback_ci95: Interval
    callback_sufficient: bool


class Kpis(Struct, kw_only=True):
    unit: str
    date_from: Day = msgspec.field(name="from")
    date_to: Day = msgspec.field(name="to")
    min_n: int
    rows: list[KpiRow]
    total: KpiRow


# -- paper forms and the hotline: keyed entry -------------------------------------------------------------


class StoredEntry(Struct, kw_only=True):
    id: Annotated[str, _field("the response id (fixed by the serial)")]
    receipt: str
    answers: Annotated[dict[str, Any], _field("the stored answers by question key")]
    occurred_on: Day
    channel: str
    entered_by: Annotated[str | None, _field("who keyed it in")]


class PaperForm(Struct, kw_only=True):
    """A printed form or a hotline call sheet, as the entry screen loads it."""

    serial: Annotated[str, _field("the form's serial, ABCDE-FGHJK")]
    paper: Annotated[str, _field('"A4", "A5", or "call" for a hotline call sheet')]
    unit: Annotated[str, _field("unit code")]
    lang: Annotated[str, _field("the language the form was printed in (a call sheet: the caller's)")]
    printed_at: Moment
    printed_on: Annotated[str, _field("the unit's local day it was printed: the first possible date of service")]
    today: Annotated[str, _field("the unit's local day now: the last possible date of service")]
    touchpoint: SurveyTouchpoint
    survey: Annotated[Survey, _field("the survey version the form was printed with (not the one in force)")]
    entered: Annotated[bool, _field("whether the form was entered already")]
    entry: Annotated[StoredEntry | None, _field("what is stored of it; null while never entered")]


class EntryReceipt(Struct, kw_only=True):
    id: Annotated[str, _field("the response id (fixed by the serial)")]
    receipt: Annotated[str, _field("the response's receipt code")]
    serial: Annotated[str, _field("the form's serial as normalised")]


class EntryError(Struct, kw_only=True):
    status_code: Annotated[int, _field("the HTTP status the entry alone would get")]
    detail: Annotated[str, _field("what is wrong, starting with the offending field")]
    field: Annotated[str, _field("the offending field")] | UnsetType = UNSET
    review: Annotated[int, _field("a second entry with other answers: its review number")] | UnsetType = UNSET


class EntryResult(Struct, kw_only=True):
    status: Literal["stored", "duplicate", "conflict", "rejected"]
    serial: Annotated[str | None, _field("the serial as normalised, or null when it was no serial")]
    id: Annotated[str | None, _field("the response id, once the form is known")]
    receipt: Annotated[str | None, _field("stored and duplicate entries: the response's receipt")]
    error: Annotated[EntryError | None, _field("conflict and rejected entries: why")]


class EntryResults(Struct, kw_only=True):
    items: Annotated[list[EntryResult], _field("one result per entry, in order")]


class EntryConflictBody(Struct, kw_only=True):
    status_code: Annotated[int, _field("409")]
    detail: Annotated[str, _field("starts with answers:")]
    field: Annotated[str, _field("answers")]
    review: Annotated[int, _field("the kept entry's review number (/manage/entry/conflicts)")]
