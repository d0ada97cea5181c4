"""The corrective-action queue of the manager web app: list, board, live updates and the action page.

Pages read and write through feedback.actions, the same functions as the JSON API, so the state
machine and its checks live in one place. A step is a plain HTML form per allowed next state; a
refused step is shown on the page in the page's language, never as a server error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage

from feedback import actions
from feedback.catalog import Snapshot
from feedback.errors import Conflict, FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.models import ActionRequest
from feedback.objectives import SHARE_METRICS
from feedback.review_pack import METRIC_TEXT
from feedback.store import actions as action_store
from feedback.store import objectives as objective_store
from feedback.store import responses as response_store
from feedback.web import live
from feedback.web.access import requires_role, requires_unit
from feedback.web.api import fresh_snapshot
from feedback.web.manage import auth, layout
from feedback.web.manage.dashboard import INDICATOR_LABELS, service_label
from feedback.web.security import Principal

WRITERS = ("admin", "manager")
CONTACT_ROLES = ("admin", "manager")
KINDS = ("work_order", "callback", "nonconformity", "administrative", "customs", "manual")
KEEPALIVE_SECONDS = 15.0
BOARD_CLOSED_LIMIT = 30  # the board shows the latest closed ones; the list has them all

# Board columns: a state group each, in the order work flows.
BOARD_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("new", ("new",)),
    ("verifying", ("verifying",)),
    ("planned", ("corrected", "action_planned", "explained")),
    ("implemented", ("implemented",)),
    ("effectiveness_review", ("effectiveness_review",)),
    ("appeals", ("appealed", "appeal_rejected", "reopened")),
    ("closed", ("closed", "appeal_upheld")),
)

# The record fields each step's form asks for; `required` ones must not be blank.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "verifying": ("note",),
    "corrected": ("correction", "note"),
    "action_planned": ("due", "root_cause", "similar_cases", "action_taken"),
    "explained": ("explanation",),
    "appealed": ("note",),
    "appeal_upheld": ("note",),
    "appeal_rejected": ("note",),
    "implemented": ("correction", "result"),
    "effectiveness_review": ("note",),
    "closed": ("result",),
    "reopened": ("note",),
}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "corrected": ("correction",),
    "action_planned": ("due", "root_cause", "action_taken"),
    "explained": ("explanation",),
    "appeal_upheld": ("note",),
    "appeal_rejected": ("note",),
}
TEXT_FIELDS = ("note", "correction", "root_cause", "similar_cases", "action_taken", "result", "explanation")


def N_(message: str) -> str:
    """Marks a message for translation; templates translate it in the page language."""
    return message


# Messages shown for a refused step, by (error class, field); templates translate them.
ERROR_MESSAGES: dict[tuple[type, str | None], str] = {
    (Conflict, "type"): N_("This step is not allowed from the action's current status."),
    (InvalidInput, "due"): N_("Give a due date that is not in the past."),
    (InvalidInput, "explanation"): N_("Say why there is nothing to rectify."),
    (InvalidInput, "type"): N_("Unknown step."),
    (Forbidden, "actor"): N_(
        "An appeal is decided by someone other than the rated officer and the person who appealed."
    ),
    (Forbidden, "role"): N_("Your role may read corrective actions but not change them."),
    (Forbidden, "unit"): N_("This corrective action belongs to a unit outside yours."),
    (NotFound, "id"): N_("There is no such corrective action."),
    (NotFound, "unit"): N_("There is no such unit."),
}
GENERIC_ERROR = N_("The step could not be recorded: check the fields.")
MISSING_FIELD = N_("Fill in every required field.")
STATUS_OF = {InvalidInput: 400, Forbidden: 403, NotFound: 404, Conflict: 409}


def error_message(error: Exception) -> str:
    field = getattr(error, "field", None)
    return ERROR_MESSAGES.get((type(error), field)) or ERROR_MESSAGES.get((type(error), None)) or GENERIC_ERROR


def status_of(error: Exception) -> int:
    return next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 400)


def allowed_steps(status: str) -> list[str]:
    """The next states a person may choose, in the order of the workflow."""
    allowed = actions.TRANSITIONS.get(status, frozenset())
    return [state for state in actions.STATES if state in allowed]


def board_columns(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    columns = []
    for key, states in BOARD_COLUMNS:
        cards = [item for item in items if item["status"] in states]
        if key == "closed":
            cards = sorted(cards, key=lambda a: a["closed_at"] or "", reverse=True)[:BOARD_CLOSED_LIMIT]
        columns.append({"key": key, "states": states, "cards": cards})
    return columns


def may_write(principal: Principal) -> bool:
    return principal.role in WRITERS


def unit_choices(principal: Principal, snapshot: Snapshot) -> list[str]:
    """The units of the user's subtree, in tree order."""
    if principal.unit is None:
        codes = list(snapshot.units)
    else:
        codes = snapshot.subtree(principal.unit) if principal.unit in snapshot.units else []
    return sorted(codes, key=lambda code: snapshot.units[code].path)


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    return layout.render(request, template, context, status=status)


def _error_page(request: Request, error: Exception) -> Response:
    return _page(request, "actions_error.html", {"error": error_message(error)}, status_of(error))


# Errors raised by these pages' guards are shown on the same page as the ones the handlers catch.
PAGE_ERRORS = {FeedbackError: _error_page}


def _query(**values: Any) -> str:
    kept = {key: value for key, value in values.items() if value not in (None, "")}
    return f"?{urlencode(kept)}" if kept else ""


class Filters(msgspec.Struct, kw_only=True):
    unit: str | None = None
    status: str | None = None
    kind: str | None = None
    overdue: str | None = None

    def checked(self, principal: Principal, snapshot: Snapshot) -> tuple[str | None, str | None, bool | None]:
        """The validated (unit, status, overdue); raises our errors for the page to show."""
        unit = self.unit or principal.unit
        if unit is not None:
            if unit not in snapshot.units:
                raise NotFound(f"unit: no unit {unit!r}", "unit")
            principal.require_unit(unit, snapshot)
        status = self.status or None
        if status is not None and status != "open" and status not in actions.STATES:
            raise InvalidInput("status: unknown", "status")
        overdue = {"": None, None: None, "1": True, "yes": True, "0": False, "no": False}.get(self.overdue)
        return unit, status, overdue


async def _queue(
    state: State, principal: Principal, filters: Filters, *, board: bool = False
) -> tuple[Snapshot, dict[str, Any]]:
    snapshot = await fresh_snapshot(state)
    unit, status, overdue = filters.checked(principal, snapshot)
    kind = filters.kind or None
    items = await state.store.read(
        lambda conn: actions.list_actions(
            conn, snapshot, unit, status=None if board else status, overdue=None if board else overdue, kind=kind
        )
    )
    context = {
        "items": items,
        "filters": {
            "unit": filters.unit or "",
            "status": filters.status or "",
            "kind": filters.kind or "",
            "overdue": filters.overdue or "",
        },
        "query": _query(unit=filters.unit, status=filters.status, kind=filters.kind, overdue=filters.overdue),
        "units": snapshot.units,
        "unit_codes": unit_choices(principal, snapshot),
        "states": actions.STATES,
        "kinds": KINDS,
        "may_write": may_write(principal),
        "overdue_count": sum(1 for item in items if item["overdue"]),
    }
    if board:
        context["columns"] = board_columns(items)
    return snapshot, context


@get(
    "/manage/actions",
    name="manage_actions",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_unit()],
    exception_handlers=PAGE_ERRORS,
)
async def queue_page(
    request: Request,
    state: State,
    principal: NamedDependency[Principal],
    unit: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    overdue: FromQuery[str | None] = None,
) -> Response:
    """The queue as a list: overdue first, then by due day."""
    try:
        _, context = await _queue(state, principal, Filters(unit=unit, status=status, kind=kind, overdue=overdue))
    except (InvalidInput, NotFound, Forbidden) as error:
        return _error_page(request, error)
    return _page(request, "actions.html", context)


@get(
    "/manage/actions/board",
    name="manage_actions_board",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_unit()],
    exception_handlers=PAGE_ERRORS,
)
async def board_page(
    request: Request,
    state: State,
    principal: NamedDependency[Principal],
    unit: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
) -> Response:
    """The queue as a board: one column per group of states."""
    try:
        _, context = await _queue(state, principal, Filters(unit=unit, kind=kind), board=True)
    except (InvalidInput, NotFound, Forbidden) as error:
        return _error_page(request, error)
    return _page(request, "actions_board.html", context)


@get(
    "/manage/actions/stream",
    name="manage_actions_stream",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
)
async def stream(state: State, principal: NamedDependency[Principal]) -> ServerSentEvent:
    """Server-sent events: `action.opened` / `action.changed` of the user's subtree, as they happen."""

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        async with live.hub.subscribe(state.store) as subscriber:
            yield ServerSentEventMessage(comment="ready", retry=5000)
            while True:
                try:
                    message = await _next(subscriber)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                data = message["data"]
                snapshot = await fresh_snapshot(state)
                if not data.get("unit") or not principal.may_see(data["unit"], snapshot):
                    continue
                kind = "action.opened" if message["type"] == "action.opened" else "action.changed"
                yield ServerSentEventMessage(
                    event=kind, id=message["id"], data=msgspec.json.encode(live.summary(data)).decode()
                )

    return ServerSentEvent(events(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _next(subscriber: live.Subscriber) -> dict[str, Any]:
    return await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_SECONDS)


async def _action_context(state: State, principal: Principal, action_id: int) -> dict[str, Any]:
    """Everything the action page shows; raises NotFound / Forbidden."""
    snapshot = await fresh_snapshot(state)

    def read(conn: Any) -> dict[str, Any]:
        action = actions.get_action(conn, action_id, snapshot)
        if not principal.may_see(action["unit"], snapshot):
            return action
        if principal.role in CONTACT_ROLES:
            action["contact"] = actions.contact_of(conn, action)
        if action.get("response_id"):
            action["response"] = response_store.summary(conn, action["response_id"])
        if action.get("objective_id") is not None:
            action["objective"] = objective_store.latest_version(conn, action["objective_id"])
        return action

    action = await state.store.read(read)
    principal.require_unit(action["unit"], snapshot)
    if principal.role not in ("admin", "manager", "auditor"):
        action.pop("data", None)
    writer = may_write(principal)
    steps = allowed_steps(action["status"]) if writer else []
    return {
        "action": action,
        "units": snapshot.units,
        "steps": steps,
        "step_fields": STEP_FIELDS,
        "required_fields": REQUIRED_FIELDS,
        "may_write": writer,
        "today": actions.local_day(
            datetime.now(UTC), snapshot.units[action["unit"]].tz if action["unit"] in snapshot.units else "UTC"
        ).isoformat(),
        "error": None,
        "failed_step": None,
        "values": {},
        "done": None,
        # An objective's metric and indicator by their names (message ids the template translates).
        "metric_labels": METRIC_TEXT,
        "indicator_labels": INDICATOR_LABELS,
        "share_metrics": SHARE_METRICS,
    }


@get(
    "/manage/actions/{action_id:int}",
    name="manage_action",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
)
async def action_page(
    request: Request,
    state: State,
    principal: NamedDependency[Principal],
    action_id: FromPath[int],
    done: FromQuery[str | None] = None,
) -> Response:
    """One action: its source, owner, due day, full record, and a form per allowed next step."""
    try:
        context = await _action_context(state, principal, action_id)
    except (NotFound, Forbidden) as error:
        return _error_page(request, error)
    context["done"] = done if done in actions.STATES else None
    return _page(request, "action.html", context)


@post(
    "/manage/actions/{action_id:int}/events",
    name="manage_action_step",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    exception_handlers=PAGE_ERRORS,
)
async def record_step(
    request: Request, state: State, principal: NamedDependency[Principal], action_id: FromPath[int]
) -> Response:
    """One step from a form: 303 back to the action page, or the page again with the error."""
    form = await request.form()
    target = str(form.get("type") or "")
    values = {name: str(form.get(name) or "").strip() for name in (*TEXT_FIELDS, "due")}
    try:
        snapshot = await fresh_snapshot(state)
        unit = await state.store.read(lambda conn: action_store.unit_of(conn, action_id))
        if unit is None:
            raise NotFound(f"id: no corrective action {action_id}", "id")
        principal.require_unit(unit, snapshot)
        missing = [name for name in REQUIRED_FIELDS.get(target, ()) if not values.get(name)]
        if missing:
            raise InvalidInput(f"{missing[0]}: required", missing[0])
        fields = {name: value for name, value in values.items() if value and name in STEP_FIELDS.get(target, ())}
        await actions.apply_transition(
            state.store,
            snapshot,
            action_id,
            target,
            actor=principal.user,
            role=principal.role,
            fields=fields,
            now=datetime.now(UTC),
            settings=state.settings,
        )
    except (InvalidInput, Conflict, Forbidden, NotFound) as error:
        try:
            context = await _action_context(state, principal, action_id)
        except (NotFound, Forbidden) as hidden:
            return _error_page(request, hidden)
        message = error_message(error)
        if isinstance(error, InvalidInput) and error.field in REQUIRED_FIELDS.get(target, ()) and error.field != "due":
            message = MISSING_FIELD
        context.update(error=message, failed_step=target, values=values)
        return _page(request, "action.html", context, status=status_of(error))
    return Redirect(path=f"/manage/actions/{action_id}?done={target}", status_code=303)


async def _new_context(state: State, principal: Principal, lang: str) -> dict[str, Any]:
    snapshot = await fresh_snapshot(state)
    # Services by their name in the reader's language (as the response list shows them), sorted by it.
    services = sorted(
        (
            (code, service_label(snapshot, code, lang))
            for code in snapshot.services
            if principal.may_use_service(code, snapshot)
        ),
        key=lambda item: (item[1].casefold(), item[0]),
    )
    return {
        "units": snapshot.units,
        "unit_codes": unit_choices(principal, snapshot),
        "services": services,
        "values": {},
        "error": None,
    }


@get(
    "/manage/actions/new",
    name="manage_action_new",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    exception_handlers=PAGE_ERRORS,
)
async def new_page(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """The form to open a corrective action by hand (an audit finding, a complaint by phone…)."""
    return _page(request, "actions_new.html", await _new_context(state, principal, layout.choose_language(request)))


NEW_ERRORS: dict[str | None, str] = {
    "title": N_("Give the action a title."),
    "unit": N_("Choose a unit of yours."),
    "due": N_("Give a due date that is not in the past."),
    "service": N_("There is no such service."),
}


@post(
    "/manage/actions/new",
    name="manage_action_create",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    exception_handlers=PAGE_ERRORS,
)
async def create_action(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """Open an action by hand, then go to its page."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in ("unit", "title", "due", "service", "note")}
    try:
        snapshot = await fresh_snapshot(state)
        unit = snapshot.units.get(values["unit"])
        if unit is None:
            raise InvalidInput("unit: unknown", "unit")
        principal.require_unit(unit.code, snapshot)
        if not values["title"] or len(values["title"]) > 500:
            raise InvalidInput("title: required", "title")
        now = datetime.now(UTC)
        due = None
        if values["due"]:
            try:
                due = date.fromisoformat(values["due"])
            except ValueError:
                raise InvalidInput("due: not a date", "due") from None
            if due < actions.local_day(now, unit.tz):
                raise InvalidInput("due: in the past", "due")
        service = values["service"] or None
        if service is not None and service not in snapshot.services:
            raise InvalidInput("service: unknown", "service")
        if service is not None and not principal.may_use_service(service, snapshot):
            raise Forbidden(f"service: {service!r} belongs to another agency", "service")
        note = values["note"][: actions.MAX_TEXT] or None
        request_ = ActionRequest(
            kind="manual",
            source_key=f"manual:{uuid.uuid4()}",
            unit=unit.code,
            title=values["title"],
            due=due.isoformat() if due else None,
            service=service,
        )
        action = await actions.open_manual(
            state.store,
            snapshot,
            request_,
            now,
            actor=principal.user,
            note=note,
            default_days=state.settings.default_action_days,
        )
    except (InvalidInput, Forbidden, NotFound, Conflict) as error:
        if isinstance(error, Forbidden) and error.field == "role":
            return _error_page(request, error)
        context = await _new_context(state, principal, layout.choose_language(request))
        field = getattr(error, "field", None)
        context.update(values=values, error=NEW_ERRORS.get(field) or error_message(error))
        return _page(request, "actions_new.html", context, status=status_of(error))
    return Redirect(path=f"/manage/actions/{action['id']}?done=new", status_code=303)


ROUTES: list = [queue_page, board_page, stream, new_page, create_action, action_page, record_step]
