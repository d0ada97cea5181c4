"""CSV/XLSX exports, the OMB A-11 v2 CSV and the management-review PDF, for a token or a signed-in session.

Scope and days work as in `/api/v1/satisfaction`: the unit's subtree (403 outside the caller's),
`from`/`to` as the unit's local days. The response CSV is streamed page by page; XLSX files are
built on a reader thread in openpyxl's write-only mode and streamed from a temporary file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import IO, Any

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.response import Stream

from feedback import exports
from feedback.errors import InvalidInput
from feedback.models import LANGUAGES
from feedback.rates import Grouping, satisfaction
from feedback.review_pack import management_review_pdf
from feedback.web.api import UnitPeriod, rate_filters, unit_period
from feedback.web.manage.auth import api_principal, may_see_officers
from feedback.web.schemas import binary
from feedback.web.security import Principal

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHUNK = 1024 * 1024
QUARTER_DAYS = 92  # the default period of the quarterly reports


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


def response_filter(
    period: UnitPeriod, service: str | None, touchpoint: str | None, level: str | None, flagged: str | None
) -> exports.ResponseFilter:
    snapshot = period.snapshot
    return exports.ResponseFilter(
        units=tuple(sorted(snapshot.subtree(period.unit), key=lambda code: snapshot.units[code].path)),
        date_from=period.start.isoformat(),
        date_to=period.end.isoformat(),
        service=service or None,
        touchpoint=touchpoint or None,
        level=exports.parse_level(level),
        flagged=exports.parse_flagged(flagged),
    )


async def read_rates(
    period: UnitPeriod, state: State, by: Grouping, service: str | None, touchpoint: str | None
) -> dict[str, Any]:
    filters = rate_filters(service, touchpoint)
    min_n = state.settings.min_n
    return await state.store.read(
        lambda conn: satisfaction(
            conn, period.snapshot, period.unit, period.start.isoformat(), period.end.isoformat(), by, min_n, filters
        )
    )


class ExportsController(Controller):
    path = "/api/v1/exports"
    tags = ["exports"]
    dependencies = {"principal": Provide(api_principal), "period": unit_period()}

    @get(
        "/responses.csv",
        summary="Responses of a unit's subtree as CSV (UTF-8 with BOM), streamed",
        media_type=CSV_TYPE,
        responses=binary(CSV_TYPE, "CSV, one row per response"),
    )
    async def responses_csv(
        self,
        principal: Principal,
        period: UnitPeriod,
        state: State,
        service: str | None = None,
        touchpoint: str | None = None,
        level: str | None = None,
        flagged: str | None = None,
    ) -> Stream:
        snapshot, flt = period.snapshot, response_filter(period, service, touchpoint, level, flagged)
        layout = exports.response_layout(snapshot, flt, may_see_officers(principal))
        store = state.store

        async def body() -> AsyncIterator[bytes]:
            yield (exports.BOM + exports.csv_text([layout.header])).encode()
            cursor = exports.Cursor()
            while not cursor.done:
                chunk, cursor = await store.read(
                    lambda conn, at=cursor: exports.response_csv_page(conn, snapshot, flt, layout, at)
                )
                if chunk:
                    yield chunk

        name = exports.filename("responses", flt.units[0], flt.date_from, flt.date_to, "csv")
        return Stream(body(), media_type=CSV_TYPE, headers=attachment(name))

    @get(
        "/responses.xlsx",
        summary="Responses of a unit's subtree as XLSX (at most 1,000,000 rows, else 413)",
        media_type=XLSX_TYPE,
        responses=binary(XLSX_TYPE, "An Excel workbook, one row per response"),
    )
    async def responses_xlsx(
        self,
        principal: Principal,
        period: UnitPeriod,
        state: State,
        service: str | None = None,
        touchpoint: str | None = None,
        level: str | None = None,
        flagged: str | None = None,
    ) -> Stream:
        snapshot, flt = period.snapshot, response_filter(period, service, touchpoint, level, flagged)
        layout = exports.response_layout(snapshot, flt, may_see_officers(principal))
        handle = await state.store.read(lambda conn: exports.responses_xlsx(conn, snapshot, flt, layout))
        name = exports.filename("responses", flt.units[0], flt.date_from, flt.date_to, "xlsx")
        return Stream(stream_file(handle), media_type=XLSX_TYPE, headers=attachment(name))

    @get(
        "/rates.csv",
        summary="The /api/v1/satisfaction rows (same parameters) as CSV",
        media_type=CSV_TYPE,
        responses=binary(CSV_TYPE, "CSV, one row per group and a total"),
    )
    async def rates_csv(
        self,
        period: UnitPeriod,
        state: State,
        by: Grouping = "unit",
        service: str | None = None,
        touchpoint: str | None = None,
    ) -> Response[bytes]:
        result = await read_rates(period, state, by, service, touchpoint)
        body = exports.iter_csv_bytes(list(exports.RATE_COLUMNS), exports.rate_table(result, period.snapshot))
        name = exports.filename(f"rates_by_{by}", result["unit"], result["from"], result["to"], "csv")
        return Response(body, media_type=CSV_TYPE, headers=attachment(name))

    @get(
        "/rates.xlsx",
        summary="The /api/v1/satisfaction rows (same parameters) as XLSX",
        media_type=XLSX_TYPE,
        responses=binary(XLSX_TYPE, "An Excel workbook, one row per group and a total"),
    )
    async def rates_xlsx(
        self,
        period: UnitPeriod,
        state: State,
        by: Grouping = "unit",
        service: str | None = None,
        touchpoint: str | None = None,
    ) -> Stream:
        result = await read_rates(period, state, by, service, touchpoint)
        table = exports.rate_table(result, period.snapshot)
        handle = await asyncio.to_thread(exports.write_xlsx, list(exports.RATE_COLUMNS), table, f"rates by {by}")
        name = exports.filename(f"rates_by_{by}", result["unit"], result["from"], result["to"], "xlsx")
        return Stream(stream_file(handle), media_type=XLSX_TYPE, headers=attachment(name))

    @get(
        "/a11.csv",
        summary="OMB A-11 §280 v2 quarterly CSV: exposure triple and answer counts per service",
        dependencies={"period": unit_period(QUARTER_DAYS)},
        media_type=CSV_TYPE,
        responses=binary(CSV_TYPE, "The A-11 v2 CSV"),
    )
    async def a11_csv(self, period: UnitPeriod, state: State) -> Response[bytes]:
        snapshot, unit = period.snapshot, period.unit
        start, end = period.start.isoformat(), period.end.isoformat()
        units = sorted(snapshot.subtree(unit), key=lambda code: snapshot.units[code].path)
        table = await state.store.read(lambda conn: exports.a11_rows(conn, snapshot, units, start, end))
        body = exports.iter_csv_bytes(exports.a11_header(), table)
        name = exports.filename("a11_v2", unit, start, end, "csv")
        return Response(body, media_type=CSV_TYPE, headers=attachment(name))


class ReportsController(Controller):
    path = "/api/v1/reports"
    tags = ["reports"]
    dependencies = {"principal": Provide(api_principal), "period": unit_period(QUARTER_DAYS)}

    @get(
        "/management-review.pdf",
        summary="The management-review pack (ISO 9001 9.3) of a unit and period",
        media_type="application/pdf",
        responses=binary("application/pdf", "The review pack as PDF"),
    )
    async def management_review(
        self, principal: Principal, period: UnitPeriod, state: State, lang: str | None = None
    ) -> Response[bytes]:
        snapshot, unit = period.snapshot, period.unit
        start, end = period.start.isoformat(), period.end.isoformat()
        if lang is None or lang == "":
            user = snapshot.users.get(principal.user)
            lang = (user.lang if user and user.lang in LANGUAGES else None) or snapshot.units[unit].lang
        if lang not in LANGUAGES:
            raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
        min_n = state.settings.min_n
        pdf = await state.store.read(lambda conn: management_review_pdf(conn, snapshot, unit, start, end, lang, min_n))
        name = exports.filename("management_review", unit, start, end, "pdf")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
        )


EXPORT_CONTROLLERS: list = [ExportsController, ReportsController]
