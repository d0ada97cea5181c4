"""The dashboard (/manage/), the unit page (/manage/units/{code}) and its response list.

The figures come from feedback.dashboard_data on a reader thread; the pages carry the chart data
as a JSON data block that /static/dashboard.js hands to Chart.js, and every chart has a table or a
text equivalent beside it.
"""

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from feedback import action_queue, dashboard_data, dossiers, federation
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput
from feedback.i18n import counter_label, days_text, gettext_for, short_day, week_days
from feedback.web.access import requires_unit
from feedback.web.api import day_range, fresh_snapshot, local_today
from feedback.web.manage import auth, labels, layout
from feedback.web.security import Principal

# A longer period would make the page slow and unreadable; the exports serve longer spans.
MAX_PERIOD_DAYS = 731
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HEAT_CLASSES = 6


N_ = labels.N_
STATUS_LABELS = labels.STATUS_LABELS
SIGNAL_LABELS = {"beyond_limits": N_("Outside the control limits"), "run_of_eight": N_("Eight weeks on one side")}
WEEKDAY_LABELS = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)
# The controlled vocabulary of indicators (feedback.models.INDICATORS), as people read it.
INDICATOR_LABELS = {
    "overall": N_("Overall"),
    "waiting_time": N_("Waiting time"),
    "service_time": N_("Service time"),
    "on_time": N_("On time"),
    "staff_courtesy": N_("Staff courtesy"),
    "staff_competence": N_("Staff competence"),
    "efficiency": N_("Efficiency"),
    "information": N_("Information"),
    "premises": N_("Premises"),
    "ease": N_("Ease"),
    "trust": N_("Trust"),
    "equity": N_("Fair treatment"),
    "convenience": N_("Convenience"),
    "visits": N_("Number of visits"),
    "agencies": N_("Number of agencies"),
    "feedback_handling": N_("Handling of feedback"),
    "result": N_("Result"),
}
LEVEL_LABELS = (N_("Very dissatisfied"), N_("Dissatisfied"), N_("Neutral"), N_("Satisfied"), N_("Very satisfied"))


# The unit pages: a unit that does not exist is a 404 naming `unit`, one outside the user's subtree a 403.
UNIT_IN_PATH = requires_unit("code", source="path", field="unit")


def _period(snapshot: Snapshot, code: str, date_from: str | None, date_to: str | None) -> tuple[date, date]:
    start, end = day_range(snapshot, code, date_from or None, date_to or None)
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidInput(f"from: a period of at most {MAX_PERIOD_DAYS} days", "from")
    return start, end


def _translate_statuses(_: Any, objectives: list[dict[str, Any]]) -> None:
    for objective in objectives:
        objective["status_label"] = _(STATUS_LABELS.get(objective["status"], objective["status"]))


@get("/manage/", dependencies={"user": auth.SESSION}, include_in_schema=False)
async def dashboard_page(request: Request, state: State, user: NamedDependency[Principal]) -> Response:
    """The unit tree the user may see, each unit with its last 30 days."""
    snapshot = await fresh_snapshot(state)
    roots = dashboard_data.visible_roots(snapshot, user.unit)
    today = {code: local_today(snapshot, code) for code in dashboard_data.tree_units(snapshot, roots)}
    min_n = state.settings.min_n
    rows = await state.store.read(lambda conn: dashboard_data.dashboard(conn, snapshot, roots, today, min_n))
    reported = federation.any_reported(today)
    children = await state.store.read(federation.reported_children) if reported else {}
    lang = layout.choose_language(request)
    _ = gettext_for(lang)
    percent = layout.formatters(lang)["fmt_percent"]
    percents: dict[float | None, str] = {None: "–"}  # whole percentages repeat: format each once

    def whole_percent(rate: float | None) -> str:
        key = None if rate is None else round(rate, 2)
        if key not in percents:
            percents[key] = percent(key, 0)
        return percents[key]

    opened = [action for row in rows for doc in row["objectives"] for action in doc["open_actions"]]
    action_queue.render_titles(opened, lang, snapshot, state.plugins)
    for row in rows:
        row["status_label"] = _(STATUS_LABELS[row["status"]]) if row["status"] else ""
        row["objective_views"] = [labels.objective_view(doc, lang) for doc in row["objectives"]]
        rates = [whole_percent(w["rate"]) for w in row["spark"]]
        row["spark_text"] = _("Weekly satisfaction, last 12 weeks: %(rates)s") % {"rates": ", ".join(rates)}
        # A child installation's unit: its figures come from the child's daily reports.
        mark = federation.mark_of(row["code"], children)
        row["reported_text"] = reported_text(mark, lang) if mark else ""
    charts = {
        "sparklines": {
            row["code"]: [None if w["rate"] is None else round(w["rate"] * 100, 1) for w in row["spark"]]
            for row in rows
        }
    }
    return layout.render(request, "dashboard.html", {"rows": rows, "charts": charts, "min_n": min_n})


def reported_text(mark: dict[str, Any], lang: str) -> str:
    """The "reported, as of <day>" mark of a child installation's unit (its name, and the last day it reported)."""
    _ = gettext_for(lang)
    if mark["as_of"] is None:
        return _("reported by %(child)s, nothing yet") % {"child": mark["name"]}
    day = layout.formatters(lang)["fmt_date"](mark["as_of"])
    return _("reported by %(child)s, as of %(day)s") % {"child": mark["name"], "day": day}


def from_first_data(weeks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The weeks from the first one with any response on (all of them when none has any)."""
    first = next((i for i, week in enumerate(weeks) if week["n"]), 0)
    return weeks[first:]


def _heat_class(n: int, max_n: int) -> str:
    if not n or not max_n:
        return "heat-0"
    return f"heat-{1 + min(HEAT_CLASSES - 2, (n * (HEAT_CLASSES - 1) - 1) // max_n)}"


@get(
    "/manage/units/{code:str}",
    dependencies={"user": auth.SESSION},
    guards=[UNIT_IN_PATH],
    include_in_schema=False,
)
async def unit_page(
    request: Request,
    state: State,
    user: NamedDependency[Principal],
    snapshot: NamedDependency[Snapshot],
    code: FromPath[str],
    date_from: Annotated[str | None, QueryParameter(name="from")] = None,
    date_to: Annotated[str | None, QueryParameter(name="to")] = None,
) -> Response:
    """Breakdowns, heatmap, p-chart, levels, indicators, raw vs counted, objectives of one unit's subtree."""
    start, end = _period(snapshot, code, date_from, date_to)
    min_n = state.settings.min_n
    data = await state.store.read(lambda conn: dashboard_data.unit_page(conn, snapshot, code, start, end, min_n))
    timeliness = await state.store.read(
        lambda conn: dossiers.unit_figures(conn, snapshot, code, start.isoformat(), end.isoformat(), min_n)
    )
    reported = federation.any_reported(snapshot.subtree(code))
    children = await state.store.read(federation.reported_children) if reported else {}
    lang = layout.choose_language(request)
    reported_notes = [reported_text(child, lang) for child in federation.children_within(snapshot, code, children)]
    _ = gettext_for(lang)
    _translate_statuses(_, data["objectives"])
    opened = [action for doc in data["objectives"] for action in doc["open_actions"]]
    action_queue.render_titles(opened, lang, snapshot, state.plugins)
    data["objective_views"] = [labels.objective_view(doc, lang) for doc in data["objectives"]]
    for row in data["by_touchpoint"]:
        touchpoint = snapshot.touchpoints.get(row["key"])
        # A child installation reports by unit and service only: its figures have no touchpoint.
        row["name"] = touchpoint.name if touchpoint else (row["key"] or _("Reported figures (no touchpoint)"))
        row["unit"] = touchpoint.unit if touchpoint else None
    for row in data["by_service"]:
        row["name"] = service_label(snapshot, row["key"], lang) if row["key"] in snapshot.services else _("No service")
    for row in data["by_counter"]:
        row["name"] = counter_label(row["counter"], lang)
    chart = data["p_chart"]
    # The axis starts at the first week with responses, not weeks of nothing before it.
    weeks = from_first_data(chart["weeks"])
    for week in weeks:
        week["days"] = days_text(week["from"], week["to"], lang)
        week["short"] = short_day(week["from"], lang)
    for signal in chart["signals"]:
        signal["label"] = _(SIGNAL_LABELS.get(signal["rule"], signal["rule"]))
        span = week_days(signal["week"])
        signal["days"] = days_text(*span, lang) if span else signal["week"]
    for row in data["indicators"]:
        known = INDICATOR_LABELS.get(row["indicator"])
        row["label"] = _(known) if known else row["indicator"]
    signal_weeks = {s["week"] for s in chart["signals"]}
    heat = data["heatmap"]
    heat_rows = [
        {
            "label": _(WEEKDAY_LABELS[d]),
            "cells": [{**cell, "class": _heat_class(cell["n"], heat["max_n"])} for cell in heat["cells"][d]],
        }
        for d in range(7)
    ]
    total = data["total"]
    levels = [{"level": i, "label": _(LEVEL_LABELS[i - 1]), "count": total["levels"][str(i)]} for i in range(1, 6)]
    charts = {
        "levels": {
            "labels": [f"{lv['level']} · {lv['label']}" for lv in levels],
            "values": [lv["count"] for lv in levels],
            "label": _("Responses"),
        },
        "p_chart": {
            "labels": [w["short"] for w in weeks],
            "p": [None if w["p"] is None else round(w["p"] * 100, 2) for w in weeks],
            "ucl": [None if w["ucl"] is None else round(w["ucl"] * 100, 2) for w in weeks],
            "lcl": [None if w["lcl"] is None else round(w["lcl"] * 100, 2) for w in weeks],
            "centre": None if chart["centre"] is None else round(chart["centre"] * 100, 2),
            "signals": [w["week"] in signal_weeks for w in weeks],
            "names": {
                "p": _("Weekly satisfaction"),
                "ucl": _("Upper control limit"),
                "lcl": _("Lower control limit"),
                "centre": _("Centre line"),
            },
        },
        "indicators": {
            "labels": [row["label"] for row in data["indicators"]],
            "values": [None if row["mean"] is None else round(row["mean"], 1) for row in data["indicators"]],
            "label": _("Mean (0–100)"),
        },
    }
    children = [row for row in data["by_unit"] if row["key"] != code]
    for row in timeliness["by_service"]:
        row["name"] = service_label(snapshot, row["key"], lang) if row["key"] in snapshot.services else _("No service")
    return layout.render(
        request,
        "unit.html",
        {
            "code": code,
            "reported_notes": reported_notes,
            "data": data,
            "total": total,
            "levels": levels,
            "heat": heat,
            "heat_rows": heat_rows,
            "chart": chart,
            "weeks": weeks,
            "charts": charts,
            "children": children,
            "timeliness": timeliness,
            "min_n": min_n,
            "period": {"from": start.isoformat(), "to": end.isoformat()},
            "responses_url": f"/manage/units/{code}/responses?"
            + urlencode({"from": start.isoformat(), "to": end.isoformat()}),
        },
    )


def service_label(snapshot: Snapshot, code: str, lang: str) -> str:
    """A service as people read it (`Snapshot.service_name`), else (unknown) its code."""
    return snapshot.service_name(code, lang)


def service_choices(snapshot: Snapshot, subtree: set[str], lang: str) -> dict[str, str]:
    """The services offered in a subtree (at its touchpoints or by its units), code -> name, by name."""
    codes = {tp.service for tp in snapshot.touchpoints.values() if tp.unit in subtree and tp.service} | {
        code for code, service in snapshot.services.items() if service.get("agency") in subtree
    }
    names = {code: service_label(snapshot, code, lang) for code in codes}
    return dict(sorted(names.items(), key=lambda item: (item[1].casefold(), item[0])))


def _level(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdecimal() or not 1 <= int(value) <= 5:
        raise InvalidInput("level: must be a whole number from 1 to 5", "level")
    return int(value)


def _flagged(value: str | None) -> bool | None:
    if not value:
        return None
    if value not in ("yes", "no"):
        raise InvalidInput("flagged: must be yes or no", "flagged")
    return value == "yes"


@get(
    "/manage/units/{code:str}/responses",
    dependencies={"user": auth.SESSION},
    guards=[UNIT_IN_PATH],
    include_in_schema=False,
)
async def responses_page(
    request: Request,
    state: State,
    user: NamedDependency[Principal],
    snapshot: NamedDependency[Snapshot],
    code: FromPath[str],
    date_from: Annotated[str | None, QueryParameter(name="from")] = None,
    date_to: Annotated[str | None, QueryParameter(name="to")] = None,
    service: FromQuery[str | None] = None,
    touchpoint: FromQuery[str | None] = None,
    level: FromQuery[str | None] = None,
    flagged: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
) -> Response:
    """The subtree's responses, 50 a page, with filters and full-text search over comments."""
    start, end = _period(snapshot, code, date_from, date_to)
    subtree = set(snapshot.subtree(code))
    if service and service not in snapshot.services:
        raise InvalidInput(f"service: no service {service!r}", "service")
    if touchpoint and (touchpoint not in snapshot.touchpoints or snapshot.touchpoints[touchpoint].unit not in subtree):
        raise InvalidInput(f"touchpoint: no touchpoint {touchpoint!r} in this unit", "touchpoint")
    search = (q or "").strip()[:200]
    options = {
        "service": service or None,
        "touchpoint": touchpoint or None,
        "level": _level(level),
        "flagged": _flagged(flagged),
        "search": search or None,
        "cursor": after,
    }

    def read_page(conn) -> dict[str, Any]:
        found = dashboard_data.list_responses(conn, snapshot, code, start, end, **options)
        # What became of the dossier each rating's case reference names: late, on time, still open.
        states = dossiers.states_of(conn, snapshot, ((item["case_ref"], item["unit"]) for item in found["items"]))
        for item in found["items"]:
            item["dossier"] = states.get((item["case_ref"], item["unit"])) if item["case_ref"] else None
        return found

    page = await state.store.read(read_page)
    lang = layout.choose_language(request)
    for item in page["items"]:
        tp = snapshot.touchpoints.get(item["touchpoint"])
        item["touchpoint_name"] = tp.name if tp else item["touchpoint"]
        item["counter_label"] = counter_label(item["counter"], lang)
        item["service_name"] = service_label(snapshot, item["service"], lang) if item["service"] else None
        item["tz"] = snapshot.units[item["unit"]].tz
    filters = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "service": service or "",
        "touchpoint": touchpoint or "",
        "level": level or "",
        "flagged": flagged or "",
        "q": search,
    }
    next_url = None
    if page["next"]:
        next_url = f"/manage/units/{code}/responses?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "after": page["next"]}
        )
    _ = gettext_for(lang)
    # The filter choices, value (as in the URL) -> what people read.
    touchpoints = {
        tp.token: tp.name
        for tp in sorted((tp for tp in snapshot.touchpoints.values() if tp.unit in subtree), key=lambda t: t.name)
    }
    levels = {str(level): f"{level} · {_(label)}" for level, label in enumerate(LEVEL_LABELS, start=1)}
    return layout.render(
        request,
        "responses.html",
        {
            "code": code,
            "items": page["items"],
            "next_url": next_url,
            "filters": filters,
            "first_page_url": f"/manage/units/{code}/responses?" + urlencode({k: v for k, v in filters.items() if v}),
            "is_later_page": bool(after),
            "services": service_choices(snapshot, subtree, lang),
            "touchpoints": touchpoints,
            "levels": levels,
            "officers": auth.may_see_officers(user),
            "erased_notice": request.query_params.get("erased") == "1",
        },
    )


ROUTES: list = [dashboard_page, unit_page, responses_page]
