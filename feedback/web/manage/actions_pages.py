"""The corrective-action queue of the manager web app: list, board, live updates and the action page.

Pages read and write through feedback.actions, the same functions as the JSON API, so the state
machine and its checks live in one place. A step is a plain HTML form per allowed next state; a
refused step is shown on the page in the page's language, never as a server error.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage

from feedback import action_queue, actions, callbacks
from feedback.catalog import Snapshot
from feedback.errors import Conflict, FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.i18n import gettext_for
from feedback.models import ActionRequest
from feedback.objectives import SHARE_METRICS
from feedback.rates import decimals
from feedback.report_text import METRIC_TEXT
from feedback.store import actions as action_store
from feedback.store import objectives as objective_store
from feedback.store import responses as response_store
from feedback.web import live
from feedback.web.access import requires_role, requires_unit
from feedback.web.api import fresh_snapshot
from feedback.web.manage import auth, labels, layout
from feedback.web.manage.dashboard import INDICATOR_LABELS, service_label
from feedback.web.security import Principal

WRITERS = ("admin", "manager")
CONTACT_ROLES = ("admin", "manager")
KINDS = ("work_order", "callback", "complaint", "nonconformity", "administrative", "customs", "manual")
KEEPALIVE_SECONDS = 15.0

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
    # The queue's filters (a hand-edited or outdated URL).
    (InvalidInput, "status"): N_("Choose a status from the list."),
    (InvalidInput, "kind"): N_("Choose a kind from the list."),
    (InvalidInput, "owner"): N_("Choose an owner from the list."),
    (InvalidInput, "overdue"): N_("Choose a deadline filter from the list."),
    (InvalidInput, "from"): N_("Give the opening dates as dates, the first not after the last."),
    (InvalidInput, "to"): N_("Give the opening dates as dates, the first not after the last."),
    (InvalidInput, "sort"): N_("Choose an order from the list."),
    (InvalidInput, "page"): N_("There is no such page of the list."),
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


def allowed_steps(action: dict[str, Any]) -> list[str]:
    """The next states a person may choose, in the order of the workflow."""
    allowed = actions.allowed_moves(action)
    return [state for state in actions.STATES if state in allowed]


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


# The deadline filter's values, as the form sends them and as people type them into a URL.
OVERDUE_VALUES: dict[str, bool] = {"1": True, "yes": True, "true": True, "0": False, "no": False, "false": False}
MAX_PAGE = 100_000
MAX_FILTER_TEXT = 200


def _day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", field) from None


class Filters(msgspec.Struct, kw_only=True):
    """The queue's filters as they come in the URL (and go back into every link of the page)."""

    unit: str | None = None
    status: str | None = None
    kind: str | None = None
    owner: str | None = None
    overdue: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    sort: str | None = None
    page: str | None = None

    def checked(self, principal: Principal, snapshot: Snapshot) -> action_queue.Queue:
        """The validated queue request; raises our errors (naming the field) for the page to show."""
        unit = self.unit or principal.unit
        if unit is not None:
            if unit not in snapshot.units:
                raise NotFound(f"unit: no unit {unit!r}", "unit")
            principal.require_unit(unit, snapshot)
        states: tuple[str, ...] = ()
        open_only = self.status == "open"
        if self.status and not open_only:
            states = tuple(part for part in self.status.split(",") if part)
            if not states or any(state not in actions.STATES for state in states):
                raise InvalidInput("status: unknown", "status")
        kind = (self.kind or "").strip()
        owner = (self.owner or "").strip()
        for field, text in (("kind", kind), ("owner", owner)):
            if len(text) > MAX_FILTER_TEXT:
                raise InvalidInput(f"{field}: too long", field)
        if self.overdue and self.overdue not in OVERDUE_VALUES:
            raise InvalidInput("overdue: must be 1 (overdue only) or 0 (not overdue)", "overdue")
        first, last = _day(self.date_from, "from"), _day(self.date_to, "to")
        if first and last and first > last:
            raise InvalidInput("from: after to", "from")
        sort = self.sort or "due"
        if sort not in action_queue.SORTS:
            raise InvalidInput(f"sort: must be one of {list(action_queue.SORTS)}", "sort")
        page = self.page or "1"
        if not page.isdecimal() or not 1 <= int(page) <= MAX_PAGE:
            raise InvalidInput("page: must be a whole number from 1", "page")
        return action_queue.Queue(
            unit=unit,
            states=states,
            open_only=open_only,
            kinds=(kind,) if kind else (),
            owner=owner or None,
            overdue=OVERDUE_VALUES.get(self.overdue or ""),
            opened_from=first,
            opened_to=last,
            sort=sort,
            page=int(page),
        )

    def values(self) -> dict[str, str]:
        """The filters as the form shows them (every field, empty when not set; no page)."""
        return {
            "unit": self.unit or "",
            "status": self.status or "",
            "kind": self.kind or "",
            "owner": self.owner or "",
            "overdue": self.overdue or "",
            "from": self.date_from or "",
            "to": self.date_to or "",
            "sort": self.sort or "",
        }

    def query(self, **changes: Any) -> str:
        """`?…` with the filters that are set and `changes` (e.g. a page), so every link keeps them."""
        return _query(**{**self.values(), **changes})


def status_choices() -> list[tuple[str, str]]:
    """The status filter's first options: "open", then the board columns that group several states
    (value: the states, comma-separated), as message ids the template translates."""
    grouped = [(",".join(states), f"action_column.{key}") for key, states in BOARD_COLUMNS if len(states) > 1]
    return [("open", "Open (not closed)"), *grouped]


async def _queue(
    request: Request, state: State, principal: Principal, filters: Filters, *, board: bool = False
) -> dict[str, Any]:
    snapshot = await fresh_snapshot(state)
    queue = filters.checked(principal, snapshot)
    now = datetime.now(UTC)
    lang = layout.choose_language(request)

    def read(conn: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"owners": action_queue.owners(conn, snapshot, principal.unit)}
        if board:
            found["columns"] = action_queue.read_board(conn, snapshot, queue, BOARD_COLUMNS, now)
        else:
            found.update(action_queue.read_page(conn, snapshot, queue, now))
        return found

    found = await state.store.read(read)
    shown = [card for column in found.get("columns", ()) for card in column["cards"]] or found.get("items", [])
    action_queue.render_titles(shown, lang, snapshot, state.plugins)
    context = {
        **found,
        "filters": filters.values(),
        "query": filters.query(),
        "units": snapshot.units,
        "unit_codes": unit_choices(principal, snapshot),
        "states": actions.STATES,
        "status_choices": [(value, gettext_for(lang)(text)) for value, text in status_choices()],
        "kinds": KINDS,
        "sorts": action_queue.SORTS,
        "may_write": may_write(principal),
    }
    if board:
        for column in context["columns"]:
            column["list_url"] = "/manage/actions" + filters.query(status=",".join(column["states"]), sort="")
    else:
        page, pages = found["page"], found["pages"]
        context["previous_url"] = f"/manage/actions{filters.query(page=page - 1)}" if page > 1 else None
        context["next_url"] = f"/manage/actions{filters.query(page=page + 1)}" if page < pages else None
        context["first_url"] = f"/manage/actions{filters.query()}" if page > 2 else None
    return context


def _filters(
    unit: str | None,
    status: str | None,
    kind: str | None,
    owner: str | None,
    overdue: str | None,
    date_from: str | None,
    date_to: str | None,
    sort: str | None,
    page: str | None = None,
) -> Filters:
    return Filters(
        unit=unit,
        status=status,
        kind=kind,
        owner=owner,
        overdue=overdue,
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        page=page,
    )


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
    owner: FromQuery[str | None] = None,
    overdue: FromQuery[str | None] = None,
    date_from: Annotated[str | None, QueryParameter(name="from")] = None,
    date_to: Annotated[str | None, QueryParameter(name="to")] = None,
    sort: FromQuery[str | None] = None,
    page: FromQuery[str | None] = None,
) -> Response:
    """The queue as a list, 50 a page: overdue first, then by due day (or another order), filtered."""
    filters = _filters(unit, status, kind, owner, overdue, date_from, date_to, sort, page)
    try:
        context = await _queue(request, state, principal, filters)
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
    owner: FromQuery[str | None] = None,
    overdue: FromQuery[str | None] = None,
    date_from: Annotated[str | None, QueryParameter(name="from")] = None,
    date_to: Annotated[str | None, QueryParameter(name="to")] = None,
    sort: FromQuery[str | None] = None,
) -> Response:
    """The queue as a board: one column per group of states, each with its count and first cards."""
    filters = _filters(unit, None, kind, owner, overdue, date_from, date_to, sort)
    try:
        context = await _queue(request, state, principal, filters, board=True)
    except (InvalidInput, NotFound, Forbidden) as error:
        return _error_page(request, error)
    return _page(request, "actions_board.html", context)


@get(
    "/manage/actions/stream",
    name="manage_actions_stream",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
)
async def stream(request: Request, state: State, principal: NamedDependency[Principal]) -> ServerSentEvent:
    """Server-sent events: `action.opened` / `action.changed` of the user's subtree, as they happen, while
    the session stays signed in (checked again before each event and keep-alive)."""

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        async with live.hub_of(state.store).subscribe(state.store) as subscriber:
            yield ServerSentEventMessage(comment="ready", retry=5000)
            while True:
                try:
                    message = await _next(subscriber)
                except TimeoutError:
                    if not await auth.still_signed_in(request):
                        return
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                if message["type"] == live.STOPPING or not await auth.still_signed_in(request):
                    return
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


async def _action_context(state: State, principal: Principal, action_id: int, lang: str = "en") -> dict[str, Any]:
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
    action_queue.render_titles([action], lang, snapshot, state.plugins)
    if principal.role not in ("admin", "manager", "auditor"):
        action.pop("data", None)
    writer = may_write(principal)
    steps = allowed_steps(action) if writer else []
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
        # "≥ 99.47 %" and "December 2026", never ">= 0.9947" or "2026-12".
        "target_text": lambda comparator, target, metric: labels.target_text(comparator, target, metric, lang),
        "period_text": lambda key: labels.period_key_text(key, lang),
        "decimals": decimals,  # the effectiveness figures at their target's precision
        # The call-back the action owes (action.callback), and the form that records a phone call.
        "callback_tries": state.settings.callback_tries,
        "callback_outcomes": callbacks.OUTCOMES,
        "callback_error": None,
        "callback_values": {},
        "callback_recorded": False,
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
    called: FromQuery[str | None] = None,
) -> Response:
    """One action: its source, owner, due day, full record, and a form per allowed next step (and, for an
    action that owes a call-back, its attempts and a form to record a phone call)."""
    try:
        context = await _action_context(state, principal, action_id, layout.choose_language(request))
    except (NotFound, Forbidden) as error:
        return _error_page(request, error)
    context["done"] = done if done in actions.STATES else None
    context["callback_recorded"] = called == "1"
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
            context = await _action_context(state, principal, action_id, layout.choose_language(request))
        except (NotFound, Forbidden) as hidden:
            return _error_page(request, hidden)
        message = error_message(error)
        if isinstance(error, InvalidInput) and error.field in REQUIRED_FIELDS.get(target, ()) and error.field != "due":
            message = MISSING_FIELD
        context.update(error=message, failed_step=target, values=values)
        return _page(request, "action.html", context, status=status_of(error))
    return Redirect(path=f"/manage/actions/{action_id}?done={target}", status_code=303)


# Messages shown for a refused call-back record, by (error class, field); the template translates them.
CALLBACK_ERRORS: dict[tuple[type, str | None], str] = {
    (InvalidInput, "outcome"): N_("Choose what came of the call."),
    (InvalidInput, "note"): N_("The note is too long."),
    (Conflict, "id"): N_("This call-back is settled already, or the action owes none."),
}


@post(
    "/manage/actions/{action_id:int}/callbacks",
    name="manage_action_callback",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    exception_handlers=PAGE_ERRORS,
)
async def record_callback(
    request: Request, state: State, principal: NamedDependency[Principal], action_id: FromPath[int]
) -> Response:
    """A phone call to the respondent from the action page's form: 303 back to the page, or the page
    again with the error."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in ("outcome", "note")}
    try:
        note = callbacks.check_attempt("phone", values["outcome"], values["note"])
        snapshot = await fresh_snapshot(state)
        unit = await state.store.read(lambda conn: action_store.unit_of(conn, action_id))
        if unit is None:
            raise NotFound(f"id: no corrective action {action_id}", "id")
        principal.require_unit(unit, snapshot)
        now = datetime.now(UTC)
        await state.store.write(
            lambda conn: callbacks.record_attempt(
                conn, action_id, via="phone", outcome=values["outcome"], by=principal.user, at=now, note=note
            )
        )
    except (InvalidInput, Conflict, Forbidden, NotFound) as error:
        try:
            context = await _action_context(state, principal, action_id, layout.choose_language(request))
        except (NotFound, Forbidden) as hidden:
            return _error_page(request, hidden)
        message = CALLBACK_ERRORS.get((type(error), getattr(error, "field", None))) or error_message(error)
        context.update(callback_error=message, callback_values=values)
        return _page(request, "action.html", context, status=status_of(error))
    return Redirect(path=f"/manage/actions/{action_id}?called=1#callback", status_code=303)


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


ROUTES: list = [queue_page, board_page, stream, new_page, create_action, action_page, record_step, record_callback]
