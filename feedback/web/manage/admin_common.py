"""What every admin page shares: scope checks, form reading, flash messages and errors in the page language."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response
from litestar.datastructures import Cookie, State
from litestar.response import Redirect

from feedback.catalog import Snapshot
from feedback.errors import Conflict, FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.i18n import gettext_for
from feedback.web.access import requires_role
from feedback.web.manage import auth, layout
from feedback.web.security import Principal

FLASH_COOKIE = "fb_admin_flash"
WRITER_ROLES = ("admin", "manager")
PREFIX = "/manage/admin"


def N_(message: str) -> str:
    """Marks a message for translation; it is translated where it is shown."""
    return message


# Form fields as people read them, so an error names the field in the page language.
FIELD_LABELS = {
    "code": N_("Code"),
    "name": N_("Name"),
    "parent": N_("Parent unit"),
    "lang": N_("Language"),
    "tz": N_("Time zone"),
    "country": N_("Country"),
    "owner": N_("Owner"),
    "action_days": N_("Days to act"),
    "public_results": N_("Public results page"),
    "complaint_levels": N_("Complaint levels"),
    "unit": N_("Unit"),
    "survey": N_("Survey"),
    "kind": N_("Kind"),
    "counter": N_("Counter"),
    "service": N_("Service"),
    "token": N_("Touchpoint"),
    "touchpoint": N_("Touchpoint"),
    "id": N_("Record"),
    "agency": N_("Agency"),
    "metric": N_("Metric"),
    "target": N_("Target"),
    "comparator": N_("Comparator"),
    "period": N_("Period"),
    "min_n": N_("Minimum n"),
    "title": N_("Title"),
    "indicator": N_("Indicator"),
    "valid_from": N_("Valid from"),
    "from": N_("Retire from"),
    "template": N_("Template"),
    "role": N_("Role"),
    "names": N_("Names"),
    "body": N_("Form"),
}
REASONS = {
    InvalidInput: N_("this value is not valid"),
    NotFound: N_("not found"),
    Conflict: N_("already exists or cannot be changed now"),
    Forbidden: N_("you may not do this here"),
}


def page_lang(request: Request) -> str:
    """The page language, as the layout picks it."""
    return layout.choose_language(request)


def unit_name(snapshot: Snapshot, code: str | None, lang: str) -> str:
    return snapshot.unit_name(code, lang)


def visible_units(principal: Principal, snapshot: Snapshot) -> list[str]:
    """The units a principal may see, in tree order."""
    if principal.unit is None:
        codes = list(snapshot.units)
    elif principal.unit in snapshot.units:
        codes = snapshot.subtree(principal.unit)
    else:
        codes = []
    return sorted(codes, key=lambda code: snapshot.units[code].path)


def depth(snapshot: Snapshot, code: str) -> int:
    return snapshot.units[code].path.strip("/").count("/")


def require_unit(principal: Principal, snapshot: Snapshot, code: str, field: str = "unit") -> None:
    if code not in snapshot.units:
        raise NotFound(f"{field}: no unit {code!r}", field)
    principal.require_unit(code, snapshot)


# The guard of every admin form post: admins and managers change things; auditors and viewers only look.
WRITERS = requires_role(*WRITER_ROLES)


def require_writer(principal: Principal) -> None:
    """Admins and managers change things; auditors and viewers only look."""
    check = getattr(auth, "require_writer", None)
    if callable(check):
        check(principal)
    elif principal.role not in WRITER_ROLES:
        raise Forbidden(f"role: {principal.role!r} may not change anything", "role")


def may_write(principal: Principal) -> bool:
    return principal.role in WRITER_ROLES


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields, stripped; the CSRF field left out."""
    form = await request.form()
    values: dict[str, str] = {}
    for key, value in form.items():
        if key == "_csrf_token" or not isinstance(value, str):
            continue
        values[key] = value.strip()
    return values


def optional(values: dict[str, str], name: str) -> str | None:
    return values.get(name) or None


def required(values: dict[str, str], name: str) -> str:
    value = values.get(name)
    if not value:
        raise InvalidInput(f"{name}: required", name)
    return value


def whole_number(values: dict[str, str], name: str, low: int, high: int) -> int | None:
    raw = values.get(name)
    if not raw:
        return None
    if not raw.isdecimal() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name}: must be a whole number from {low} to {high}", name)
    return int(raw)


def error_text(error: FeedbackError, lang: str) -> str:
    """An error in the page language, naming the field; the technical detail follows in English."""
    _ = gettext_for(lang)
    reason = next((text for kind, text in REASONS.items() if isinstance(error, kind)), REASONS[InvalidInput])
    if error.message.endswith(": required"):
        reason = N_("required")
    field = error.field or "body"
    label = _(FIELD_LABELS.get(field, field))
    return _("%(field)s: %(reason)s") % {"field": label, "reason": _(reason)}


def error_context(error: FeedbackError | None, lang: str) -> dict[str, Any]:
    if error is None:
        return {"error": None, "error_field": None, "error_detail": None}
    return {"error": error_text(error, lang), "error_field": error.field, "error_detail": error.message}


@dataclass(frozen=True)
class Saved:
    """Where a successful form post goes next, with its flash message (a msgid in FLASH_MESSAGES) and values."""

    url: str
    message: str
    args: dict[str, str] = field(default_factory=dict)


async def submit_form(
    request: Request,
    principal: Principal,
    state: State,
    change: Callable[[dict[str, str]], Awaitable[Saved]],
    redisplay: Callable[[FeedbackError, dict[str, str]], Awaitable[Response]],
) -> Response:
    """Every admin form post: read it, make the change (the route's `WRITERS` guard has checked the role). A
    refusal shows the page again with the error and what was typed; a success reloads the catalog and redirects
    with a flash message."""
    values = await read_form(request)
    try:
        saved = await change(values)
    except FeedbackError as error:
        return await redisplay(error, values)
    state.catalog.invalidate()
    return flash_redirect(saved.url, saved.message, state, **saved.args)


def flash_redirect(url: str, message: str, state: State, **args: str) -> Response:
    """303 after a successful post, with a one-time message (a msgid and its values) for the next page."""
    payload = "\x1f".join([message, *[f"{k}\x1e{v}" for k, v in args.items()]])
    secure = (state.settings.public_url or "").startswith("https://")
    return Redirect(
        url,
        status_code=303,
        cookies=[
            Cookie(
                key=FLASH_COOKIE,
                value=quote(payload, safe=""),
                max_age=120,
                path=PREFIX,
                httponly=True,
                samesite="strict",
                secure=secure,
            )
        ],
    )


def take_flash(request: Request, lang: str) -> tuple[str | None, dict[str, str]]:
    """The flash message in the page language and its raw values (e.g. an enrollment code)."""
    from urllib.parse import unquote

    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None, {}
    message, *pairs = unquote(raw).split("\x1f")
    args = dict(pair.split("\x1e", 1) for pair in pairs if "\x1e" in pair)
    if message not in FLASH_MESSAGES:
        return None, {}
    try:
        return gettext_for(lang)(message) % args, args
    except (KeyError, ValueError, TypeError):
        return None, {}


def clear_flash(response: Response) -> Response:
    response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return response


FLASH_MESSAGES = {
    N_("Unit %(code)s created."),
    N_("Unit %(code)s saved."),
    N_("Service %(code)s created."),
    N_("Touchpoint %(name)s created."),
    N_("Touchpoint %(name)s retired."),
    N_("Enrollment code for %(name)s: %(code)s (valid 15 minutes)."),
    N_("Kiosk %(id)s revoked."),
    N_("Survey %(slug)s version %(version)s published."),
    N_("Objective %(id)s created."),
    N_("Objective %(id)s: version %(version)s saved."),
    N_("Objective %(id)s retired from %(day)s."),
}


async def page(
    request: Request,
    principal: Principal,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    error: FeedbackError | None = None,
) -> Response:
    """Render an admin page with the flash message, the error (if any) and whether forms are shown."""
    lang = page_lang(request)
    flash, flash_args = take_flash(request, lang)
    full = {
        "flash": flash,
        "flash_args": flash_args,
        "can_write": may_write(principal),
        "admin_prefix": PREFIX,
        "page_lang": lang,
        **error_context(error, lang),
        **context,
    }
    if error is not None:
        status = error.status_code
    response = layout.render(request, template, full, status=status)
    return clear_flash(response) if flash else response


def error_handler(request: Request, exc: FeedbackError) -> Response:
    """A refused or unknown thing on an admin page: an HTML page in the page language, never JSON or a 500."""
    lang = page_lang(request)
    context = {"admin_prefix": PREFIX, "page_lang": lang, "can_write": False, "flash": None, **error_context(exc, lang)}
    return layout.render(request, "admin_error.html", context, status=exc.status_code)


EXCEPTION_HANDLERS = {
    InvalidInput: error_handler,
    NotFound: error_handler,
    Conflict: error_handler,
    Forbidden: error_handler,
}


class AdminController(Controller):
    """What every admin page shares: a signed-in user as `principal`, errors as HTML pages, no OpenAPI entry."""

    include_in_schema = False
    dependencies = {"principal": auth.SESSION}
    exception_handlers = EXCEPTION_HANDLERS


def units_in_view(principal: Principal, snapshot: Snapshot, unit: str | None) -> list[str]:
    """The units a page lists, in tree order: the chosen unit's subtree (which must be the principal's to
    see), else every unit the principal may see."""
    if not unit:
        return visible_units(principal, snapshot)
    require_unit(principal, snapshot, unit)
    return sorted(snapshot.subtree(unit), key=lambda code: snapshot.units[code].path)
