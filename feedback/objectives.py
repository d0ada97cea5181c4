"""Quality objectives (ISO 9001 6.2): versions, evaluation from rollups, control-chart signals.

An objective is a record (ISO 9001 7.5): a change is a new version in force from a day on, and an
objective is retired from a day, never deleted, so every past period keeps being judged against
the target that was in force then. Evaluation reads rollups only and lets the Wilson 95 % interval
decide: a pass needs the whole interval on the right side of the target, a breach the whole
interval on the wrong side; anything in between is "at risk", and too few responses decide nothing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import actions, audit, dossiers, indicators
from feedback.catalog import Snapshot
from feedback.control_chart import CHART_METRICS, p_chart
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.events import record
from feedback.jobs import Job, JobContext
from feedback.models import (
    INDICATORS,
    LANGUAGES,
    OBJECTIVE_METRICS,
    OBJECTIVE_PERIODS,
    ActionRequest,
    Event,
    ObjectiveVersion,
)
from feedback.plugins import PluginManager, flatten
from feedback.rates import exposure_cells, wilson
from feedback.store import Connection
from feedback.store import objectives as objective_store
from feedback.store import organisation as organisation_store
from feedback.store import responses as response_store
from feedback.store import users as user_store

log = logging.getLogger("feedback.objectives")

SHARE_METRICS = (
    "satisfaction",
    "not_dissatisfied",
    "bad_review_rate",
    "response_rate",
    "on_time_rectification",
    "callback_rate",
    "dossier_on_time",
    "indicator_value",
)
MEAN_METRICS = ("mean_score", "indicator_mean")
#: The metrics a child installation's reports can judge (they carry rollups only): the only ones a parent's
#: objective on a reported unit ("<child>:<code>") may take.
REPORTED_METRICS = ("satisfaction", "not_dissatisfied", "bad_review_rate", "mean_score")
SPEC_FIELDS = (
    "metric",
    "comparator",
    "target",
    "period",
    "min_n",
    "owner",
    "method",
    "title",
    "titles",
    "indicator",
    "service",
    "valid_from",
)
# Carried into a new version when its metric stays the same; a new metric needs its own target.
CARRIED_ALWAYS = ("metric", "title", "titles", "period", "min_n", "owner", "method", "service")
CARRIED_SAME_METRIC = ("comparator", "target", "indicator")
DEFAULT_MIN_N = 30
MAX_TITLE = 200
# Weeks of history behind an objective's control chart: enough for a stable centre line.
CHART_WEEKS = 26


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


# -- definitions --------------------------------------------------------------------------------


def default_comparator(metric: str) -> str:
    return "<=" if metric == "bad_review_rate" else ">="


def _parse_day(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 10:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", field)
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", field) from None


def validate_spec(
    conn: Connection,
    spec: Any,
    *,
    today: date | str,
    previous: ObjectiveVersion | None = None,
    default_min_n: int | None = None,
    plugins: PluginManager | None = None,
) -> dict[str, Any]:
    """A complete, checked version from `spec`; a new version takes what it leaves out from `previous`.
    `plugins` defines the indicators (with the administrators') an `indicator_value` objective may name."""
    if not isinstance(spec, dict):
        raise InvalidInput("body: must be a JSON object", "body")
    for name in spec:
        if name not in SPEC_FIELDS:
            raise InvalidInput(f"{name}: unknown field", name)
    values: dict[str, Any] = {}
    if previous is not None:
        carried = CARRIED_ALWAYS
        if spec.get("metric", previous.metric) == previous.metric:
            carried += CARRIED_SAME_METRIC
        values = {name: getattr(previous, name) for name in carried}
    values.update(spec)

    metric = values.get("metric")
    if metric is None:
        raise InvalidInput("metric: required", "metric")
    if metric not in OBJECTIVE_METRICS:
        raise InvalidInput(f"metric: must be one of {list(OBJECTIVE_METRICS)}", "metric")
    indicator = values.get("indicator")
    defined = None
    if metric == "indicator_value":
        known = indicators.definitions(conn, plugins)
        if indicator is None:
            raise InvalidInput("indicator: required for the metric indicator_value", "indicator")
        if indicator not in known:
            raise InvalidInput(f"indicator: must be one of {list(known)}", "indicator")
        defined = known[indicator]
    comparator = values.get("comparator") or (
        ("<=" if defined.direction == "lower" else ">=") if defined else default_comparator(metric)
    )
    if comparator not in (">=", "<="):
        raise InvalidInput("comparator: must be '>=' or '<='", "comparator")
    if defined is not None and comparator != ("<=" if defined.direction == "lower" else ">="):
        better = "lower" if defined.direction == "lower" else "higher"
        raise InvalidInput(
            f"comparator: {defined.key} is better {better}, so its objective is "
            f"{'<=' if better == 'lower' else '>='} a target",
            "comparator",
        )
    target = values.get("target")
    if target is None:
        raise InvalidInput("target: required", "target")
    if isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target):
        raise InvalidInput("target: must be a number", "target")
    if metric in MEAN_METRICS and not 0 <= target <= 100:
        raise InvalidInput("target: a mean is on the 0-100 scale", "target")
    if metric in SHARE_METRICS and not 0 <= target <= 1:
        raise InvalidInput("target: a share is a fraction from 0 to 1 (0.95 for 95 %)", "target")
    period = values.get("period") or "month"
    if period not in OBJECTIVE_PERIODS:
        raise InvalidInput(f"period: must be one of {list(OBJECTIVE_PERIODS)}", "period")
    if metric == "indicator_value" and period not in ("month", "quarter"):
        raise InvalidInput("period: an indicator's figures are kept by month or quarter, not rolling_30", "period")
    min_n = values.get("min_n")
    if min_n is None:
        min_n = default_min_n or DEFAULT_MIN_N
    if isinstance(min_n, bool) or not isinstance(min_n, int) or not 1 <= min_n <= 10**7:
        raise InvalidInput("min_n: must be a whole number of at least 1", "min_n")
    owner = values.get("owner")
    if owner is not None and (not isinstance(owner, str) or not user_store.exists(conn, owner, enabled=True)):
        raise InvalidInput(f"owner: no user {owner!r}", "owner")
    method = values.get("method") or "wilson"
    if method != "wilson":
        raise InvalidInput("method: must be 'wilson'", "method")
    title = values.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE):
        raise InvalidInput(f"title: must be text of at most {MAX_TITLE} characters", "title")
    titles = _check_titles(values.get("titles"))
    if metric == "indicator_mean":
        if indicator is None:
            raise InvalidInput("indicator: required for the metric indicator_mean", "indicator")
        if indicator not in INDICATORS:
            raise InvalidInput(f"indicator: must be one of {list(INDICATORS)}", "indicator")
    elif indicator is not None and metric != "indicator_value":
        raise InvalidInput("indicator: only the metrics indicator_mean and indicator_value take one", "indicator")
    service = values.get("service") or None
    if service is not None and (not isinstance(service, str) or not organisation_store.service_exists(conn, service)):
        raise InvalidInput(f"service: no service {service!r}", "service")
    if service is not None and metric == "indicator_value":
        # An indicator's figures are kept per unit and period, never per service.
        raise InvalidInput("service: an indicator_value objective covers the whole unit, not one service", "service")
    valid_from = _parse_day(values["valid_from"], "valid_from") if values.get("valid_from") else _day(today)
    if previous is not None and valid_from < previous.valid_from:
        raise InvalidInput(
            f"valid_from: must not be before {previous.valid_from}, when the latest version took effect", "valid_from"
        )
    return {
        "metric": metric,
        "comparator": comparator,
        "target": float(target),
        "period": period,
        "min_n": min_n,
        "owner": owner,
        "method": method,
        "title": title,
        "titles": titles,
        "indicator": indicator,
        "service": service,
        "valid_from": valid_from,
    }


def _check_titles(titles: Any) -> dict[str, str] | None:
    """The title in other languages: an object of language code -> text (empty ones left out)."""
    if titles is None:
        return None
    if not isinstance(titles, dict):
        raise InvalidInput("titles: must be an object of language -> title", "titles")
    kept = {}
    for lang, text in titles.items():
        if lang not in LANGUAGES:
            raise InvalidInput(f"titles: {lang!r} is not one of {list(LANGUAGES)}", "titles")
        if not isinstance(text, str) or len(text) > MAX_TITLE:
            raise InvalidInput(f"titles: must be text of at most {MAX_TITLE} characters", "titles")
        if text.strip():
            kept[lang] = text.strip()
    return kept or None


def _insert_version(
    conn: Connection, objective_id: int, version: int, checked: dict[str, Any], actor: str | None
) -> None:
    titles = checked.get("titles")
    objective_store.insert_version(
        conn,
        {
            **checked,
            "titles": json.dumps(titles, ensure_ascii=False) if titles else None,
            "objective": objective_id,
            "version": version,
            "created_at": _now(),
            "created_by": actor,
        },
    )


def check_reported_metric(unit: str, metric: str) -> None:
    """A unit a child installation reports ("<child>:<code>") is judged on its reported rollups only: refuse
    a metric they cannot judge (dossiers, indicators, actions, exposure never cross)."""
    if response_store.REPORTED_MARK in unit and metric not in REPORTED_METRICS:
        raise InvalidInput(
            f"metric: {unit!r} is reported by a child installation, whose reports judge only {list(REPORTED_METRICS)}",
            "metric",
        )


def create_objective(
    conn: Connection,
    unit: str,
    spec: dict[str, Any],
    *,
    actor: str | None,
    today: date | str,
    default_min_n: int | None = None,
    plugins: PluginManager | None = None,
) -> int:
    """A new objective for a unit with its first version; returns its id."""
    if not isinstance(unit, str) or not organisation_store.unit_exists(conn, unit):
        raise InvalidInput(f"unit: no unit {unit!r}", "unit")
    checked = validate_spec(conn, spec, today=today, default_min_n=default_min_n, plugins=plugins)
    check_reported_metric(unit, checked["metric"])
    with audit.tracked(conn, "objective", None, "create") as change:
        change.record_id = str(objective_store.insert_objective(conn, unit, _now(), actor))
        _insert_version(conn, int(change.record_id), 1, checked, actor)
    return int(change.record_id)


def load_versions(conn: Connection, objective_id: int) -> list[ObjectiveVersion]:
    """Every version of an objective, oldest first; NotFound when there is no such objective."""
    rows = objective_store.versions(conn, objective_id)
    if not rows:
        raise NotFound(f"id: no objective {objective_id}", "id")
    versions = []
    for data in rows:
        data.pop("created_at")
        data.pop("created_by")
        versions.append(msgspec.convert(data, ObjectiveVersion, strict=False))
    return versions


def new_version(
    conn: Connection,
    objective_id: int,
    spec: dict[str, Any],
    *,
    actor: str | None,
    today: date | str,
    plugins: PluginManager | None = None,
) -> int:
    """Append a version in force from `valid_from` (default today); returns its number."""
    versions = load_versions(conn, objective_id)
    latest = versions[-1]
    if latest.retired_from is not None:
        raise Conflict(f"id: objective {objective_id} is retired from {latest.retired_from}", "id")
    checked = validate_spec(conn, spec, today=today, previous=latest, plugins=plugins)
    check_reported_metric(latest.unit, checked["metric"])
    with audit.tracked(conn, "objective", objective_id, "new_version"):
        _insert_version(conn, objective_id, latest.version + 1, checked, actor)
    return latest.version + 1


def retire_objective(conn: Connection, objective_id: int, *, actor: str | None, from_day: date | str) -> None:
    """The objective stops applying from a local day on; its versions and past states stay."""
    versions = load_versions(conn, objective_id)
    day = _parse_day(_day(from_day), "from")
    if versions[-1].retired_from is not None:
        raise Conflict(f"id: objective {objective_id} is already retired from {versions[-1].retired_from}", "id")
    if day < versions[0].valid_from:
        raise InvalidInput(f"from: must not be before {versions[0].valid_from}, when the objective took effect", "from")
    with audit.tracked(conn, "objective", objective_id, "retire"):
        retired = objective_store.retire(conn, objective_id, day, _now(), actor)
    if not retired:  # retired meanwhile by someone else
        raise Conflict(f"id: objective {objective_id} is already retired", "id")


def version_at(versions: Sequence[ObjectiveVersion], day: str) -> ObjectiveVersion | None:
    """The version in force on a day: the latest one that took effect on or before it."""
    found = None
    for version in versions:
        if version.valid_from <= day and (
            found is None or (version.valid_from, version.version) >= (found.valid_from, found.version)
        ):
            found = version
    return found


def version_document(version: ObjectiveVersion, row: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = {
        k: getattr(version, k)
        for k in (
            "version",
            "valid_from",
            "title",
            "titles",
            "metric",
            "indicator",
            "service",
            "comparator",
            "target",
            "period",
            "min_n",
            "owner",
            "method",
        )
    }
    if row is not None:
        doc["created_at"], doc["created_by"] = row["created_at"], row["created_by"]
    return doc


def objective_document(
    conn: Connection, objective_id: int, today: date | str, *, with_versions: bool = True
) -> dict[str, Any]:
    """An objective as the API shows it: its version in force today (else its first one) and history."""
    versions = load_versions(conn, objective_id)
    head = objective_store.head(conn, objective_id) or {}
    stamps = objective_store.version_stamps(conn, objective_id)
    day = _day(today)
    current = version_at(versions, day) or versions[0]
    retired_from = head["retired_from"]
    doc: dict[str, Any] = {
        "id": objective_id,
        "unit": head["unit"],
        **version_document(current),
        "current": version_document(current, stamps[current.version]),
        "retired": retired_from is not None and day >= retired_from,
        "retired_from": retired_from,
        "retired_at": head["retired_at"],
        "retired_by": head["retired_by"],
        "created_at": head["created_at"],
        "created_by": head["created_by"],
    }
    doc["versions"] = [version_document(v, stamps[v.version]) for v in versions] if with_versions else len(versions)
    return doc


def list_objectives(conn: Connection, units: list[str], today: date | str) -> list[dict[str, Any]]:
    return [
        objective_document(conn, objective_id, today, with_versions=False)
        for objective_id in objective_store.ids_of(conn, units)
    ]


# -- evaluation ---------------------------------------------------------------------------------


def period_of(period: str, at: date) -> tuple[date, date, str]:
    """(first day, last day, key) of the period that contains `at`, up to `at` itself."""
    if period == "month":
        return at.replace(day=1), at, f"{at.year}-{at.month:02d}"
    if period == "quarter":
        quarter = (at.month - 1) // 3
        return date(at.year, 3 * quarter + 1, 1), at, f"{at.year}-Q{quarter + 1}"
    if period == "rolling_30":
        return at - timedelta(days=29), at, f"R30:{at.isoformat()}"
    raise InvalidInput(f"period: must be one of {list(OBJECTIVE_PERIODS)}", "period")


def previous_period_end(period: str, at: date) -> date:
    """The last day of the complete period before the one that contains `at` (the month or quarter
    before, or the 30 days before a rolling window)."""
    start, _, _ = period_of(period, at)
    return start - timedelta(days=1)


def _rollup_sums(
    conn: Connection, units: list[str], date_from: str, date_to: str, service: str | None
) -> dict[str, float]:
    return response_store.rollup_totals(conn, units, date_from, date_to, service)


def _indicator_sums(
    conn: Connection, units: list[str], date_from: str, date_to: str, service: str | None, indicator: str
) -> tuple[int, float]:
    return response_store.indicator_totals(conn, units, date_from, date_to, indicator, service)


def measure(
    conn: Connection, snapshot: Snapshot, version: ObjectiveVersion, date_from: date, date_to: date
) -> tuple[float | None, int, float | None]:
    """(value, n, successes) of a metric over the unit's subtree; successes is None for means.

    Means are returned on the 0-100 scale, shares as fractions.
    """
    units = snapshot.subtree(version.unit)
    start, end = date_from.isoformat(), date_to.isoformat()
    metric = version.metric
    if metric in ("satisfaction", "not_dissatisfied", "bad_review_rate", "mean_score"):
        sums = _rollup_sums(conn, units, start, end, version.service)
        n = int(sums["n"])
        if metric == "mean_score":
            score_n = int(sums["score_n"])
            return (sums["score_sum"] / score_n if score_n else None), score_n, None
        successes = {
            "satisfaction": sums["satisfied"],
            "bad_review_rate": sums["dissatisfied"],
            "not_dissatisfied": n - sums["dissatisfied"],
        }[metric]
        return (successes / n if n else None), n, int(successes)
    if metric == "indicator_mean":
        n, total = _indicator_sums(conn, units, start, end, version.service, version.indicator or "")
        return (total / n if n else None), n, None
    if metric == "response_rate":
        cells = exposure_cells(conn, units, start, end, service=version.service)
        served = sum(cell["served"] for cell in cells)
        respondents = sum(cell["respondents"] for cell in cells)
        return (respondents / served if served else None), served, respondents
    if metric == "dossier_on_time":
        successes, n = dossiers.on_time_counts(conn, snapshot, version.unit, start, end, version.service)
        return (successes / n if n else None), n, successes
    if metric == "indicator_value":
        # A figure covers a whole month or quarter: the period's, whatever day of it `date_to` is.
        successes, n = indicators.objective_counts(
            conn, snapshot, version.unit, version.indicator or "", version.period, date_to
        )
        return (successes / n if n else None), n, successes
    # Corrective-action KPIs are counted where the actions live.
    counter = actions.metric_on_time if metric == "on_time_rectification" else actions.metric_callback
    successes, n = counter(conn, snapshot, version.unit, start, end)
    return (successes / n if n else None), n, successes


def interval(
    version: ObjectiveVersion, value: float | None, n: int, successes: float | None
) -> tuple[float, float] | None:
    """Wilson 95 % on the metric's own scale.

    For a mean the value is scaled to 0-1 and the Wilson interval of that mean is used: a variable
    bounded in [0, 1] with mean μ has variance at most μ(1−μ), the variance of a 0/1 variable with the
    same mean, so this interval is valid and conservative (never narrower than the true one needs).
    """
    if value is None or n <= 0:
        return None
    if version.metric in MEAN_METRICS:
        bounds = wilson(min(max(value / 100, 0.0), 1.0) * n, n)
        return None if bounds is None else (bounds[0] * 100, bounds[1] * 100)
    return wilson(successes if successes is not None else value * n, n)


def judge(comparator: str, target: float, low: float, high: float) -> str:
    if comparator == ">=":
        return "met" if low >= target else "breached" if high < target else "at_risk"
    return "met" if high <= target else "breached" if low > target else "at_risk"


def evaluate(conn: Connection, snapshot: Snapshot, version: ObjectiveVersion, at: date) -> dict[str, Any]:
    """The status document of one objective version for the period containing `at`."""
    date_from, date_to, key = period_of(version.period, at)
    doc: dict[str, Any] = {
        "objective": version.objective,
        "version": version.version,
        "unit": version.unit,
        "title": version.title,
        "metric": version.metric,
        "indicator": version.indicator,
        "service": version.service,
        "comparator": version.comparator,
        "target": version.target,
        "period": version.period,
        "period_key": key,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "at": at.isoformat(),
        "value": None,
        "n": 0,
        "ci95": None,
        "status": "insufficient_data",
        "signals": [],
        "owner": version.owner,
        "min_n": version.min_n,
    }
    if version.retired_from is not None and at.isoformat() >= version.retired_from:
        doc["status"] = "retired"
        return doc
    value, n, successes = measure(conn, snapshot, version, date_from, date_to)
    bounds = interval(version, value, n, successes)
    doc.update(value=value, n=n, ci95=list(bounds) if bounds else None)
    if successes is not None:
        doc["successes"] = int(successes)
    if bounds is not None and n >= version.min_n:
        doc["status"] = judge(version.comparator, version.target, *bounds)
    if version.metric in CHART_METRICS:
        chart = p_chart(conn, snapshot, version.unit, at, CHART_WEEKS, version.service, version.metric)
        overlapping = {week["week"] for week in chart["weeks"] if week["to"] >= doc["from"]}
        doc["signals"] = [signal for signal in chart["signals"] if signal["week"] in overlapping]
    return doc


def status_at(conn: Connection, snapshot: Snapshot, objective_id: int, at: date) -> dict[str, Any]:
    """The status on a day, judged by the version in force that day (a retired objective is "retired")."""
    versions = load_versions(conn, objective_id)
    version = version_at(versions, at.isoformat())
    if version is None:
        raise InvalidInput(f"at: objective {objective_id} takes effect on {versions[0].valid_from}", "at")
    return evaluate(conn, snapshot, version, at)


# -- the periodic evaluation --------------------------------------------------------------------


def _previous_state(conn: Connection, objective: int, period: str, key: str) -> tuple[bool, list]:
    """(was the stored state a breach, the signals it had seen) for a new evaluation.

    Months and quarters compare with the state of the same period. A rolling window gets a new key
    every day, so it compares with the latest earlier window that still overlaps it: one breach
    episode is one breach.
    """
    rows = [(row["period"], row["status"], row["signals"]) for row in objective_store.states(conn, objective)]
    same = next((row for row in rows if row[0] == key), None)
    oldest = ""
    if key.startswith("R30:"):
        oldest = "R30:" + (date.fromisoformat(key[4:]) - timedelta(days=29)).isoformat()
    earlier = max(
        (row for row in rows if _same_kind(row[0], key) and oldest <= row[0] < key),
        default=None,
        key=lambda row: row[0],
    )
    latest = same or earlier
    breach_row = latest if period == "rolling_30" else same
    signals = json.loads(latest[2]) if latest is not None and latest[2] else []
    return breach_row is not None and breach_row[1] == "breached", signals


def _same_kind(a: str, b: str) -> bool:
    def kind(key: str) -> str:
        return "rolling" if key.startswith("R30:") else "quarter" if "-Q" in key else "month"

    return kind(a) == kind(b)


def _signal_key(signal: dict[str, Any]) -> tuple:
    return signal.get("rule"), signal.get("week"), signal.get("side")


def needs_triggers(status: dict[str, Any], breached_before: bool, seen: list[dict[str, Any]]) -> bool:
    """Ask the plugins for corrective actions only about something new: a breach or an adverse signal."""
    if status["status"] == "breached" and not breached_before:
        return True
    known = {_signal_key(signal) for signal in seen}
    return any(signal.get("adverse") and _signal_key(signal) not in known for signal in status["signals"])


def _store_states(items: list[tuple[ObjectiveVersion, dict[str, Any]]], evaluated_at: str):
    """Writer job: upsert each state and log `objective.breached` for each that just became a breach
    (in the same transaction); returns those status docs."""

    def job(conn: Connection) -> list[dict[str, Any]]:
        breached = []
        for version, status in items:
            breached_before, _ = _previous_state(conn, version.objective, version.period, status["period_key"])
            if status["status"] == "breached" and not breached_before:
                breached.append(status)
            low, high = status["ci95"] or (None, None)
            objective_store.upsert_state(
                conn,
                version.objective,
                status["period_key"],
                status["status"],
                status["value"],
                status["n"],
                low,
                high,
                json.dumps(status["signals"]),
                evaluated_at,
            )
        record(conn, [breached_event(status, evaluated_at) for status in breached])
        return breached

    return job


def breached_event(status: dict[str, Any], at: str) -> Event:
    return Event(
        type="objective.breached",
        id=f"objective.breached:{status['objective']}:{status['period_key']}",
        created_at=at,
        data=dict(status),
    )


def local_today(snapshot: Snapshot, unit: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(snapshot.units[unit].tz)).date()


async def run_evaluation(ctx: JobContext) -> list[dict[str, Any]]:
    """Evaluate every objective in force on its unit's local today; store states, log breaches, open actions.

    Returns the status documents evaluated.
    """
    snapshot = ctx.snapshot

    def evaluate_all(conn: Connection) -> list[tuple[ObjectiveVersion, dict[str, Any], bool, list]]:
        found = []
        for unit in sorted(snapshot.objective_versions):
            if unit not in snapshot.units:
                continue
            today = local_today(snapshot, unit, ctx.now)
            for version in snapshot.objectives_in_force(unit, today.isoformat(), with_ancestors=False):
                status = evaluate(conn, snapshot, version, today)
                breached_before, seen = _previous_state(conn, version.objective, version.period, status["period_key"])
                found.append((version, status, breached_before, seen))
        return found

    evaluated = await ctx.store.read(evaluate_all)
    to_store: list[tuple[ObjectiveVersion, dict[str, Any]]] = []
    for version, status, breached_before, seen in evaluated:
        if needs_triggers(status, breached_before, seen):
            try:
                await open_triggered(ctx, version, status)
            except Exception as error:  # noqa: BLE001 - the state is not stored, so the next run retries
                ctx.store.plugins.failures.record("objectives", "open_requested", error)
                continue
        to_store.append((version, status))
    await ctx.store.write(_store_states(to_store, ctx.now.isoformat()))
    return [status for _, status in to_store]


async def open_triggered(ctx: JobContext, version: ObjectiveVersion, status: dict[str, Any]) -> None:
    """Ask `evaluate_triggers` what to open for a breach or a signal, and open it (idempotent on source_key)."""
    results = ctx.store.plugins.hook.evaluate_triggers(
        objective=version, status=status, response=None, hits=None, snapshot=ctx.snapshot
    )
    requests = [item for item in flatten(results) if isinstance(item, ActionRequest)]
    if not requests:
        return
    await actions.open_requested(
        ctx.store, ctx.snapshot, requests, ctx.now, default_days=ctx.settings.default_action_days
    )


def jobs() -> list[Job]:
    return [Job("objectives.evaluate", every=900, run=run_evaluation)]
