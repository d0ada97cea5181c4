"""Jurisdiction-neutral quality rules: which objectives a response feeds, the nonconformity a breached
objective or a control-chart signal opens, and who owns a new corrective action."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feedback import hookimpl
from feedback.i18n import days_text, format_mean, format_share, gettext_for, period_name, week_days
from feedback.models import ActionRequest, ObjectiveVersion, StoredResponse, Unit
from feedback_plugins import LOCALES

if TYPE_CHECKING:
    from feedback.catalog import Snapshot

# Metrics a single response moves; the others are computed from actions or exposure.
RESPONSE_METRICS = frozenset(
    {"satisfaction", "not_dissatisfied", "mean_score", "bad_review_rate", "indicator_mean", "response_rate"}
)


@hookimpl
def map_response(response: StoredResponse, objectives: list[ObjectiveVersion]) -> list[int]:
    if response.level is None and not response.indicators:
        return []
    hits = []
    for objective in objectives:
        if objective.metric not in RESPONSE_METRICS:
            continue
        if objective.service and objective.service != response.service:
            continue
        if objective.metric == "indicator_mean" and objective.indicator not in response.indicators:
            continue
        hits.append(objective.objective)
    return hits


def _bad_side(status: dict) -> str:
    """Which side of the centre line is the bad one: below for "at least" targets, above for "at most"."""
    return "below" if status.get("comparator", ">=") == ">=" else "above"


MEAN_METRICS = frozenset({"mean_score", "indicator_mean"})
# The metrics by name and the control-chart rules in words (the core's catalogue has the metrics too).
METRIC_NAMES = {
    "satisfaction": "Satisfaction rate",
    "not_dissatisfied": "Not dissatisfied rate",
    "bad_review_rate": "Bad review rate",
    "mean_score": "Mean score (0-100)",
    "indicator_mean": "Indicator mean (0-100)",
    "response_rate": "Response rate",
    "on_time_rectification": "On-time rectification",
    "callback_rate": "Call-back rate",
    "dossier_on_time": "Dossiers returned on time",
    "indicator_value": "Indicator value",
}
RULE_NAMES = {
    "beyond_limits": "a week outside the control limits",
    "run_of_eight": "eight weeks in a row on one side of the centre line",
}
BREACHED, SIGNAL = "objective_breached", "control_chart_signal"


def _figure(value: float | None, metric: str, lang: str, digits: int | None = 1) -> str:
    if value is None:
        return "—"
    if metric in MEAN_METRICS:
        return format_mean(value, lang, 1 if digits is None else digits)
    return format_share(value, lang, digits)


def _objective(snapshot: Snapshot, unit: str, objective_id: int | None) -> ObjectiveVersion | None:
    """The latest version of an objective (for its name and metric), or None."""
    versions = [v for v in snapshot.objective_versions.get(unit, ()) if v.objective == objective_id]
    return max(versions, key=lambda v: (v.valid_from, v.version)) if versions else None


def objective_name(version: ObjectiveVersion | None, lang: str) -> str:
    """An objective as the reader calls it: its title in `lang`, else its title, else its metric."""
    if version is None:
        return "—"
    titles = getattr(version, "titles", None) or {}
    if titles.get(lang):
        return titles[lang]
    return version.title or gettext_for(lang)(METRIC_NAMES.get(version.metric, version.metric))


def _period_text(data: dict, period: str | None, lang: str) -> str:
    """The period a breach was judged on: "December 2026", "4th quarter 2026", or a rolling window's days."""
    first, last = data.get("from"), data.get("to")
    if first and last:
        return (
            days_text(first, last, lang)
            if data.get("period") == "rolling_30"
            else period_name(data.get("period", "month"), first, lang)
        )
    key = period or ""
    if len(key) == 7 and key[4] == "-" and key[:4].isdigit() and key[5:].isdigit():
        return period_name("month", f"{key}-01", lang)
    if len(key) == 7 and key[4:6] == "-Q" and key[:4].isdigit() and key[6] in "1234":
        return period_name("quarter", f"{key[:4]}-{3 * int(key[6]) - 2:02d}-01", lang)
    return key


def build_title(
    lang: str, version: ObjectiveVersion | None, data: dict, period: str | None, target: float | None
) -> str | None:
    """A nonconformity's title in `lang` from what it stored: the objective, the figures and the period
    of a breach, or the rule and week of a control-chart signal."""
    _ = gettext_for(lang)
    metric = data.get("metric") or (version.metric if version else "satisfaction")
    name = objective_name(version, lang)
    if data.get("status") == "breached":
        if target is None and version is not None:
            target = version.target
        return _("Objective breached: %(name)s is %(value)s against a target of %(target)s (%(period)s)") % {
            "name": name,
            "value": _figure(data.get("value"), metric, lang),
            "target": _figure(target, metric, lang, None),
            "period": _period_text(data, period, lang),
        }
    signals = data.get("signals") or []
    if not signals:
        return None
    signal = signals[0]
    week = week_days(str(signal.get("week", "")))
    rule = RULE_NAMES.get(signal.get("rule", ""))
    return _("Control chart signal: %(name)s, %(rule)s (%(days)s)") % {
        "name": name,
        "rule": _(rule) if rule else signal.get("rule", ""),
        "days": days_text(*week, lang) if week else signal.get("week", ""),
    }


@hookimpl
def evaluate_triggers(
    objective: ObjectiveVersion | None, status: dict | None, snapshot: Snapshot
) -> ActionRequest | None:
    """A breached objective, or a control-chart signal on its bad side, opens one unit-level
    nonconformity per objective and period (both causes merge into the same action)."""
    if objective is None or not status or objective.unit not in snapshot.units:
        return None
    bad_signals = [s for s in status.get("signals", []) if s.get("side") == _bad_side(status)]
    if status.get("status") != "breached" and not bad_signals:
        return None
    # A rolling window moves every day; one nonconformity per calendar month keeps it to one action.
    period = status.get("period_key", "")
    if objective.period == "rolling_30" and status.get("to"):
        period = status["to"][:7]
    # What the title is built from, kept with the action so each reader gets it in their language.
    data = {
        "rule": BREACHED if status.get("status") == "breached" else SIGNAL,
        "owner": objective.owner,
        "status": status.get("status"),
        "signals": bad_signals,
        "value": status.get("value"),
        "n": status.get("n"),
        "metric": objective.metric,
        "period": objective.period,
        "period_key": status.get("period_key"),
        "from": status.get("from"),
        "to": status.get("to"),
    }
    title = build_title(snapshot.units[objective.unit].lang, objective, data, period, objective.target)
    return ActionRequest(
        kind="nonconformity",
        source_key=f"objective:{objective.objective}:{period}",
        unit=objective.unit,
        title=title or objective.title or objective.metric,
        service=objective.service,
        indicator=objective.indicator,
        objective_id=objective.objective,
        period=period,
        target=objective.target,
        data=data,
    )


@hookimpl
def action_title(action: dict, lang: str, snapshot: Snapshot) -> str | None:
    """The title of a nonconformity this plugin opened, in the reader's language (those opened before
    their data carried a rule are recognised by the status and signals they kept)."""
    data = action.get("data") or {}
    if action.get("kind") != "nonconformity" or action.get("objective_id") is None:
        return None
    if data.get("rule") not in (BREACHED, SIGNAL) and "status" not in data:
        return None
    version = _objective(snapshot, action.get("unit", ""), action["objective_id"])
    return build_title(lang, version, data, action.get("period"), action.get("target"))


@hookimpl(trylast=True)
def corrective_action_assignee(action: ActionRequest, unit: Unit, snapshot: Snapshot) -> str | None:
    """The objective's owner when it has one; else the manager of the unit, or of the nearest unit above."""
    owner = action.data.get("owner") if action.data else None
    if owner and owner in snapshot.users:
        return owner
    for code in snapshot.ancestors(unit.code):
        candidate = snapshot.units[code].owner
        if candidate and candidate in snapshot.users:
            return candidate
    return None


@hookimpl
def register_translations() -> Path:
    return LOCALES
