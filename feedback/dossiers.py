"""Dossiers and their deadlines: what a one-stop or customs system sends (`POST /api/v1/cases`, `feedback
cases import`), and the on-time rates read from them.

A dossier (case) is known by its reference, the same the citizen's rating may carry as `case_ref`. Its
days — received, due, returned — are the unit's local days: a day is taken as it is, an RFC 3339 time
becomes its day in the unit's time zone. A batch is checked whole before anything is stored; one bad
item stores nothing, and a reference sent again updates the dossier.

Timeliness counts each dossier in the period of its **due day**, whatever became of it: returned on or
before the due day is on time, returned after it is late, still open after it (as of the unit's today)
is open and overdue; an open dossier not yet due is pending and counts nowhere yet, a withdrawn one
never. rate = on time / (on time + late + open overdue), with n, a Wilson 95 % interval and the minimum
n like every other rate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import audit, sheets
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, InvalidInput
from feedback.models import is_suspect
from feedback.rates import child_of, proportion
from feedback.store import Connection
from feedback.store import dossiers as dossier_store

MAX_ITEMS = 5000
MAX_REF = 100
FIELDS = ("ref", "unit", "service", "received", "due", "returned", "status", "channel")
REQUIRED = ("ref", "unit", "received", "due")
STATUSES = ("open", "returned", "withdrawn")
CHANNELS = ("online", "offline")
GROUPINGS = ("unit", "service", "month")
SHEET = "cases"  # the sheet a workbook's dossiers are read from (else its first sheet)

Where = Callable[[str], str]


@dataclass(frozen=True)
class Dossier:
    ref: str
    unit: str
    service: str | None
    received: str
    due: str
    returned: str | None
    status: str
    channel: str | None


def local_today(snapshot: Snapshot, unit: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(snapshot.units[unit].tz)).date()


# -- checking what is sent ----------------------------------------------------------------------------


def _day(value: Any, name: str, where: Where, tz: str) -> str:
    """A local day from "YYYY-MM-DD", or from an RFC 3339 time with its offset (the day it is in `tz`)."""
    text = value.strip() if isinstance(value, str) else None
    problem = f"{where(name)}: not a date (YYYY-MM-DD) or an RFC 3339 time with its offset"
    if not text:
        raise InvalidInput(problem, where(name))
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(problem, where(name)) from None
    if moment.tzinfo is None or len(text) < 19:
        raise InvalidInput(problem, where(name))
    try:
        return moment.astimezone(ZoneInfo(tz)).date().isoformat()
    except OverflowError:  # a time at the very edge of the calendar that leaves it in `tz`
        raise InvalidInput(f"{where(name)}: {text} is outside the calendar", where(name)) from None


def _choice(value: Any, name: str, where: Where, allowed: Sequence[str]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidInput(f"{where(name)}: must be one of {list(allowed)}", where(name))
    return value


def check_item(raw: Any, snapshot: Snapshot, where: Where, now: datetime | None = None) -> Dossier:
    """One dossier as sent (JSON values, or text from a file); `where(field)` names a field for an error."""
    if not isinstance(raw, dict):
        whole = where("")
        raise InvalidInput(f"{whole}: must be an object", whole)
    for name in raw:
        if name not in FIELDS:
            raise InvalidInput(f"{where(name)}: unknown field", where(name))
    for name in REQUIRED:
        if raw.get(name) is None or raw.get(name) == "":
            raise InvalidInput(f"{where(name)}: required", where(name))
    ref = raw["ref"]
    if not isinstance(ref, str) or not ref.strip() or len(ref.strip()) > MAX_REF or not ref.strip().isprintable():
        raise InvalidInput(f"{where('ref')}: a reference of 1 to {MAX_REF} printable characters", where("ref"))
    unit = raw["unit"]
    if not isinstance(unit, str) or unit not in snapshot.units:
        raise InvalidInput(f"{where('unit')}: no unit {unit!r}", where("unit"))
    service = raw.get("service") or None
    if service is not None and (not isinstance(service, str) or service not in snapshot.services):
        raise InvalidInput(f"{where('service')}: no service {service!r}", where("service"))
    if service is not None and not snapshot.service_offered_at(service, unit):
        raise InvalidInput(f"{where('service')}: {service!r} is not offered at unit {unit!r}", where("service"))
    tz = snapshot.units[unit].tz
    today = local_today(snapshot, unit, now).isoformat()
    received = _day(raw["received"], "received", where, tz)
    if received > today:
        raise InvalidInput(f"{where('received')}: {received} is after today ({today})", where("received"))
    due = _day(raw["due"], "due", where, tz)
    if due < received:
        raise InvalidInput(f"{where('due')}: {due} is before the day it was received ({received})", where("due"))
    returned = raw.get("returned")
    returned = None if returned is None or returned == "" else _day(returned, "returned", where, tz)
    if returned is not None and returned < received:
        raise InvalidInput(
            f"{where('returned')}: {returned} is before the day it was received ({received})", where("returned")
        )
    if returned is not None and returned > today:
        raise InvalidInput(f"{where('returned')}: {returned} is after today ({today})", where("returned"))
    status = _choice(raw.get("status"), "status", where, STATUSES) or ("returned" if returned else "open")
    if status == "returned" and returned is None:
        raise InvalidInput(f"{where('returned')}: required when the status is 'returned'", where("returned"))
    if status == "open" and returned is not None:
        raise InvalidInput(f"{where('status')}: 'open', yet it was returned on {returned}", where("status"))
    channel = _choice(raw.get("channel"), "channel", where, CHANNELS)
    return Dossier(ref.strip(), unit, service, received, due, returned, status, channel)


def _no_repeats(items: list[Dossier], where: Callable[[int, str], str]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.ref in seen:
            first = where(seen[item.ref], "ref")
            raise InvalidInput(f"{where(index, 'ref')}: {item.ref!r} is already at {first}", where(index, "ref"))
        seen[item.ref] = index


def item_field(index: int, name: str) -> str:
    """How the API names a field of an item: `items[3].due`."""
    return f"items[{index}].{name}" if name else f"items[{index}]"


def parse_body(body: Any, snapshot: Snapshot, now: datetime | None = None) -> list[Dossier]:
    """`{"items": [...]}` with 1 to MAX_ITEMS dossiers, each reference once; errors name `items[i].field`."""
    if not isinstance(body, dict):
        raise InvalidInput('body: must be an object {"items": [...]}', "body")
    for name in body:
        if name != "items":
            raise InvalidInput(f"{name}: unknown field", name)
    raw_items = body.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise InvalidInput(f"items: a list of 1 to {MAX_ITEMS} dossiers", "items")
    if len(raw_items) > MAX_ITEMS:
        raise InvalidInput(f"items: at most {MAX_ITEMS} dossiers per request", "items")
    items = [check_item(raw, snapshot, lambda name, i=i: item_field(i, name), now) for i, raw in enumerate(raw_items)]
    _no_repeats(items, item_field)
    return items


def parse_file(data: bytes, filename: str, snapshot: Snapshot, now: datetime | None = None) -> list[Dossier]:
    """A CSV or XLSX table with the columns of FIELDS (ref, unit, received and due required); every bad
    line is named with its column (sheets.Rejected)."""
    lines = sheets.read_table(data, filename, FIELDS, REQUIRED, SHEET)
    if not lines:
        raise sheets.Rejected([sheets.Problem("file", "no dossier below the header")])

    def check(line: sheets.Line) -> Dossier:
        values = {name: value for name, value in line.values.items() if value is not None}
        return check_item(values, snapshot, lambda name: sheets.where(line.number, name or None), now)

    items = sheets.check_lines(lines, check)
    numbers = [line.number for line in lines]
    try:
        _no_repeats(items, lambda index, name: sheets.where(numbers[index], name))
    except InvalidInput as error:
        found, _, message = error.message.partition(": ")
        raise sheets.Rejected([sheets.Problem(found, message)]) from None
    return items


# -- storing ------------------------------------------------------------------------------------------


def common_unit(snapshot: Snapshot, units: Iterable[str]) -> str | None:
    """The lowest unit whose subtree holds all of these (None when they lie under different roots)."""
    paths = [snapshot.units[code].path.strip("/").split("/") for code in set(units)]
    if not paths:
        return None
    shared: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        shared.append(parts[0])
    return shared[-1] if shared else None


def ref_digest(ref: str) -> str:
    """How the audit log names a dossier: whoever holds the reference finds its entries, the log alone
    names no case."""
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()[:16]


def store_batch(
    conn: Connection,
    snapshot: Snapshot,
    items: Sequence[Dossier],
    *,
    source: str,
    may_change: Callable[[str], bool] | None = None,
    where: Callable[[int, str], str] = item_field,
) -> dict[str, int]:
    """Add or update every dossier in the caller's write transaction; counts `added`, `updated` and
    `unchanged`. A dossier stored under a unit outside `may_change` is not the caller's to change
    (Forbidden naming its `ref`). One audit entry records the batch: the dossiers added and, for each one
    updated, the fields that changed (a due day moved is what an auditor looks for). The log is kept for
    good and holds no case reference, so each is named by its digest (`ref_digest`)."""
    stored = dossier_store.by_refs(conn, (item.ref for item in items))
    added: list[str] = []
    updated: dict[str, dict[str, list[Any]]] = {}
    changed: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        row = asdict(item)
        before = stored.get(item.ref)
        if before is not None and may_change is not None and not may_change(before["unit"]):
            field = where(index, "ref")
            raise Forbidden(f"{field}: {item.ref!r} is a dossier of a unit outside the caller's", field)
        if before is None:
            added.append(ref_digest(item.ref))
        else:
            diff = {name: [before[name], row[name]] for name in dossier_store.COLUMNS if before[name] != row[name]}
            if not diff:
                continue
            updated[ref_digest(item.ref)] = diff
        changed.append(row)
    at = audit.now_iso()
    if changed:
        dossier_store.upsert(conn, changed, source, at)
        digest = hashlib.sha256(msgspec.json.encode(changed)).hexdigest()[:16]
        units = {row["unit"] for row in changed} | {diff["unit"][0] for diff in updated.values() if "unit" in diff}
        audit.record(
            conn,
            "cases",
            f"batch:{digest}",
            "import",
            after={"source": source, "added": added, "updated": updated, "unchanged": len(items) - len(changed)},
            unit=common_unit(snapshot, units),
            at=at,
        )
    return {"added": len(added), "updated": len(updated), "unchanged": len(items) - len(changed)}


# -- timeliness -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    on_time: int = 0
    late: int = 0
    open_overdue: int = 0
    pending: int = 0

    @property
    def n(self) -> int:
        return self.on_time + self.late + self.open_overdue

    def add(self, other: Tally) -> None:
        self.on_time += other.on_time
        self.late += other.late
        self.open_overdue += other.open_overdue
        self.pending += other.pending

    def as_row(self, key: str | None, min_n: int) -> dict[str, Any]:
        return {
            "key": key,
            "n": self.n,
            "on_time": self.on_time,
            "late": self.late,
            "open_overdue": self.open_overdue,
            **proportion(self.on_time, self.n, min_n),
            "pending": self.pending,  # open, not yet due: counted once its due day has passed
        }


def tallies(
    conn: Connection,
    snapshot: Snapshot,
    units: Sequence[str],
    date_from: str,
    date_to: str,
    key: Callable[[str, str | None, str], str | None],
    *,
    service: str | None = None,
    now: datetime | None = None,
) -> dict[str | None, Tally]:
    """Tallies of the dossiers due between two local days, keyed by `key(unit, service, due day)`."""
    found: dict[str | None, Tally] = {}
    for row in dossier_store.returned_counts(conn, units, date_from, date_to, service):
        tally = found.setdefault(key(row["unit"], row["service"], row["month"] + "-01"), Tally())
        tally.on_time += int(row["on_time"] or 0)
        tally.late += int(row["late"] or 0)
    todays: dict[str, str] = {}
    for row in dossier_store.open_counts(conn, units, date_from, date_to, service):
        unit = row["unit"]
        if unit not in todays:
            todays[unit] = local_today(snapshot, unit, now).isoformat() if unit in snapshot.units else date_to
        tally = found.setdefault(key(unit, row["service"], row["due"]), Tally())
        if row["due"] < todays[unit]:
            tally.open_overdue += int(row["n"])
        else:
            tally.pending += int(row["n"])
    return found


def timeliness(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    by: str,
    min_n: int,
    *,
    service: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """On-time rates of a unit's subtree for the dossiers due between two local days, grouped `by` unit
    (each child's whole subtree; the unit's own under its code), service or month of the due day."""
    if by not in GROUPINGS:
        raise InvalidInput(f"by: must be one of {list(GROUPINGS)}", "by")
    child = child_of(unit, snapshot)
    keys: dict[str, Callable[[str, str | None, str], str | None]] = {
        "unit": lambda code, _service, _due: child(code) if code in snapshot.units else code,
        "service": lambda _code, service, _due: service or None,
        "month": lambda _code, _service, due: due[:7],
    }
    found = tallies(conn, snapshot, snapshot.subtree(unit), date_from, date_to, keys[by], service=service, now=now)
    total = Tally()
    for tally in found.values():
        total.add(tally)
    return {
        "unit": unit,
        "from": date_from,
        "to": date_to,
        "by": by,
        "min_n": min_n,
        "rows": [tally.as_row(key, min_n) for key, tally in sorted(found.items(), key=lambda kv: kv[0] or "")],
        "total": total.as_row(None, min_n),
    }


def on_time_counts(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    service: str | None = None,
    now: datetime | None = None,
) -> tuple[int, int]:
    """(on time, n) over a unit's subtree: what the objective metric `dossier_on_time` judges."""
    found = tallies(
        conn, snapshot, snapshot.subtree(unit), date_from, date_to, lambda *_: None, service=service, now=now
    )
    tally = found.get(None, Tally())
    return tally.on_time, tally.n


# -- ratings of dossiers ----------------------------------------------------------------------------------


def state(dossier: dict[str, Any], today: str) -> str:
    """What became of a dossier by `today`: on_time, late (returned late, or open past its due day),
    pending (open, not yet due) or withdrawn."""
    if dossier["status"] == "withdrawn":
        return "withdrawn"
    if dossier["returned"] is not None:
        return "on_time" if dossier["returned"] <= dossier["due"] else "late"
    return "late" if dossier["due"] < today else "pending"


def same_tree(snapshot: Snapshot, unit: str, other: str) -> bool:
    """Whether two units hang from the same top unit. A rating's case reference names a dossier of its own
    tree only: another agency's system may use the same reference for a dossier of its own."""
    first, second = snapshot.units.get(unit), snapshot.units.get(other)
    return bool(first and second and first.path.strip("/").split("/")[0] == second.path.strip("/").split("/")[0])


def states_of(
    conn: Connection, snapshot: Snapshot, rated: Iterable[tuple[str | None, str]], now: datetime | None = None
) -> dict[tuple[str, str], str]:
    """The state (`state`) of the stored dossier each (case reference, rating's unit) names, by that pair:
    only a dossier of the rating's unit's tree (`same_tree`) counts."""
    pairs = {(ref, unit) for ref, unit in rated if ref}
    found = dossier_store.by_refs(conn, (ref for ref, _unit in pairs))
    return {
        (ref, unit): state(row, local_today(snapshot, row["unit"], now).isoformat())
        for ref, unit in pairs
        if (row := found.get(ref)) is not None and same_tree(snapshot, row["unit"], unit)
    }


def late_flag(dossier_state: str | None) -> int | None:
    """The export's `dossier_late`: 1 late, 0 returned on time, empty otherwise (no dossier, pending, withdrawn)."""
    return {"late": 1, "on_time": 0}.get(dossier_state or "")


def satisfaction_by_timeliness(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    min_n: int,
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Satisfaction of the subtree's ratings given between two local days whose case reference names a
    dossier, apart for dossiers returned on time and late ones (returned late or open past the due day):
    `{"on_time": ROW, "late": ROW}`, each with n, satisfied, rate, Wilson interval and sufficient.
    Suspect ratings are left out, as from every rate."""
    counts = {"on_time": [0, 0], "late": [0, 0]}
    todays: dict[str, str] = {}
    for row in dossier_store.rated(conn, snapshot.subtree(unit), date_from, date_to):
        flags = msgspec.json.decode(row["flags"]) if row["flags"] else []
        if is_suspect(flags) or not same_tree(snapshot, row["unit"], row["rated_at"]):
            continue
        code = row["unit"]
        if code not in todays:
            todays[code] = local_today(snapshot, code, now).isoformat()
        found = state(row, todays[code])
        if found in counts:
            counts[found][0] += 1
            counts[found][1] += int(row["satisfied"] or 0)
    result = {}
    for name, (n, satisfied) in counts.items():
        result[name] = {"n": n, "satisfied": satisfied, **proportion(satisfied, n, min_n)}
    return result


def unit_figures(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    min_n: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What the unit page and the review pack show of a subtree's dossiers due in a period: the total, by
    unit below and by service, and satisfaction for on-time and late dossiers side by side."""
    by_unit = timeliness(conn, snapshot, unit, date_from, date_to, "unit", min_n, now=now)
    by_service = timeliness(conn, snapshot, unit, date_from, date_to, "service", min_n, now=now)
    rated = satisfaction_by_timeliness(conn, snapshot, unit, date_from, date_to, min_n, now)
    total = by_unit["total"]
    return {
        "any": bool(total["n"] or total["pending"] or rated["on_time"]["n"] or rated["late"]["n"]),
        "total": total,
        "by_unit": [row for row in by_unit["rows"] if row["key"] != unit],
        "by_service": by_service["rows"],
        "satisfaction": rated,
    }


# -- the export -----------------------------------------------------------------------------------------

TIMELINESS_COLUMNS = (
    "key",
    "name",
    "n",
    "on_time",
    "late",
    "open_overdue",
    "pending",
    "rate",
    "ci95_low",
    "ci95_high",
    "sufficient",
)


def timeliness_table(result: dict[str, Any], snapshot: Snapshot) -> list[list[Any]]:
    """The rows of a timeliness result as export lines (TIMELINESS_COLUMNS), then the total (key "total")."""
    by = result["by"]

    def line(row: dict[str, Any], key: str | None, name: str) -> list[Any]:
        low, high = row["ci95"] or (None, None)
        return [
            key,
            name,
            row["n"],
            row["on_time"],
            row["late"],
            row["open_overdue"],
            row["pending"],
            row["rate"],
            low,
            high,
            row["sufficient"],
        ]

    table = []
    for row in result["rows"]:
        key = row["key"]
        name = ""
        if by == "unit" and key in snapshot.units:
            name = snapshot.units[key].name
        elif by == "service" and key in snapshot.services:
            name = snapshot.services[key]["name"]
        table.append(line(row, key, name))
    table.append(line(result["total"], "total", ""))
    return table
