"""`/manage/audit`: the audit log for administrators and auditors, newest first, filtered by period, record
kind and actor, within the user's unit subtree (the same page of entries as `GET /api/v1/audit`)."""

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from feedback import audit
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError
from feedback.i18n import gettext_for
from feedback.web.access import requires_role
from feedback.web.audit_api import READERS, read_page
from feedback.web.manage import auth, layout
from feedback.web.security import Principal

PAGE_SIZE = 50


def N_(message: str) -> str:
    return message


#: Record kinds people filter by, and what they are called.
KIND_LABELS = {
    "unit": N_("Unit"),
    "unit_settings": N_("Unit settings"),
    "service": N_("Service"),
    "touchpoint": N_("Touchpoint"),
    "survey": N_("Survey"),
    "objective": N_("Objective"),
    "user": N_("User"),
    "token": N_("API token"),
    "session": N_("Session"),
    "webhook": N_("Webhook"),
    "kiosk": N_("Kiosk"),
    "action": N_("Corrective action"),
    "response": N_("Response"),
    "seal": N_("Daily seal"),
    "export": N_("Export download"),
    "retention": N_("Retention run"),
    "erasure": N_("Erasure"),
    "paper_entry": N_("Paper form entry"),
    "cases": N_("Dossiers"),
    "indicator": N_("Indicator definition"),
    "indicator_value": N_("Indicator figure"),
    "indicator_values": N_("Indicator figures imported"),
}
ACTOR_LABELS = {
    "user": N_("User"),
    "token": N_("API token"),
    "job": N_("Job"),
    "citizen": N_("Citizen"),
    "system": N_("System"),
    "cli": N_("Command line"),
}
#: The filter fields, for the message naming a bad one.
FIELD_LABELS = {
    "from": N_("From"),
    "to": N_("To"),
    "kind": N_("Record kind"),
    "actor": N_("Actor"),
    "unit": N_("Unit"),
    "cursor": N_("Page"),
    "limit": N_("Page"),
}


def changed_fields(change: dict[str, Any]) -> list[str]:
    """The fields an entry's change touched (before and after both objects), else its after-state's keys."""
    before, after = change.get("before"), change.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    shown = after if isinstance(after, dict) else before if isinstance(before, dict) else {}
    return sorted(shown)


@get(
    "/manage/audit",
    name="manage_audit",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*READERS)],
)
async def audit_page(
    request: Request,
    state: State,
    principal: NamedDependency[Principal],
    snapshot: NamedDependency[Snapshot],
    date_from: Annotated[str | None, QueryParameter(name="from")] = None,
    date_to: Annotated[str | None, QueryParameter(name="to")] = None,
    kind: FromQuery[str | None] = None,
    actor: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
) -> Response:
    lang = layout.choose_language(request)
    _ = gettext_for(lang)
    filters = {"from": date_from or "", "to": date_to or "", "kind": kind or "", "actor": (actor or "").strip()}
    error, page, status = None, {"items": [], "next_cursor": None}, 200
    try:
        page = await read_page(
            state,
            principal,
            snapshot,
            unit=None,
            date_from=date_from,
            date_to=date_to,
            kind=kind,
            actor=filters["actor"],
            limit=str(PAGE_SIZE),
            cursor=cursor,
        )
    except FeedbackError as failure:
        label = _(FIELD_LABELS.get(failure.field or "", N_("Filter")))
        error, status = _("This filter is not valid: %(field)s.") % {"field": label}, 400
    head = await state.store.read(audit.head_json)
    query = {key: value for key, value in filters.items() if value}
    for item in page["items"]:
        item["fields"] = changed_fields(item["change"])
        item["change_text"] = audit.canonical(item["change"]).decode()
    context = {
        "items": page["items"],
        "filters": filters,
        "error": error,
        "head": head,
        "kinds": {code: _(label) for code, label in KIND_LABELS.items()},
        "actor_kinds": {code: _(label) for code, label in ACTOR_LABELS.items()},
        "first_page_url": "/manage/audit?" + urlencode(query),
        "is_later_page": bool(cursor),
        "next_url": (
            "/manage/audit?" + urlencode({**query, "cursor": page["next_cursor"]}) if page["next_cursor"] else None
        ),
    }
    return layout.render(request, "audit.html", context, status=status)


ROUTES: list = [audit_page]
