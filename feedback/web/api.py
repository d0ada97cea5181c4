"""The JSON API of the public contract (DESIGN.md): responses, surveys, units, touchpoints, rates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, MediaType, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ClientException
from litestar.params import QueryParameter
from litestar.types import ASGIApp, Receive, Scope, Send

from feedback import __version__, plugins
from feedback.catalog import Snapshot
from feedback.errors import Gone, InvalidInput, NotFound
from feedback.ingest import ingest
from feedback.models import Submission, SurveyVersion
from feedback.rates import Grouping, satisfaction
from feedback.unit_settings import update_unit_settings
from feedback.web.json_body import TOO_DEEP, decode_json, refuse_repeated_keys
from feedback.web.schemas import (
    Health,
    Receipt,
    Satisfaction,
    TouchpointItem,
    TouchpointSurvey,
    UnitItem,
    UnitSettings,
    success,
)
from feedback.web.security import Principal, current_principal, integration_vouches

MAX_RESPONSE_BODY = 64 * 1024


async def fresh_snapshot(state: State) -> Snapshot:
    """The catalog, reloaded on a reader thread when stale (never on the event loop)."""
    catalog = state.catalog
    if catalog.needs_reload():
        return await state.store.read(catalog.reload)
    return catalog.snapshot


class HealthController(Controller):
    path = "/healthz"

    @get(media_type=MediaType.JSON, summary="Liveness and plugin failure counts", responses=success(Health))
    async def health(self, state: State) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "writes": state.store.writes,
            "batches": state.store.batches,
            "plugin_failures": plugins.failures.snapshot(),
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


def lean_ingest(app: ASGIApp) -> ASGIApp:
    """Serves `POST /api/v1/responses` below the framework's per-request machinery.

    It is the busiest route by far, and a request object, handler signature binding and response
    object cost more than the validation and scoring themselves. Routing, the rate limiter, the
    security headers and the error handlers still apply (they sit outside this middleware); the
    handler below stays for the OpenAPI document and behaves the same.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
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
        result = await ingest(
            data, state.store, snapshot, default_action_days=state.settings.default_action_days, case_verified=verified
        )
        body = _json_encoder.encode(result.body())
        await send(
            {
                "type": "http.response.start",
                "status": 201 if result.created else 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return middleware


class ResponsesController(Controller):
    path = "/api/v1/responses"
    tags = ["responses"]

    @post(
        middleware=[lean_ingest],
        request_max_body_size=MAX_RESPONSE_BODY,
        responses={**success(Receipt, 201, "Stored"), **success(Receipt, 200, "A replay of a stored response")},
        summary="Store a response (public, idempotent on id)",
        description="201 when stored; 200 with the same body for a replay of the same id and content; "
        "409 when the id was stored with different content; 410 when the touchpoint was retired before the "
        "rating was given (submitted_at when plausible, else the time of arrival).",
    )
    async def create(self, data: Submission, request: Request, state: State) -> Response[dict[str, str]]:
        # `data` documents the request body; `lean_ingest` answers every request before this runs.
        snapshot = await fresh_snapshot(state)
        verified = data.case_ref is not None and await integration_vouches(
            request.headers.get("authorization"), state, snapshot, data.touchpoint
        )
        result = await ingest(
            data, state.store, snapshot, default_action_days=state.settings.default_action_days, case_verified=verified
        )
        return Response(result.body(), status_code=201 if result.created else 200)


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
    refuse_repeated_keys(body)
    return submission


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
    async def survey(self, token: str, state: State) -> dict[str, Any]:
        snapshot = await fresh_snapshot(state)
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
        dependencies={"principal": Provide(current_principal)},
        summary="Touchpoints the token may see",
        responses=success(list[TouchpointItem]),
    )
    async def list(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        snapshot = await fresh_snapshot(state)
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
    dependencies = {"principal": Provide(current_principal)}

    @get(summary="Units the token may see (its subtree)", responses=success(list[UnitItem]))
    async def list(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        snapshot = await fresh_snapshot(state)
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
            }
            if unit.names:
                item["names"] = unit.names
            items.append(item)
        return items

    @patch(
        "/{code:str}",
        summary="Set a unit's owner, calendar country, rectification days or public page",
        responses=success(UnitSettings),
    )
    async def update(self, code: str, request: Request, principal: Principal, state: State) -> dict[str, Any]:
        snapshot = await fresh_snapshot(state)
        if code not in snapshot.units:
            raise NotFound(f"code: no unit {code!r}", "code")
        principal.require_role("admin", "manager")
        principal.require_unit(code, snapshot)
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
        principal: Principal,
        state: State,
        unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
    ) -> UnitPeriod:
        snapshot = await fresh_snapshot(state)
        code = scope_unit(principal, snapshot, unit)
        start, end = day_range(snapshot, code, date_from, date_to, default_days)
        return UnitPeriod(snapshot, code, start, end)

    return Provide(provide)


def rate_filters(service: str | None, touchpoint: str | None) -> dict[str, str]:
    return {k: v for k, v in (("service", service), ("touchpoint", touchpoint)) if v}


class SatisfactionController(Controller):
    path = "/api/v1/satisfaction"
    tags = ["rates"]
    dependencies = {"principal": Provide(current_principal), "period": unit_period()}

    @get(summary="Satisfaction rates for a unit's subtree, from rollups", responses=success(Satisfaction))
    async def rates(
        self,
        period: UnitPeriod,
        state: State,
        by: Grouping = "unit",
        service: str | None = None,
        touchpoint: str | None = None,
    ) -> dict[str, Any]:
        filters = rate_filters(service, touchpoint)
        min_n = state.settings.min_n
        return await state.store.read(
            lambda conn: satisfaction(
                conn, period.snapshot, period.unit, period.start.isoformat(), period.end.isoformat(), by, min_n, filters
            )
        )


CONTROLLERS = [HealthController, ResponsesController, TouchpointsController, UnitsController, SatisfactionController]
