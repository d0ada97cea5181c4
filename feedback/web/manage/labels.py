"""Codes as people read them on the manager pages: objectives, their periods and judgements, service
kinds, surveys and kiosks, each in the reader's language (never a raw key such as `R30:2026-12-02`,
`customs` or `csat`).
"""

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from feedback.catalog import Snapshot
from feedback.i18n import days_text, format_mean, format_share, gettext_for, period_name, text_in
from feedback.report_text import METRIC_TEXT


def N_(message: str) -> str:
    """Marks a message id for extraction; it is translated where it is shown."""
    return message


STATUS_LABELS = {
    "met": N_("Met"),
    "at_risk": N_("At risk"),
    "breached": N_("Breached"),
    "insufficient_data": N_("Too few responses"),
    "retired": N_("Retired"),
}
COMPARATORS = {">=": "≥", "<=": "≤"}
SERVICE_KINDS = {
    "administrative": N_("Administrative procedure"),
    "customs": N_("Customs procedure"),
    "other": N_("Other"),
}
MEAN_METRICS = frozenset({"mean_score", "indicator_mean"})


def metric_figure(value: float | None, metric: str, lang: str, digits: int | None = 1) -> str:
    """A value of a metric: a share as a percentage, a mean on 0-100 as a number."""
    if metric in MEAN_METRICS:
        return format_mean(value, lang, 1 if digits is None else digits)
    return format_share(value, lang, digits)


def target_text(comparator: str, target: float, metric: str, lang: str) -> str:
    """ "≥ 99.47 %": the comparator as a sign and the target with the precision it was set with."""
    if metric in MEAN_METRICS:
        figure = format_mean(target, lang, 0 if float(target).is_integer() else 1)
    else:
        figure = format_share(target, lang, None)
    return f"{COMPARATORS.get(comparator, comparator)} {figure}"


def objective_name(doc: dict[str, Any], lang: str) -> str:
    """An objective's title in `lang` (its own translations), else the title it was given, else its metric."""
    titles = doc.get("titles") or {}
    if titles.get(lang):
        return titles[lang]
    if doc.get("title"):
        return doc["title"]
    return gettext_for(lang)(METRIC_TEXT.get(doc["metric"], doc["metric"]))


def judgement_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """What a badge shows: the status in words, the period judged (its name and days), value and n."""
    _ = gettext_for(lang)
    return {
        "status": doc["status"],
        "status_label": _(STATUS_LABELS.get(doc["status"], doc["status"])),
        "period_name": period_name(doc["period"], doc["from"], lang),
        "days": days_text(doc["from"], doc["to"], lang),
        "value": None if doc.get("value") is None else metric_figure(doc["value"], doc["metric"], lang),
        "n": doc.get("n") or 0,
        "min_n": doc.get("min_n"),
    }


def objective_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """An objective's judgement as the dashboard and the unit page show it, with the last complete
    period beside a young one and the nonconformities it has open."""
    view = judgement_view(doc, lang)
    previous = doc.get("previous")
    view.update(
        objective=doc["objective"],
        name=objective_name(doc, lang),
        target=target_text(doc["comparator"], doc["target"], doc["metric"], lang),
        previous=judgement_view(previous, lang) if previous else None,
        open_actions=doc.get("open_actions", []),
    )
    return view


def service_kind(kind: str | None, lang: str) -> str:
    """A service's kind in words ("customs" -> "Customs procedure"); an unknown kind as it is."""
    if not kind:
        return ""
    known = SERVICE_KINDS.get(kind)
    return gettext_for(lang)(known) if known else kind


def survey_name(snapshot: Snapshot, slug: str, lang: str) -> str:
    """A survey by its title in `lang` (its own texts), else its slug."""
    version = snapshot.current.get(slug)
    return text_in(version.definition.title, lang, slug) if version is not None else slug


def kiosk_name(kiosk: dict[str, Any], touchpoint_name: str, translate: Callable[[str], str]) -> str:
    """A tablet as staff call it: the name it was enrolled with, else "Tablet at <touchpoint>" (the
    default name `kiosk <id>` is a code, not a name)."""
    name = kiosk.get("name") or ""
    if name and name != f"kiosk {kiosk['id']}":
        return name
    return translate("Tablet at %(place)s") % {"place": touchpoint_name}


def period_key_text(key: str | None, lang: str) -> str:
    """A stored period key as people read it: "2026-12" -> "December 2026", "2026-Q4" -> "4th quarter
    2026", "R30:2026-12-02" -> the window's days; anything else as it is."""
    if not key:
        return ""
    try:
        if key.startswith("R30:"):
            last = date.fromisoformat(key[4:])
            return days_text(last - timedelta(days=29), last, lang)
        year, _, part = key.partition("-")
        if part.startswith("Q") and part[1:] in ("1", "2", "3", "4"):
            return period_name("quarter", date(int(year), 3 * int(part[1:]) - 2, 1), lang)
        if part.isdecimal():
            return period_name("month", date(int(year), int(part), 1), lang)
    except ValueError:
        return key
    return key
