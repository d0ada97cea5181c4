"""CSV/XLSX exports, the CSV exports plugins register and the management-review PDF, for a token or a
signed-in session.

Scope and days work as in `/api/v1/satisfaction`: the unit's subtree (403 outside the caller's),
`from`/`to` as the unit's local days. The response CSV is streamed page by page; XLSX files are
built on a reader thread in openpyxl's write-only mode and streamed from a temporary file.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import IO, Any

from litestar import Controller, Response, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery
from litestar.response import Stream

from feedback import exports
from feedback.errors import InvalidInput
from feedback.models import LANGUAGES
from feedback.rates import Grouping, satisfaction
from feedback.web.access import requires_unit
from feedback.web.api import UnitPeriod, rate_filters, unit_period
from feedback.web.manage.auth import TOKEN_OR_SESSION, may_see_officers
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


def csv_download(columns: Sequence[str], table: Iterable[Sequence[Any]], name: str) -> Response[bytes]:
    """A table as a CSV attachment (cells that a spreadsheet would run as formulas are escaped)."""
    return Response(exports.iter_csv_bytes(list(columns), table), media_type=CSV_TYPE, headers=attachment(name))


async def xlsx_download(columns: Sequence[str], table: Iterable[Sequence[Any]], sheet: str, name: str) -> Stream:
    """A table as an XLSX attachment, written off the event loop to a temporary file and streamed."""
    handle = await asyncio.to_thread(exports.write_xlsx, list(columns), table, sheet)
    return Stream(stream_file(handle), media_type=XLSX_TYPE, headers=attachment(name))


def download_name(stem: str, result: dict[str, Any], extension: str) -> str:
    """The file name of a report's download: what, whose and which days."""
    return exports.filename(stem, result["unit"], result["from"], result["to"], extension)


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
    dependencies = {"principal": TOKEN_OR_SESSION, "period": unit_period()}
    guards = [requires_unit()]

    @get(
        "/responses.csv",
        summary="Responses of a unit's subtree as CSV (UTF-8 with BOM), streamed",
        media_type=CSV_TYPE,
        responses=binary(CSV_TYPE, "CSV, one row per response"),
    )
    async def responses_csv(
        self,
        principal: NamedDependency[Principal],
        period: NamedDependency[UnitPeriod],
        state: State,
        service: FromQuery[str | None] = None,
        touchpoint: FromQuery[str | None] = None,
        level: FromQuery[str | None] = None,
        flagged: FromQuery[str | None] = None,
    ) -> Stream:
        snapshot, flt = period.snapshot, response_filter(period, service, touchpoint, level, flagged)
        layout = exports.response_layout(snapshot, flt, may_see_officers(principal))
        store = state.store
        await store.write(lambda conn: exports.record_download(conn, "responses.csv", flt, layout))

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
        principal: NamedDependency[Principal],
        period: NamedDependency[UnitPeriod],
        state: State,
        service: FromQuery[str | None] = None,
        touchpoint: FromQuery[str | None] = None,
        level: FromQuery[str | None] = None,
        flagged: FromQuery[str | None] = None,
    ) -> Stream:
        snapshot, flt = period.snapshot, response_filter(period, service, touchpoint, level, flagged)
        layout = exports.response_layout(snapshot, flt, may_see_officers(principal))
        handle = await state.store.read(lambda conn: exports.responses_xlsx(conn, snapshot, flt, layout))
        try:  # logged once the file is made (not for a refused one: 413), before a byte of it leaves
            await state.store.write(lambda conn: exports.record_download(conn, "responses.xlsx", flt, layout))
        except BaseException:
            handle.close()
            raise
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
        period: NamedDependency[UnitPeriod],
        state: State,
        by: FromQuery[Grouping] = "unit",
        service: FromQuery[str | None] = None,
        touchpoint: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        result = await read_rates(period, state, by, service, touchpoint)
        table = exports.rate_table(result, period.snapshot)
        return csv_download(exports.RATE_COLUMNS, table, download_name(f"rates_by_{by}", result, "csv"))

    @get(
        "/rates.xlsx",
        summary="The /api/v1/satisfaction rows (same parameters) as XLSX",
        media_type=XLSX_TYPE,
        responses=binary(XLSX_TYPE, "An Excel workbook, one row per group and a total"),
    )
    async def rates_xlsx(
        self,
        period: NamedDependency[UnitPeriod],
        state: State,
        by: FromQuery[Grouping] = "unit",
        service: FromQuery[str | None] = None,
        touchpoint: FromQuery[str | None] = None,
    ) -> Stream:
        result = await read_rates(period, state, by, service, touchpoint)
        table = exports.rate_table(result, period.snapshot)
        name = download_name(f"rates_by_{by}", result, "xlsx")
        return await xlsx_download(exports.RATE_COLUMNS, table, f"rates by {by}", name)


# The exports of the core itself; a plugin's exporter may not take these names.
CORE_EXPORTS = frozenset({"responses", "rates", "timeliness"})


def export_handler(exporter: exports.Exporter) -> HTTPRouteHandler:
    """`GET /api/v1/exports/<name>.csv` for one exporter a plugin registered."""

    async def handler(period: NamedDependency[UnitPeriod], state: State) -> Response[bytes]:
        snapshot, unit = period.snapshot, period.unit
        start, end = period.start.isoformat(), period.end.isoformat()
        units = sorted(snapshot.subtree(unit), key=lambda code: snapshot.units[code].path)
        table = await state.store.read(lambda conn: exporter.rows(conn, snapshot, units, start, end))
        name = exports.filename(exporter.file_name or exporter.name, unit, start, end, "csv")
        return csv_download(exporter.header(), table, name)

    # The handler's name makes its OpenAPI operation id, as a method of the same name would.
    handler.__name__ = handler.__qualname__ = f"{exporter.name}_csv"
    return get(
        f"/{exporter.name}.csv",
        summary=exporter.summary or exporter.title,
        dependencies={"period": unit_period(exporter.default_days)},
        media_type=CSV_TYPE,
        responses=binary(CSV_TYPE, exporter.file_description),
    )(handler)


def export_routes(exporters: list[exports.Exporter]) -> list[Router]:
    """The exports plugins register, beside the core's: same path, scope, period and access."""
    names = [exporter.name for exporter in exporters]
    clashes = {name for name in names if names.count(name) > 1 or name in CORE_EXPORTS}
    if clashes:
        raise ValueError(f"exporters registered twice or named like a core export: {sorted(clashes)}")
    if not exporters:
        return []
    return [
        Router(
            path=ExportsController.path,
            route_handlers=[export_handler(exporter) for exporter in exporters],
            tags=ExportsController.tags,
            dependencies=ExportsController.dependencies,
            guards=ExportsController.guards,
        )
    ]


class ReportsController(Controller):
    path = "/api/v1/reports"
    tags = ["reports"]
    dependencies = {"principal": TOKEN_OR_SESSION, "period": unit_period(QUARTER_DAYS)}
    guards = [requires_unit()]

    @get(
        "/management-review.pdf",
        summary="The management-review pack (ISO 9001 9.3) of a unit and period",
        media_type="application/pdf",
        responses=binary("application/pdf", "The review pack as PDF"),
    )
    async def management_review(
        self,
        principal: NamedDependency[Principal],
        period: NamedDependency[UnitPeriod],
        state: State,
        lang: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        snapshot, unit = period.snapshot, period.unit
        start, end = period.start.isoformat(), period.end.isoformat()
        if lang is None or lang == "":
            user = snapshot.users.get(principal.user)
            lang = (user.lang if user and user.lang in LANGUAGES else None) or snapshot.units[unit].lang
        if lang not in LANGUAGES:
            raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
        # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
        from feedback.review_pack import management_review_pdf

        min_n = state.settings.min_n
        pdf = await state.store.read(
            lambda conn: management_review_pdf(conn, snapshot, unit, start, end, lang, min_n, plugins=state.plugins)
        )
        name = exports.filename("management_review", unit, start, end, "pdf")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
        )


EXPORT_CONTROLLERS: list = [ExportsController, ReportsController]
