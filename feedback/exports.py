"""Exports as data: response rows and rate rows as CSV or XLSX, and the CSV exports plugins add.

No web code here. Responses are read in bounded pages, keyset over the (unit, day) index (one unit
of the subtree after another, then day, then rowid), so an export of ten million rows never holds
more than a page in memory. CSV leaves as a stream; XLSX is written by openpyxl's write-only mode
into a temporary file, under a row cap.
"""

from __future__ import annotations

import csv
import functools
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import audit, dossiers
from feedback.catalog import Snapshot
from feedback.erasure import MARKER as ERASED_MARKER
from feedback.erasure import erased_fields
from feedback.errors import FeedbackError, InvalidInput
from feedback.models import ContactQuestion, TextQuestion, is_suspect
from feedback.store import Connection, dialect
from feedback.store import responses as response_store

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

PAGE_SIZE = 2000
XLSX_MAX_ROWS = 1_000_000
BOM = "\ufeff"  # so Excel opens UTF-8 (Vietnamese, Cyrillic, CJK) without garbling it

RESPONSE_COLUMNS = (
    "id",
    "receipt",
    "day",
    "occurred_at",
    "unit",
    "unit_name",
    "service",
    "touchpoint",
    "counter",
    "channel",
    "transaction_point",
    "case_ref",
    "case_verified",
    "dossier_late",  # 1 the case's dossier was late, 0 returned on time, empty otherwise (feedback.dossiers)
    "survey",
    "survey_version",
    "lang",
    "level",
    "satisfied",
    "dissatisfied",
    "score",
)
RATE_COLUMNS = (
    "key",
    "name",
    "n",
    "satisfied",
    "rate",
    "ci95_low",
    "ci95_high",
    "sufficient",
    "not_dissatisfied_rate",
    "mean_score",
    "served",
    "response_rate",
)


class TooLarge(FeedbackError):
    """More rows than a spreadsheet should hold."""

    status_code = 413


@dataclass(frozen=True)
class ResponseFilter:
    """Which responses an export holds: a unit's subtree, local days inclusive, and the list filters."""

    units: tuple[str, ...]
    date_from: str
    date_to: str
    service: str | None = None
    touchpoint: str | None = None
    level: int | None = None
    flagged: bool | None = None
    survey: str | None = None


@dataclass
class Cursor:
    """Where the previous page stopped: index into the units, then (day, rowid) within the unit."""

    unit_index: int = 0
    day: str = ""
    rowid: int = 0
    done: bool = False


def parse_flagged(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput("flagged: must be true or false", "flagged")


def parse_level(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.strip().isdecimal() or not 1 <= int(value) <= 5:
        raise InvalidInput("level: must be a whole number from 1 to 5", "level")
    return int(value)


def fetch_page(
    conn: Connection, flt: ResponseFilter, cursor: Cursor, limit: int = PAGE_SIZE
) -> tuple[list[dict[str, Any]], Cursor]:
    """The next page of responses after `cursor` (at most `limit` rows scanned) and the cursor after it.

    One unit at a time, `WHERE unit = ? AND day …  ORDER BY day, rowid`, which the (unit, day) index
    answers in order (its entries carry the rowid), so every page is a short range scan.
    """
    while cursor.unit_index < len(flt.units):
        unit = flt.units[cursor.unit_index]
        rows = dialect.of(conn).response_page(
            conn,
            unit,
            flt.date_from,
            flt.date_to,
            (cursor.day, cursor.rowid),
            limit,
            equal=_equal(flt),
            flagged_only=bool(flt.flagged),
        )
        if len(rows) < limit:
            next_cursor = Cursor(cursor.unit_index + 1)
        else:
            next_cursor = Cursor(cursor.unit_index, rows[-1]["day"], rows[-1]["_rowid"])
        if flt.flagged is not None:
            rows = [row for row in rows if is_suspect(_flags(row)) == flt.flagged]
        if rows or next_cursor.unit_index != cursor.unit_index:
            return rows, next_cursor
        cursor = next_cursor
    return [], Cursor(len(flt.units), done=True)


def count_responses(conn: Connection, flt: ResponseFilter) -> int:
    """How many responses the filter holds (the suspect test needs the flags, so it pages)."""
    if flt.flagged is None:
        return response_store.count_matching(conn, flt.units, flt.date_from, flt.date_to, _equal(flt))
    total, cursor = 0, Cursor()
    while not cursor.done:
        rows, cursor = fetch_page(conn, flt, cursor)
        total += len(rows)
    return total


def _equal(flt: ResponseFilter) -> dict[str, Any]:
    """The filter's column = value conditions."""
    return {"service": flt.service, "touchpoint": flt.touchpoint, "level": flt.level, "survey": flt.survey}


def iter_responses(conn: Connection, flt: ResponseFilter) -> Iterator[dict[str, Any]]:
    """Every response of the filter, page by page (for use on a reader thread)."""
    cursor = Cursor()
    while not cursor.done:
        rows, cursor = fetch_page(conn, flt, cursor)
        yield from rows


def with_dossiers(conn: Connection, snapshot: Snapshot, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, each with `_dossier`: what became of the dossier its case reference names (None without one)."""
    states = dossiers.states_of(conn, snapshot, ((row["case_ref"], row["unit"]) for row in rows))
    for row in rows:
        row["_dossier"] = states.get((row["case_ref"], row["unit"])) if row["case_ref"] else None
    return rows


def _flags(row: dict[str, Any]) -> list[str]:
    try:
        return list(msgspec.json.decode(row["flags"])) if row["flags"] else []
    except msgspec.DecodeError:
        return []


@dataclass
class ResponseLayout:
    """The columns of a response export: fixed ones, one per answer key, the comment, flag, what was erased,
    who keyed it in (paper and hotline), officer."""

    answer_keys: list[str] = field(default_factory=list)
    text_keys: set[str] = field(default_factory=set)
    with_officer: bool = False

    @property
    def header(self) -> list[str]:
        officer = ["officer"] if self.with_officer else []
        return [*RESPONSE_COLUMNS, *self.answer_keys, "comment", "flag", "erased", "entered_by", *officer]


def response_layout(snapshot: Snapshot, flt: ResponseFilter, with_officer: bool) -> ResponseLayout:
    """Answer columns: the union of question keys over every version of every survey the subtree's
    touchpoints (retired ones too) use, in question order. Free-text answers go to `comment`."""
    units = set(flt.units)
    slugs = sorted(
        {
            tp.survey
            for tp in snapshot.touchpoints.values()
            if tp.unit in units and (flt.touchpoint is None or tp.token == flt.touchpoint)
        }
    )
    if flt.survey is not None:
        slugs = [flt.survey]
    layout = ResponseLayout(with_officer=with_officer)
    seen: set[str] = set()
    for (slug, _version), survey in sorted(snapshot.versions.items()):
        if slug not in slugs:
            continue
        for question in survey.definition.questions:
            if isinstance(question, ContactQuestion):
                continue
            if isinstance(question, TextQuestion):
                layout.text_keys.add(question.key)
                continue
            if question.key not in seen:
                seen.add(question.key)
                layout.answer_keys.append(question.key)
    return layout


def record_download(conn: Connection, name: str, flt: ResponseFilter, layout: ResponseLayout) -> None:
    """Log a download of a response export: every one carries case references and comments, and officer
    codes for the roles that see them (the entry names the export and its filters, never its rows)."""
    after = {
        "export": name,
        "unit": flt.units[0],
        "from": flt.date_from,
        "to": flt.date_to,
        "service": flt.service,
        "touchpoint": flt.touchpoint,
        "level": flt.level,
        "flagged": flt.flagged,
        "officers": layout.with_officer,
    }
    audit.record(conn, "export", name, "download", after=after, unit=flt.units[0])


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if isinstance(value, dict):
        return msgspec.json.encode(value).decode()
    return value


def _local_time(stamp: str | None, tz: str) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")
    except ValueError:
        return stamp


def response_values(row: dict[str, Any], layout: ResponseLayout, snapshot: Snapshot) -> list[Any]:
    """One export row, in `layout.header` order."""
    unit = snapshot.units.get(row["unit"])
    try:
        answers = msgspec.json.decode(row["answers"]) if row["answers"] else {}
    except msgspec.DecodeError:
        answers = {}
    flags = _flags(row)
    erased = erased_fields(row)
    # An erased comment is the marker, once, whatever free-text answers it had.
    comment = (
        ERASED_MARKER
        if "comment" in erased
        else " | ".join(str(answers[key]) for key in sorted(layout.text_keys) if answers.get(key))
    )
    values: list[Any] = [
        row["id"],
        row["receipt"],
        row["day"],
        _local_time(row["occurred_at"], unit.tz if unit else "UTC"),
        row["unit"],
        unit.name if unit else "",
        row["service"] or "",
        row["touchpoint"],
        row["counter"] or "",
        row["channel"],
        row["transaction_point"] or "",
        row["case_ref"] or "",
        (1 if row.get("case_verified") else 0) if row["case_ref"] else "",
        dossiers.late_flag(row.get("_dossier")),
        row["survey"],
        row["survey_version"],
        row["lang"],
        row["level"],
        row["satisfied"],
        row["dissatisfied"],
        row["score"],
    ]
    values.extend(_cell(answers.get(key)) for key in layout.answer_keys)
    values.append(comment)
    values.append(";".join(flags) if is_suspect(flags) else "")
    values.append(";".join(erased))
    values.append(row.get("entered_by") or "")  # who keyed a paper form or a hotline call in
    if layout.with_officer:
        values.append(row["officer"] or "")
    return values


# -- Cells no spreadsheet runs as formulas -----------------------------------------------------------

# Text starting with one of these is taken for a formula by spreadsheet programs, and comments, case
# references and officer codes come from anyone.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@functools.cache
def _openpyxl() -> tuple[Any, Any, Any]:
    """openpyxl's workbook, cell and illegal-character pattern, imported on the first XLSX: every
    command and server imports this module, and most never write a workbook."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return Workbook, WriteOnlyCell, ILLEGAL_CHARACTERS_RE


def spreadsheet_cell(value: Any, sheet: WriteOnlyWorksheet | None = None) -> Any:
    """A cell of any export, safe to open in a spreadsheet; numbers stay numbers, None is empty.

    CSV (no `sheet`): text that starts like a formula gets a leading apostrophe, which spreadsheets
    show as text. XLSX: every text is an explicit string cell with its value intact (openpyxl would
    make text starting with "=" a formula); characters XML cannot hold become U+FFFD.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if sheet is None:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    _, write_only_cell, illegal_characters = _openpyxl()
    cell = write_only_cell(sheet, illegal_characters.sub("\ufffd", value))
    cell.data_type = "s"
    return cell


# -- CSV --------------------------------------------------------------------------------------------


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([spreadsheet_cell(value) for value in row])
    return buffer.getvalue()


def response_csv_page(
    conn: Connection, snapshot: Snapshot, flt: ResponseFilter, layout: ResponseLayout, cursor: Cursor
) -> tuple[bytes, Cursor]:
    """One page of the response CSV, already encoded (so the event loop only forwards bytes)."""
    rows, cursor = fetch_page(conn, flt, cursor)
    rows = with_dossiers(conn, snapshot, rows)
    return csv_text(response_values(row, layout, snapshot) for row in rows).encode(), cursor


# -- XLSX -------------------------------------------------------------------------------------------


def write_xlsx(header: list[str], rows: Iterable[list[Any]], sheet: str) -> IO[bytes]:
    """A workbook in write-only mode (rows go straight to disk), as an open temporary file at offset 0."""
    workbook_class, _, _ = _openpyxl()
    workbook = workbook_class(write_only=True)
    worksheet = workbook.create_sheet(sheet[:31])
    worksheet.append([spreadsheet_cell(value, worksheet) for value in header])
    for row in rows:
        worksheet.append([spreadsheet_cell(value, worksheet) for value in row])
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the caller streams it, then closes (deletes) it
    workbook.save(handle)
    handle.seek(0)
    return handle


def check_xlsx_size(count: int, flt: ResponseFilter, cap: int = XLSX_MAX_ROWS) -> None:
    if count > cap:
        raise TooLarge(
            f"to: {flt.date_from} to {flt.date_to} holds {count} responses, more than the {cap} rows an XLSX"
            f" export may hold; ask for a shorter period or use responses.csv",
            "to",
        )


def responses_xlsx(
    conn: Connection, snapshot: Snapshot, flt: ResponseFilter, layout: ResponseLayout, cap: int = XLSX_MAX_ROWS
) -> IO[bytes]:
    """The response export as XLSX (TooLarge, naming the period, above `cap` rows)."""
    check_xlsx_size(count_responses(conn, flt), flt, cap)

    def lines() -> Iterator[list[Any]]:
        cursor = Cursor()
        while not cursor.done:
            rows, cursor = fetch_page(conn, flt, cursor)
            for row in with_dossiers(conn, snapshot, rows):
                yield response_values(row, layout, snapshot)

    return write_xlsx(layout.header, lines(), "responses")


# -- rates ------------------------------------------------------------------------------------------


def key_name(snapshot: Snapshot, by: str, key: str | None) -> str:
    """A readable name for a rate row's key (unit, service, touchpoint), else the key itself."""
    if key is None:
        return ""
    if by == "unit" and key in snapshot.units:
        return snapshot.units[key].name
    if by == "service" and key in snapshot.services:
        return snapshot.services[key]["name"]
    if by == "touchpoint" and key in snapshot.touchpoints:
        return snapshot.touchpoints[key].name
    return key


def rate_values(row: dict[str, Any], name: str, key: str | None) -> list[Any]:
    interval = row.get("ci95") or [None, None]
    return [
        key,
        name,
        row["n"],
        row["satisfied"],
        row["rate"],
        interval[0],
        interval[1],
        row["sufficient"],
        row.get("not_dissatisfied_rate"),
        row.get("mean_score"),
        row.get("served"),
        row.get("response_rate"),
    ]


def rate_table(result: dict[str, Any], snapshot: Snapshot) -> list[list[Any]]:
    """The rows of a /api/v1/satisfaction result, then its total (key "total")."""
    by = result["by"]
    table = [rate_values(row, key_name(snapshot, by, row["key"]), row["key"]) for row in result["rows"]]
    table.append(rate_values(result["total"], "", "total"))
    return table


# -- exports plugins add ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Exporter:
    """A CSV export a plugin adds through `register_exporters`.

    It is served as `GET /api/v1/exports/<name>.csv` for a unit's subtree (`unit`, 403 outside the
    caller's) between two local days (`from`, `to`; by default the last `default_days`), like the
    core's exports, as UTF-8 with a BOM and the file name `<file_name>_<unit>_<from>_<to>.csv`; the
    manager app's reports page offers it under `title` and `description` (message ids, translated
    through the gettext catalogues, the plugin's own included)."""

    name: str
    title: str
    description: str
    #: The column names, in order.
    header: Callable[[], list[str]]
    #: `rows(conn, snapshot, units, date_from, date_to)` on a reader thread: the table, one list per row.
    rows: Callable[[Any, Snapshot, list[str], str, str], list[list[Any]]]
    #: What the OpenAPI document says of the operation and of its CSV (English).
    summary: str = ""
    file_description: str = "CSV"
    file_name: str = ""  # defaults to `name`
    default_days: int = 30


def quarter_of(day: str) -> str:
    year, month = int(day[:4]), int(day[5:7])
    return f"{year}-Q{(month - 1) // 3 + 1}"


def quarter_bounds(key: str, date_from: str, date_to: str) -> tuple[str, str]:
    """The part of a quarter that lies inside the export's period."""
    year, quarter = int(key[:4]), int(key[-1])
    first = date(year, 3 * quarter - 2, 1)
    last = date(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1).toordinal() - 1
    return max(first.isoformat(), date_from), min(date.fromordinal(last).isoformat(), date_to)


def filename(kind: str, unit: str, date_from: str, date_to: str, extension: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in unit)
    return f"{kind}_{safe}_{date_from}_{date_to}.{extension}"


def iter_csv_bytes(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    """A whole (small) CSV with the BOM."""
    return (BOM + csv_text([header, *rows])).encode()
