"""Dossiers and their deadlines over HTTP: `POST /api/v1/cases` (a batch upsert by case reference, from the
one-stop or customs system), `GET /api/v1/cases/timeliness` (on-time rates) and the timeliness export."""

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Stream
from msgspec import Meta, Struct

from feedback import dossiers
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, InvalidInput
from feedback.web.access import TOKEN, requires_role, requires_unit
from feedback.web.api import UnitPeriod, unit_period, whole_periods_from
from feedback.web.exports_api import CSV_TYPE, XLSX_TYPE, csv_download, download_name, xlsx_download
from feedback.web.json_body import decode_json
from feedback.web.manage.auth import TOKEN_OR_SESSION
from feedback.web.schemas import binary, success
from feedback.web.security import Principal

WRITERS = ("admin", "manager")
MAX_BODY = 4 * 1024 * 1024
TimelinessGrouping = Literal["unit", "service", "month"]


class CasesStored(Struct, kw_only=True):
    added: Annotated[int, Meta(description="dossiers new to the installation")]
    updated: Annotated[int, Meta(description="dossiers stored before whose data changed")]
    unchanged: Annotated[int, Meta(description="dossiers sent again as they were stored")]


class TimelinessRow(Struct, kw_only=True):
    key: Annotated[str | None, Meta(description="the unit, service or month (of the due day); null in the total")]
    n: Annotated[int, Meta(description="on_time + late + open_overdue")]
    on_time: Annotated[int, Meta(description="returned on or before the due day")]
    late: Annotated[int, Meta(description="returned after the due day")]
    open_overdue: Annotated[int, Meta(description="still open after the due day, as of the unit's today")]
    pending: Annotated[int, Meta(description="open and not yet due: counted nowhere yet")]
    rate: Annotated[float | None, Meta(description="on_time / n; null where n is 0")]
    ci95: Annotated[list[float] | None, Meta(description="Wilson 95 % interval [low, high]; null where n is 0")]
    sufficient: Annotated[bool, Meta(description="n is at least the minimum n")]


class Timeliness(Struct, kw_only=True):
    unit: str
    date_from: Annotated[str, Meta(description="the first due day counted")] = msgspec.field(name="from")
    date_to: Annotated[str, Meta(description="the last due day counted")] = msgspec.field(name="to")
    by: TimelinessGrouping
    min_n: int
    rows: list[TimelinessRow]
    total: TimelinessRow


def decode_body(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidInput('body: an object {"items": [...]} is required', "body")
    return decode_json(raw)


async def read_timeliness(
    request: Request, period: UnitPeriod, state: State, by: str, service: str | None
) -> dict[str, Any]:
    """Without `from`: the last 30 days of due days, but `by=month` the last 12 months from the first."""
    snapshot = period.snapshot
    if service is not None and service not in snapshot.services:
        raise InvalidInput(f"service: no service {service!r}", "service")
    start = period.start
    if "from" not in request.query_params:
        start = whole_periods_from(by, period.end) or start
    min_n = state.settings.min_n
    return await state.store.read(
        lambda conn: dossiers.timeliness(
            conn, snapshot, period.unit, start.isoformat(), period.end.isoformat(), by, min_n, service=service
        )
    )


class CasesController(Controller):
    path = "/api/v1/cases"
    tags = ["dossiers"]
    dependencies = {"principal": TOKEN}

    @post(
        guards=[requires_role(*WRITERS)],
        status_code=200,
        request_max_body_size=MAX_BODY,
        responses=success(CasesStored),
        summary="Add or update dossiers by case reference (all or nothing; a manager or admin of every item's unit)",
    )
    async def store(
        self, request: Request, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> dict[str, int]:
        items = dossiers.parse_body(decode_body(await request.body()), snapshot)
        for index, item in enumerate(items):
            if not principal.may_see(item.unit, snapshot):
                field = dossiers.item_field(index, "unit")
                raise Forbidden(f"{field}: {item.unit!r} is outside the token's unit {principal.unit!r}", field)
        scope = principal.unit
        may_change = None if scope is None else (lambda code: snapshot.in_subtree(code, scope))
        return await state.store.write(
            lambda conn: dossiers.store_batch(conn, snapshot, items, source="api", may_change=may_change)
        )

    @get(
        "/timeliness",
        dependencies={"period": unit_period()},
        guards=[requires_unit()],
        responses=success(Timeliness),
        summary="Dossiers returned on time, late and open past their due day, by unit, service or month",
    )
    async def timeliness(
        self,
        request: Request,
        period: NamedDependency[UnitPeriod],
        state: State,
        by: FromQuery[TimelinessGrouping] = "unit",
        service: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        return await read_timeliness(request, period, state, by, service)


class TimelinessExportController(Controller):
    path = "/api/v1/exports"
    tags = ["exports"]
    dependencies = {"principal": TOKEN_OR_SESSION, "period": unit_period()}
    guards = [requires_unit()]

    @get(
        "/timeliness.csv",
        summary="The /api/v1/cases/timeliness rows (same parameters) as CSV",
        media_type=CSV_TYPE,
        responses=binary(CSV_TYPE, "CSV, one row per group and a total"),
    )
    async def timeliness_csv(
        self,
        request: Request,
        period: NamedDependency[UnitPeriod],
        state: State,
        by: FromQuery[TimelinessGrouping] = "unit",
        service: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        result = await read_timeliness(request, period, state, by, service)
        table = dossiers.timeliness_table(result, period.snapshot)
        return csv_download(dossiers.TIMELINESS_COLUMNS, table, download_name(f"timeliness_by_{by}", result, "csv"))

    @get(
        "/timeliness.xlsx",
        summary="The /api/v1/cases/timeliness rows (same parameters) as XLSX",
        media_type=XLSX_TYPE,
        responses=binary(XLSX_TYPE, "An Excel workbook, one row per group and a total"),
    )
    async def timeliness_xlsx(
        self,
        request: Request,
        period: NamedDependency[UnitPeriod],
        state: State,
        by: FromQuery[TimelinessGrouping] = "unit",
        service: FromQuery[str | None] = None,
    ) -> Stream:
        result = await read_timeliness(request, period, state, by, service)
        table = dossiers.timeliness_table(result, period.snapshot)
        name = download_name(f"timeliness_by_{by}", result, "xlsx")
        return await xlsx_download(dossiers.TIMELINESS_COLUMNS, table, f"timeliness by {by}", name)


DOSSIER_CONTROLLERS: list = [CasesController, TimelinessExportController]
