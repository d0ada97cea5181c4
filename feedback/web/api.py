"""The JSON API of the public contract (DESIGN.md): responses, surveys, units, touchpoints, rates."""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, MediaType, Request, asgi, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, MethodNotAllowedException
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, Operation, PathItem, RequestBody
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.types import Receive, Scope, Send

from feedback import __version__, erasure, federation
from feedback.catalog import Snapshot
from feedback.errors import Gone, InvalidInput, NotFound
from feedback.ingest import Item, ingest
from feedback.models import Submission, SurveyVersion
from feedback.rates import Grouping, satisfaction
from feedback.unit_settings import update_unit_settings
from feedback.web.access import TOKEN, fresh_snapshot, requires_role, requires_unit
from feedback.web.json_body import TOO_DEEP, decode_json, keys_in, refuse_repeated_keys
from feedback.web.schemas import (
    Erasure,
    ErrorBody,
    Health,
    Receipt,
    Satisfaction,
    TouchpointItem,
    TouchpointSurvey,
    UnitItem,
    UnitSettings,
    success,
)
from feedback.web.security import Principal, integration_vouches

MAX_RESPONSE_BODY = 64 * 1024


class HealthController(Controller):
    path = "/healthz"

    @get(media_type=MediaType.JSON, summary="Liveness and plugin failure counts", responses=success(Health))
    async def health(self, state: State) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "writes": state.store.writes,
            "batches": state.store.batches,
            "write_seconds": round(state.store.write_seconds, 6),
            "commit_seconds": round(state.store.commit_seconds, 6),
            "plugin_failures": state.plugins.failures.snapshot(),
        }


_json_encoder = msgspec.json.Encoder()


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientException("body: the client went away", status_code=400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ClientException(f"body: larger than {limit // 1024} KiB", status_code=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


RESPONSES_PATH = "/api/v1/responses"
_ALLOWED = "OPTIONS, POST"


@asgi(RESPONSES_PATH, copy_scope=False)
async def responses_route(scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /api/v1/responses` (public, idempotent on id): the busiest route by far, as a plain ASGI
    route, because a request object, signature binding and a response object would cost more than
    the validation and scoring themselves.

    It is a route like any other for what surrounds it: app middleware (the rate limiter), guards,
    the security headers (`before_send`) and the exception handlers apply. The body is read under the
    size limit and decoded by the app's JSON rules here. Litestar leaves ASGI routes out of the OpenAPI
    document, so `document_responses_route` describes it there by hand."""
    if scope["type"] != "http":
        raise ClientException()
    if scope["method"] != "POST":
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", _ALLOWED.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return
        raise MethodNotAllowedException(headers={"allow": _ALLOWED})
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > MAX_RESPONSE_BODY:
            raise ClientException(f"body: larger than {MAX_RESPONSE_BODY // 1024} KiB", status_code=413)
    state = scope["app"].state
    data = decode_submission(await read_body(receive, MAX_RESPONSE_BODY))
    snapshot = await fresh_snapshot(state)
    # Only a case reference needs the token looked at: the hot path without one stays as it was.
    verified = data.case_ref is not None and await integration_vouches(
        next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None),
        state,
        snapshot,
        data.touchpoint,
    )
    [outcome] = await ingest(
        [Item(data, case_verified=verified)],
        state.store,
        snapshot,
        default_action_days=state.settings.default_action_days,
    )
    if outcome.result is None:
        raise outcome.error  # 400 or 404, 409, 410: answered by the app's error handlers
    body = _json_encoder.encode(outcome.result.body())
    await send(
        {
            "type": "http.response.start",
            "status": 201 if outcome.status == "stored" else 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def document_responses_route(openapi: OpenAPI) -> None:
    """Describe `POST /api/v1/responses` in the OpenAPI document: its body, its two success answers
    and every error it gives (Litestar documents HTTP route handlers only)."""
    paths = openapi.paths if openapi.paths is not None else {}
    if RESPONSES_PATH in paths:
        return
    (submission, receipt, error), schemas = msgspec.json.schema_components(
        (Submission, Receipt, ErrorBody), ref_template="#/components/schemas/{name}"
    )
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    for name, schema in schemas.items():
        openapi.components.schemas.setdefault(name, schema)

    def answer(description: str, schema: dict[str, Any]) -> OpenAPIResponse:
        return OpenAPIResponse(description=description, content={"application/json": OpenAPIMediaType(schema=schema)})

    paths[RESPONSES_PATH] = PathItem(
        post=Operation(
            tags=["responses"],
            summary="Store a response (public, idempotent on id)",
            description="201 when stored; 200 with the same body for a replay of the same id and content; "
            "409 when the id was stored with different content; 410 when the touchpoint was retired before the "
            "rating was given (submitted_at when plausible, else the time of arrival). A bearer token of a "
            "manager or admin whose units cover the touchpoint vouches for the case reference.",
            operation_id="ApiV1ResponsesCreate",
            request_body=RequestBody(content={"application/json": OpenAPIMediaType(schema=submission)}, required=True),
            responses={
                "201": answer("Stored", receipt),
                "200": answer("A replay of a stored response", receipt),
                "400": answer("The body or a field of it is invalid (named in `field`)", error),
                "404": answer("No such touchpoint, or its survey has no published version", error),
                "409": answer("The id was stored with different content", error),
                "410": answer("The touchpoint was retired before the rating was given", error),
                "413": answer(f"The body is larger than {MAX_RESPONSE_BODY // 1024} KiB", error),
                "429": answer("Over the rate limit of public posts", error),
                "503": answer(
                    "The database cannot take writes now (a full disk): nothing was stored; send the same"
                    " request again after `Retry-After` seconds",
                    error,
                ),
            },
        )
    )
    openapi.paths = paths


async def document_hand_written_routes(request: Request) -> None:
    """`before_request` of the OpenAPI document's routes: complete the document before it is first served."""
    document_responses_route(request.app.openapi_schema)


_submission_decoder = msgspec.json.Decoder(Submission)


def decode_submission(body: bytes) -> Submission:
    """Decode with a prebuilt decoder (the hot path); errors name the field like every other 400."""
    try:
        submission = _submission_decoder.decode(body)
    except RecursionError:
        raise InvalidInput(TOO_DEEP, "body") from None
    except msgspec.ValidationError as error:
        text = str(error)
        path = text.rsplit(" - at `$", 1)
        field = path[1].rstrip("`").lstrip(".") if len(path) == 2 else ""
        named = re.search(r"(?:unknown|required) field `([^`]*)`", text)
        if named:
            field = f"{field}.{named.group(1)}" if field else named.group(1)
        field = field or "body"
        raise InvalidInput(f"{field}: {path[0]}", field) from None
    except msgspec.DecodeError as error:
        raise InvalidInput(f"body: {error}", "body") from None
    refuse_repeated_keys(body, submission_keys(submission))
    return submission


def _defaults_of(struct: type[msgspec.Struct]) -> tuple[int, tuple[tuple[str, Any], ...]]:
    """(how many fields a body must give, (name, default) of the others). A field that differs from its
    default was a key of the body, which `submission_keys` counts on: so every default must be a plain
    value (a default factory's value would differ from the factory and count a key never given)."""
    fields, defaults = struct.__struct_fields__, struct.__struct_defaults__
    for default in defaults:
        if default is not None and not isinstance(default, str | int):
            raise TypeError(f"{struct.__name__}: submission_keys counts on plain defaults, not {default!r}")
    return len(fields) - len(defaults), tuple(zip(fields[len(fields) - len(defaults) :], defaults, strict=True))


_REQUIRED_KEYS, _DEFAULTED_FIELDS = _defaults_of(Submission)


def submission_keys(submission: Submission) -> int | None:
    """At least how many distinct keys the body of `submission` held (see `refuse_repeated_keys`): the
    required ones, each other field that is not its default, and the keys inside the answers (None when
    they nest too deep to count)."""
    inner = keys_in(submission.answers)
    if inner is None:
        return None
    given = sum(getattr(submission, name) != default for name, default in _DEFAULTED_FIELDS)
    return _REQUIRED_KEYS + given + inner


def survey_document(version: SurveyVersion) -> dict[str, Any]:
    survey = version.definition
    questions = [msgspec.to_builtins(question) for question in survey.questions]
    return {
        "slug": version.slug,
        "version": version.version,
        "languages": survey.languages,
        "title": survey.title,
        "description": survey.description,
        "scoring": survey.scoring,
        "questions": questions,
    }


class TouchpointsController(Controller):
    path = "/api/v1/touchpoints"
    tags = ["touchpoints"]

    @get(
        "/{token:str}/survey",
        summary="The survey version in force at a touchpoint (public)",
        responses=success(TouchpointSurvey),
    )
    async def survey(self, token: FromPath[str], snapshot: NamedDependency[Snapshot]) -> dict[str, Any]:
        touchpoint = snapshot.touchpoint(token)
        if touchpoint is None:
            raise NotFound(f"token: no touchpoint {token!r}", "token")
        retired_at = snapshot.retired.get(touchpoint.token)
        if retired_at is not None:  # it takes no new ratings, so offering its survey would only mislead
            raise Gone(f"token: touchpoint {touchpoint.token!r} was retired at {retired_at.isoformat()}", "token")
        version = snapshot.current.get(touchpoint.survey)
        if version is None:
            raise NotFound(f"token: survey {touchpoint.survey!r} has no published version", "token")
        document = survey_document(version)
        document["touchpoint"] = {
            "token": touchpoint.token,
            "name": touchpoint.name,
            "unit": touchpoint.unit,
            "lang": touchpoint.lang,
            "kind": touchpoint.kind,
            "counter": touchpoint.counter,
            "service": touchpoint.service,
        }
        return document

    @get(
        dependencies={"principal": TOKEN},
        summary="Touchpoints the token may see",
        responses=success(list[TouchpointItem]),
    )
    async def list(
        self, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot]
    ) -> list[dict[str, Any]]:
        items = []
        for tp in sorted(snapshot.touchpoints.values(), key=lambda t: (t.unit, t.token)):
            if not principal.may_see(tp.unit, snapshot):
                continue
            item = {
                "token": tp.token,
                "name": tp.name,
                "unit": tp.unit,
                "lang": tp.lang,
                "survey": tp.survey,
                "kind": tp.kind,
                "service": tp.service,
                "retired": tp.token in snapshot.retired,
            }
            if tp.counter:
                item["counter"] = tp.counter
            if tp.short_code:
                item["short_code"] = tp.short_code
            items.append(item)
        return items


class UnitsController(Controller):
    path = "/api/v1/units"
    tags = ["units"]
    dependencies = {"principal": TOKEN}

    @get(summary="Units the token may see (its subtree)", responses=success(list[UnitItem]))
    async def list(
        self, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> list[dict[str, Any]]:
        # A child installation's units are marked with the child and the day it reported them as of.
        children = (
            await state.store.read(federation.reported_children) if federation.any_reported(snapshot.units) else {}
        )
        items = []
        for unit in sorted(snapshot.units.values(), key=lambda u: u.path):
            if not principal.may_see(unit.code, snapshot):
                continue
            item: dict[str, Any] = {
                "code": unit.code,
                "name": unit.name,
                "parent": unit.parent,
                "lang": unit.lang,
                "tz": unit.tz,
                "country": unit.country,
                "owner": unit.owner,
                "action_days": unit.action_days,
                "public_results": unit.public_results,
                "complaint_levels": None if unit.complaint_levels is None else list(unit.complaint_levels),
                "complaint_levels_in_force": list(snapshot.complaint_levels(unit.code)[0]),
                "retention": unit.retention,
                "retention_in_force": snapshot.retention(unit.code),
            }
            if unit.names:
                item["names"] = unit.names
            reported = federation.mark_of(unit.code, children)
            if reported is not None:
                item["reported"] = reported
            items.append(item)
        return items

    @patch(
        "/{code:str}",
        guards=[requires_unit("code", source="path"), requires_role("admin", "manager")],
        summary="Set a unit's owner, calendar country, rectification days, public page, complaint levels or retention",
        responses=success(UnitSettings),
    )
    async def update(self, code: FromPath[str], request: Request, state: State) -> dict[str, Any]:
        changes = decode_json(await request.body())
        if not isinstance(changes, dict):
            raise InvalidInput("body: a JSON object of settings", "body")
        result = await state.store.write(lambda conn: update_unit_settings(conn, code, changes))
        state.catalog.invalidate()
        return result


def parse_day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", field) from None


def local_today(snapshot: Snapshot, unit: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(snapshot.units[unit].tz)).date()


def scope_unit(principal: Principal, snapshot: Snapshot, unit: str | None) -> str:
    """The unit asked about (default: the token's own), which must exist and lie in the token's subtree."""
    unit = unit or principal.unit
    if unit is None:
        raise InvalidInput("unit: required for a token not bound to a unit", "unit")
    if unit not in snapshot.units:
        raise NotFound(f"unit: no unit {unit!r}", "unit")
    principal.require_unit(unit, snapshot)
    return unit


def day_range(
    snapshot: Snapshot, unit: str, date_from: str | None, date_to: str | None, default_days: int = 30
) -> tuple[date, date]:
    """`from` and `to` as the unit's local days, inclusive; by default the last `default_days` days."""
    end = parse_day(date_to, "to") or local_today(snapshot, unit)
    start = parse_day(date_from, "from") or end - timedelta(days=default_days - 1)
    if start > end:
        raise InvalidInput("from: must not be after 'to'", "from")
    return start, end


def whole_periods_from(by: str, end: date, periods: int = 12) -> date | None:
    """Where a week or month view starts when `from` is not given: `periods` whole weeks (from a Monday)
    or months (from the 1st), the last one the running one; None for other groupings (the last 30 days)."""
    if by == "week":
        return end - timedelta(days=end.weekday(), weeks=periods - 1)
    if by == "month":
        month = end.year * 12 + end.month - 1 - (periods - 1)
        return date(month // 12, month % 12 + 1, 1)
    return None


@dataclass(frozen=True, slots=True)
class UnitPeriod:
    """What most read endpoints ask first: which unit (within the caller's scope) and which local days."""

    snapshot: Snapshot
    unit: str
    start: date
    end: date


def unit_period(default_days: int = 30) -> Provide:
    """A dependency reading `unit`, `from` and `to`; needs a `principal` dependency beside it."""

    async def provide(
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        unit: FromQuery[str | None] = None,
        date_from: Annotated[str | None, QueryParameter(name="from")] = None,
        date_to: Annotated[str | None, QueryParameter(name="to")] = None,
    ) -> UnitPeriod:
        code = scope_unit(principal, snapshot, unit)
        start, end = day_range(snapshot, code, date_from, date_to, default_days)
        return UnitPeriod(snapshot, code, start, end)

    return Provide(provide)


def rate_filters(service: str | None, touchpoint: str | None) -> dict[str, str]:
    return {k: v for k, v in (("service", service), ("touchpoint", touchpoint)) if v}


class SatisfactionController(Controller):
    path = "/api/v1/satisfaction"
    tags = ["rates"]
    dependencies = {"principal": TOKEN, "period": unit_period()}
    guards = [requires_unit()]

    @get(summary="Satisfaction rates for a unit's subtree, from rollups", responses=success(Satisfaction))
    async def rates(
        self,
        request: Request,
        period: NamedDependency[UnitPeriod],
        state: State,
        by: FromQuery[Grouping] = "unit",
        service: FromQuery[str | None] = None,
        touchpoint: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        """Without `from`: the last 30 days, but `by=week` the last 12 weeks and `by=month` the last 12
        months, each from its first day, so a week or month view shows weeks and months."""
        filters = rate_filters(service, touchpoint)
        min_n = state.settings.min_n
        start = period.start
        if "from" not in request.query_params:
            start = whole_periods_from(by, period.end) or start
        result = await state.store.read(
            lambda conn: satisfaction(
                conn, period.snapshot, period.unit, start.isoformat(), period.end.isoformat(), by, min_n, filters
            )
        )
        # Rows over a child installation's units come from its reports: marked with the child and as of when.
        if federation.any_reported(period.snapshot.subtree(period.unit)):
            children = await state.store.read(federation.reported_children)
            federation.mark_satisfaction(result, period.snapshot, children)
        return result


class ErasureController(Controller):
    path = "/api/v1/responses/{response_id:str}/erasure"
    tags = ["responses"]
    dependencies = {"principal": TOKEN}

    @post(
        guards=[requires_role("admin", "manager")],
        status_code=200,
        summary="Erase a response's personal data (comment, contact, case reference, officer), with a reason",
        responses=success(Erasure),
    )
    async def erase(
        self, response_id: FromPath[str], request: Request, state: State, principal: NamedDependency[Principal]
    ) -> dict[str, Any]:
        """Body `{"reason", "fields"?}`; the rating and the rollups stay. A response outside the caller's
        subtree is answered as unknown (404)."""
        body = decode_json(await request.body())
        reason, fields = erasure.check_reason(body), erasure.check_fields(body)
        snapshot = await fresh_snapshot(state)
        return await state.store.write(
            lambda conn: erasure.erase_by_manager(
                conn, snapshot, response_id, lambda unit: principal.may_see(unit, snapshot), reason, fields
            )
        )


CONTROLLERS = [
    HealthController,
    responses_route,
    TouchpointsController,
    UnitsController,
    SatisfactionController,
    ErasureController,
]
