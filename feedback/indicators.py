"""Other quality indicators: figures kept elsewhere (an error rate, plan completion, case closure) as a
numerator and a denominator per unit and period, so objectives judge them with Wilson intervals as they
judge satisfaction.

Each indicator is defined once (`feedback.models.Indicator`: key, names in the four languages, which way
is better, what it counts): by a plugin's `register_indicators` (the built-in `feedback_plugins.indicators`
defines error_rate, plan_completion and case_closure) or by an administrator (`POST /api/v1/indicators`).
A figure belongs to one unit — its own work, not its subtree's — and one period: a month (`2026-03`), a
quarter (`2026-Q1`) or a year (`2026`); sending it again replaces it. A subtree's figure for a span of
days sums the figures whose whole period lies inside the span, and where a unit gave both a period's
figure and figures of its parts (a quarter and its months), the period's own figure stands for them.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import audit, sheets
from feedback.catalog import Snapshot
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import INDICATOR_DIRECTIONS, LANGUAGES, Indicator
from feedback.plugins import PluginManager, flatten
from feedback.rates import proportion
from feedback.store import Connection, unique
from feedback.store import indicators as indicator_store

KEY = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")
PERIOD = re.compile(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?\Z")
MAX_NAME = 200
MAX_COUNT = 10**12
MAX_ITEMS = 5000
VALUE_FIELDS = ("unit", "period", "numerator", "denominator")
FILE_COLUMNS = ("indicator", *VALUE_FIELDS)
SHEET = "indicators"  # the sheet a workbook's figures are read from (else its first sheet)
DEFINITION_FIELDS = ("key", "names", "direction", "unit_of_measure")

Where = Callable[[str], str]


@dataclass(frozen=True)
class Figure:
    indicator: str
    unit: str
    period: str
    first_day: str
    last_day: str
    numerator: int
    denominator: int


# -- definitions -----------------------------------------------------------------------------------------


def _texts(value: Any, field: str, *, every_language: bool) -> dict[str, str] | None:
    if value is None:
        if every_language:
            raise InvalidInput(f"{field}: required: an object of language -> text ({', '.join(LANGUAGES)})", field)
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field}: must be an object of language -> text", field)
    texts = {}
    for lang, text in value.items():
        if lang not in LANGUAGES:
            raise InvalidInput(f"{field}: {lang!r} is not one of {list(LANGUAGES)}", field)
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_NAME:
            raise InvalidInput(f"{field}: the {lang} text must be 1 to {MAX_NAME} characters", field)
        texts[lang] = text.strip()
    missing = [lang for lang in LANGUAGES if lang not in texts]
    if every_language and missing:
        raise InvalidInput(f"{field}: lacks {', '.join(missing)}; an indicator is named in every language", field)
    return texts or None


def check_definition(raw: Any) -> Indicator:
    """A definition as given (a JSON object, or what a plugin returned): key, names in every language,
    direction, and what it counts if any."""
    if isinstance(raw, Indicator):
        raw = msgspec.structs.asdict(raw)
    if not isinstance(raw, dict):
        raise InvalidInput("body: must be an object", "body")
    for name in raw:
        if name not in DEFINITION_FIELDS:
            raise InvalidInput(f"{name}: unknown field", name)
    key = raw.get("key")
    if not isinstance(key, str) or not KEY.match(key):
        raise InvalidInput("key: lower-case letters, digits and _, starting with a letter, at most 40", "key")
    names = _texts(raw.get("names"), "names", every_language=True)
    direction = raw.get("direction")
    if direction not in INDICATOR_DIRECTIONS:
        raise InvalidInput(f"direction: must be one of {list(INDICATOR_DIRECTIONS)} (which is better)", "direction")
    measure = _texts(raw.get("unit_of_measure"), "unit_of_measure", every_language=False)
    return Indicator(key=key, names=names or {}, direction=direction, unit_of_measure=measure)


_registered: weakref.WeakKeyDictionary[PluginManager, dict[str, Indicator]] = weakref.WeakKeyDictionary()


def registered(plugins: PluginManager | None) -> dict[str, Indicator]:
    """The indicators the plugins define (`register_indicators`), collected once per plugin manager; a
    definition that is not valid, or a key defined twice, stops the start (ValueError naming it)."""
    if plugins is None:
        return {}
    found = _registered.get(plugins)
    if found is not None:
        return found
    found = {}
    for item in flatten(plugins.hook.register_indicators()):
        try:
            indicator = check_definition(item)
        except InvalidInput as error:
            raise ValueError(f"register_indicators: {error.message}") from None
        if indicator.key in found:
            raise ValueError(f"register_indicators: the indicator {indicator.key!r} is defined twice")
        found[indicator.key] = indicator
    _registered[plugins] = found
    return found


def _decode(text: str | None) -> dict[str, str] | None:
    return msgspec.json.decode(text) if text else None


def definitions(conn: Connection, plugins: PluginManager | None) -> dict[str, Indicator]:
    """Every indicator: the plugins' and the administrators', by key (a plugin's wins a clash)."""
    found = {
        row["key"]: Indicator(
            key=row["key"],
            names=_decode(row["names"]) or {},
            direction=row["direction"],
            unit_of_measure=_decode(row["unit_of_measure"]),
        )
        for row in indicator_store.definitions(conn)
    }
    found.update(registered(plugins))
    return dict(sorted(found.items()))


def define(conn: Connection, raw: Any, plugins: PluginManager | None, actor: str | None) -> Indicator:
    """Define a new indicator (409 when its key is taken, by a plugin or before)."""
    indicator = check_definition(raw)
    if indicator.key in registered(plugins):
        raise Conflict(f"key: {indicator.key!r} is defined by a plugin", "key")
    names = msgspec.json.encode(indicator.names).decode()
    measure = msgspec.json.encode(indicator.unit_of_measure).decode() if indicator.unit_of_measure else None
    with unique(conn, f"key: {indicator.key!r} is already defined", "key"):
        indicator_store.insert_definition(
            conn, indicator.key, names, indicator.direction, measure, audit.now_iso(), actor
        )
    audit.record(conn, "indicator", indicator.key, "create", after=msgspec.structs.asdict(indicator))
    return indicator


def document(indicator: Indicator) -> dict[str, Any]:
    return msgspec.structs.asdict(indicator)


def name_of(indicator: Indicator | None, key: str, lang: str) -> str:
    """An indicator's name in `lang` (else English, else its key)."""
    if indicator is None:
        return key
    return indicator.names.get(lang) or indicator.names.get("en") or key


# -- periods -----------------------------------------------------------------------------------------------


def period_bounds(text: Any, field: str) -> tuple[str, str, str]:
    """(key, first day, last day) of a month `2026-03`, a quarter `2026-Q1` or a year `2026`."""
    found = PERIOD.match(text.strip()) if isinstance(text, str) else None
    if found is None or not 1900 <= int(found.group(1)) <= 2999:
        raise InvalidInput(f"{field}: a month (2026-03), a quarter (2026-Q1) or a year (2026)", field)
    year = int(found.group(1))
    if found.group(2):
        first = date(year, int(found.group(2)), 1)
        months = 1
    elif found.group(3):
        first = date(year, 3 * int(found.group(3)) - 2, 1)
        months = 3
    else:
        first = date(year, 1, 1)
        months = 12
    after = first.month - 1 + months
    last = date(year + after // 12, after % 12 + 1, 1) - timedelta(days=1)
    return found.group(0), first.isoformat(), last.isoformat()


def objective_window(period: str, at: date) -> tuple[date, date]:
    """The whole calendar period of an objective (month or quarter) containing `at`: a figure is given
    for a whole period, so the window is the period, not its days so far."""
    if period == "month":
        key = f"{at.year}-{at.month:02d}"
    elif period == "quarter":
        key = f"{at.year}-Q{(at.month - 1) // 3 + 1}"
    else:
        raise InvalidInput("period: an indicator's figures are kept by month, quarter or year", "period")
    _, first, last = period_bounds(key, "period")
    return date.fromisoformat(first), date.fromisoformat(last)


# -- figures -----------------------------------------------------------------------------------------------


def _whole(value: Any, field: str) -> int:
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidInput(f"{field}: a whole number from 0 to {MAX_COUNT}", field)
    return value


def check_value(
    raw: Any,
    snapshot: Snapshot,
    key: str,
    known: dict[str, Indicator],
    where: Where = lambda name: name,
    now: datetime | None = None,
) -> Figure:
    """One figure as sent: unit, period, numerator and denominator (0 ≤ numerator ≤ denominator, at least 1)."""
    if key not in known:
        raise NotFound(f"key: no indicator {key!r}; defined: {', '.join(known) or 'none'}", "key")
    if not isinstance(raw, dict):
        whole = where("") or "body"
        raise InvalidInput(f"{whole}: must be an object", whole)
    for name in raw:
        if name not in VALUE_FIELDS and name != "indicator":
            raise InvalidInput(f"{where(name)}: unknown field", where(name))
    for name in VALUE_FIELDS:
        if raw.get(name) is None or raw.get(name) == "":
            raise InvalidInput(f"{where(name)}: required", where(name))
    unit = raw["unit"]
    if not isinstance(unit, str) or unit not in snapshot.units:
        raise InvalidInput(f"{where('unit')}: no unit {unit!r}", where("unit"))
    period, first, last = period_bounds(raw["period"], where("period"))
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(snapshot.units[unit].tz)).date().isoformat()
    if first > today:
        raise InvalidInput(f"{where('period')}: {period} has not begun", where("period"))
    numerator = _whole(raw["numerator"], where("numerator"))
    denominator = _whole(raw["denominator"], where("denominator"))
    if denominator < 1:
        raise InvalidInput(f"{where('denominator')}: must be at least 1", where("denominator"))
    if numerator > denominator:
        raise InvalidInput(
            f"{where('numerator')}: {numerator} is more than the denominator ({denominator})", where("numerator")
        )
    return Figure(key, unit, period, first, last, numerator, denominator)


def figure_document(figure: Figure | dict[str, Any], min_n: int | None = None) -> dict[str, Any]:
    row = asdict(figure) if isinstance(figure, Figure) else dict(figure)
    return {
        "indicator": row["indicator"],
        "unit": row["unit"],
        "period": row["period"],
        "from": row["first_day"],
        "to": row["last_day"],
        "numerator": row["numerator"],
        "denominator": row["denominator"],
        **proportion(row["numerator"], row["denominator"], min_n, rate="value"),
    }


def store_value(conn: Connection, figure: Figure, source: str) -> str:
    """Add or replace one figure in the caller's transaction, with its audit entry; "added", "updated"
    or "unchanged"."""
    before = indicator_store.value(conn, figure.indicator, figure.unit, figure.period)
    after = {"numerator": figure.numerator, "denominator": figure.denominator}
    if before is not None and (before["numerator"], before["denominator"]) == (figure.numerator, figure.denominator):
        return "unchanged"
    at = audit.now_iso()
    indicator_store.upsert_value(conn, asdict(figure), source, at)
    old = None if before is None else {"numerator": before["numerator"], "denominator": before["denominator"]}
    audit.record(
        conn,
        "indicator_value",
        f"{figure.indicator}/{figure.unit}/{figure.period}",
        "set",
        before=old,
        after={**after, "source": source},
        unit=figure.unit,
        at=at,
    )
    return "added" if before is None else "updated"


def parse_file(
    data: bytes, filename: str, snapshot: Snapshot, known: dict[str, Indicator], now: datetime | None = None
) -> list[Figure]:
    """A CSV (or XLSX) table indicator,unit,period,numerator,denominator; every bad line named with its column."""
    lines = sheets.read_table(data, filename, FILE_COLUMNS, FILE_COLUMNS, SHEET)
    if not lines:
        raise sheets.Rejected([sheets.Problem("file", "no figure below the header")])

    def check(line: sheets.Line) -> Figure:
        def where(name: str) -> str:
            return sheets.where(line.number, name or None)

        key = line.values.get("indicator") or ""
        if key not in known:
            raise InvalidInput(f"{where('indicator')}: no indicator {key!r}; defined: {', '.join(known)}", "indicator")
        values = {name: line.values.get(name) for name in VALUE_FIELDS}
        return check_value(values, snapshot, key, known, where, now)

    figures = sheets.check_lines(lines, check)
    seen: dict[tuple[str, str, str], int] = {}
    for line, figure in zip(lines, figures, strict=True):
        cell = (figure.indicator, figure.unit, figure.period)
        if cell in seen:
            raise sheets.Rejected(
                [sheets.Problem(sheets.where(line.number, "period"), f"the same figure as on line {seen[cell]}")]
            )
        seen[cell] = line.number
    return figures


def store_figures(conn: Connection, figures: Sequence[Figure], source: str) -> dict[str, int]:
    """Add or replace many figures in the caller's transaction, with one audit entry for the batch."""
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    changed = []
    at = audit.now_iso()
    for figure in figures:
        before = indicator_store.value(conn, figure.indicator, figure.unit, figure.period)
        if before is not None and (before["numerator"], before["denominator"]) == (
            figure.numerator,
            figure.denominator,
        ):
            counts["unchanged"] += 1
            continue
        counts["added" if before is None else "updated"] += 1
        indicator_store.upsert_value(conn, asdict(figure), source, at)
        old = None if before is None else [before["numerator"], before["denominator"]]
        changed.append([figure.indicator, figure.unit, figure.period, old, [figure.numerator, figure.denominator]])
    if changed:
        digest = hashlib.sha256(msgspec.json.encode(changed)).hexdigest()[:16]
        audit.record(
            conn,
            "indicator_values",
            f"batch:{digest}",
            "import",
            after={"source": source, "figures": changed, "unchanged": counts["unchanged"]},
            at=at,
        )
    return counts


def kept(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figures that count, of rows sorted by indicator, unit, first day and last day (latest first):
    a unit's figure for a period stands for its figures of the parts of that period."""
    found = []
    covered: dict[tuple[str, str], str] = {}
    for row in rows:
        cell = (row["indicator"], row["unit"])
        if row["first_day"] <= covered.get(cell, ""):
            continue  # inside a period already counted (calendar periods nest, never overlap otherwise)
        covered[cell] = row["last_day"]
        found.append(row)
    return found


def totals(
    conn: Connection, units: Sequence[str], date_from: str, date_to: str, indicator: str | None = None
) -> dict[str, dict[str, Any]]:
    """Per indicator, the sums of the figures of these units within two days: `{numerator, denominator,
    figures, first_day, last_day}` (see `kept`; the days the counted periods span)."""
    found: dict[str, dict[str, Any]] = {}
    for row in kept(indicator_store.values_within(conn, units, date_from, date_to, indicator)):
        total = found.setdefault(
            row["indicator"],
            {"numerator": 0, "denominator": 0, "figures": 0, "first_day": row["first_day"], "last_day": ""},
        )
        total["numerator"] += int(row["numerator"])
        total["denominator"] += int(row["denominator"])
        total["figures"] += 1
        total["first_day"] = min(total["first_day"], row["first_day"])
        total["last_day"] = max(total["last_day"], row["last_day"])
    return found


def objective_counts(
    conn: Connection, snapshot: Snapshot, unit: str, indicator: str, period: str, at: date
) -> tuple[int, int]:
    """(numerator, denominator) of an indicator over a unit's subtree for the objective period containing
    `at`: what the objective metric `indicator_value` judges."""
    first, last = objective_window(period, at)
    total = totals(conn, snapshot.subtree(unit), first.isoformat(), last.isoformat(), indicator).get(indicator)
    return (total["numerator"], total["denominator"]) if total else (0, 0)


def summary(
    conn: Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    known: dict[str, Indicator],
    min_n: int,
) -> list[dict[str, Any]]:
    """Each indicator with figures in the subtree between two days: key, direction, value, n (the
    denominator), numerator, Wilson interval, sufficient and the days its counted periods span; by key."""
    rows = []
    for key, total in sorted(totals(conn, snapshot.subtree(unit), date_from, date_to).items()):
        n, numerator = total["denominator"], total["numerator"]
        indicator = known.get(key)
        rows.append(
            {
                "indicator": key,
                "direction": indicator.direction if indicator else None,
                "numerator": numerator,
                "n": n,
                **proportion(numerator, n, min_n, rate="value"),
                "first_day": total["first_day"],
                "last_day": total["last_day"],
            }
        )
    return rows


def listing(
    conn: Connection, snapshot: Snapshot, unit: str, key: str, date_from: str, date_to: str, min_n: int
) -> list[dict[str, Any]]:
    """Every stored figure of one indicator in a subtree whose period begins between two days, each with
    its value and Wilson interval, and when it was last sent."""
    return [
        {**figure_document(row, min_n), "updated_at": row["updated_at"]}
        for row in indicator_store.values_starting(conn, snapshot.subtree(unit), date_from, date_to, key)
    ]
