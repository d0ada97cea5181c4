"""Jurisdiction-neutral quality rules: which objectives a response feeds, the nonconformity a breached
objective or a control-chart signal opens, and who owns a new corrective action."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feedback import hookimpl
from feedback.i18n import gettext_for
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


def _percent(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if metric in ("mean_score", "indicator_mean") else f"{value * 100:.1f} %"


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
    _ = gettext_for(snapshot.units[objective.unit].lang)
    name = objective.title or objective.metric
    if status.get("status") == "breached":
        title = _("Objective breached: %(name)s is %(value)s against a target of %(target)s (%(period)s)") % {
            "name": name,
            "value": _percent(status.get("value"), objective.metric),
            "target": _percent(objective.target, objective.metric),
            "period": status.get("period_key", ""),
        }
    else:
        title = _("Control chart signal: %(name)s (%(rule)s, week %(week)s)") % {
            "name": name,
            "rule": bad_signals[0].get("rule", ""),
            "week": bad_signals[0].get("week", ""),
        }
    # A rolling window moves every day; one nonconformity per calendar month keeps it to one action.
    period = status.get("period_key", "")
    if objective.period == "rolling_30" and status.get("to"):
        period = status["to"][:7]
    return ActionRequest(
        kind="nonconformity",
        source_key=f"objective:{objective.objective}:{period}",
        unit=objective.unit,
        title=title,
        service=objective.service,
        indicator=objective.indicator,
        objective_id=objective.objective,
        period=period,
        target=objective.target,
        data={
            "owner": objective.owner,
            "status": status.get("status"),
            "signals": bad_signals,
            "value": status.get("value"),
            "n": status.get("n"),
        },
    )


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
