"""CSV/XLSX exports, the OMB A-11 v2 CSV and the management-review PDF, for a token or a signed-in session.

Scope and days work as in `/api/v1/satisfaction`: the unit's subtree (403 outside the caller's),
`from`/`to` as the unit's local days. The response CSV is streamed page by page; XLSX files are
built on a reader thread in openpyxl's write-only mode and streamed from a temporary file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import IO, Any, Literal

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.response import Stream

from feedback import exports
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput
from feedback.models import LANGUAGES
from feedback.rates import satisfaction
from feedback.review_pack import management_review_pdf
from feedback.web.api import day_range, fresh_snapshot, scope_unit
from feedback.web.manage.auth import api_principal, may_see_officers
from feedback.web.security import Principal

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHUNK = 1024 * 1024


def attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


async def stream_file(handle: IO[bytes]) -> AsyncIterator[bytes]:
    """A temporary file in chunks, read off the event loop, closed (and so deleted) at the end."""
    try:
        while True:
            chunk = await asyncio.to_thread(handle.read, CHUNK)
            if not chunk:
                return
            yield chunk
    finally:
        handle.close()


async def _response_filter(principal: Principal, state: State, unit: str | None, date_from: str | None,
                           date_to: str | None, service: str | None, touchpoint: str | None, level: str | None,
                           flagged: str | None) -> tuple[Snapshot, exports.ResponseFilter]:
    snapshot = await fresh_snapshot(state)
    unit = scope_unit(principal, snapshot, unit)
    start, end = day_range(snapshot, unit, date_from, date_to)
    flt = exports.ResponseFilter(
        units=tuple(sorted(snapshot.subtree(unit), key=lambda code: snapshot.units[code].path)),
        date_from=start.isoformat(), date_to=end.isoformat(), service=service or None,
        touchpoint=touchpoint or None, level=exports.parse_level(level), flagged=exports.parse_flagged(flagged))
    return snapshot, flt


class ExportsController(Controller):
    path = "/api/v1/exports"
    tags = ["exports"]
    dependencies = {"principal": Provide(api_principal)}

    @get("/responses.csv", summary="Responses of a unit's subtree as CSV (UTF-8 with BOM), streamed")
    async def responses_csv(
        self, principal: Principal, state: State, unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
        service: str | None = None, touchpoint: str | None = None, level: str | None = None,
        flagged: str | None = None,
    ) -> Stream:
        snapshot, flt = await _response_filter(principal, state, unit, date_from, date_to, service, touchpoint,
                                               level, flagged)
        layout = exports.response_layout(snapshot, flt, may_see_officers(principal))
        store = state.store

        async def body() -> AsyncIterator[bytes]:
            yield (exports.BOM + exports.csv_text([layout.header])).encode()
            cursor = exports.Cursor()
            while not cursor.done:
                chunk, cursor = await store.read(
                    lambda conn, at=cursor: exports.response_csv_page(conn, snapshot, flt, layout, at))
                if chunk:
                    yield chunk

        name = exports.filename("responses", flt.units[0], flt.date_from, flt.date_to, "csv")
        return Stream(body(), media_type=CSV_TYPE, headers=attachment(name))

    @get("/responses.xlsx", summary="Responses of a unit's subtree as XLSX (at most 1,000,000 rows, else 413)")
    async def responses_xlsx(
        self, principal: Principal, state: State, unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
        service: str | None = None, touchpoint: str | None = None, level: str | None = None,
        flagged: str | None = None,
    ) -> Stream:
        snapshot, flt = await _response_filter(principal, state, unit, date_from, date_to, service, touchpoint,
                                               level, flagged)
        layout = exports.response_layout(snapshot, flt, may_see_officers(principal))
        handle = await state.store.read(lambda conn: exports.responses_xlsx(conn, snapshot, flt, layout))
        name = exports.filename("responses", flt.units[0], flt.date_from, flt.date_to, "xlsx")
        return Stream(stream_file(handle), media_type=XLSX_TYPE, headers=attachment(name))

    async def _rates(self, principal: Principal, state: State, unit: str | None, date_from: str | None,
                     date_to: str | None, by: str, service: str | None, touchpoint: str | None
                     ) -> tuple[Snapshot, dict[str, Any]]:
        snapshot = await fresh_snapshot(state)
        unit = scope_unit(principal, snapshot, unit)
        start, end = day_range(snapshot, unit, date_from, date_to)
        filters = {k: v for k, v in (("service", service), ("touchpoint", touchpoint)) if v}
        min_n = state.settings.min_n
        result = await state.store.read(
            lambda conn: satisfaction(conn, snapshot, unit, start.isoformat(), end.isoformat(), by, min_n, filters))
        return snapshot, result

    @get("/rates.csv", summary="The /api/v1/satisfaction rows (same parameters) as CSV")
    async def rates_csv(
        self, principal: Principal, state: State, unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
        by: Literal["unit", "service", "touchpoint", "day", "week", "month"] = "unit",
        service: str | None = None, touchpoint: str | None = None,
    ) -> Response[bytes]:
        snapshot, result = await self._rates(principal, state, unit, date_from, date_to, by, service, touchpoint)
        body = exports.iter_csv_bytes(list(exports.RATE_COLUMNS), exports.rate_table(result, snapshot))
        name = exports.filename(f"rates_by_{by}", result["unit"], result["from"], result["to"], "csv")
        return Response(body, media_type=CSV_TYPE, headers=attachment(name))

    @get("/rates.xlsx", summary="The /api/v1/satisfaction rows (same parameters) as XLSX")
    async def rates_xlsx(
        self, principal: Principal, state: State, unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
        by: Literal["unit", "service", "touchpoint", "day", "week", "month"] = "unit",
        service: str | None = None, touchpoint: str | None = None,
    ) -> Stream:
        snapshot, result = await self._rates(principal, state, unit, date_from, date_to, by, service, touchpoint)
        table = exports.rate_table(result, snapshot)
        handle = await asyncio.to_thread(exports.write_xlsx, list(exports.RATE_COLUMNS), table, f"rates by {by}")
        name = exports.filename(f"rates_by_{by}", result["unit"], result["from"], result["to"], "xlsx")
        return Stream(stream_file(handle), media_type=XLSX_TYPE, headers=attachment(name))

    @get("/a11.csv", summary="OMB A-11 §280 v2 quarterly CSV: exposure triple and answer counts per service")
    async def a11_csv(
        self, principal: Principal, state: State, unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
    ) -> Response[bytes]:
        snapshot = await fresh_snapshot(state)
        unit = scope_unit(principal, snapshot, unit)
        start, end = day_range(snapshot, unit, date_from, date_to, default_days=92)
        units = sorted(snapshot.subtree(unit), key=lambda code: snapshot.units[code].path)
        table = await state.store.read(
            lambda conn: exports.a11_rows(conn, snapshot, units, start.isoformat(), end.isoformat()))
        body = exports.iter_csv_bytes(exports.a11_header(), table)
        name = exports.filename("a11_v2", unit, start.isoformat(), end.isoformat(), "csv")
        return Response(body, media_type=CSV_TYPE, headers=attachment(name))


class ReportsController(Controller):
    path = "/api/v1/reports"
    tags = ["reports"]
    dependencies = {"principal": Provide(api_principal)}

    @get("/management-review.pdf", summary="The management-review pack (ISO 9001 9.3) of a unit and period")
    async def management_review(
        self, principal: Principal, state: State, unit: str | None = None,
        date_from: str | None = QueryParameter(name="from", default=None),
        date_to: str | None = QueryParameter(name="to", default=None),
        lang: str | None = None,
    ) -> Response[bytes]:
        snapshot = await fresh_snapshot(state)
        unit = scope_unit(principal, snapshot, unit)
        start, end = day_range(snapshot, unit, date_from, date_to, default_days=92)
        if lang is None or lang == "":
            user = snapshot.users.get(principal.user)
            lang = (user.lang if user and user.lang in LANGUAGES else None) or snapshot.units[unit].lang
        if lang not in LANGUAGES:
            raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
        min_n = state.settings.min_n
        pdf = await state.store.read(lambda conn: management_review_pdf(
            conn, snapshot, unit, start.isoformat(), end.isoformat(), lang, min_n))
        name = exports.filename("management_review", unit, start.isoformat(), end.isoformat(), "pdf")
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"})


EXPORT_CONTROLLERS: list = [ExportsController, ReportsController]
