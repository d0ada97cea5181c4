"""Exposure counts: customers served (and offered a survey) per unit × service × local day.

Posted by a queue or one-stop system (`POST /api/v1/exposure`) or imported from CSV
(`feedback exposure import`). They turn respondent counts into response rates, so a "100 %
satisfied" from 140 forms out of 1,322 dossiers shows its coverage beside it.
Every batch is checked whole before anything is stored: one bad item stores nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from feedback.catalog import Snapshot
from feedback.errors import InvalidInput
from feedback.organisation import set_exposure
from feedback.store import Connection
from feedback.store import exposure as exposure_store

MAX_ITEMS = 5000
FIELDS = ("unit", "service", "day", "served", "offered")
REQUIRED = ("unit", "day", "served")
CSV_COLUMNS = ("unit", "service", "day", "served")  # the header must name these; `offered` may follow
MAX_COUNT = 10**9


@dataclass(frozen=True)
class ExposureItem:
    unit: str
    service: str | None
    day: str
    served: int
    offered: int | None = None


def _whole(value: Any, name: str, where: Callable[[str], str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where(name)}: must be a whole number", where(name))
    if not 0 <= value <= MAX_COUNT:
        raise InvalidInput(f"{where(name)}: must be from 0 to {MAX_COUNT}", where(name))
    return value


def check_item(raw: Any, snapshot: Snapshot, where: Callable[[str], str]) -> ExposureItem:
    """One item, already typed (JSON values); `where(field)` names a field for the error."""
    if not isinstance(raw, dict):
        whole = where("")
        raise InvalidInput(f"{whole or 'body'}: must be an object", whole or "body")
    for name in raw:
        if name not in FIELDS:
            raise InvalidInput(f"{where(name)}: unknown field", where(name))
    for name in REQUIRED:
        if raw.get(name) is None:
            raise InvalidInput(f"{where(name)}: required", where(name))
    unit = raw["unit"]
    if not isinstance(unit, str) or unit not in snapshot.units:
        raise InvalidInput(f"{where('unit')}: no unit {unit!r}", where("unit"))
    service = raw.get("service") or None
    if service is not None and (not isinstance(service, str) or service not in snapshot.services):
        raise InvalidInput(f"{where('service')}: no service {service!r}", where("service"))
    day = raw["day"]
    try:
        if not isinstance(day, str) or len(day) != 10:
            raise ValueError
        day = date.fromisoformat(day).isoformat()
    except ValueError:
        raise InvalidInput(f"{where('day')}: not a date (YYYY-MM-DD)", where("day")) from None
    served = _whole(raw["served"], "served", where)
    offered = raw.get("offered")
    if offered is not None:
        offered = _whole(offered, "offered", where)
        if offered > served:
            raise InvalidInput(f"{where('offered')}: must not exceed served ({served})", where("offered"))
    return ExposureItem(unit=unit, service=service, day=day, served=served, offered=offered)


def parse_body(body: Any, snapshot: Snapshot) -> list[ExposureItem]:
    """A JSON body: one object, or a list of at most MAX_ITEMS; errors name `[i].field` in a list."""
    if isinstance(body, list):
        if len(body) > MAX_ITEMS:
            raise InvalidInput(f"body: at most {MAX_ITEMS} items per request", "body")
        if not body:
            raise InvalidInput("body: the list is empty", "body")
        return [
            check_item(raw, snapshot, lambda name, i=i: f"[{i}].{name}" if name else f"[{i}]")
            for i, raw in enumerate(body)
        ]
    return [check_item(body, snapshot, lambda name: name)]


def parse_csv(text: str, snapshot: Snapshot) -> list[ExposureItem]:
    """CSV with the header unit,service,day,served[,offered]; an error names the line and column."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise InvalidInput("line 1: the file is empty; expected the header unit,service,day,served[,offered]", "line 1")
    header = [name.strip().lower() for name in header]
    for name in header:
        if name not in FIELDS:
            raise InvalidInput(f"line 1, column {name!r}: unknown column", "line 1")
    for name in CSV_COLUMNS:
        if name not in header:
            raise InvalidInput(f"line 1: the header lacks the column {name!r}", "line 1")
    if len(set(header)) != len(header):
        raise InvalidInput("line 1: a column is named twice", "line 1")
    items = []
    for values in reader:
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue  # blank lines, e.g. at the end of a spreadsheet export
        if len(values) != len(header):
            raise InvalidInput(f"line {line}: {len(values)} values for {len(header)} columns", f"line {line}")

        def where(name: str, line: int = line) -> str:
            return f"line {line}, column {name}" if name else f"line {line}"

        raw: dict[str, Any] = {}
        for name, value in zip(header, values, strict=True):
            value = value.strip()
            if name in ("served", "offered"):
                if value == "":
                    raw[name] = None
                    continue
                try:
                    raw[name] = int(value)
                except ValueError:
                    raise InvalidInput(f"{where(name)}: must be a whole number, not {value!r}", where(name)) from None
            else:
                raw[name] = value or None
        items.append(check_item(raw, snapshot, where))
    return items


def store_items(conn: Connection, items: Iterable[ExposureItem], source: str) -> int:
    """Upsert every item in the caller's transaction; the latest count for a cell wins."""
    count = 0
    for item in items:
        set_exposure(conn, item.unit, item.service, item.day, item.served, item.offered, source=source)
        count += 1
    return count


def list_exposure(conn: Connection, units: list[str], date_from: str, date_to: str) -> list[dict[str, Any]]:
    return [
        {**row, "service": row["service"] or None} for row in exposure_store.listing(conn, units, date_from, date_to)
    ]
