"""The JSON API of keyed entry: `POST /api/v1/paper-entries` (one form, or `{"items": [...]}` for many),
`GET /api/v1/paper-forms/{serial}` (a form as the entry screen loads it) and
`POST /api/v1/touchpoints/{token}/call-sheets` (a hotline call's sheet). The work is
`feedback.paper_entry`'s.

Callers are admins and managers, by a bearer token or by the manager app's session (the entry screen);
a session's post carries the page's CSRF token in `x-csrftoken`, as the manager app's forms carry theirs.
A form of a unit outside the caller's subtree is answered as an unknown serial (404), the same words as
for a serial never printed, so a token cannot learn whether another unit's serial exists; a role that
may not key forms is a 403 naming `role`.
"""

from secrets import compare_digest
from typing import Annotated, Any, Literal

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct

from feedback import paper_entry
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, InvalidInput, Unauthorized
from feedback.web.access import authenticator, requires_role
from feedback.web.api import survey_document
from feedback.web.errors import error_body
from feedback.web.manage.auth import CSRF_COOKIE, CSRF_HEADER, session_principal
from feedback.web.schemas import EntryConflictBody, EntryReceipt, EntryResults, ErrorBody, PaperForm, success
from feedback.web.security import Principal, current_principal

#: Who keys forms in and takes hotline calls.
WRITERS = ("admin", "manager")
Serial = Annotated[str, Meta(min_length=1, max_length=200)]
Day = Annotated[str, Meta(max_length=32)]
Answers = dict[Annotated[str, Meta(max_length=64)], Any]
Contact = Annotated[str, Meta(max_length=paper_entry.MAX_CONTACT)]


def _token_matches(secret: str, token: str | None) -> str | None:
    if not token or len(token) <= CSRF_SECRET_LENGTH:
        return None
    value, digest = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
    return value if compare_digest(digest, generate_csrf_hash(value, secret)) else None


def check_csrf(request: Request, secret: str) -> None:
    """A post made with the manager app's session must carry the page's CSRF token (header
    `x-csrftoken`, the one `fbManage.post` sends) matching the app's CSRF cookie: 403 otherwise."""
    sent = _token_matches(secret, request.headers.get(CSRF_HEADER))
    kept = _token_matches(secret, request.cookies.get(CSRF_COOKIE))
    if sent is None or kept is None or not compare_digest(sent, kept):
        raise Forbidden("csrf: the page's CSRF token is missing or does not match", "csrf")


async def writer_principal(request: Request, state: State) -> Principal:
    """A bearer token, else the signed-in session (with its CSRF token on a post), else 401."""
    if request.headers.get("authorization"):
        return await current_principal(request, state)
    principal = await session_principal(request)
    if principal is None:
        raise Unauthorized("authorization: a bearer token or a signed-in session is required", "authorization")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        check_csrf(request, state.settings.secret)
    return principal


TOKEN_OR_SESSION_CSRF = authenticator(writer_principal)


class EntryBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """One keyed form."""

    serial: Serial
    answers: Answers
    occurred_on: Day
    channel: Literal["paper", "hotline"] = "paper"
    contact: Contact | None = None
    consent: bool = False


class EntriesBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """One keyed form (`serial`, `answers`, `occurred_on`, `channel`?, `contact`?, `consent`?), or many as
    `items`. `occurred_on` is the date of service written on the form, from its print day to today."""

    serial: Serial | None = None
    answers: Answers | None = None
    occurred_on: Day | None = None
    channel: Literal["paper", "hotline"] = "paper"
    contact: Contact | None = None
    consent: bool = False
    items: Annotated[list[EntryBody], Meta(max_length=paper_entry.MAX_ENTRIES)] | None = None


class CallSheetBody(Struct, kw_only=True, forbid_unknown_fields=True):
    lang: Annotated[str, Meta(max_length=8)] | None = None


def _entry(body: EntryBody | EntriesBody) -> paper_entry.PaperEntry:
    for name in ("serial", "answers", "occurred_on"):
        if getattr(body, name) is None:
            raise InvalidInput(f"{name}: required", name)
    return paper_entry.PaperEntry(
        serial=body.serial,  # type: ignore[arg-type]  # checked above
        answers=body.answers,  # type: ignore[arg-type]
        occurred_on=body.occurred_on,  # type: ignore[arg-type]
        channel=body.channel,
        contact=body.contact,
        consent=body.consent,
    )


def result_body(outcome: paper_entry.EntryOutcome) -> dict[str, Any]:
    error = None
    if outcome.error is not None:
        error = error_body(outcome.error.status_code, outcome.error.message, outcome.error.field)
        if isinstance(outcome.error, paper_entry.EntryConflict):
            error["review"] = outcome.error.review
    return {
        "status": outcome.status,
        "serial": outcome.serial,
        "id": outcome.id,
        "receipt": outcome.receipt,
        "error": error,
    }


def single_answer(outcome: paper_entry.EntryOutcome) -> Response:
    """One entry's answer: 201 stored, 200 the same entry again, 409 kept for review, else its error."""
    if outcome.status in ("stored", "duplicate"):
        body = {"id": outcome.id, "receipt": outcome.receipt, "serial": outcome.serial}
        return Response(body, status_code=201 if outcome.status == "stored" else 200, media_type=MediaType.JSON)
    error = outcome.error
    assert error is not None
    if isinstance(error, paper_entry.EntryConflict):
        body = {**error_body(409, error.message, error.field), "review": error.review}
        return Response(body, status_code=409, media_type=MediaType.JSON)
    raise error


def form_body(form: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    """A form as `PaperForm` describes it."""
    version = snapshot.versions.get((form["survey"], form["survey_version"]))
    if version is None:
        raise paper_entry.unknown_form(form["serial"])
    touchpoint = snapshot.touchpoints.get(form["touchpoint"])
    entry = form.get("entry")
    return {
        "serial": form["serial"],
        "paper": form["paper"],
        "unit": form["unit"],
        "lang": form["lang"],
        "printed_at": form["printed_at"],
        "printed_on": paper_entry.printed_day(form, snapshot),
        "today": paper_entry.local_today(form["unit"], snapshot),
        "touchpoint": {
            "token": form["touchpoint"],
            "name": touchpoint.name if touchpoint else form["touchpoint"],
            "unit": touchpoint.unit if touchpoint else form["unit"],
            "lang": touchpoint.lang if touchpoint else form["lang"],
            "kind": touchpoint.kind if touchpoint else "qr",
            "counter": touchpoint.counter if touchpoint else None,
            "service": touchpoint.service if touchpoint else None,
        },
        "survey": survey_document(version),
        "entered": entry is not None,
        "entry": entry,
    }


def _errors(*pairs: tuple[int, str]) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
        for status, text in pairs
    }


class PaperEntryController(Controller):
    path = "/api/v1"
    tags = ["paper entry"]
    dependencies = {"principal": TOKEN_OR_SESSION_CSRF}
    guards = [requires_role(*WRITERS)]

    @post(
        "/paper-entries",
        summary="Key in a paper form or a hotline call sheet (or many as items; admin, manager)",
        description=(
            "201 stored; 200 the same entry again (same answers, date and channel); 409 other answers for a"
            " form stored before: this entry is kept for review (its number in `review`) and nothing stored"
            " changes; 400 naming the field (`serial`, `answers.<key>`, `occurred_on`, `channel`, `consent`);"
            " 404 an unknown serial or a form of a unit outside the caller's subtree. With `items`: 200 and a"
            " result per entry."
        ),
        responses={
            **success(EntryReceipt, 201, "Stored"),
            **success(EntryReceipt | EntryResults, 200, "The same entry again, or the results of many"),
            409: ResponseSpec(data_container=EntryConflictBody, description="Kept for review", generate_examples=False),
            **_errors((400, "Invalid entry, naming the field"), (404, "No such form here")),
        },
    )
    async def enter(
        self,
        data: JSONBody[EntriesBody],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response:
        bulk = data.items is not None
        if bulk and any(getattr(data, name) is not None for name in ("serial", "answers", "occurred_on")):
            raise InvalidInput("items: give one entry's fields or items, not both", "items")
        entries = [_entry(item) for item in data.items] if bulk else [_entry(data)]  # type: ignore[union-attr]
        outcomes = await paper_entry.enter(
            state.store,
            snapshot,
            entries,
            entered_by=principal.user,
            secret=state.settings.secret,
            may_enter=lambda unit: principal.may_see(unit, snapshot),
            default_action_days=state.settings.default_action_days,
        )
        if bulk:
            return Response({"items": [result_body(o) for o in outcomes]}, status_code=200, media_type=MediaType.JSON)
        return single_answer(outcomes[0])

    @get(
        "/paper-forms/{serial:str}",
        summary="A printed form or call sheet by its serial or QR text, with its survey version (admin, manager)",
        responses=success(PaperForm),
    )
    async def form(
        self,
        serial: FromPath[str],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:
        def may_see(unit: str) -> bool:
            return principal.may_see(unit, snapshot)

        secret = state.settings.secret
        found = await state.store.read(lambda conn: paper_entry.form_state(conn, serial[:200], may_see, secret))
        return form_body(found, snapshot)

    @post(
        "/touchpoints/{token:str}/call-sheets",
        summary="Start a hotline call at a touchpoint: a new call sheet in the caller's language (admin, manager)",
        responses={
            **success(PaperForm, 201, "A new call sheet"),
            **_errors((400, "lang"), (404, "No such touchpoint")),
        },
    )
    async def call_sheet(
        self,
        token: FromPath[str],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        data: JSONBody[CallSheetBody],
        state: State,
    ) -> Response:
        touchpoint = snapshot.touchpoint(token)
        if touchpoint is not None:
            principal.require_unit(touchpoint.unit, snapshot)
        sheet = await paper_entry.start_call(state.store, snapshot, token, lang=data.lang, by=principal.user)
        return Response(form_body({**sheet, "entry": None}, snapshot), status_code=201, media_type=MediaType.JSON)


PAPER_CONTROLLERS: list = [PaperEntryController]
