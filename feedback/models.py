"""msgspec Structs shared by the core and plugins.

Values handed to plugins are frozen. Rows become Structs in one place (`from_row`), with
`strict=False` because SQLite hands booleans back as 0/1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

LANGUAGES = ("vi", "ru", "zh", "en")
CHANNELS = ("api", "qr", "kiosk", "web", "sms", "paper", "hotline")
TRANSACTION_POINTS = ("intake", "supplement_request", "refusal", "completion", "post_service")
ROLES = ("admin", "manager", "viewer", "auditor")
# The controlled vocabulary questions may carry, so trends aggregate across survey versions
# and national presets. Plugins may add more through `register_indicators`-style templates.
INDICATORS = (
    "overall",
    "waiting_time",
    "service_time",
    "on_time",
    "staff_courtesy",
    "staff_competence",
    "efficiency",
    "information",
    "premises",
    "ease",
    "trust",
    "equity",
    "convenience",
    "visits",
    "agencies",
    "feedback_handling",
    "result",
)

Key = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Text = dict[str, str]  # language code -> text


class ShowIf(Struct, frozen=True, kw_only=True):
    """Show a question only when the rating `question` is within [min, max]."""

    question: str
    min: int | None = None
    max: int | None = None

    def holds(self, answers: dict[str, Any]) -> bool:
        value = answers.get(self.question)
        if not isinstance(value, int):
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)


class QuestionBase(Struct, frozen=True, kw_only=True, tag_field="kind"):
    key: Key
    text: Text
    required: bool = False
    indicator: str | None = None
    show_if: ShowIf | None = None


class RatingQuestion(QuestionBase, tag="rating"):
    """Answers 1..scale, higher is better.

    `levels` maps each answer onto the common 1..5 level (default: linear), `scores` onto 0..100
    (default: linear); a scale declares its own normalisation that way.
    `labels` names each answer per language (e.g. 非常满意 … 非常不满意).
    """

    scale: Annotated[int, Meta(ge=2, le=11)] = 5
    style: Literal["faces", "stars", "numbers", "thumbs"] = "faces"
    primary: bool = False
    labels: dict[str, list[str]] | None = None
    levels: list[int] | None = None
    scores: list[float] | None = None

    def level_of(self, value: int) -> int:
        if self.levels:
            return self.levels[value - 1]
        return 1 + round(4 * (value - 1) / (self.scale - 1))

    def score_of(self, value: int) -> float:
        if self.scores:
            return float(self.scores[value - 1])
        return 100.0 * (value - 1) / (self.scale - 1)


class Option(Struct, frozen=True, kw_only=True):
    key: Key
    text: Text


class ChoiceQuestion(QuestionBase, tag="choice"):
    options: list[Option]
    multiple: bool = False


class TextQuestion(QuestionBase, tag="text"):
    max_length: Annotated[int, Meta(ge=1, le=10_000)] = 1200


class ContactQuestion(QuestionBase, tag="contact"):
    """Optional contact for a call-back. Stored apart from the answers, only with consent."""

    consent_text: Text = msgspec.field(default_factory=dict)
    max_length: int = 200


Question = RatingQuestion | ChoiceQuestion | TextQuestion | ContactQuestion


class SurveyDefinition(Struct, frozen=True, kw_only=True):
    """A survey as a template or a published version describes it."""

    slug: Key
    title: Text
    languages: list[str] = msgspec.field(default_factory=lambda: list(LANGUAGES))
    questions: list[Question] = msgspec.field(default_factory=list)
    # Which `score_response` implementation applies; the CSAT scorer is the fallback.
    scoring: str = "csat"
    description: Text = msgspec.field(default_factory=dict)

    def question(self, key: str) -> Question | None:
        for question in self.questions:
            if question.key == key:
                return question
        return None

    def primary_rating(self) -> RatingQuestion | None:
        """The primary rating: marked `primary`, else the first `overall`, else the first rating.

        Asked for on every response, so it is worked out once per survey version."""
        cached = _PRIMARY.get(id(self))
        if cached is not None and cached[0] is self:
            return cached[1]
        primary = self._find_primary()
        if len(_PRIMARY) > 1024:  # catalog reloads decode surveys anew: keep the cache bounded
            _PRIMARY.clear()
        _PRIMARY[id(self)] = (self, primary)
        return primary

    def _find_primary(self) -> RatingQuestion | None:
        ratings = [q for q in self.questions if isinstance(q, RatingQuestion)]
        for question in ratings:
            if question.primary:
                return question
        for question in ratings:
            if question.indicator == "overall":
                return question
        return ratings[0] if ratings else None


# id(survey) -> (survey, its primary rating); the survey is kept so the id is never reused.
_PRIMARY: dict[int, tuple[SurveyDefinition, RatingQuestion | None]] = {}


class SurveyVersion(Struct, frozen=True, kw_only=True):
    """A published, immutable version of a survey. Responses pin (slug, version)."""

    slug: str
    version: int
    definition: SurveyDefinition
    published_at: str


class Unit(Struct, frozen=True, kw_only=True):
    code: str
    name: str
    parent: str | None = None
    lang: str = "en"
    names: dict[str, str] | None = None
    tz: str = "UTC"
    path: str = ""
    country: str | None = None  # ISO 3166 code: whose working-day calendar its deadlines follow
    owner: str | None = None  # the user who answers for the unit (its manager)
    action_days: int | None = None  # working days to rectify a bad review, where a rule sets one
    public_results: bool = False
    # Levels at which one response opens a complaint action, as set on this unit ([] for none);
    # None: as the unit above (`Snapshot.complaint_levels` resolves it, else DEFAULT_COMPLAINT_LEVELS).
    complaint_levels: tuple[int, ...] | None = None
    # Days this unit keeps each kind of personal data (`feedback.retention.KINDS`), as set on this unit;
    # a kind left out follows the unit above (`Snapshot.retention` resolves it, else the defaults).
    retention: dict[str, int] | None = None


# The levels that open a complaint action where no unit on the way up says otherwise: the two worst.
DEFAULT_COMPLAINT_LEVELS: tuple[int, ...] = (1, 2)


class User(Struct, frozen=True, kw_only=True):
    name: str
    role: str
    unit: str | None = None
    email: str | None = None
    lang: str | None = None


class Touchpoint(Struct, frozen=True, kw_only=True):
    token: str
    name: str
    unit: str
    lang: str
    survey: str
    kind: Literal["qr", "kiosk"] = "qr"
    counter: str | None = None
    service: str | None = None
    short_code: str | None = None


class Submission(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /api/v1/responses`, and what every channel hands to ingest."""

    touchpoint: Annotated[str, Meta(min_length=1, max_length=64)]
    # Checked against the survey version by ingest, which names the offending question.
    answers: dict[Annotated[str, Meta(max_length=64)], Any]
    id: str | None = None
    lang: str | None = None
    service: Annotated[str, Meta(max_length=64)] | None = None
    case_ref: Annotated[str, Meta(max_length=128)] | None = None
    channel: Literal["api", "qr", "kiosk", "web", "sms", "paper", "hotline"] = "api"
    transaction_point: Literal["intake", "supplement_request", "refusal", "completion", "post_service"] | None = None
    counter: Annotated[str, Meta(max_length=64)] | None = None
    officer: Annotated[str, Meta(max_length=64)] | None = None
    submitted_at: str | None = None


class Score(Struct, frozen=True, kw_only=True):
    """What `score_response` returns: the common level 1..5, flags and indicator values 0..100."""

    level: int | None
    satisfied: bool
    dissatisfied: bool
    score: float | None
    indicators: dict[str, float] = msgspec.field(default_factory=dict)


class StoredResponse(Struct, frozen=True, kw_only=True):
    """A response as stored: handed to `track_event` and later plugins."""

    id: str
    receipt: str
    touchpoint: str
    unit: str
    service: str | None
    survey: str
    survey_version: int
    channel: str
    transaction_point: str | None
    case_ref: str | None
    counter: str | None
    officer: str | None
    lang: str
    answers: dict[str, Any]
    client_time: str | None
    server_time: str
    occurred_at: str
    day: str
    level: int | None
    satisfied: bool
    dissatisfied: bool
    score: float | None
    indicators: dict[str, float]
    flags: list[str]
    # The channel vouched for case_ref (signed link, kiosk invitation, authenticated integration).
    case_verified: bool = False


class Event(Struct, frozen=True, kw_only=True):
    """One event on the `track_event` bus, fired after the write that caused it commits."""

    type: str
    id: str
    created_at: str
    data: dict[str, Any]


OBJECTIVE_METRICS = (
    "satisfaction",  # top-2-box share
    "not_dissatisfied",  # share not rated dissatisfied (Vietnam's Decision 766)
    "mean_score",  # mean 0-100
    "bad_review_rate",  # share rated dissatisfied
    "indicator_mean",  # mean 0-100 of one indicator (waiting time, courtesy…)
    "response_rate",  # respondents / customers served (exposure)
    "on_time_rectification",  # corrective actions closed by their due day
    "callback_rate",  # call-backs that reached the respondent / call-backs due (feedback.callbacks)
    "dossier_on_time",  # dossiers returned by their due day / dossiers due (feedback.dossiers)
    "indicator_value",  # numerator / denominator of an indicator kept elsewhere (feedback.indicators)
)
OBJECTIVE_PERIODS = ("month", "quarter", "rolling_30")
OBJECTIVE_STATUSES = ("met", "at_risk", "breached", "insufficient_data")


class ObjectiveVersion(Struct, frozen=True, kw_only=True):
    """One version of a quality objective (ISO 9001 6.2), in force from `valid_from` (a local day).

    Shares are fractions 0-1; means (`mean_score`, `indicator_mean`) are on 0-100.
    """

    objective: int
    unit: str
    version: int
    valid_from: str
    metric: str
    comparator: Literal[">=", "<="]
    target: float
    period: str
    min_n: int
    title: str | None = None
    titles: dict[str, str] | None = None  # the title in other languages, by language code
    indicator: str | None = None
    service: str | None = None
    owner: str | None = None
    method: str = "wilson"
    retired_from: str | None = None


class ActionRequest(Struct, frozen=True, kw_only=True):
    """What `evaluate_triggers` returns to open a corrective action.

    `source_key` makes it idempotent: one action per key (`response:<id>`, `objective:<id>:<period>`),
    however often the cause is seen again. The deadline is `due` (a local day) or `working_days`
    counted on the unit's working-day calendar from the day it opens.
    """

    kind: str  # work_order | callback | nonconformity | manual (plugins may add kinds)
    source_key: str
    unit: str
    title: str
    working_days: int | None = None
    due: str | None = None
    service: str | None = None
    touchpoint: str | None = None
    indicator: str | None = None
    response_id: str | None = None
    objective_id: int | None = None
    period: str | None = None
    target: float | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


# Flags that only annotate a response; every other flag marks it suspect (left out of rates).
INFORMATIONAL_FLAGS = frozenset({"clock_skew", "scoring_failed"})


def is_suspect(flags: list[str]) -> bool:
    """Whether a response with these flags is left out of rates (any flag not merely informational)."""
    return any(flag not in INFORMATIONAL_FLAGS for flag in flags)


INDICATOR_DIRECTIONS = ("higher", "lower")


class Indicator(Struct, frozen=True, kw_only=True):
    """A quality indicator kept outside the ratings (an error rate, plan completion, case closure), defined
    once: its figures are numerator / denominator per unit and period (`feedback.indicators`).

    `direction` says which way is better: an objective on it compares with ">=" when higher is better
    and "<=" when lower is. `names` holds its name per language code (vi, ru, zh, en); `unit_of_measure`
    what the numerator and denominator count, if it helps to say (e.g. {"en": "dossiers"})."""

    key: str
    names: dict[str, str]
    direction: Literal["higher", "lower"]
    unit_of_measure: dict[str, str] | None = None


T = TypeVar("T")


def from_row(row: dict[str, Any], type_: type[T]) -> T:
    return msgspec.convert(row, type_, strict=False)
