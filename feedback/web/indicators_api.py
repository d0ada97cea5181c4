"""Other indicators over HTTP: their definitions (`GET`/`POST /api/v1/indicators`) and their figures per unit
and period (`POST`/`GET /api/v1/indicators/{key}/values`)."""

from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import Meta, Struct

from feedback import indicators
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, InvalidInput, NotFound
from feedback.web.access import TOKEN, requires_role, requires_unit
from feedback.web.api import UnitPeriod, unit_period, whole_periods_from
from feedback.web.json_body import decode_json
from feedback.web.schemas import success
from feedback.web.security import Principal

WRITERS = ("admin", "manager")
Texts = Annotated[dict[str, str], Meta(description="text per language code (vi, ru, zh, en)")]


class IndicatorDoc(Struct, kw_only=True):
    key: str
    names: Texts
    direction: Annotated[Literal["higher", "lower"], Meta(description="which way is better")]
    unit_of_measure: Annotated[dict[str, str] | None, Meta(description="what it counts, per language")]


class FigureDoc(Struct, kw_only=True):
    indicator: str
    unit: str
    period: Annotated[str, Meta(description="a month 2026-03, a quarter 2026-Q1 or a year 2026")]
    date_from: Annotated[str, Meta(description="the period's first day")] = msgspec.field(name="from")
    date_to: Annotated[str, Meta(description="the period's last day")] = msgspec.field(name="to")
    numerator: int
    denominator: int
    value: Annotated[float | None, Meta(description="numerator / denominator")]
    ci95: Annotated[list[float] | None, Meta(description="Wilson 95 % interval [low, high]")]


class FigureStored(FigureDoc, kw_only=True):
    result: Annotated[Literal["added", "updated", "unchanged"], Meta(description="what became of the figure")]


class FigureListed(FigureDoc, kw_only=True):
    sufficient: Annotated[bool, Meta(description="the denominator is at least the minimum n")]
    updated_at: Annotated[str, Meta(description="when it was last sent (RFC 3339)")]


class FigureList(Struct, kw_only=True):
    indicator: str
    unit: str
    date_from: Annotated[str, Meta(description="figures whose period begins on or after this day")] = msgspec.field(
        name="from"
    )
    date_to: Annotated[str, Meta(description="… and on or before this day")] = msgspec.field(name="to")
    rows: list[FigureListed]


def decode_body(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidInput("body: a JSON object is required", "body")
    return decode_json(raw)


async def known(state: State) -> dict[str, Any]:
    return await state.store.read(lambda conn: indicators.definitions(conn, state.plugins))


class IndicatorsController(Controller):
    path = "/api/v1/indicators"
    tags = ["indicators"]
    dependencies = {"principal": TOKEN}

    @get(
        summary="Every indicator: its names, which way is better, what it counts", responses=success(list[IndicatorDoc])
    )
    async def list(self, state: State) -> list[dict[str, Any]]:
        return [indicators.document(indicator) for indicator in (await known(state)).values()]

    @post(
        guards=[requires_role("admin")],
        responses=success(IndicatorDoc, 201, "Defined"),
        summary="Define an indicator (an administrator of the whole installation)",
    )
    async def define(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        if principal.unit is not None:
            raise Forbidden("role: only an administrator of the whole installation defines indicators", "role")
        body = decode_body(await request.body())
        indicator = await state.store.write(lambda conn: indicators.define(conn, body, state.plugins, principal.user))
        return Response(indicators.document(indicator), status_code=201)

    @post(
        "/{key:str}/values",
        guards=[requires_role(*WRITERS)],
        status_code=200,
        responses=success(FigureStored),
        summary="Add or replace an indicator's figure for a unit and period (a manager or admin of the unit)",
    )
    async def store(
        self,
        key: FromPath[str],
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:
        definitions = await known(state)
        body = decode_body(await request.body())
        figure = indicators.check_value(body, snapshot, key, definitions)
        principal.require_unit(figure.unit, snapshot)
        result = await state.store.write(lambda conn: indicators.store_value(conn, figure, "api"))
        return {**indicators.figure_document(figure), "result": result}

    @get(
        "/{key:str}/values",
        dependencies={"period": unit_period()},
        guards=[requires_unit()],
        responses=success(FigureList),
        summary="An indicator's figures in a unit's subtree whose period begins between two days",
    )
    async def values(
        self, key: FromPath[str], request: Request, period: NamedDependency[UnitPeriod], state: State
    ) -> dict[str, Any]:
        definitions = await known(state)
        if key not in definitions:
            raise NotFound(f"key: no indicator {key!r}; defined: {', '.join(definitions) or 'none'}", "key")
        start: date = period.start
        if "from" not in request.query_params:
            start = whole_periods_from("month", period.end) or start
        first, last, min_n = start.isoformat(), period.end.isoformat(), state.settings.min_n
        rows = await state.store.read(
            lambda conn: indicators.listing(conn, period.snapshot, period.unit, key, first, last, min_n)
        )
        return {"indicator": key, "unit": period.unit, "from": first, "to": last, "rows": rows}


INDICATOR_CONTROLLERS: list = [IndicatorsController]
