"""How reports word and format what they print, in each language: objective metrics and statuses,
action states, shares, numbers, days, and unit and service names. The management-review PDF and the
manager pages share them; no PDF library is imported here, so a page that prints a figure does not
load one."""

from __future__ import annotations

from datetime import date
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from feedback import objectives
from feedback.catalog import Snapshot
from feedback.i18n import CATALOGUE, N_
from feedback.rates import decimals

COMPARATOR = {">=": "≥", "<=": "≤"}  # drawn from the DejaVu Sans fallback: Noto Sans here has neither


STATUS_TEXT = {
    "met": N_("met"),
    "at_risk": N_("at risk"),
    "breached": N_("breached"),
    "insufficient_data": N_("insufficient data"),
    "retired": N_("retired"),
}
METRIC_TEXT = {
    "satisfaction": N_("Satisfaction rate"),
    "not_dissatisfied": N_("Not dissatisfied rate"),
    "bad_review_rate": N_("Bad review rate"),
    "mean_score": N_("Mean score (0-100)"),
    "indicator_mean": N_("Indicator mean (0-100)"),
    "response_rate": N_("Response rate"),
    "on_time_rectification": N_("On-time rectification"),
    "callback_rate": N_("Call-back rate"),
    "dossier_on_time": N_("Dossiers returned on time"),
    "indicator_value": N_("Indicator value"),
}
ACTION_STATUS_TEXT = {
    "new": N_("new"),
    "verifying": N_("verifying"),
    "corrected": N_("corrected"),
    "action_planned": N_("action planned"),
    "explained": N_("explained"),
    "appealed": N_("appealed"),
    "appeal_upheld": N_("appeal upheld"),
    "appeal_rejected": N_("appeal rejected"),
    "implemented": N_("implemented"),
    "effectiveness_review": N_("effectiveness review"),
    "closed": N_("closed"),
    "reopened": N_("reopened"),
}


def babel_locale(lang: str) -> str:
    return CATALOGUE.get(lang, "en")


def fmt_share(value: float | None, lang: str) -> str:
    """A fraction as a percentage with one decimal, in the language's notation ("—" when unknown)."""
    if value is None:
        return "—"
    return format_percent(value, "#,##0.0%", locale=babel_locale(lang))


def fmt_number(value: float | None, lang: str, digits: int = 1) -> str:
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, pattern, locale=babel_locale(lang))


def fmt_day(value: date | str, lang: str) -> str:
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(day, "long", locale=babel_locale(lang))


def fmt_period(date_from: str, date_to: str, lang: str) -> str:
    return f"{fmt_day(date_from, lang)} – {fmt_day(date_to, lang)}"


def decimals_of(target: float | None, metric: str) -> int:
    """How many decimals a target was set with, on the scale it is printed on (means out of 100)."""
    return decimals(target, 1.0 if metric in objectives.MEAN_METRICS else 100.0)


def fmt_metric(value: float | None, metric: str, lang: str, digits: int = 1) -> str:
    """An objective's figure on its own scale: shares as percentages, means out of 100, with `digits`
    decimals (a target's own precision, so a value is never rounded onto the other side of it)."""
    if metric in objectives.MEAN_METRICS:
        return fmt_number(value, lang, digits)
    if value is None:
        return "—"
    return format_percent(value, "#,##0." + "0" * digits + "%", locale=babel_locale(lang))


def unit_name(snapshot: Snapshot, code: str, lang: str) -> str:
    return snapshot.unit_name(code, lang)


def service_label(snapshot: Snapshot, code: str | None, lang: str, _: Any) -> str:
    if not code:
        return _("(no service)")
    return snapshot.service_name(code, lang)
