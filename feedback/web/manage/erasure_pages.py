"""Erasing a response's personal data from the manager app: `/manage/responses/{id}/erase`, linked from
each row of a unit's response list, for admins and managers of the response's unit subtree.

The page shows what the response holds and asks what to erase and why; the reason is required and goes
into the audit log (never the erased content). The work is `feedback.erasure.erase_by_manager`, as for
`POST /api/v1/responses/{id}/erasure`.
"""

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import erasure
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.store import Connection
from feedback.store import responses as response_store
from feedback.web.access import requires_role
from feedback.web.api import fresh_snapshot
from feedback.web.manage import auth, layout
from feedback.web.security import Principal


def N_(message: str) -> str:
    """Marks a message for translation; it is translated where it is shown."""
    return message


#: What each field is called on the page.
FIELD_LABELS = {
    "comment": N_("Free-text comment"),
    "contact": N_("Contact left for a call-back"),
    "case_ref": N_("Case reference"),
    "officer": N_("Officer code"),
}
REASON_MISSING = N_("Give the reason for the erasure.")


def _read(conn: Connection, response_id: str) -> dict[str, Any] | None:
    row = response_store.get(conn, response_id)
    if row is not None:
        row["has_contact"] = response_store.contact_of(conn, response_id) is not None
    return row


async def _response(state: State, principal: Principal, response_id: str) -> tuple[dict[str, Any], Snapshot]:
    """The response, if it lies in the user's subtree (else it is unknown to them: 404)."""
    snapshot = await fresh_snapshot(state)
    row = await state.store.read(lambda conn: _read(conn, response_id))
    if row is None or not principal.may_see(row["unit"], snapshot):
        raise NotFound(f"id: no response {response_id!r}", "id")
    return row, snapshot


def _context(row: dict[str, Any], snapshot: Snapshot, principal: Principal) -> dict[str, Any]:
    erased = erasure.erased_fields(row)
    answers = erasure.json_answers(row)
    present = {
        "comment": bool(erasure.free_text(snapshot, row, answers)),
        "contact": row["has_contact"],
        "case_ref": row["case_ref"] is not None,
        "officer": row["officer"] is not None and auth.may_see_officers(principal),
    }
    tp = snapshot.touchpoints.get(row["touchpoint"])
    return {
        "response": row,
        "touchpoint_name": tp.name if tp else row["touchpoint"],
        "tz": snapshot.units[row["unit"]].tz if row["unit"] in snapshot.units else None,
        "erased": erased,
        "field_labels": FIELD_LABELS,
        "fields": [(field, FIELD_LABELS[field], present[field]) for field in erasure.FIELDS if field not in erased],
        "defaults": erasure.MANAGER_FIELDS,
        "back_url": f"/manage/units/{row['unit']}/responses?" + urlencode({"q": row["receipt"]}),
        "reason": "",
    }


UNKNOWN = N_("This response does not exist, or it is not in your units.")
NOT_ALLOWED = N_("Only administrators and managers may erase personal data.")


def _error_page(request: Request, error: Exception) -> Response:
    """The page's error, in the reader's language: an unknown response, a role that may not erase."""
    message = UNKNOWN if isinstance(error, NotFound) else NOT_ALLOWED if isinstance(error, Forbidden) else None
    if message is None:
        message = error.message if isinstance(error, FeedbackError) else str(error)
    status = getattr(error, "status_code", 400)
    return layout.render(request, "response_erase.html", {"error": message, "response": None}, status=status)


PAGE_ERRORS = {FeedbackError: _error_page}


@get(
    "/manage/responses/{response_id:str}/erase",
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    exception_handlers=PAGE_ERRORS,
    include_in_schema=False,
)
async def erase_page(
    request: Request, state: State, principal: NamedDependency[Principal], response_id: FromPath[str]
) -> Response:
    row, snapshot = await _response(state, principal, response_id)
    return layout.render(request, "response_erase.html", _context(row, snapshot, principal))


@post(
    "/manage/responses/{response_id:str}/erase",
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    exception_handlers=PAGE_ERRORS,
    include_in_schema=False,
)
async def erase_response(
    request: Request, state: State, principal: NamedDependency[Principal], response_id: FromPath[str]
) -> Response:
    """Erase what the form ticks, with its reason: 303 to the response list showing that response."""
    row, snapshot = await _response(state, principal, response_id)
    form = await request.form()
    reason = str(form.get("reason") or "")
    chosen = [field for field in form.getall("fields") if field in erasure.FIELDS] if "fields" in form else []
    try:
        reason = erasure.check_reason({"reason": reason})
        if not chosen:
            raise InvalidInput("fields: tick what to erase", "fields")
        fields = erasure.check_fields({"fields": chosen})
    except InvalidInput as error:
        context = _context(row, snapshot, principal)
        context.update(
            error=REASON_MISSING if error.field == "reason" else N_("Tick what to erase."),
            reason=reason,
            defaults=tuple(chosen),
        )
        return layout.render(request, "response_erase.html", context, status=400)

    def may_see(unit: str) -> bool:
        return principal.may_see(unit, snapshot)

    await state.store.write(lambda conn: erasure.erase_by_manager(conn, snapshot, response_id, may_see, reason, fields))
    return Redirect(path=_context(row, snapshot, principal)["back_url"] + "&erased=1", status_code=303)


ROUTES: list = [erase_page, erase_response]
