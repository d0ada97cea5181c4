"""Corrective actions (ISO 9001 10.2): the state machine, opening, deadlines, escalation, effectiveness.

An action is opened by a plugin's `evaluate_triggers` (a bad review, a call-back, a breached
objective), by the objectives job, or by hand. Every step is an append-only `action_events` row with
who, when and the ISO 10.2 record (correction, root cause, similar cases, action taken, result).
Deadlines are counted in working days on the unit's calendar; an overdue action escalates to the
manager above; after an action is implemented the software watches the same unit / service /
indicator for some weeks and closes the action when the rate's whole Wilson interval clears the
target, reopens it when the whole interval misses it, and otherwise watches longer, then leaves the
decision to the owner with the figures on record.

Every function taking `conn` runs inside the caller's transaction (the store's writer or a reader);
the `async` ones write through the store. Each change logs its event (`action.opened`,
`action.changed`, `action.due_soon`, `action.overdue`) in its own transaction; the dispatcher hands
it to the `track_event` bus after commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import audit, callbacks, dossiers
from feedback.calendars import add_working_days, working_days_between
from feedback.catalog import Snapshot
from feedback.db import Store, deferred, held
from feedback.errors import Conflict, Forbidden, InvalidInput, NotFound
from feedback.events import record
from feedback.i18n import gettext_for
from feedback.jobs import Job, JobContext
from feedback.models import ActionRequest, Event, is_suspect
from feedback.plugins import PluginManager
from feedback.rates import decimals, proportion, wilson
from feedback.store import actions as action_store
from feedback.store import exposure as exposure_store
from feedback.store import organisation as organisation_store
from feedback.store import responses as response_store

STATES = (
    "new",
    "verifying",
    "corrected",
    "action_planned",
    "explained",
    "appealed",
    "appeal_upheld",
    "appeal_rejected",
    "implemented",
    "effectiveness_review",
    "closed",
    "reopened",
)
# What a person may do. `appeal_upheld` is terminal: the action is closed and the response leaves the KPIs.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"verifying"}),
    "verifying": frozenset({"corrected", "action_planned", "explained", "appealed"}),
    "corrected": frozenset({"implemented"}),
    "action_planned": frozenset({"implemented"}),
    "implemented": frozenset({"effectiveness_review"}),
    "effectiveness_review": frozenset({"closed"}),
    "explained": frozenset({"closed"}),
    "appealed": frozenset({"appeal_upheld", "appeal_rejected"}),
    "appeal_rejected": frozenset({"verifying"}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"verifying"}),
    "appeal_upheld": frozenset(),
}
# What the effectiveness check may do on top: close a recovered action, reopen one that did not recover.
SYSTEM_TRANSITIONS: dict[str, frozenset[str]] = {
    "effectiveness_review": frozenset({"closed", "reopened"}),
    "closed": frozenset({"reopened"}),
}
CLOSED_STATES = frozenset({"closed", "appeal_upheld"})
SYSTEM = "system"
# The ISO 10.2 record a step may carry, besides `due` (action_planned) and `explanation` (explained).
RECORD_FIELDS = ("note", "correction", "root_cause", "similar_cases", "action_taken", "result", "explanation")
MAX_TEXT = 10_000
BASELINE_DAYS = 90  # the rate before an action opened, the target when the action names none
MAX_WATCH_EXTENSIONS = 3  # weeks added to a watch that has too few responses, before giving up
MEAN_METRICS = frozenset({"mean_score", "indicator_mean"})
EFFECT_METRICS = frozenset(
    {
        "satisfaction",
        "not_dissatisfied",
        "mean_score",
        "bad_review_rate",
        "indicator_mean",
        "response_rate",
        "on_time_rectification",
        "callback_rate",
        "dossier_on_time",
    }
)
#: The metrics an action's baseline reads from the rollups alone (the others read actions, call-backs,
#: dossiers or exposure, which a group commit's other jobs may change).
ROLLUP_METRICS = frozenset({"satisfaction", "not_dissatisfied", "bad_review_rate", "mean_score", "indicator_mean"})

_json = msgspec.json.Encoder()


def N_(message: str) -> str:
    """Marks a message for translation; it is translated into the unit's language when written."""
    return message


# System notes are written into the record in the language of the unit that keeps it.
NOTE_EFFECTIVE = N_("effective: %(rate)s over %(n)s responses from %(start)s to %(end)s, target %(target)s")
NOTE_NOT_EFFECTIVE = N_(
    "not effective: %(rate)s over %(n)s responses from %(start)s to %(end)s does not reach the target %(target)s"
)
NOTE_CONFIRMED = N_(
    "Still effective after closing: %(rate)s over %(n)s responses from %(start)s to %(end)s, target %(target)s"
)
NOTE_EXTENDED = N_("Too few responses (%(n)s) to judge effectiveness; watching until %(until)s")
NOTE_TOO_FEW = N_("Effectiveness could not be judged: only %(n)s responses from %(start)s to %(end)s")
NOTE_NO_TARGET = N_("Effectiveness could not be judged: no target and no earlier rate to compare with")
NOTE_UNDECIDED = N_(
    "Not clear yet: %(rate)s over %(n)s responses from %(start)s to %(end)s (95 %% interval %(low)s to %(high)s)"
    " neither clears nor misses the target %(target)s; watching until %(until)s"
)
NOTE_DECISION = N_(
    "Decision needed: %(rate)s over %(n)s responses from %(start)s to %(end)s (95 %% interval %(low)s to"
    " %(high)s) still neither clears nor misses the target %(target)s; the owner closes or reopens the action"
)
NOTE_UNCONFIRMED = N_(
    "Effectiveness after closing not confirmed: %(rate)s over %(n)s responses from %(start)s to %(end)s"
    " (95 %% interval %(low)s to %(high)s) neither clears nor misses the target %(target)s"
)
NOTE_ESCALATED = N_("Overdue since %(due)s; escalated to %(user)s")
NOTE_NOT_ESCALATED = N_("Overdue since %(due)s; no manager above to escalate to")


# -- small helpers ---------------------------------------------------------------------------------
def _tz(snapshot: Snapshot | None, unit: str) -> str:
    found = snapshot.units.get(unit) if snapshot else None
    return found.tz if found else "UTC"


def local_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


def _local_day_of(stamp: str | None, tz: str) -> date | None:
    if not stamp:
        return None
    return local_day(datetime.fromisoformat(stamp), tz)


def _parse_day(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", field)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", field) from None


def _decode(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return default


def _text(unit_lang: str, message: str, **values: Any) -> str:
    return gettext_for(unit_lang)(message) % values


def _lang(snapshot: Snapshot, unit: str) -> str:
    found = snapshot.units.get(unit)
    return found.lang if found else "en"


def owner_above(snapshot: Snapshot, unit: str, besides: str | None = None) -> str | None:
    """The owner of the nearest unit strictly above `unit` who is not `besides` (escalation)."""
    if unit not in snapshot.units:
        return None
    for code in snapshot.ancestors(unit)[1:]:
        owner = snapshot.units[code].owner
        if owner and owner != besides:
            return owner
    return None


def default_owner(snapshot: Snapshot, unit: str) -> str | None:
    """The owner of the unit, else of the nearest unit above it that has one."""
    for code in snapshot.ancestors(unit):
        owner = snapshot.units[code].owner
        if owner:
            return owner
    return None


# -- the action as the API and the event bus show it -------------------------------------------------
def decision_needed(row: dict[str, Any]) -> bool:
    """Under effectiveness review with the watch over and no verdict (the figures neither cleared nor
    missed the target, or could not be judged): the owner closes or reopens the action."""
    return row["status"] == "effectiveness_review" and not row["watch_until"]


def allowed_moves(row: dict[str, Any]) -> frozenset[str]:
    """The next states a person may choose: the workflow's, and reopening when a decision is needed (while
    the software watches, only it reopens; once it could not decide, the owner may)."""
    allowed = TRANSITIONS.get(row["status"], frozenset())
    return allowed | {"reopened"} if decision_needed(row) else allowed


def action_json(
    row: dict[str, Any], snapshot: Snapshot | None = None, now: datetime | None = None, tz: str | None = None
) -> dict[str, Any]:
    """An `actions` row in the shape of the public contract (plus watch figures)."""
    tz = tz or _tz(snapshot, row["unit"])
    today = local_day(now or datetime.now(UTC), tz)
    overdue = bool(row["due"]) and row["status"] not in CLOSED_STATES and date.fromisoformat(row["due"]) < today
    if row["source_type"] == "response":
        source: dict[str, Any] = {"type": "response", "response_id": row["response_id"]}
    elif row["source_type"] == "objective":
        source = {"type": "objective", "objective": row["objective_id"], "period": row["period"]}
    else:
        source = {"type": row["source_type"]}
    return {
        "id": row["id"],
        "kind": row["kind"],
        "unit": row["unit"],
        "service": row["service"],
        "touchpoint": row["touchpoint"],
        "indicator": row["indicator"],
        "title": row["title"],
        "status": row["status"],
        "owner": row["owner"],
        "due": row["due"],
        "overdue": overdue,
        "opened_at": row["opened_at"],
        "updated_at": row["updated_at"],
        "closed_at": row["closed_at"],
        "escalated_to": row["escalated_to"],
        "source": source,
        "response_id": row["response_id"],
        "objective_id": row["objective_id"],
        "period": row["period"],
        "watch_from": row["watch_from"],
        "watch_until": row["watch_until"],
        "decision_needed": decision_needed(row),
        "reopen_count": row["reopen_count"],
        "target": row["target"],
        "baseline": row["baseline"],
        "created_by": row["created_by"],
    }


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "action": row["action"],
        "type": row["type"],
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "actor": row["actor"],
        "at": row["at"],
        "note": row["note"],
        "correction": row["correction"],
        "root_cause": row["root_cause"],
        "similar_cases": row["similar_cases"],
        "action_taken": row["action_taken"],
        "result": row["result"],
        "explanation": row["explanation"],
        "due": row["due"],
        "data": _decode(row["data"], {}),
    }


def _action_row(conn: sqlite3.Connection, action_id: int) -> dict[str, Any]:
    found = action_store.get(conn, action_id)
    if found is None:
        raise NotFound(f"id: no corrective action {action_id}", "id")
    return found


def _append_event(
    conn: sqlite3.Connection,
    action_id: int,
    type_: str,
    *,
    from_status: str | None,
    to_status: str | None,
    actor: str,
    at: str,
    record: dict[str, str] | None = None,
    due: str | None = None,
    data: dict[str, Any] | None = None,
    unit: str | None = None,
) -> dict[str, Any]:
    """One append-only step of the record (the database refuses to change or delete it later), and its
    audit entry."""
    record = record or {}
    values = {
        "action": action_id,
        "type": type_,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "at": at,
        **{f: record.get(f) for f in RECORD_FIELDS},
        "due": due,
        "data": _json.encode(data or {}).decode(),
    }
    row = action_store.append_event(conn, values)
    _audit_step(conn, row, unit or action_store.unit_of(conn, action_id))
    return event_json(row)


def _audit_step(conn: sqlite3.Connection, row: dict[str, Any], unit: str | None) -> None:
    """One audit entry per step: the move and a digest of the step's row, not its text (a note may name
    a citizen, and the audit log can never be erased; the step itself is kept in `action_events`)."""
    if row["type"] == "opened":
        verb = "open"
    elif row["from_status"] != row["to_status"]:
        verb = "transition"
    else:
        verb = "note"  # a step that records something without moving the action (escalation, a review)
    after = {
        "status": row["to_status"],
        "step": row["type"],
        "event_seq": row["seq"],
        "due": row["due"],
        "fields": [f for f in RECORD_FIELDS if row.get(f)],
        "event_sha256": hashlib.sha256(audit.canonical(row)).hexdigest(),
    }
    before = None if row["from_status"] is None else {"status": row["from_status"]}
    audit.record(conn, "action", row["action"], verb, before=before, after=after, unit=unit)


# -- what "recovered" means: the rate an action is judged on --------------------------------------------
def effect_spec(row: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    """Metric, comparator and minimum n an action's effectiveness is judged on.

    The request's data may name `metric` and `comparator`; an action opened for an objective is
    judged on that objective's metric; otherwise the indicator mean when an indicator is set, else the
    satisfaction share.
    """
    data = row.get("data")
    data = _decode(data, {}) if isinstance(data, str) else (data or {})
    metric, comparator, min_n = None, None, None
    if row.get("objective_id") is not None:
        versions = [v for v in snapshot.objective_versions.get(row["unit"], ()) if v.objective == row["objective_id"]]
        if versions:
            metric, comparator, min_n = versions[-1].metric, versions[-1].comparator, versions[-1].min_n
    metric = data.get("metric") or metric
    if metric not in EFFECT_METRICS:
        metric = "indicator_mean" if row.get("indicator") else "satisfaction"
    if metric == "indicator_mean" and not row.get("indicator"):
        metric = "satisfaction"
    comparator = data.get("comparator") or comparator
    if comparator not in (">=", "<="):
        comparator = "<=" if metric == "bad_review_rate" else ">="
    return {"metric": metric, "comparator": comparator, "min_n": min_n}


def normalise_target(target: float | None, metric: str) -> float | None:
    """Targets of means are written on 0-100; every rate here is a fraction 0-1."""
    if target is None:
        return None
    return target / 100.0 if metric in MEAN_METRICS and target > 1 else target


def effect_rate(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    unit: str,
    metric: str,
    date_from: str,
    date_to: str,
    *,
    service: str | None = None,
    indicator: str | None = None,
) -> tuple[float, int]:
    """(successes, n) of a metric over a unit's subtree between two local days, from rollups.

    Means count as shares: the mean 0-100 over n responses is read as mean/100 successes per response.
    """
    if metric == "on_time_rectification":
        return metric_on_time(conn, snapshot, unit, date_from, date_to)
    if metric == "callback_rate":
        return metric_callback(conn, snapshot, unit, date_from, date_to)
    if metric == "dossier_on_time" and unit in snapshot.units:
        return dossiers.on_time_counts(conn, snapshot, unit, date_from, date_to, service)
    units = snapshot.subtree(unit) if unit in snapshot.units else [unit]
    if metric == "indicator_mean":
        count, total = response_store.indicator_totals(conn, units, date_from, date_to, indicator or "", service)
        return total / 100.0, count
    sums = response_store.rollup_totals(conn, units, date_from, date_to, service)
    n, satisfied, dissatisfied = int(sums["n"]), sums["satisfied"], sums["dissatisfied"]
    score_n, score_sum = int(sums["score_n"]), sums["score_sum"]
    if metric == "not_dissatisfied":
        return float(n - dissatisfied), n
    if metric == "bad_review_rate":
        return float(dissatisfied), n
    if metric == "mean_score":
        return float(score_sum) / 100.0, score_n
    if metric == "response_rate":
        served = exposure_store.served_total(conn, units, date_from, date_to, service)
        return float(min(n, served)), served
    return float(satisfied), n


def _baseline(conn: sqlite3.Connection, snapshot: Snapshot, row: dict[str, Any], spec: dict[str, Any]) -> float | None:
    """The rate over the 90 days before the action opened (None without any response then)."""
    opened = _local_day_of(row["opened_at"], _tz(snapshot, row["unit"]))
    start, end = opened - timedelta(days=BASELINE_DAYS), opened - timedelta(days=1)
    # In a group commit, responses stored before this one may still be held unwritten (an offline
    # kiosk's queue, last week's paper forms): the baseline counts them. Live traffic, of the opening
    # day itself, lies outside the window and is left held.
    unwritten = held("rollups")
    read = deferred("baselines", _BaselinesRead)  # None outside a writer's transaction
    if unwritten is not None and unwritten.holds_day_between(start.isoformat(), end.isoformat()):
        unwritten.flush(conn)
        if read is not None:
            read.rates.clear()  # those days' rollups just changed
    key = None
    if read is not None and spec["metric"] in ROLLUP_METRICS:
        units = tuple(snapshot.subtree(row["unit"])) if row["unit"] in snapshot.units else (row["unit"],)
        key = (units, spec["metric"], start, end, row.get("service"), row.get("indicator"))
        if key in read.rates:
            return read.rates[key]
    successes, n = effect_rate(
        conn,
        snapshot,
        row["unit"],
        spec["metric"],
        start.isoformat(),
        end.isoformat(),
        service=row.get("service"),
        indicator=row.get("indicator"),
    )
    rate = successes / n if n else None
    if key is not None and read is not None:
        read.rates[key] = rate
    return rate


class _BaselinesRead:
    """The baselines a group commit has read, by subtree, metric, window, service and indicator: a burst
    of bad reviews for one counter opens an action each, and each would read the same 90 days of
    rollups again (a round trip each on PostgreSQL). The window ends the day before the opening, so
    the commit's own live responses never fall in it; held rollups that do are written first, and
    the rates read so far forgotten. A `Deferred` with nothing to write: it lasts until the writer
    next flushes (before any job that does not defer, and before the commit)."""

    __slots__ = ("rates",)

    def __init__(self) -> None:
        self.rates: dict[tuple, float | None] = {}

    def flush(self, conn: sqlite3.Connection) -> None:
        self.rates.clear()


# -- opening ---------------------------------------------------------------------------------------------
def open_action(
    conn: sqlite3.Connection,
    request: ActionRequest,
    *,
    snapshot: Snapshot,
    now: datetime,
    actor: str = SYSTEM,
    default_days: int = 10,
    owner: str | None = None,
    note: str | None = None,
    plugins: PluginManager | None = None,
    assigned: bool = False,
    response_contact: bool | None = None,
) -> dict[str, Any] | None:
    """Open one action in the caller's write transaction; None when its `source_key` was opened before.

    The owner is `owner`, else (unless `assigned`: the caller chose it before the write, with
    `choose_owner`) the answer of `plugins`' `corrective_action_assignee`, else the unit's owner or
    the nearest one above. The deadline is `request.due`, else the `working_days`-th working day
    (the request's, else the unit's `action_days`, else `default_days`) after the local opening day.
    `response_contact`: whether the response behind it left a consented contact, when the caller has
    just stored that response and knows (None: looked up).
    """
    unit = snapshot.units.get(request.unit)
    if unit is None:
        raise NotFound(f"unit: no unit {request.unit!r}", "unit")
    if owner is None and not assigned:
        owner = choose_owner(request, snapshot, plugins)
    opened_day = local_day(now, unit.tz)
    due = None
    opening: dict[str, Any] = {"kind": request.kind, "source_key": request.source_key, "owner": owner}
    if request.due is not None:
        try:
            due = date.fromisoformat(request.due)
        except (TypeError, ValueError):
            # Opened inside a response's own write: a plugin's malformed day must not lose the response.
            opening["due_ignored"] = str(request.due)
    if due is None:
        days = request.working_days
        if days is None:
            days = unit.action_days if unit.action_days is not None else default_days
        due = add_working_days(opened_day, max(0, days), unit.country)
    if request.response_id:
        source_type = "response"
    elif request.objective_id is not None:
        source_type = "objective"
    else:
        source_type = "manual"
    stamp = now.isoformat()
    row = {
        "kind": request.kind,
        "source_key": request.source_key,
        "source_type": source_type,
        "response_id": request.response_id,
        "objective_id": request.objective_id,
        "period": request.period,
        "unit": unit.code,
        "service": request.service,
        "touchpoint": request.touchpoint,
        "indicator": request.indicator,
        "title": request.title,
        "status": "new",
        "owner": owner,
        "due": due.isoformat(),
        "opened_at": stamp,
        "updated_at": stamp,
        "target": request.target,
        "created_by": actor,
        "data": _json.encode(request.data).decode(),
    }
    row["baseline"] = _baseline(conn, snapshot, row, effect_spec(row, snapshot))
    stored = action_store.insert(conn, row)
    if stored is None:  # a replayed cause: one action per source key, nothing else to do
        return None
    action_id = stored["id"]
    _append_event(
        conn,
        action_id,
        "opened",
        from_status=None,
        to_status="new",
        actor=actor,
        at=stamp,
        record={"note": note} if note else None,
        due=row["due"],
        data=opening,
        unit=unit.code,
    )
    # The call-back it owes the respondent, if any (whether the response left a contact: as the caller
    # knows it, storing that response in this job, else looked up).
    callbacks.register(conn, stored, stamp, has_contact=response_contact)
    action = action_json(stored, snapshot, now)
    record(conn, [opened_event(action, now)], new_aggregates=True)  # in the opening's own transaction
    return action


def choose_owner(request: ActionRequest, snapshot: Snapshot, plugins: PluginManager | None) -> str | None:
    """Who owns a new action: the answer of `plugins`' `corrective_action_assignee`, else the unit's
    owner or the nearest one above (None for a unit the snapshot does not know)."""
    unit = snapshot.units.get(request.unit)
    if unit is None:
        return None
    chosen = plugins.hook.corrective_action_assignee(action=request, unit=unit, snapshot=snapshot) if plugins else None
    return chosen if isinstance(chosen, str) and chosen else default_owner(snapshot, unit.code)


async def choose_owners(
    requests: list[ActionRequest], snapshot: Snapshot, plugins: PluginManager | None
) -> list[str | None]:
    """`choose_owner` for each request, before the write and on a worker thread: an assignee that looks
    people up (a directory, a duty roster) holds up only its own caller, never the writer thread, the
    other writes or the event loop."""
    return await asyncio.to_thread(lambda: [choose_owner(request, snapshot, plugins) for request in requests])


def opened_event(action: dict[str, Any], now: datetime) -> Event:
    return Event(type="action.opened", id=f"action.opened:{action['id']}", created_at=now.isoformat(), data=action)


def changed_event(action: dict[str, Any], event: dict[str, Any], now: datetime, callback: bool = False) -> Event:
    data = {**action, "event": event}
    if callback:
        data["callback"] = True
    return Event(
        type="action.changed", id=f"action.changed:{action['id']}:{event['seq']}", created_at=now.isoformat(), data=data
    )


async def open_requested(
    store: Store,
    snapshot: Snapshot,
    requests: list[ActionRequest],
    now: datetime,
    *,
    default_days: int = 10,
    actor: str = SYSTEM,
) -> list[dict[str, Any]]:
    """Open several actions in one write (each logs its `action.opened` in it); returns those opened."""
    if not requests:
        return []
    owners = await choose_owners(requests, snapshot, store.plugins)

    def job(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        opened = []
        for request, owner in zip(requests, owners, strict=True):
            action = open_action(
                conn,
                request,
                snapshot=snapshot,
                now=now,
                actor=actor,
                default_days=default_days,
                owner=owner,
                assigned=True,
            )
            if action is not None:
                opened.append(action)
        return opened

    return await store.write(job)


async def open_manual(
    store: Store,
    snapshot: Snapshot,
    request: ActionRequest,
    now: datetime,
    *,
    actor: str,
    owner: str | None = None,
    note: str | None = None,
    default_days: int = 10,
) -> dict[str, Any]:
    """Open one action by hand (the API's POST); its `action.opened` is logged in the same write."""
    if owner is None and request.unit in snapshot.units:
        owner = (await choose_owners([request], snapshot, store.plugins))[0]

    def job(conn: sqlite3.Connection) -> dict[str, Any] | None:
        return open_action(
            conn,
            request,
            snapshot=snapshot,
            now=now,
            actor=actor,
            default_days=default_days,
            owner=owner,
            note=note,
            assigned=True,
        )

    action = await store.write(job)
    if action is None:
        raise Conflict(f"source_key: an action for {request.source_key!r} exists", "source_key")
    return action


# -- the state machine -------------------------------------------------------------------------------------
def _record(fields: dict[str, Any]) -> dict[str, str]:
    record = {}
    for name, value in fields.items():
        if name == "due" or value is None:
            continue
        if name not in RECORD_FIELDS:
            raise InvalidInput(f"{name}: not a field of a corrective-action step", name)
        if not isinstance(value, str):
            raise InvalidInput(f"{name}: must be text", name)
        if len(value) > MAX_TEXT:
            raise InvalidInput(f"{name}: longer than {MAX_TEXT} characters", name)
        if value.strip():
            record[name] = value.strip()
    return record


def _take_out_of_kpis(conn: sqlite3.Connection, response_id: str) -> None:
    """An upheld appeal: the response stays on record, flagged, and moves from rates to raw counts."""
    row = response_store.get(conn, response_id)
    if row is None:
        return
    flags = list(_decode(row["flags"], []))
    if "appeal_upheld" in flags:
        return
    was_suspect = is_suspect(flags)
    before = audit.response_row(conn, response_id)
    response_store.set_flags(conn, response_id, _json.encode(sorted({*flags, "appeal_upheld"})).decode())
    # The flag changes the stored response: logged, so the seal of its day still verifies.
    audit.response_changed(conn, response_id, "appeal_upheld", before, audit.response_row(conn, response_id))
    if not was_suspect:  # a suspect response was never in the rates: nothing to move
        response_store.add_to_rollups(conn, row, _decode(row["indicators"], {}), suspect=False, sign=-1)
        response_store.add_to_rollups(conn, row, {}, suspect=True, sign=1)


def transition(
    conn: sqlite3.Connection,
    action_id: int,
    target: str,
    *,
    actor: str,
    role: str,
    fields: dict[str, Any],
    snapshot: Snapshot,
    now: datetime,
    weeks: int = 4,
    data: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move an action to `target` in the caller's write transaction; returns (action, the new event).

    Raises NotFound (unknown id), InvalidInput (unknown state, missing or bad field), Conflict (not
    allowed from the current state, or another step moved the action first) or Forbidden (a role that
    may not act; an appeal decided by the rated officer or by the person who appealed). `weeks` is how
    long an effectiveness review watches.
    """
    move = plan_transition(
        conn, action_id, target, actor=actor, role=role, fields=fields, snapshot=snapshot, now=now, weeks=weeks
    )
    return apply_move(conn, move, snapshot, now, data)


class Move(msgspec.Struct, frozen=True):
    """One checked step, planned from the action as it was read: applied only while it is still so."""

    action_id: int
    from_status: str
    to_status: str
    updates: dict[str, Any]
    record: dict[str, str]
    due: str | None
    actor: str
    response_id: str | None


def plan_transition(
    conn: sqlite3.Connection,
    action_id: int,
    target: str,
    *,
    actor: str,
    role: str,
    fields: dict[str, Any],
    snapshot: Snapshot,
    now: datetime,
    weeks: int = 4,
) -> Move:
    """Read the action and check the step (every error `transition` names but a lost race); writes nothing."""
    row = _action_row(conn, action_id)
    if target not in STATES:
        raise InvalidInput(f"type: unknown state {target!r}; one of {list(STATES)}", "type")
    system = actor == SYSTEM and role == SYSTEM
    if not system and role not in ("admin", "manager"):
        raise Forbidden(f"role: {role!r} may not change a corrective action", "role")
    current = row["status"]
    allowed = allowed_moves(row)
    if system:
        allowed = allowed | SYSTEM_TRANSITIONS.get(current, frozenset())
    if target not in allowed:
        raise Conflict(
            f"type: an action in state {current!r} cannot move to {target!r}; allowed: {sorted(allowed)}", "type"
        )
    record = _record(fields)
    tz = _tz(snapshot, row["unit"])
    today = local_day(now, tz)
    stamp = now.isoformat()
    updates: dict[str, Any] = {"status": target, "updated_at": stamp}
    new_due = None
    if fields.get("due") is not None and target != "action_planned":
        raise InvalidInput("due: a due date is set only when moving to 'action_planned'", "due")
    if target == "action_planned":
        if fields.get("due") is None:
            raise InvalidInput("due: planning an action needs its due date", "due")
        planned = _parse_day(fields["due"], "due")
        if planned < today:
            raise InvalidInput(f"due: {planned.isoformat()} is in the past", "due")
        new_due = updates["due"] = planned.isoformat()
    if target == "explained" and not record.get("explanation"):
        raise InvalidInput("explanation: say why there is nothing to rectify", "explanation")
    if target == "appealed" and (row["source_type"] != "response" or not row["response_id"]):
        raise Conflict("type: only an action opened by a response can be appealed", "type")
    if target in ("appeal_upheld", "appeal_rejected"):
        officer = response_store.officer_of(conn, row["response_id"])
        if officer and officer == actor:
            raise Forbidden("actor: the rated officer may not decide their own appeal", "actor")
        if action_store.appellant(conn, action_id) == actor:
            raise Forbidden("actor: an appeal is decided by someone other than the person who appealed", "actor")
    if target in CLOSED_STATES:
        updates["closed_at"] = stamp
    if target == "reopened":
        updates.update(closed_at=None, reopen_count=row["reopen_count"] + 1, watch_from=None, watch_until=None)
    if target == "effectiveness_review":
        updates.update(
            watch_from=today.isoformat(), watch_until=(today + timedelta(weeks=weeks)).isoformat(), watch_extensions=0
        )
    return Move(action_id, current, target, updates, record, new_due, actor, row["response_id"])


def apply_move(
    conn: sqlite3.Connection, move: Move, snapshot: Snapshot, now: datetime, data: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write a planned step in the caller's write transaction: compare and set on the state it was
    planned from, so of two conflicting steps exactly one wins and the other is a Conflict (409)."""
    if not action_store.move(conn, move.action_id, move.from_status, move.updates):
        now_in = action_store.get(conn, move.action_id)
        raise Conflict(
            f"type: the action is no longer in state {move.from_status!r}"
            f" (another step moved it to {now_in['status'] if now_in else None!r}); reload it and try again",
            "type",
        )
    if move.to_status == "appeal_upheld":
        _take_out_of_kpis(conn, move.response_id)
    event = _append_event(
        conn,
        move.action_id,
        move.to_status,
        from_status=move.from_status,
        to_status=move.to_status,
        actor=move.actor,
        at=move.updates["updated_at"],
        record=move.record,
        due=move.due,
        data=data,
    )
    return action_json(_action_row(conn, move.action_id), snapshot, now), event


def _has_contact(conn: sqlite3.Connection, response_id: str | None) -> bool:
    return bool(response_id) and response_store.contact_of(conn, response_id) is not None


async def apply_transition(
    store: Store,
    snapshot: Snapshot,
    action_id: int,
    target: str,
    *,
    actor: str,
    role: str,
    fields: dict[str, Any],
    now: datetime,
    settings: Any,
) -> dict[str, Any]:
    """Write one step and, in the same transaction, its `action.changed` event (with `"callback": true`
    when a response whose respondent left consented contact reaches `closed`). Returns {"action", "event"}."""

    weeks = settings.effectiveness_weeks
    # Checked on a reader and written with compare-and-set: the writer only writes, and a step planned
    # from a state that another step left meanwhile is a Conflict (409), never a lost update.
    move = await store.read(
        lambda conn: plan_transition(
            conn, action_id, target, actor=actor, role=role, fields=fields, snapshot=snapshot, now=now, weeks=weeks
        )
    )

    def job(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        action, event = apply_move(conn, move, snapshot, now)
        callback = target == "closed" and _has_contact(conn, action["response_id"])
        record(conn, [changed_event(action, event, now, callback)])
        return action, event

    action, event = await store.write(job)
    return {"action": action, "event": event}


# -- queries -----------------------------------------------------------------------------------------------
def _today_for(snapshot: Snapshot, unit: str, today: date | None, now: datetime) -> date:
    return today if today is not None else local_day(now, _tz(snapshot, unit))


def list_actions(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    unit: str | None,
    status: str | None = None,
    overdue: bool | None = None,
    kind: str | None = None,
    today: date | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The queue of a unit's subtree (every unit when `unit` is None): overdue first, then by due day.

    `status` is a state or "open" (any state but closed / appeal_upheld). Overdue means due before the
    unit's local today (or `today`) and not closed.
    """
    now = now or datetime.now(UTC)
    units = snapshot.subtree(unit) if unit is not None else None
    found = []
    for row in action_store.listing(conn, units, status, kind, due_and_open=bool(overdue)):
        item = action_json(row, snapshot, now)
        if today is not None:
            item["overdue"] = (
                bool(row["due"]) and row["status"] not in CLOSED_STATES and date.fromisoformat(row["due"]) < today
            )
        if overdue is not None and item["overdue"] != overdue:
            continue
        found.append(item)
    found.sort(key=lambda a: (not a["overdue"], a["due"] is None, a["due"] or "", a["id"]))
    return found


def get_action(
    conn: sqlite3.Connection, action_id: int, snapshot: Snapshot | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """One action with its events, oldest first, and the call-back it owes (NotFound naming "id")."""
    row = _action_row(conn, action_id)
    tz = None
    if snapshot is None or row["unit"] not in snapshot.units:
        tz = organisation_store.unit_tz(conn, row["unit"]) or "UTC"
    action = action_json(row, snapshot, now, tz=tz)
    action["data"] = _decode(row["data"], {})
    action["events"] = [event_json(e) for e in action_store.events_of(conn, action_id)]
    action["callback"] = callbacks.callback_of(conn, row)
    return action


def contact_of(conn: sqlite3.Connection, action: dict[str, Any]) -> str | None:
    """The consented contact of the response behind an open action (None once closed or purged)."""
    if action["status"] in CLOSED_STATES or not action.get("response_id"):
        return None
    return response_store.contact_of(conn, action["response_id"])


class _Tally:
    __slots__ = (
        "opened",
        "closed",
        "closed_on_time",
        "overdue_open",
        "callbacks",
        "callbacks_reached",
        "callbacks_declined",
        "callbacks_not_reached",
        "callbacks_overdue",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def add(self, other: _Tally) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_row(self, key: str | None, min_n: int) -> dict[str, Any]:
        on_time_n = self.closed + self.overdue_open
        return {
            "unit": key,
            "opened": self.opened,
            "closed": self.closed,
            "closed_on_time": self.closed_on_time,
            "overdue_open": self.overdue_open,
            "on_time_n": on_time_n,
            **proportion(self.closed_on_time, on_time_n, min_n, prefix="on_time_"),
            "callbacks": self.callbacks,
            "callbacks_reached": self.callbacks_reached,
            "callbacks_declined": self.callbacks_declined,
            "callbacks_not_reached": self.callbacks_not_reached,
            "callbacks_overdue": self.callbacks_overdue,
            **proportion(self.callbacks_reached, self.callbacks, min_n, prefix="callback_"),
        }


def _tallies(
    conn: sqlite3.Connection, snapshot: Snapshot, unit: str, date_from: str, date_to: str, now: datetime | None
) -> dict[str, _Tally]:
    """Per unit of the subtree: the action counts of a period of local days."""
    start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
    now = now or datetime.now(UTC)
    units = snapshot.subtree(unit)
    # A day of margin either side in UTC; the local days are worked out exactly below.
    low = datetime.combine(start - timedelta(days=2), datetime.min.time(), UTC).isoformat()
    high = datetime.combine(end + timedelta(days=2), datetime.min.time(), UTC).isoformat()
    rows = action_store.open_in_period(conn, units, high, low)
    tallies = {code: _Tally() for code in units}
    for row in rows:
        tz = _tz(snapshot, row["unit"])
        tally = tallies[row["unit"]]
        opened = _local_day_of(row["opened_at"], tz)
        closed = _local_day_of(row["closed_at"], tz)
        due = date.fromisoformat(row["due"]) if row["due"] else None
        opened_in = start <= opened <= end
        tally.opened += opened_in
        if closed is not None and start <= closed <= end:
            tally.closed += 1
            tally.closed_on_time += due is None or closed <= due
        # Still open at the end of the period (or today, for a period not over yet) and past its due day.
        reference = min(end, local_day(now, tz))
        if opened <= end and (closed is None or closed > end) and due is not None and due < reference:
            tally.overdue_open += 1
    due_callbacks = callbacks.counts(conn, units, lambda code: _tz(snapshot, code), start, end, now)
    for code, found in due_callbacks.items():
        tally = tallies[code]
        tally.callbacks = found["due"]
        tally.callbacks_reached = found["reached"]
        tally.callbacks_declined = found["declined"]
        tally.callbacks_not_reached = found["not_reached"]
        tally.callbacks_overdue = found["overdue"]
    return tallies


def kpis(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    min_n: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Corrective-action KPIs per unit of the subtree (each unit's own actions) and for the subtree.

    on-time rate = closed by the due day / (closed + still open past the due day), call-back rate =
    call-backs reached / call-backs due in the period (`feedback.callbacks`: declined, not reached and
    still pending past the due day count against); both with Wilson 95 % intervals.
    """
    tallies = _tallies(conn, snapshot, unit, date_from, date_to, now)
    total = _Tally()
    for tally in tallies.values():
        total.add(tally)
    ordered = sorted(tallies, key=lambda code: snapshot.units[code].path)
    return {
        "unit": unit,
        "from": date_from,
        "to": date_to,
        "min_n": min_n,
        "rows": [tallies[code].as_row(code, min_n) for code in ordered],
        "total": total.as_row(unit, min_n),
    }


def metric_on_time(
    conn: sqlite3.Connection, snapshot: Snapshot, unit: str, date_from: str, date_to: str, now: datetime | None = None
) -> tuple[int, int]:
    """On-time rectification over a subtree: (closed by the due day, closed + overdue still open)."""
    total = _Tally()
    for tally in _tallies(conn, snapshot, unit, date_from, date_to, now).values():
        total.add(tally)
    return total.closed_on_time, total.closed + total.overdue_open


def metric_callback(
    conn: sqlite3.Connection, snapshot: Snapshot, unit: str, date_from: str, date_to: str, now: datetime | None = None
) -> tuple[int, int]:
    """Call-back rate over a subtree: (call-backs reached, call-backs due in the period; see
    `feedback.callbacks`)."""
    total = _Tally()
    for tally in _tallies(conn, snapshot, unit, date_from, date_to, now).values():
        total.add(tally)
    return total.callbacks_reached, total.callbacks


# -- jobs ----------------------------------------------------------------------------------------------------
def check_deadlines(conn: sqlite3.Connection, snapshot: Snapshot, now: datetime, due_soon_days: int) -> list[Event]:
    """Remind owners of deadlines near, escalate the overdue to the manager above; logs the events (and
    returns them)."""
    events: list[Event] = []
    stamp = now.isoformat()
    # Once overdue (and escalated) an action has nothing more to wait for here.
    rows = action_store.awaiting_deadline(conn)
    for row in rows:
        unit = snapshot.units.get(row["unit"])
        if unit is None:
            continue
        today = local_day(now, unit.tz)
        due = date.fromisoformat(row["due"])
        if today > due:
            target = owner_above(snapshot, unit.code, besides=row["owner"])
            action_store.update(
                conn, row["id"], overdue_at=stamp, escalated_to=target, escalated_at=stamp if target else None
            )
            note = (
                _text(unit.lang, NOTE_ESCALATED, due=row["due"], user=target)
                if target
                else _text(unit.lang, NOTE_NOT_ESCALATED, due=row["due"])
            )
            _append_event(
                conn,
                row["id"],
                "escalated" if target else "overdue",
                from_status=row["status"],
                to_status=row["status"],
                actor=SYSTEM,
                at=stamp,
                record={"note": note},
                data={"escalated_to": target, "due": row["due"]},
            )
            action = action_json(_action_row(conn, row["id"]), snapshot, now)
            events.append(
                Event(
                    type="action.overdue",
                    id=f"action.overdue:{row['id']}",
                    created_at=stamp,
                    data={**action, "escalated_to": target},
                )
            )
        elif row["due_soon_at"] is None and working_days_between(today, due, unit.country) <= due_soon_days:
            action_store.update(conn, row["id"], due_soon_at=stamp)
            action = action_json(_action_row(conn, row["id"]), snapshot, now)
            action["working_days_left"] = working_days_between(today, due, unit.country)
            events.append(
                Event(type="action.due_soon", id=f"action.due_soon:{row['id']}", created_at=stamp, data=action)
            )
    record(conn, events)
    return events


def _figure(value: float, metric: str, digits: int = 1) -> str:
    if metric in MEAN_METRICS:
        return f"{value * 100:.{digits}f}/100"
    return f"{value * 100:.{digits}f} %"


def judge_effect(comparator: str, target: float, low: float, high: float) -> str:
    """The rule objectives judge by (`objectives.judge`): effective only when the whole Wilson interval
    clears the target, not effective when the whole interval misses it, undecided in between."""
    if comparator == ">=":
        return "effective" if low >= target else "not_effective" if high < target else "undecided"
    return "effective" if high <= target else "not_effective" if low > target else "undecided"


def _decide_by(conn: sqlite3.Connection, action_id: int, watch_from: str, until: date, weeks: int) -> date:
    """The last day an undecided watch may run to: `weeks` weeks after the end of the watch that was
    first judged undecided (kept in that judgement's record, so a later setting does not move it)."""
    for event in action_store.events_of(conn, action_id):
        if event["type"] == "effectiveness_undecided":
            figures = _decode(event["data"], {}).get("effectiveness") or {}
            if figures.get("watch_from") == watch_from and figures.get("decide_by"):
                return date.fromisoformat(figures["decide_by"])
    return until + timedelta(weeks=weeks)


def _undecided(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    row: dict[str, Any],
    figures: dict[str, Any],
    values: dict[str, Any],
    now: datetime,
    weeks: int,
) -> list[Event]:
    """Neither cleared nor missed: watch a week longer, up to `weeks` weeks; then an action under review
    waits for its owner's decision, with the figures on record (a closed one stays closed, unconfirmed)."""
    stamp, lang = now.isoformat(), _lang(snapshot, row["unit"])
    until = date.fromisoformat(row["watch_until"])
    decide_by = _decide_by(conn, row["id"], figures["watch_from"], until, weeks)
    figures = {**figures, "decide_by": decide_by.isoformat()}
    if until < decide_by:
        later = min(until + timedelta(weeks=1), decide_by).isoformat()
        action_store.update(conn, row["id"], watch_until=later, updated_at=stamp)
        _append_event(
            conn,
            row["id"],
            "effectiveness_undecided",
            from_status=row["status"],
            to_status=row["status"],
            actor=SYSTEM,
            at=stamp,
            record={"note": _text(lang, NOTE_UNDECIDED, **values, until=later)},
            data={"effectiveness": {**figures, "extended_to": later}},
        )
        return []
    action_store.update(conn, row["id"], watch_until=None, updated_at=stamp)
    closed = row["status"] == "closed"
    event = _append_event(
        conn,
        row["id"],
        "effectiveness_unknown" if closed else "effectiveness_decision_needed",
        from_status=row["status"],
        to_status=row["status"],
        actor=SYSTEM,
        at=stamp,
        record={"note": _text(lang, NOTE_UNCONFIRMED if closed else NOTE_DECISION, **values)},
        data={"effectiveness": figures},
    )
    if closed:
        return []
    # The owner has a decision to make: the queue pages and the bus learn it as a change of the action.
    return [changed_event(action_json(_action_row(conn, row["id"]), snapshot, now), event, now)]


def check_effectiveness(
    conn: sqlite3.Connection, snapshot: Snapshot, now: datetime, min_n: int, weeks: int = 4
) -> list[Event]:
    """Judge every watch that has ended: effective → closed (or confirmed), not effective → reopened,
    undecided → watched up to `weeks` weeks longer, then left to the owner's decision."""
    events: list[Event] = []
    stamp = now.isoformat()
    rows = action_store.watched(conn)
    for row in rows:
        unit = snapshot.units.get(row["unit"])
        if unit is None:
            continue
        today = local_day(now, unit.tz)
        until = date.fromisoformat(row["watch_until"])
        if until > today:
            continue
        spec = effect_spec(row, snapshot)
        metric = spec["metric"]
        watch_from = row["watch_from"] or _local_day_of(row["updated_at"], unit.tz).isoformat()
        successes, n = effect_rate(
            conn,
            snapshot,
            unit.code,
            metric,
            watch_from,
            row["watch_until"],
            service=row["service"],
            indicator=row["indicator"],
        )
        figures: dict[str, Any] = {
            "metric": metric,
            "comparator": spec["comparator"],
            "n": n,
            "rate": successes / n if n else None,
            "watch_from": watch_from,
            "watch_until": row["watch_until"],
            "extensions": row["watch_extensions"],
        }
        needed = spec["min_n"] or min_n
        if n < needed:
            if row["watch_extensions"] >= MAX_WATCH_EXTENSIONS:
                note = _text(unit.lang, NOTE_TOO_FEW, n=n, start=watch_from, end=row["watch_until"])
                action_store.update(conn, row["id"], watch_until=None, updated_at=stamp)
                _append_event(
                    conn,
                    row["id"],
                    "effectiveness_unknown",
                    from_status=row["status"],
                    to_status=row["status"],
                    actor=SYSTEM,
                    at=stamp,
                    record={"note": note},
                    data={"effectiveness": {**figures, "verdict": "unknown", "min_n": needed}},
                )
            else:
                later = (until + timedelta(weeks=1)).isoformat()
                note = _text(unit.lang, NOTE_EXTENDED, n=n, until=later)
                action_store.extend_watch(conn, row["id"], later, stamp)
                _append_event(
                    conn,
                    row["id"],
                    "effectiveness_extended",
                    from_status=row["status"],
                    to_status=row["status"],
                    actor=SYSTEM,
                    at=stamp,
                    record={"note": note},
                    data={"effectiveness": {**figures, "verdict": "extended", "min_n": needed, "watch_until": later}},
                )
            continue
        target, source = normalise_target(row["target"], metric), "target"
        if target is None:
            target, source = row["baseline"], "baseline"
            if target is None:
                target = _baseline(conn, snapshot, row, spec)
        if target is None:
            action_store.update(conn, row["id"], watch_until=None, updated_at=stamp)
            _append_event(
                conn,
                row["id"],
                "effectiveness_unknown",
                from_status=row["status"],
                to_status=row["status"],
                actor=SYSTEM,
                at=stamp,
                record={"note": _text(unit.lang, NOTE_NO_TARGET)},
                data={"effectiveness": {**figures, "verdict": "unknown", "target": None}},
            )
            continue
        low, high = wilson(successes, n)
        verdict = judge_effect(spec["comparator"], target, low, high)
        recovered = verdict == "effective"
        figures.update(ci95=[low, high], target=target, target_source=source, verdict=verdict)
        digits = decimals(target)  # a 99.47 % target is not printed as 99.5 %, nor a rate beside it
        values = {
            "rate": _figure(successes / n, metric, digits),
            "n": n,
            "start": watch_from,
            "end": row["watch_until"],
            "target": _figure(target, metric, digits),
            "low": _figure(low, metric, digits),
            "high": _figure(high, metric, digits),
        }
        if verdict == "undecided":
            events.extend(_undecided(conn, snapshot, row, figures, values, now, weeks))
            continue
        if recovered and row["status"] == "closed":
            action_store.update(conn, row["id"], watch_until=None, updated_at=stamp)
            _append_event(
                conn,
                row["id"],
                "effectiveness_confirmed",
                from_status="closed",
                to_status="closed",
                actor=SYSTEM,
                at=stamp,
                record={"note": _text(unit.lang, NOTE_CONFIRMED, **values)},
                data={"effectiveness": figures},
            )
            continue
        if recovered:
            action, event = transition(
                conn,
                row["id"],
                "closed",
                actor=SYSTEM,
                role=SYSTEM,
                fields={"result": _text(unit.lang, NOTE_EFFECTIVE, **values)},
                snapshot=snapshot,
                now=now,
                data={"effectiveness": figures},
            )
            action_store.update(conn, row["id"], watch_until=None)
            action["watch_until"] = None
            events.append(changed_event(action, event, now, _has_contact(conn, action["response_id"])))
        else:
            action, event = transition(
                conn,
                row["id"],
                "reopened",
                actor=SYSTEM,
                role=SYSTEM,
                fields={"note": _text(unit.lang, NOTE_NOT_EFFECTIVE, **values)},
                snapshot=snapshot,
                now=now,
                data={"effectiveness": figures},
            )
            events.append(changed_event(action, event, now))
    record(conn, events)
    return events


async def run_deadlines(ctx: JobContext) -> None:
    snapshot, now, days = ctx.snapshot, ctx.now, ctx.settings.due_soon_days
    await ctx.store.write(lambda conn: check_deadlines(conn, snapshot, now, days))


async def run_effectiveness(ctx: JobContext) -> None:
    snapshot, now, min_n, weeks = ctx.snapshot, ctx.now, ctx.settings.min_n, ctx.settings.effectiveness_weeks
    await ctx.store.write(lambda conn: check_effectiveness(conn, snapshot, now, min_n, weeks))


def jobs() -> list[Job]:
    return [
        Job("actions.deadlines", 300, run_deadlines),
        Job("actions.effectiveness", 3600, run_effectiveness),
    ]
