"""The JSON API of quality objectives, their status and control charts, and exposure counts."""

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from feedback import exposure, objectives
from feedback.catalog import Snapshot
from feedback.control_chart import MAX_WEEKS, p_chart
from feedback.errors import Forbidden, InvalidInput, NotFound
from feedback.store import objectives as objective_store
from feedback.web.access import TOKEN, requires_role, requires_unit
from feedback.web.api import UnitPeriod, local_today, parse_day, scope_unit, unit_period
from feedback.web.json_body import decode_json
from feedback.web.schemas import (
    ControlChart,
    ExposureList,
    ExposureStored,
    Objective,
    ObjectiveStatus,
    ObjectiveSummary,
    success,
)
from feedback.web.security import Principal

WRITERS = ("admin", "manager")
MAX_EXPOSURE_BODY = 4 * 1024 * 1024


def decode_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    return decode_json(raw)


async def objective_unit(state: State, objective_id: int) -> str:
    unit = await state.store.read(lambda conn: objective_store.unit_of(conn, objective_id))
    if unit is None:
        raise NotFound(f"id: no objective {objective_id}", "id")
    return unit


class ObjectivesController(Controller):
    path = "/api/v1/objectives"
    tags = ["objectives"]
    dependencies = {"principal": TOKEN}

    @get(
        guards=[requires_unit()],
        summary="Quality objectives of a unit's subtree, each with the version in force today",
        responses=success(list[ObjectiveSummary]),
    )
    async def list(
        self,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        unit: FromQuery[str | None] = None,
    ) -> list[dict[str, Any]]:
        if unit is None and principal.unit is None:
            roots = [code for code, u in snapshot.units.items() if u.parent is None]
        else:
            roots = [scope_unit(principal, snapshot, unit)]
        units = sorted({code for root in roots for code in snapshot.subtree(root)})
        if not units:
            return []

        def read(conn) -> list[dict[str, Any]]:
            items = []
            for code in units:
                items.extend(objectives.list_objectives(conn, [code], local_today(snapshot, code)))
            return items

        return await state.store.read(read)

    @post(
        guards=[requires_role(*WRITERS)],
        summary="Create a quality objective (admin or manager of the unit)",
        responses=success(Objective, 201, "Created"),
    )
    async def create(
        self, request: Request, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> Response[dict[str, Any]]:
        body = decode_body(await request.body())
        if not isinstance(body, dict):
            raise InvalidInput("body: must be a JSON object", "body")
        spec = dict(body)
        unit = spec.pop("unit", None) or principal.unit
        if unit is None:
            raise InvalidInput("unit: required", "unit")
        if not isinstance(unit, str) or unit not in snapshot.units:
            raise InvalidInput(f"unit: no unit {unit!r}", "unit")
        principal.require_unit(unit, snapshot)
        today = local_today(snapshot, unit)
        objective_id = await state.store.write(
            lambda conn: objectives.create_objective(
                conn,
                unit,
                spec,
                actor=principal.user,
                today=today,
                default_min_n=state.settings.min_n,
                plugins=state.plugins,
            )
        )
        state.catalog.invalidate()
        document = await state.store.read(lambda conn: objectives.objective_document(conn, objective_id, today))
        return Response(document, status_code=201)

    @get("/{objective_id:int}", summary="One objective with every version", responses=success(Objective))
    async def show(
        self,
        objective_id: FromPath[int],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:
        unit = await objective_unit(state, objective_id)
        principal.require_unit(unit, snapshot)
        today = local_today(snapshot, unit)
        return await state.store.read(lambda conn: objectives.objective_document(conn, objective_id, today))

    @put(
        "/{objective_id:int}",
        guards=[requires_role(*WRITERS)],
        summary="A new version of an objective, in force from valid_from (default today)",
        responses=success(Objective),
    )
    async def change(
        self,
        objective_id: FromPath[int],
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:
        unit = await objective_unit(state, objective_id)
        principal.require_unit(unit, snapshot)
        body = decode_body(await request.body())
        if not isinstance(body, dict):
            raise InvalidInput("body: must be a JSON object", "body")
        spec = dict(body)
        if spec.pop("unit", unit) != unit:
            raise InvalidInput("unit: an objective's unit cannot change; retire it and create another", "unit")
        today = local_today(snapshot, unit)
        await state.store.write(
            lambda conn: objectives.new_version(
                conn, objective_id, spec, actor=principal.user, today=today, plugins=state.plugins
            )
        )
        state.catalog.invalidate()
        return await state.store.read(lambda conn: objectives.objective_document(conn, objective_id, today))

    @post(
        "/{objective_id:int}/retire",
        guards=[requires_role(*WRITERS)],
        status_code=200,
        summary="Retire an objective from a day on (never deleted)",
        responses=success(Objective),
    )
    async def retire(
        self,
        objective_id: FromPath[int],
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:
        unit = await objective_unit(state, objective_id)
        principal.require_unit(unit, snapshot)
        body = decode_body(await request.body())
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise InvalidInput("body: must be a JSON object", "body")
        for name in body:
            if name != "from":
                raise InvalidInput(f"{name}: unknown field", name)
        today = local_today(snapshot, unit)
        from_day = body.get("from") or today.isoformat()
        await state.store.write(
            lambda conn: objectives.retire_objective(conn, objective_id, actor=principal.user, from_day=from_day)
        )
        state.catalog.invalidate()
        return await state.store.read(lambda conn: objectives.objective_document(conn, objective_id, today))

    @get(
        "/{objective_id:int}/status",
        summary="Value, n, Wilson interval, status and signals on a day",
        responses=success(ObjectiveStatus),
    )
    async def status(
        self,
        objective_id: FromPath[int],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        at: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        unit = await objective_unit(state, objective_id)
        principal.require_unit(unit, snapshot)
        day = parse_day(at, "at") or local_today(snapshot, unit)
        return await state.store.read(lambda conn: objectives.status_at(conn, snapshot, objective_id, day))


class ControlChartController(Controller):
    path = "/api/v1/control-chart"
    tags = ["objectives"]
    dependencies = {"principal": TOKEN}
    guards = [requires_unit()]

    @get(
        summary="Weekly p-chart of a unit's subtree: 3-sigma limits and run-of-eight signals",
        responses=success(ControlChart),
    )
    async def chart(
        self,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        unit: FromQuery[str | None] = None,
        date_to: Annotated[str | None, QueryParameter(name="to")] = None,
        weeks: Annotated[int, QueryParameter(ge=1, le=MAX_WEEKS)] = 26,
        metric: FromQuery[str] = "satisfaction",
        service: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        unit = scope_unit(principal, snapshot, unit)
        if service is not None and service not in snapshot.services:
            raise InvalidInput(f"service: no service {service!r}", "service")
        end = parse_day(date_to, "to") or local_today(snapshot, unit)
        return await state.store.read(lambda conn: p_chart(conn, snapshot, unit, end, weeks, service, metric))


class ExposureController(Controller):
    path = "/api/v1/exposure"
    tags = ["exposure"]
    dependencies = {"principal": TOKEN}

    @post(
        guards=[requires_role(*WRITERS)],
        status_code=200,
        request_max_body_size=MAX_EXPOSURE_BODY,
        responses=success(ExposureStored),
        summary="Store customers served / offered a survey per unit, service and day (all or nothing)",
    )
    async def store(
        self, request: Request, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> dict[str, int]:
        body = decode_body(await request.body())
        if body is None:
            raise InvalidInput("body: an object or a list of objects is required", "body")
        items = exposure.parse_body(body, snapshot)
        for i, item in enumerate(items):
            if not principal.may_see(item.unit, snapshot):
                field = f"[{i}].unit" if isinstance(body, list) else "unit"
                raise Forbidden(f"{field}: {item.unit!r} is outside the token's unit {principal.unit!r}", field)
        stored = await state.store.write(lambda conn: exposure.store_items(conn, items, source="api"))
        return {"stored": stored}

    @get(
        summary="Exposure counts of a unit's subtree between two local days",
        dependencies={"period": unit_period()},
        guards=[requires_unit()],
        responses=success(ExposureList),
    )
    async def list(self, period: NamedDependency[UnitPeriod], state: State) -> dict[str, Any]:
        units = period.snapshot.subtree(period.unit)
        start, end = period.start.isoformat(), period.end.isoformat()
        rows = await state.store.read(lambda conn: exposure.list_exposure(conn, units, start, end))
        return {
            "unit": period.unit,
            "from": start,
            "to": end,
            "rows": rows,
            "served": sum(row["served"] or 0 for row in rows),
        }


OBJECTIVE_CONTROLLERS = [ObjectivesController, ControlChartController, ExposureController]
