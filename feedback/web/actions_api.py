"""The JSON API of corrective actions: the queue, one action with its events, transitions, KPIs."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta, Struct

from feedback import actions, callbacks
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput, NotFound
from feedback.models import ActionRequest
from feedback.store import actions as action_store
from feedback.web.access import TOKEN, requires_role, requires_unit
from feedback.web.api import UnitPeriod, parse_day, unit_period
from feedback.web.schemas import Action, ActionDetail, ActionStepped, CallbackRecorded, Kpis, success
from feedback.web.security import Principal

Text = Annotated[str, Meta(max_length=actions.MAX_TEXT)]
Code = Annotated[str, Meta(min_length=1, max_length=64)]
WRITERS = ("admin", "manager")
# Who may read the respondent's consented contact (for the call-back) and the opening details.
CONTACT_ROLES = ("admin", "manager")
DETAIL_ROLES = ("admin", "manager", "auditor")


class NewAction(Struct, kw_only=True, forbid_unknown_fields=True):
    """A corrective action opened by hand (an audit finding, a complaint by phone…)."""

    unit: Code
    title: Annotated[str, Meta(min_length=1, max_length=500)]
    due: str | None = None
    working_days: Annotated[int, Meta(ge=0, le=366)] | None = None
    service: Code | None = None
    touchpoint: Code | None = None
    indicator: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    owner: Code | None = None
    note: Text | None = None
    target: Annotated[float, Meta(ge=0, le=100)] | None = None


class ActionStep(Struct, kw_only=True, forbid_unknown_fields=True):
    """One step: `type` names the state to move to; the rest is the ISO 9001 10.2 record."""

    type: Annotated[str, Meta(min_length=1, max_length=64)]
    note: Text | None = None
    correction: Text | None = None
    root_cause: Text | None = None
    similar_cases: Text | None = None
    action_taken: Text | None = None
    result: Text | None = None
    explanation: Text | None = None
    due: str | None = None


class CallbackAttemptBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """One attempt to reach the respondent of an action: how, and what came of it."""

    via: Annotated[str, Meta(description="phone, mail or sms")]
    outcome: Annotated[str, Meta(description="reached, not_reached or declined")]
    note: Annotated[str, Meta(max_length=callbacks.MAX_NOTE)] | None = None


def parse_flag(value: str | None, field: str) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise InvalidInput(f"{field}: must be true or false", field)


class ActionsController(Controller):
    path = "/api/v1/actions"
    tags = ["actions"]
    dependencies = {"principal": TOKEN}

    @get(
        guards=[requires_unit()],
        summary="The corrective-action queue of a unit's subtree: overdue first, then by due day",
        responses=success(list[Action]),
    )
    async def list(
        self,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        unit: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        overdue: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
    ) -> list[dict[str, Any]]:
        unit, status = unit or principal.unit, status or None
        if unit is not None:
            if unit not in snapshot.units:
                raise NotFound(f"unit: no unit {unit!r}", "unit")
            principal.require_unit(unit, snapshot)
        if status is not None and status != "open" and status not in actions.STATES:
            raise InvalidInput(f"status: one of {['open', *actions.STATES]}", "status")
        flag = parse_flag(overdue, "overdue")
        return await state.store.read(
            lambda conn: actions.list_actions(conn, snapshot, unit, status=status, overdue=flag, kind=kind or None)
        )

    @get("/{action_id:int}", summary="One corrective action with its record of steps", responses=success(ActionDetail))
    async def detail(
        self,
        action_id: FromPath[int],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:

        def read(conn: Any) -> dict[str, Any]:
            action = actions.get_action(conn, action_id, snapshot)
            if principal.may_see(action["unit"], snapshot) and principal.role in CONTACT_ROLES:
                action["contact"] = actions.contact_of(conn, action)
            return action

        action = await state.store.read(read)
        principal.require_unit(action["unit"], snapshot)
        if principal.role not in DETAIL_ROLES:
            action.pop("data", None)  # opening details may name the rated officer
        return action

    @post(
        guards=[requires_role(*WRITERS)],
        summary="Open a corrective action by hand (admin, manager)",
        responses=success(Action, 201, "Opened"),
    )
    async def create(
        self,
        data: JSONBody[NewAction],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[dict[str, Any]]:
        unit = snapshot.units.get(data.unit)
        if unit is None:
            raise NotFound(f"unit: no unit {data.unit!r}", "unit")
        principal.require_unit(unit.code, snapshot)
        title = data.title.strip()
        if not title:
            raise InvalidInput("title: must not be blank", "title")
        now = datetime.now(UTC)
        if data.due is not None:
            due = parse_day(data.due, "due")
            if due < actions.local_day(now, unit.tz):
                raise InvalidInput(f"due: {data.due} is in the past", "due")
        if data.due is not None and data.working_days is not None:
            raise InvalidInput("working_days: give either a due day or working days, not both", "working_days")
        if data.service is not None and data.service not in snapshot.services:
            raise InvalidInput(f"service: no service {data.service!r}", "service")
        if data.touchpoint is not None:
            touchpoint = snapshot.touchpoints.get(data.touchpoint)
            if touchpoint is None or not snapshot.in_subtree(touchpoint.unit, unit.code):
                raise InvalidInput(f"touchpoint: no touchpoint {data.touchpoint!r} in unit {unit.code!r}", "touchpoint")
        if data.owner is not None and data.owner not in snapshot.users:
            raise InvalidInput(f"owner: no user {data.owner!r}", "owner")
        request = ActionRequest(
            kind="manual",
            source_key=f"manual:{uuid.uuid4()}",
            unit=unit.code,
            title=title,
            working_days=data.working_days,
            due=data.due,
            service=data.service,
            touchpoint=data.touchpoint,
            indicator=data.indicator,
            target=data.target,
        )
        action = await actions.open_manual(
            state.store,
            snapshot,
            request,
            now,
            actor=principal.user,
            owner=data.owner,
            note=data.note,
            default_days=state.settings.default_action_days,
        )
        return Response(action, status_code=201)

    @post(
        "/{action_id:int}/events",
        guards=[requires_role(*WRITERS)],
        summary="Record a step: move the action to the state named by `type`",
        responses=success(ActionStepped, 201, "Recorded"),
    )
    async def step(
        self,
        action_id: FromPath[int],
        data: JSONBody[ActionStep],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[dict[str, Any]]:
        unit = await state.store.read(lambda conn: action_store.unit_of(conn, action_id))
        if unit is None:
            raise NotFound(f"id: no corrective action {action_id}", "id")
        if unit in snapshot.units:
            principal.require_unit(unit, snapshot)
        fields = {k: v for k, v in msgspec.structs.asdict(data).items() if k != "type" and v is not None}
        result = await actions.apply_transition(
            state.store,
            snapshot,
            action_id,
            data.type,
            actor=principal.user,
            role=principal.role,
            fields=fields,
            now=datetime.now(UTC),
            settings=state.settings,
        )
        return Response(result, status_code=201)

    @post(
        "/{action_id:int}/callbacks",
        guards=[requires_role(*WRITERS)],
        summary="Record an attempt to call the respondent back (admin, manager): the call-back's state and attempts",
        responses=success(CallbackRecorded, 201, "Recorded"),
    )
    async def callback(
        self,
        action_id: FromPath[int],
        data: JSONBody[CallbackAttemptBody],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[dict[str, Any]]:
        callbacks.check_attempt(data.via, data.outcome, data.note)
        unit = await state.store.read(lambda conn: action_store.unit_of(conn, action_id))
        if unit is None:
            raise NotFound(f"id: no corrective action {action_id}", "id")
        principal.require_unit(unit, snapshot)
        now = datetime.now(UTC)
        result = await state.store.write(
            lambda conn: callbacks.record_attempt(
                conn, action_id, via=data.via, outcome=data.outcome, by=principal.user, at=now, note=data.note
            )
        )
        return Response(result, status_code=201)


class KpisController(Controller):
    path = "/api/v1/kpis"
    tags = ["actions"]
    dependencies = {"principal": TOKEN}

    @get(
        summary="Corrective-action KPIs: on-time rectification and call-back rates per unit",
        dependencies={"period": unit_period()},
        guards=[requires_unit()],
        responses=success(Kpis),
    )
    async def kpis(self, period: NamedDependency[UnitPeriod], state: State) -> dict[str, Any]:
        now = datetime.now(UTC)
        min_n = state.settings.min_n
        return await state.store.read(
            lambda conn: actions.kpis(
                conn, period.snapshot, period.unit, period.start.isoformat(), period.end.isoformat(), min_n, now=now
            )
        )


ACTION_CONTROLLERS: list = [ActionsController, KpisController]
