"""Reports: the signed-in /manage/reports page (export and PDF forms) and the public results page.

`/manage/reports` holds plain GET forms aimed at /api/v1/exports/* and /api/v1/reports/*, which take
the signed-in session as well as a token, so a download needs no JavaScript. `/results/{code}` is
public, shown only when a manager switched the unit's `public_results` on (404 otherwise): the
satisfaction rates of the last three months by month and the corrective actions closed in them,
without personal data (no contact, officer, case reference or comment).
"""

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from feedback import __version__
from feedback.catalog import Snapshot
from feedback.i18n import ENDONYMS, HTML_LANG, gettext_for, negotiate
from feedback.models import LANGUAGES
from feedback.plugins import flatten
from feedback.rates import satisfaction
from feedback.report_text import fmt_share, service_label, unit_name
from feedback.store import Connection
from feedback.store import actions as action_store
from feedback.web.api import fresh_snapshot, local_today
from feedback.web.manage import auth, layout
from feedback.web.security import Principal

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PUBLIC_MONTHS = 3
PUBLIC_ACTIONS = 30
# Record fields that say what was done, most telling first.
DONE_FIELDS = ("result", "action_taken", "correction")

public_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True))


def N_(message: str) -> str:
    return message


BY_CHOICES = (
    ("unit", N_("Child unit")),
    ("service", N_("Service")),
    ("touchpoint", N_("Touchpoint")),
    ("day", N_("Day")),
    ("week", N_("Week")),
    ("month", N_("Month")),
)
FLAG_CHOICES = (
    ("", N_("All responses")),
    ("false", N_("Only counted responses")),
    ("true", N_("Only suspect responses")),
)


def visible_units(principal: Principal, snapshot: Snapshot) -> list[str]:
    """Units the user may report on, in tree order."""
    codes = [code for code in snapshot.units if principal.may_see(code, snapshot)]
    return sorted(codes, key=lambda code: snapshot.units[code].path)


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def months_back(day: date, months: int) -> date:
    """The first day of the month `months` before the month of `day`."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


@get(
    "/manage/reports",
    name="manage_reports",
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
)
async def reports_page(
    request: Request,
    state: State,
    principal: NamedDependency[Principal],
    snapshot: NamedDependency[Snapshot],
    unit: FromQuery[str | None] = None,
) -> Response:
    # `unit` only picks the unit shown first: one the user may not see falls back to the user's own.
    units = visible_units(principal, snapshot)
    selected = unit if unit in units else (principal.unit if principal.unit in units else (units[0] if units else None))
    today = local_today(snapshot, selected) if selected else datetime.now(UTC).date()
    services = sorted({tp.service for tp in snapshot.touchpoints.values() if tp.service and tp.unit in set(units)})
    lang = layout.choose_language(request)
    _ = gettext_for(lang)
    context = {
        "units": [(code, unit_name(snapshot, code, lang), snapshot.units[code].path.count("/") - 1) for code in units],
        "selected": selected,
        "date_from": quarter_start(today).isoformat(),
        "date_to": today.isoformat(),
        "services": [(code, service_label(snapshot, code, lang, _)) for code in services],
        "by_choices": BY_CHOICES,
        "flag_choices": FLAG_CHOICES,
        "pdf_languages": [(code, ENDONYMS[code]) for code in LANGUAGES],
        "public_units": [
            (code, unit_name(snapshot, code, lang)) for code in units if snapshot.units[code].public_results
        ],
        # The CSV exports plugins register (their titles are message ids, in the plugins' catalogues).
        "exporters": flatten(state.plugins.hook.register_exporters()),
    }
    return layout.render(request, "reports.html", context)


# -- the public page ---------------------------------------------------------------------------------


def public_language(request: Request, fallback: str) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(layout.LANG_COOKIE)
    if cookie in LANGUAGES:
        return cookie
    return negotiate(request.headers.get("accept-language")) or (fallback if fallback in LANGUAGES else "en")


def _scrub(text: str | None, secrets: list[str]) -> str:
    """Free text with the case reference, officer and contact of its response taken out."""
    if not text:
        return ""
    for secret in secrets:
        if secret and len(secret) >= 2:
            text = text.replace(secret, "…")
    return text.strip(" ·")


def closed_actions(conn: Connection, snapshot: Snapshot, units: list[str], since_utc: str) -> list[dict[str, Any]]:
    """Actions of the subtree closed since a moment: title, when, and what was done, without personal data."""
    rows = action_store.closed_since(conn, units, since_utc, PUBLIC_ACTIONS)
    found = []
    for row in rows:
        secrets = [row["case_ref"] or "", row["officer"] or ""]
        done: dict[str, str] = {}
        for event in action_store.done_records(conn, row["id"]):
            for name in DONE_FIELDS:
                if event[name]:
                    done[name] = event[name]  # the latest record of each step wins
        tz = snapshot.units[row["unit"]].tz if row["unit"] in snapshot.units else "UTC"
        found.append(
            {
                "title": _scrub(row["title"], secrets),
                "unit": row["unit"],
                "closed": datetime.fromisoformat(row["closed_at"]).astimezone(ZoneInfo(tz)).date().isoformat(),
                "action_taken": _scrub(done.get("action_taken") or done.get("correction"), secrets),
                "result": _scrub(done.get("result"), secrets),
            }
        )
    return found


def not_found(lang: str) -> Response:
    _ = gettext_for(lang)
    html = public_env.get_template("public_results.html").render(
        _=_,
        lang=lang,
        html_lang=HTML_LANG[lang],
        asset_version=__version__,
        switch_langs=[],
        base_path="",
        case_query="",
        missing=True,
        title=_("This page does not exist."),
    )
    return Response(html, status_code=404, media_type=MediaType.HTML, headers={"cache-control": "no-store"})


@get("/results/{code:str}", name="public_results", include_in_schema=False)
async def public_results(request: Request, state: State, code: FromPath[str]) -> Response:
    snapshot = await fresh_snapshot(state)
    unit = snapshot.units.get(code)
    if unit is None or not unit.public_results:
        return not_found(public_language(request, unit.lang if unit else "en"))
    lang = public_language(request, unit.lang)
    _ = gettext_for(lang)
    today = local_today(snapshot, code)
    start = months_back(today, PUBLIC_MONTHS - 1)
    units = snapshot.subtree(code)
    since = datetime.combine(start, datetime.min.time(), ZoneInfo(unit.tz)).astimezone(UTC).isoformat()
    min_n = state.settings.min_n

    def read(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rates = satisfaction(conn, snapshot, code, start.isoformat(), today.isoformat(), "month", min_n)
        return rates, closed_actions(conn, snapshot, units, since)

    rates, closed = await state.store.read(read)
    fmt = layout.formatters(lang, unit.tz)
    months = {row["key"]: row for row in rates["rows"]}
    month_rows = []
    for back in range(PUBLIC_MONTHS - 1, -1, -1):
        first = months_back(today, back)
        key = first.isoformat()[:7]
        month_rows.append({"key": key, "label": fmt["fmt_date"](first, "LLLL y"), "row": months.get(key)})
    name = unit_name(snapshot, code, lang)
    html = public_env.get_template("public_results.html").render(
        _=_,
        lang=lang,
        html_lang=HTML_LANG[lang],
        asset_version=__version__,
        switch_langs=[(c, ENDONYMS[c]) for c in LANGUAGES],
        base_path=f"/results/{code}",
        case_query="",
        missing=False,
        title=_("Results and what we did: %(unit)s") % {"unit": name},
        unit_name=name,
        months=month_rows,
        total=rates["total"],
        closed=closed,
        fmt_share=lambda value: fmt_share(value, lang),
        fmt_number=fmt["fmt_number"],
        fmt_date=fmt["fmt_date"],
        min_n=min_n,
        period=f"{fmt['fmt_date'](start, 'long')} – {fmt['fmt_date'](today, 'long')}",
    )
    return Response(html, media_type=MediaType.HTML, headers={"cache-control": "public, max-age=300"})


ROUTES: list = [reports_page, public_results]
