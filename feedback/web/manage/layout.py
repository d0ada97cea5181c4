"""Page rendering for the manager web app: one Jinja2 environment, the language, Babel formatting.

    return layout.render(request, "dashboard.html", {"rows": rows})

Every template extends `base.html` (blocks `title`, `content`, `scripts`, `header_extra`) and gets:
`_`/`ngettext` in the page language, `lang`, `html_lang`, `user` (the signed-in Principal or None),
`csrf_token` (put `<input type="hidden" name="_csrf_token" value="{{ csrf_token }}">` in every POST
form), `unit_name(code)`, `fmt_percent(x, digits=1)`, `fmt_number(x, digits=None)`, `fmt_date(d)`,
`fmt_datetime(dt, tz=None)` (tz defaults to the user's unit's time zone), `lang_url(code)`,
`role_label(role)`, `may_see_officers`, `is_writer`, `is_admin`, `path`.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, get_datetime_format
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response
from litestar.datastructures import Cookie
from litestar.template.base import csrf_token as litestar_csrf_token

from feedback.i18n import ENDONYMS, HTML_LANG, gettext_for, negotiate, translations
from feedback.models import LANGUAGES
from feedback.web.security import Principal

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "manage"
LANG_COOKIE = "fb_lang"
CSRF_COOKIE = "fb_csrf"
PRODUCT = "Feedback"
# Our language codes -> Babel locales for numbers and dates.
BABEL_LOCALE = {"vi": "vi", "ru": "ru", "zh": "zh_Hans_CN", "en": "en"}

env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _valid(lang: str | None) -> str | None:
    return lang if lang in LANGUAGES else None


def choose_language(request: Request, user_lang: str | None = None) -> str:
    """?lang=, then the fb_lang cookie, then the user's language, then Accept-Language, then en."""
    user = request.scope.get("fb_user")  # type: ignore[typeddict-item]
    if user is not None and user_lang is None:
        known = request.app.state.catalog.snapshot.users.get(user.user)
        user_lang = (known.lang if known else None) or request.scope.get("fb_session_lang")  # type: ignore[typeddict-item]
    return (
        _valid(request.query_params.get("lang"))
        or _valid(request.cookies.get(LANG_COOKIE))
        or _valid(user_lang)
        or negotiate(request.headers.get("accept-language"))
        or "en"
    )


def translator(request: Request) -> Callable[[str], str]:
    return gettext_for(choose_language(request))


def csrf_token(request: Request) -> str:
    """The token for this page's forms. Where the CSRF middleware did not run (a 404 outside any
    route) the fb_csrf cookie, which holds the same signed token, stands in."""
    token = litestar_csrf_token({"request": request})  # Litestar's own template helper
    if token:
        return token
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return cookie if cookie.isalnum() and len(cookie) <= 200 else ""


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def formatters(lang: str, default_tz: str = "UTC") -> dict[str, Callable[..., str]]:
    """Babel formatting bound to one language (also handy outside templates)."""
    locale = BABEL_LOCALE.get(lang, "en")
    percent_pattern = Locale.parse(locale).percent_formats[None].pattern

    def fmt_percent(value: float | None, digits: int = 1) -> str:
        if value is None:
            return "–"
        # The locale's own pattern (a space before % in Russian…) with the digits asked for.
        pattern = percent_pattern.replace("#,##0", "#,##0" + ("." + "0" * digits if digits > 0 else ""), 1)
        return format_percent(value, format=pattern, locale=locale)

    def fmt_number(value: float | int | Decimal | None, digits: int | None = None) -> str:
        if value is None:
            return "–"
        if digits is None:
            return format_decimal(value, locale=locale)
        pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        return format_decimal(value, format=pattern, locale=locale)

    def fmt_date(value: Any, format: str = "medium") -> str:
        if isinstance(value, str) and len(value) == 10:
            try:
                value = date.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, datetime):
            value = value.date()
        if not isinstance(value, date):
            return "" if value is None else str(value)
        return format_date(value, format=format, locale=locale)

    def fmt_datetime(value: Any, tz: str | None = None, format: str = "medium") -> str:
        """A moment in `tz` (default: the user's unit's zone); "medium" is the medium date with hours
        and minutes, in the locale's order."""
        moment = _as_datetime(value)
        if moment is None:
            return "" if value is None else str(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            zone = ZoneInfo(tz or default_tz)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        if format != "medium":
            return format_datetime(moment, format=format, tzinfo=zone, locale=locale)
        local = moment.astimezone(zone)
        return get_datetime_format("medium", locale=locale).format(
            format_time(local, "short", locale=locale), format_date(local.date(), "medium", locale=locale)
        )

    return {"fmt_percent": fmt_percent, "fmt_number": fmt_number, "fmt_date": fmt_date, "fmt_datetime": fmt_datetime}


def lang_url(request: Request, code: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", code))
    return f"{request.url.path}?{urlencode(params)}"


def base_context(request: Request) -> dict[str, Any]:
    lang = choose_language(request)
    translation = translations(lang)
    snapshot = request.app.state.catalog.snapshot
    user: Principal | None = request.scope.get("fb_user")  # type: ignore[typeddict-item]
    default_tz = "UTC"
    if user is not None and user.unit in snapshot.units:
        default_tz = snapshot.units[user.unit].tz

    def unit_name(code: str | None) -> str:
        return snapshot.unit_name(code, lang)

    _ = translation.gettext
    nav = [("/manage/", _("Dashboard")), ("/manage/actions", _("Actions"))]
    if user is not None and user.role in ("admin", "manager"):
        nav.append(("/manage/entry", _("Paper entry")))
        nav.append(("/manage/admin", _("Admin")))
    nav.append(("/manage/reports", _("Reports")))
    if user is not None and user.role in ("admin", "auditor"):
        nav.append(("/manage/audit", _("Audit log")))
    path = request.url.path
    current = max(
        (href for href, _label in nav if path == href or (href != "/manage/" and path.startswith(href))),
        key=len,
        default="/manage/" if path == "/manage/" else None,
    )
    role_names = {"admin": _("Administrator"), "manager": _("Manager"), "viewer": _("Viewer"), "auditor": _("Auditor")}
    return {
        "_": _,
        "ngettext": translation.ngettext,
        "lang": lang,
        "html_lang": HTML_LANG.get(lang, lang),
        "languages": [(code, ENDONYMS[code], HTML_LANG[code], lang_url(request, code)) for code in LANGUAGES],
        "lang_url": lambda code: lang_url(request, code),
        "user": user,
        "role_name": role_names.get(user.role, user.role) if user else "",
        "role_label": lambda role: role_names.get(role, role),
        "is_writer": bool(user and user.role in ("admin", "manager")),
        "is_admin": bool(user and user.role == "admin"),
        "may_see_officers": bool(user and user.role in ("admin", "manager", "auditor")),
        "csrf_token": csrf_token(request),
        "unit_name": unit_name,
        "nav": nav,
        "nav_current": current,
        "path": path,
        "product": PRODUCT,
        "request": request,
        **formatters(lang, default_tz),
    }


def render(
    request: Request,
    template_name: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render a manage template (autoescaped) in the request's language, as a private, uncached page."""
    full = base_context(request)
    full.update(context or {})
    html = env.get_template(template_name).render(full)
    cookies = []
    asked = _valid(request.query_params.get("lang"))
    if asked and request.cookies.get(LANG_COOKIE) != asked:
        cookies.append(
            Cookie(key=LANG_COOKIE, value=asked, path="/", max_age=365 * 86400, samesite="lax", httponly=True)
        )
    return Response(
        html,
        status_code=status,
        media_type=MediaType.HTML,
        cookies=cookies,
        headers={"cache-control": "no-store", **(headers or {})},
    )


ERROR_TITLES = {
    400: "The request could not be understood.",
    401: "Please sign in.",
    403: "You may not open this page.",
    404: "This page does not exist.",
    405: "This page cannot be used that way.",
    409: "This changed in the meantime. Please reload the page and try again.",
    413: "The upload is too large.",
    429: "Too many requests. Please wait a moment and try again.",
}


def error_page(request: Request, status: int) -> Response:
    """An error under /manage as a page in the user's language (no internal detail)."""
    message = ERROR_TITLES.get(status, "Something went wrong. Please try again later.")
    return render(request, "auth_error.html", {"status": status, "message_id": message}, status=status)
