"""The catalogue import: units, services and touchpoints from one .xlsx workbook or one .csv file.

A workbook has a sheet per kind (`units`, `services`, `touchpoints`); a CSV file is one table whose first
column, `record`, says which kind each line is, with the union of the three kinds' columns (the README's
"Catalogue import" lists them). The whole file is read and checked against the database before anything
is written, every problem collected with its sheet (or `csv`), line and column; then one write job
applies it all in one transaction, planning again on what that transaction sees, so two imports at once
cannot both pass. A re-import updates by code and never deletes: a record the file leaves out, or a
cell it leaves empty, stays as it is. Unchanged records are not written (and log nothing).

The rules are the organisation's own (`feedback.organisation`, `feedback.unit_settings`, the snapshot's
`service_offered_at`); the writes are its functions, each logging its audit entry.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedback import organisation, surveys
from feedback.catalog import Snapshot, decode_names
from feedback.errors import FeedbackError, InvalidInput
from feedback.models import LANGUAGES, Unit
from feedback.plugins import PluginManager
from feedback.reported_units import is_reported
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import surveys as survey_store
from feedback.unit_settings import check_action_days, check_country, update_unit_settings

# -- the format ------------------------------------------------------------------------------------------

KINDS = ("units", "services", "touchpoints")
NAME_COLUMNS = tuple(f"name_{lang}" for lang in LANGUAGES)
COLUMNS: dict[str, tuple[str, ...]] = {
    "units": ("code", "parent", *NAME_COLUMNS, "lang", "tz", "country", "action_days"),
    "services": ("code", *NAME_COLUMNS, "kind", "unit"),
    "touchpoints": ("token", "name", "unit", "lang", "survey", "kind", "counter", "service", "retired"),
}
#: The column that names each record (its key).
KEY = {"units": "code", "services": "code", "touchpoints": "token"}
#: A CSV line's `record` value → its kind.
RECORDS = {
    "unit": "units",
    "units": "units",
    "service": "services",
    "services": "services",
    "touchpoint": "touchpoints",
    "touchpoints": "touchpoints",
}
CSV_COLUMNS = ("record", *dict.fromkeys(c for kind in KINDS for c in COLUMNS[kind]))
CSV_SHEET = "csv"
MAX_BYTES = 4 * 1024 * 1024
#: What a workbook may hold unpacked (its parts as the ZIP's directory declares them; reading never goes past
#: a declared size), so a small file cannot unpack into gigabytes of shared strings.
MAX_UNPACKED = 64 * 1024 * 1024
MAX_ROWS = 10_000
#: Cells read to the right of a sheet's known columns (enough to report values past its header).
EXTRA_COLUMNS = 8
#: The deepest a tree the import makes may be (agency → department → section → counter is four levels).
MAX_DEPTH = 16
YES = ("yes", "y", "true", "1")
NO = ("no", "n", "false", "0")


def N_(message: str) -> str:
    """Marks a message for translation; the manager page translates it where it is shown."""
    return message


# Every problem's message: English here (the CLI's JSON and stderr), in the page language on the page.
# Each starts with the column it is about (`%(column)s`), as every error of the service names its field.
FILE_KIND = N_("file: a catalogue is an .xlsx workbook or a .csv file")
FILE_XLS = N_("file: an .xls workbook is not read; save it as .xlsx or .csv")
FILE_UNREADABLE = N_("file: not an .xlsx workbook that can be read (%(reason)s)")
FILE_TOO_BIG = N_("file: larger than %(mb)s MB")
FILE_UNPACKS_TOO_BIG = N_("file: the workbook unpacks to more than %(mb)s MB")
FILE_EMPTY = N_("file: empty")
NO_SHEETS = N_("file: no sheet named units, services or touchpoints")
NOT_UTF8 = N_("file: not UTF-8 text (byte %(byte)s)")
BAD_CSV = N_("file: not a CSV file that can be read (%(reason)s)")
TOO_MANY_ROWS = N_("file: more than %(max)s lines in %(sheet)s")
CSV_NO_RECORD = N_("record: the first column is record (unit, service or touchpoint)")
UNKNOWN_COLUMN = N_("%(column)s: not a column of %(sheet)s (the columns are %(columns)s)")
DUPLICATE_COLUMN = N_("%(column)s: this column appears twice")
MISSING_COLUMN = N_("%(column)s: this column is missing")
NO_HEADER = N_("%(column)s: a value under no column name")
FORMULA = N_("%(column)s: a formula, not a value; type the value itself")
EQUALS_TEXT = N_("%(column)s: starts with '=', which a spreadsheet runs as a formula")
CELL_ERROR = N_("%(column)s: a spreadsheet error (%(value)s), not a value")
RECORD_KIND = N_("record: %(value)s is not unit, service or touchpoint")
NOT_THIS_KIND = N_("%(column)s: not a column of a %(record)s line")
REQUIRED = N_("%(column)s: required")
REQUIRED_NEW = N_("%(column)s: required, as %(code)s is new")
REQUIRED_ROOT = N_("%(column)s: required for a unit without a parent")
BAD_CODE = N_("%(column)s: letters, digits, '.', '-' and '_', at most %(max)s")
TOO_LONG = N_("%(column)s: at most %(max)s characters")
DUPLICATE = N_("%(column)s: %(code)s appears again (first on line %(first)s)")
BAD_LANG = N_("%(column)s: one of vi, ru, zh, en")
BAD_TZ = N_("%(column)s: unknown time zone %(value)s")
BAD_COUNTRY = N_("%(column)s: an ISO 3166 code with a holiday calendar (e.g. VN, CN, RU)")
BAD_DAYS = N_("%(column)s: a whole number of working days from 1 to 365")
NO_NAME = N_("%(column)s: give the name in at least one language (name_vi, name_ru, name_zh, name_en)")
UNKNOWN_UNIT = N_("%(column)s: no unit %(code)s in the file or the database")
CYCLE = N_("%(column)s: the units %(cycle)s are each other's parents")
TOO_DEEP = N_("%(column)s: the unit tree would be more than %(max)s levels deep")
UNIT_MOVED = N_("%(column)s: %(code)s stays where it is (under %(current)s); import does not move units")
TZ_CHANGED = N_("%(column)s: %(code)s keeps its days in %(current)s; import does not change a time zone")
BAD_SERVICE_KIND = N_("%(column)s: administrative, customs or other")
SERVICE_MOVED = N_("%(column)s: %(code)s belongs to %(current)s; import does not give a service to another unit")
BAD_TOUCHPOINT_KIND = N_("%(column)s: qr or kiosk")
TOUCHPOINT_MOVED = N_("%(column)s: touchpoint %(code)s is at %(current)s; import does not move a touchpoint")
KIND_CHANGED = N_("%(column)s: touchpoint %(code)s is a %(current)s touchpoint; import does not change its kind")
UNKNOWN_SURVEY = N_("%(column)s: no survey %(value)s (a published survey, or a template to publish)")
SURVEY_NEEDS_ROOT = N_(
    "%(column)s: survey %(value)s is not published yet; only an administrator of the whole installation"
    " publishes a survey"
)
UNKNOWN_SERVICE = N_("%(column)s: no service %(code)s in the file or the database")
SERVICE_ELSEWHERE = N_("%(column)s: service %(code)s belongs to another agency than unit %(unit)s")
BAD_RETIRED = N_("%(column)s: yes or no")
RETIRED_NEW = N_("%(column)s: a new touchpoint is not made retired")
STAYS_RETIRED = N_("%(column)s: touchpoint %(code)s was retired at %(at)s and stays retired; give a new token")
OUT_OF_SCOPE = N_("%(column)s: %(code)s is outside your unit %(scope)s")
REPORTED_UNIT = N_("%(column)s: %(code)s is reported by a child installation; change it there")
ROOT_NEEDS_ROOT_ADMIN = N_("%(column)s: a unit without a parent needs an administrator of the whole installation")
SERVICE_NEEDS_UNIT = N_("%(column)s: required, as you administer one unit's subtree")
REFUSED = N_("%(column)s: %(message)s")

#: Every message above (for the translation test).
MESSAGES = tuple(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str) and ": " in v)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: where (sheet or `csv`, line, column) and what."""

    sheet: str
    line: int | None
    column: str | None
    template: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.template % {"column": self.column, **self.params}

    def translated(self, gettext: Callable[[str], str]) -> str:
        return gettext(self.template) % {"column": self.column, **self.params}

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "line": self.line, "column": self.column, "message": self.message}

    def readable(self) -> str:
        """One line for people: `units line 5: parent: …` (a problem of the whole file: its message)."""
        if self.line is None and self.sheet == "file":
            return self.message
        where = self.sheet + (f" line {self.line}" if self.line else "")
        return f"{where}: {self.message}"


class CatalogueRejected(InvalidInput):
    """The file has problems; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=_order)
        first = self.problems[0].readable() if self.problems else "file: rejected"
        super().__init__(f"file: {len(self.problems)} problem(s), nothing written; the first: {first}", "file")


def _order(problem: Problem) -> tuple[int, str, int, int]:
    name = problem.sheet.strip().lower()
    sheet = KINDS.index(name) if name in KINDS else -1 if name == "file" else 3
    column = CSV_COLUMNS.index(problem.column) if problem.column in CSV_COLUMNS else len(CSV_COLUMNS)
    return (sheet, problem.sheet, problem.line or 0, column)


@dataclass
class Row:
    """One line of the file: its cells by column (empty cells left out) and the cells refused as read."""

    sheet: str
    line: int
    kind: str
    cells: dict[str, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)

    def get(self, column: str) -> str | None:
        return self.cells.get(column)


@dataclass
class Catalogue:
    """What a file holds: its lines by kind, and the problems found reading it."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    problems: list[Problem] = field(default_factory=list)


# -- reading -----------------------------------------------------------------------------------------------


def read_catalogue(data: bytes, filename: str) -> Catalogue:
    """Read a catalogue file: an .xlsx workbook (by its name, or a ZIP by its first bytes) or a .csv file."""
    name = filename.lower()
    catalogue = Catalogue()
    if len(data) > MAX_BYTES:
        catalogue.problems.append(Problem("file", None, None, FILE_TOO_BIG, {"mb": MAX_BYTES // (1024 * 1024)}))
    elif not data.strip():
        catalogue.problems.append(Problem("file", None, None, FILE_EMPTY))
    elif name.endswith(".xls"):
        catalogue.problems.append(Problem("file", None, None, FILE_XLS))
    elif name.endswith(".xlsx") or (not name.endswith(".csv") and data.startswith(b"PK\x03\x04")):
        read_xlsx(data, catalogue)
    elif name.endswith(".csv") or not data.startswith(b"PK"):
        read_csv(data, catalogue)
    else:
        catalogue.problems.append(Problem("file", None, None, FILE_KIND))
    return catalogue


def read_xlsx(data: bytes, catalogue: Catalogue) -> None:
    """The sheets `units`, `services` and `touchpoints` (any case; other sheets are left alone) of a
    workbook, read in openpyxl's read-only mode (streamed, bounded memory). Formula cells are refused."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED:
            mb = MAX_UNPACKED // (1024 * 1024)
            catalogue.problems.append(Problem("file", None, None, FILE_UNPACKS_TOO_BIG, {"mb": mb}))
            return
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as error:  # noqa: BLE001 - whatever a damaged upload raises, it is a problem of the file
        catalogue.problems.append(Problem("file", None, None, FILE_UNREADABLE, {"reason": _reason(error)}))
        return
    try:
        found = {name.strip().lower(): name for name in workbook.sheetnames}
        if not any(kind in found for kind in KINDS):
            catalogue.problems.append(Problem("file", None, None, NO_SHEETS))
            return
        for kind in KINDS:
            if kind in found:
                sheet = found[kind]
                # The size a workbook declares is not trusted: openpyxl would pad every row to it.
                worksheet = workbook[sheet]
                worksheet.reset_dimensions()
                width = len(COLUMNS[kind]) + 1 + EXTRA_COLUMNS  # the columns, `record`, and a few past them
                rows = (
                    (line, [_cell(cell) for cell in row])
                    for line, row in enumerate(worksheet.iter_rows(max_col=width), start=1)
                )
                _read_table(
                    catalogue, sheet, rows, lambda _cells, kind=kind: kind, COLUMNS[kind], label=get_column_letter
                )
    except Exception as error:  # noqa: BLE001 - a damaged sheet (bad XML, a broken stream): a problem of the file
        catalogue.problems.append(Problem("file", None, None, FILE_UNREADABLE, {"reason": _reason(error)}))
    finally:
        workbook.close()


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


#: A cell as read: its text (None when empty), or the problem it has.
Cell = tuple[str | None, str | None, str | None]  # (text, problem template, the value it names)


def _cell(cell: Any) -> Cell:
    value = cell.value
    if getattr(cell, "data_type", None) == "f" or type(value).__name__ in ("ArrayFormula", "DataTableFormula"):
        return None, FORMULA, None
    if getattr(cell, "data_type", None) == "e":
        return None, CELL_ERROR, str(value)
    if value is None:
        return None, None, None
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        text = value.isoformat()
    else:
        text = str(value)
    return _text(text)


def _text(raw: str) -> Cell:
    text = raw.strip()
    if not text:
        return None, None, None
    if text.startswith("="):
        return None, EQUALS_TEXT, None
    return text, None, None


def read_csv(data: bytes, catalogue: Catalogue) -> None:
    """One CSV table, UTF-8 with or without a byte-order mark; the delimiter (comma, semicolon or tab, as
    spreadsheets in different languages save them) is the one the first line uses most."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        catalogue.problems.append(Problem(CSV_SHEET, line, None, NOT_UTF8, {"byte": error.start}))
        return
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def rows() -> Iterator[tuple[int, list[Cell]]]:
        while True:
            line = reader.line_num + 1  # where the record starts (a quoted value may span lines)
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                catalogue.problems.append(Problem(CSV_SHEET, line, None, BAD_CSV, {"reason": str(error)[:200]}))
                return
            yield line, [_text(value) for value in row]

    def kind_of(cells: dict[str, Cell]) -> str | None:
        return RECORDS.get((cells.get("record", (None,))[0] or "").lower())

    _read_table(catalogue, CSV_SHEET, rows(), kind_of, CSV_COLUMNS, label=lambda number: f"#{number}")


def _read_table(
    catalogue: Catalogue,
    sheet: str,
    rows: Iterable[tuple[int, list[Cell]]],
    kind_of: Callable[[dict[str, Cell]], str | None],
    columns: Sequence[str],
    label: Callable[[int], str],
) -> None:
    """A table whose first line names its columns: each later line becomes a Row of its kind. `label`
    names a column without a name by its number (from 1)."""
    problems = catalogue.problems
    iterator = iter(rows)
    _first, header_cells = next(iterator, (0, None))
    if header_cells is None:
        return
    header: list[str | None] = [(text or "").lower() or None for text, _problem, _value in header_cells]
    while header and header[-1] is None:
        header.pop()
    seen: set[str] = set()
    for name in header:
        if name is None:
            continue
        if name in seen:
            problems.append(Problem(sheet, 1, name, DUPLICATE_COLUMN))
        elif name not in columns:
            problems.append(Problem(sheet, 1, name, UNKNOWN_COLUMN, {"sheet": sheet, "columns": ", ".join(columns)}))
        seen.add(name)
    if sheet == CSV_SHEET and (not header or header[0] != "record"):
        problems.append(Problem(sheet, 1, "record", CSV_NO_RECORD))
        return
    kinds_seen: set[str] = set()
    count = 0
    for line, cells in iterator:
        count += 1  # blank lines count too: a workbook may declare a million empty rows around one cell
        if count > MAX_ROWS:
            problems.append(Problem(sheet, line, None, TOO_MANY_ROWS, {"max": MAX_ROWS, "sheet": sheet}))
            return
        if all(text is None and problem is None for text, problem, _value in cells):
            continue
        named = {name: cells[i] for i, name in enumerate(header) if name and i < len(cells)}
        kind = kind_of(named)
        if kind is None:
            value = named.get("record", (None,))[0]
            template = RECORD_KIND if value else REQUIRED
            problems.append(Problem(sheet, line, "record", template, {"value": value}))
            continue
        kinds_seen.add(kind)
        row = Row(sheet, line, kind)
        for i, (text, problem, value) in enumerate(cells):
            name = header[i] if i < len(header) else None
            if text is None and problem is None:
                continue
            if name is None:
                problems.append(Problem(sheet, line, label(i + 1), NO_HEADER))
                continue
            if name == "record" or name not in columns:
                continue  # the record's kind, or a column refused once on the first line
            if name not in COLUMNS[kind]:
                problems.append(Problem(sheet, line, name, NOT_THIS_KIND, {"record": kind.rstrip("s")}))
                continue
            if problem is not None:
                problems.append(Problem(sheet, line, name, problem, {"value": value}))
                row.refused.add(name)
                continue
            row.cells[name] = text or ""
        catalogue.rows[kind].append(row)
    for kind in sorted(kinds_seen):
        if KEY[kind] not in header:
            problems.append(Problem(sheet, 1, KEY[kind], MISSING_COLUMN))
            catalogue.rows[kind] = [row for row in catalogue.rows[kind] if row.sheet != sheet]


# -- checking against the database: the plan -------------------------------------------------------------


@dataclass
class Plan:
    """What applying a catalogue would do: the writes in order, counted by kind, or the problems."""

    problems: list[Problem] = field(default_factory=list)
    writes: list[Callable[[Connection], Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {kind: {"added": 0, "updated": 0, "unchanged": 0} for kind in KINDS}
    )
    publish: list[str] = field(default_factory=list)

    def summary(self, *, dry_run: bool = False) -> dict[str, Any]:
        return {**self.counts, "surveys_published": list(self.publish), "dry_run": dry_run}


class _Planner:
    """Checks every line against the database and the rest of the file, and plans the writes."""

    def __init__(
        self, conn: Connection, catalogue: Catalogue, scope: str | None, templates: Iterable[str], plugins: Any
    ) -> None:
        self.catalogue = catalogue
        self.scope = scope
        self.templates = set(templates)
        self.plugins = plugins
        self.plan = Plan(problems=list(catalogue.problems))
        self.units = {row["code"]: row for row in organisation_store.all_units(conn)}
        self.services = {row["code"]: row for row in organisation_store.all_services(conn)}
        self.touchpoints = {row["token"]: row for row in organisation_store.all_touchpoints(conn)}
        self.short_codes = {
            row["short_code"].upper(): token for token, row in self.touchpoints.items() if row["short_code"]
        }
        self.published = survey_store.published_slugs(conn)
        # The tree as it will be: the database's units and the file's new ones (paths, languages).
        self.tree = Snapshot()
        for code, row in self.units.items():
            self.tree.units[code] = Unit(
                code=code, name=row["name"], parent=row["parent"], lang=row["lang"], tz=row["tz"], path=row["path"]
            )
        self.tree.services = {code: dict(row) for code, row in self.services.items()}
        self.new_units: dict[str, Row] = {}  # code → its line, for every new unit of the file
        self.file_services: set[str] = set()
        self._names: dict[int, dict[str, str]] = {}

    def problem(self, row: Row, column: str | None, template: str, **params: Any) -> None:
        self.plan.problems.append(Problem(row.sheet, row.line, column, template, params))

    # -- cells ---------------------------------------------------------------------------------------

    def key(self, row: Row, limit: int = organisation.MAX_CODE) -> str | None:
        column = KEY[row.kind]
        code = row.get(column)
        if code is None:
            if column not in row.refused:
                self.problem(row, column, REQUIRED)
            return None
        if row.kind != "touchpoints" or not self._existing_touchpoint(code):
            try:
                organisation.check_code(code, column, limit)
            except InvalidInput:
                self.problem(row, column, BAD_CODE, max=limit)
                return None
        return code

    def once(self, row: Row, key: str, seen: dict[str, int]) -> bool:
        """False (and a problem) when the file named this record on an earlier line."""
        column = KEY[row.kind]
        if key in seen:
            self.problem(row, column, DUPLICATE, code=row.get(column), first=seen[key])
            return False
        seen[key] = row.line
        return True

    def text(self, row: Row, column: str) -> str | None:
        value = row.get(column)
        if value is not None and len(value) > organisation.MAX_TEXT:
            self.problem(row, column, TOO_LONG, max=organisation.MAX_TEXT)
            return None
        return value

    def names(self, row: Row) -> dict[str, str]:
        """The line's names by language (checked once: a unit's are read twice, placing it and planning it)."""
        if id(row) not in self._names:
            self._names[id(row)] = {
                lang: text for lang in LANGUAGES if (text := self.text(row, f"name_{lang}")) is not None
            }
        return self._names[id(row)]

    def unnamed(self, row: Row) -> bool:
        """The line has no name cell at all (a name refused as read, or too long, is named on its own)."""
        return not any(row.get(column) is not None or column in row.refused for column in NAME_COLUMNS)

    def checked(self, row: Row, column: str, check: Callable[[str], Any], template: str) -> Any:
        """`check(cell)`; None and a problem when the rule refuses the cell."""
        raw = row.get(column)
        if raw is None:
            return None
        try:
            return check(raw)
        except FeedbackError:
            self.problem(row, column, template, value=row.get(column))
            return None

    def in_scope(self, row: Row, column: str, unit: str | None) -> bool:
        """Whether the file may change `unit` or hang things from it: inside the importer's scope, and not a
        child installation's unit (its reports overwrite those)."""
        if is_reported(unit):
            self.problem(row, column, REPORTED_UNIT, code=unit)
            return False
        if self.scope is None or unit is None or unit not in self.tree.units:
            return True
        if self.tree.in_subtree(unit, self.scope):
            return True
        self.problem(row, column, OUT_OF_SCOPE, code=unit, scope=self.scope)
        return False

    # -- units ---------------------------------------------------------------------------------------

    def plan_units(self) -> None:
        seen: dict[str, int] = {}
        lines: list[tuple[Row, str]] = []
        for row in self.catalogue.rows["units"]:
            code = self.key(row)
            if code is None or not self.once(row, code, seen):
                continue
            lines.append((row, code))
            if code not in self.units:
                self.new_units[code] = row
        self._place_new_units()
        for row, code in lines:
            self._plan_unit(row, code)

    def _place_new_units(self) -> None:
        """Give each new unit of the file its place in the tree (path), language and time zone: from its
        parent, which is in the database or (placed first) in the file. Unknown parents and cycles are
        problems; the units below them are left out quietly (their one cause is named). Walked without
        recursion: a file may chain thousands of units."""
        state: dict[str, str] = {}  # code → "placed" | "failed"
        for start in self.new_units:
            chain: list[str] = []  # from `start` up, each yet to be placed
            code, failed = start, False
            while True:
                if code in self.units or state.get(code) == "placed":
                    break
                if state.get(code) == "failed":
                    failed = True
                    break
                if code in chain:  # back to a unit of this walk: a cycle
                    cycle = chain[chain.index(code) :]
                    for member in cycle:
                        state[member] = "failed"
                        self.problem(self.new_units[member], "parent", CYCLE, cycle=" → ".join([*cycle, code]))
                    failed = True
                    break
                chain.append(code)
                row = self.new_units[code]
                parent = row.get("parent")
                if parent is None:
                    if self.scope is not None and "parent" not in row.refused:
                        self.problem(row, "parent", ROOT_NEEDS_ROOT_ADMIN)
                        state[code], failed = "failed", True
                    break
                if parent not in self.units and parent not in self.new_units:
                    if "parent" not in row.refused:
                        self.problem(row, "parent", UNKNOWN_UNIT, code=parent)
                    state[code], failed = "failed", True
                    break
                code = parent
            for code in reversed(chain):  # the top first: each one's parent is placed before it
                if state.get(code) == "failed":
                    continue
                failed = failed or not self._place(code)
                state[code] = "failed" if failed else "placed"

    def _place(self, code: str) -> bool:
        """Place one new unit under its parent, already placed (or as a root); False on a problem."""
        row = self.new_units[code]
        parent = row.get("parent")
        above = self.tree.units.get(parent) if parent else None
        lang = self.checked(row, "lang", organisation.check_lang, BAD_LANG) or (above.lang if above else None)
        tz = self.checked(row, "tz", organisation.check_tz, BAD_TZ) or (above.tz if above else None)
        for column, value in (("lang", lang), ("tz", tz)):
            if value is None and row.get(column) is None and column not in row.refused:
                self.problem(row, column, REQUIRED_ROOT)
        if lang is None or tz is None:
            return False
        path = f"{above.path if above else '/'}{code}/"
        if path.count("/") - 1 > MAX_DEPTH:
            self.problem(row, "parent", TOO_DEEP, max=MAX_DEPTH)
            return False
        name = organisation.own_name(self.names(row), lang)
        self.tree.units[code] = Unit(code=code, name=name, parent=parent, lang=lang, tz=tz, path=path)
        return True

    def _plan_unit(self, row: Row, code: str) -> None:
        existing = self.units.get(code)
        names = self.names(row)
        country = self.checked(row, "country", check_country, BAD_COUNTRY)
        days = self.checked(row, "action_days", lambda raw: check_action_days(_whole(raw)), BAD_DAYS)
        if existing is None:
            if self.unnamed(row):
                self.problem(row, "name_en", NO_NAME)
            placed = self.tree.units.get(code)
            if placed is None:
                return
            if placed.parent is not None and not self.in_scope(row, "parent", placed.parent):
                return
            settings = {k: v for k, v in (("country", country), ("action_days", days)) if v is not None}

            def add(conn: Connection, unit: Unit = placed, names: dict[str, str] = names) -> None:
                organisation.add_unit(
                    conn, unit.code, unit.name, parent=unit.parent, lang=unit.lang, tz=unit.tz, names=names
                )
                if settings:
                    update_unit_settings(conn, unit.code, settings)

            self.plan.writes.append(add)
            self.plan.counts["units"]["added"] += 1
            return
        lang = self.checked(row, "lang", organisation.check_lang, BAD_LANG)
        tz = self.checked(row, "tz", organisation.check_tz, BAD_TZ)
        parent = row.get("parent")
        if parent is not None and parent != existing["parent"]:
            self.problem(row, "parent", UNIT_MOVED, code=code, current=existing["parent"] or "—")
        if tz is not None and tz != existing["tz"]:
            self.problem(row, "tz", TZ_CHANGED, code=code, current=existing["tz"])
        if not self.in_scope(row, "code", code):
            return
        stored = decode_names(existing["names"]) or {existing["lang"]: existing["name"]}
        merged = {lang_: text for lang_ in LANGUAGES if (text := names.get(lang_) or stored.get(lang_))}
        new_lang = lang or existing["lang"]
        given = (("country", country), ("action_days", days))
        settings = {k: v for k, v in given if v is not None and v != existing[k]}
        renamed = merged != stored or new_lang != existing["lang"]
        if not renamed and not settings:
            self.plan.counts["units"]["unchanged"] += 1
            return

        def update(conn: Connection) -> None:
            if renamed:
                organisation.update_unit_names(conn, code, merged, new_lang)
            if settings:
                update_unit_settings(conn, code, settings)

        self.plan.writes.append(update)
        self.plan.counts["units"]["updated"] += 1

    # -- services ------------------------------------------------------------------------------------

    def plan_services(self) -> None:
        seen: dict[str, int] = {}
        for row in self.catalogue.rows["services"]:
            code = self.key(row)
            if code is None or not self.once(row, code, seen):
                continue
            self.file_services.add(code)
            self._plan_service(row, code)

    def _known_unit(self, row: Row, column: str) -> str | None:
        """The unit a cell names, when it is in the database or placed from the file (else a problem)."""
        unit = row.get(column)
        if unit is None:
            return None
        if unit in self.tree.units:
            return unit
        if unit not in self.new_units:  # a new unit with problems of its own is not named again
            self.problem(row, column, UNKNOWN_UNIT, code=unit)
        return None

    def _plan_service(self, row: Row, code: str) -> None:
        existing = self.services.get(code)
        names = self.names(row)
        kind = self.checked(row, "kind", organisation.check_service_kind, BAD_SERVICE_KIND)
        agency = self._known_unit(row, "unit")
        if existing is None and self.unnamed(row):
            self.problem(row, "name_en", NO_NAME)
        if row.get("unit") is not None and agency is None:
            return
        if existing is not None and agency is not None and agency != existing["agency"]:
            self.problem(row, "unit", SERVICE_MOVED, code=code, current=existing["agency"] or "—")
            return
        owner = agency if existing is None else existing["agency"]
        if is_reported(owner):
            self.problem(row, "unit" if existing is None else "code", REPORTED_UNIT, code=owner)
            return
        if self.scope is not None:
            if owner is None and existing is None:
                self.problem(row, "unit", SERVICE_NEEDS_UNIT)
                return
            if owner is None:  # every agency's service: only an administrator of the whole installation
                self.problem(row, "code", OUT_OF_SCOPE, code=code, scope=self.scope)
                return
            if not self.in_scope(row, "unit" if existing is None else "code", owner):
                return
        lang = self.tree.units[owner].lang if owner in self.tree.units else "en"
        if existing is None:
            if not names:
                return
            self.tree.services[code] = {"code": code, "agency": agency}
            name, kind = organisation.own_name(names, lang), kind or "administrative"
            self.plan.writes.append(
                lambda conn: organisation.add_service(conn, code, name, kind=kind, agency=agency, names=names)
            )
            self.plan.counts["services"]["added"] += 1
            return
        stored = decode_names(existing["names"]) or {lang: existing["name"]}
        merged = {lang_: text for lang_ in LANGUAGES if (text := names.get(lang_) or stored.get(lang_))}
        new_kind = kind or existing["kind"] or "administrative"
        if merged == stored and new_kind == (existing["kind"] or "administrative"):
            self.plan.counts["services"]["unchanged"] += 1
            return
        self.plan.writes.append(lambda conn: organisation.update_service(conn, code, merged, new_kind, lang))
        self.plan.counts["services"]["updated"] += 1

    # -- touchpoints ---------------------------------------------------------------------------------

    def _existing_touchpoint(self, reference: str) -> str | None:
        """The token of the touchpoint a reference names: its token, else its short code."""
        if reference in self.touchpoints:
            return reference
        return self.short_codes.get(reference.upper())

    def plan_touchpoints(self) -> None:
        seen: dict[str, int] = {}
        for row in self.catalogue.rows["touchpoints"]:
            reference = self.key(row, organisation.MAX_TOKEN)
            if reference is None:
                continue
            token = self._existing_touchpoint(reference) or reference
            if self.once(row, token, seen):
                self._plan_touchpoint(row, token)

    def _survey(self, row: Row) -> str | None:
        slug = row.get("survey")
        if slug is None or slug in self.published or slug in self.plan.publish:
            return slug
        if slug not in self.templates:
            self.problem(row, "survey", UNKNOWN_SURVEY, value=slug)
            return None
        if self.scope is not None:
            self.problem(row, "survey", SURVEY_NEEDS_ROOT, value=slug)
            return None
        self.plan.publish.append(slug)
        plugins = self.plugins
        self.plan.writes.insert(0, lambda conn: surveys.publish_template(conn, slug, plugins))
        return slug

    def _plan_touchpoint(self, row: Row, token: str) -> None:
        existing = self.touchpoints.get(token)
        name = self.text(row, "name")
        counter = self.text(row, "counter")
        lang = self.checked(row, "lang", organisation.check_lang, BAD_LANG)
        kind = self.checked(row, "kind", _touchpoint_kind, BAD_TOUCHPOINT_KIND)
        retired = self.checked(row, "retired", _yes_no, BAD_RETIRED)
        survey = self._survey(row)
        unit = self._known_unit(row, "unit")
        if row.get("unit") is not None and unit is None:
            self._service_at(row, None)
            return
        if existing is not None:
            if unit is not None and unit != existing["unit"]:
                self.problem(row, "unit", TOUCHPOINT_MOVED, code=token, current=existing["unit"])
                self._service_at(row, None)
                return
            if kind is not None and kind != existing["kind"]:
                self.problem(row, "kind", KIND_CHANGED, code=token, current=existing["kind"])
            if retired is False and existing["retired_at"]:
                self.problem(row, "retired", STAYS_RETIRED, code=token, at=existing["retired_at"])
            unit = existing["unit"]
        else:
            for column, value in (("name", name), ("unit", unit), ("survey", survey)):
                if value is None and row.get(column) is None and column not in row.refused:
                    self.problem(row, column, REQUIRED_NEW, code=token)
            if retired:
                self.problem(row, "retired", RETIRED_NEW)
        service = self._service_at(row, unit)
        if unit is None or not self.in_scope(row, "unit" if existing is None else "token", unit):
            return
        if existing is None:
            if name is None or survey is None:
                return
            values = {"kind": kind or "qr", "lang": lang, "counter": counter, "service": service, "token": token}
            self.plan.writes.append(lambda conn: organisation.add_touchpoint(conn, unit, name, survey, **values))
            self.plan.counts["touchpoints"]["added"] += 1
            return
        wanted = {"name": name, "lang": lang, "survey": survey, "counter": counter, "service": service}
        changes = {k: v for k, v in wanted.items() if v is not None and v != existing[k]}
        retire = retired is True and not existing["retired_at"]
        if not changes and not retire:
            self.plan.counts["touchpoints"]["unchanged"] += 1
            return

        def update(conn: Connection) -> None:
            organisation.update_touchpoint(conn, token, changes)
            if retire:
                organisation.retire_touchpoint(conn, token)

        self.plan.writes.append(update)
        self.plan.counts["touchpoints"]["updated"] += 1

    def _service_at(self, row: Row, unit: str | None) -> str | None:
        """The service a touchpoint line names, when it exists and its unit may offer it (the rule ingest
        applies: `Snapshot.service_offered_at`)."""
        service = row.get("service")
        if service is None:
            return None
        if service not in self.tree.services:
            if service not in self.file_services:  # a new service with problems of its own is not named again
                self.problem(row, "service", UNKNOWN_SERVICE, code=service)
            return None
        if unit is not None and unit in self.tree.units and not self.tree.service_offered_at(service, unit):
            self.problem(row, "service", SERVICE_ELSEWHERE, code=service, unit=unit)
            return None
        return service


def _whole(raw: str) -> int:
    if not raw.isdecimal():
        raise InvalidInput("action_days: a whole number", "action_days")
    return int(raw)


def _touchpoint_kind(raw: str) -> str:
    kind = raw.lower()
    if kind not in organisation.TOUCHPOINT_KINDS:
        raise InvalidInput("kind: must be 'qr' or 'kiosk'", "kind")
    return kind


def _yes_no(raw: str) -> bool:
    value = raw.lower()
    if value in YES:
        return True
    if value in NO:
        return False
    raise InvalidInput("retired: yes or no", "retired")


def make_plan(
    conn: Connection,
    catalogue: Catalogue,
    *,
    scope: str | None = None,
    templates: Iterable[str] = (),
    plugins: PluginManager | None = None,
) -> Plan:
    """Check a catalogue as a whole against the database (reads only) and plan its writes. `scope`: the unit
    whose subtree the importer administers (None: the whole installation); `templates`: the survey
    templates a touchpoint may name before they are published (published with the import)."""
    planner = _Planner(conn, catalogue, scope, templates, plugins)
    planner.plan_units()
    planner.plan_services()
    planner.plan_touchpoints()
    return planner.plan


def apply_plan(conn: Connection, plan: Plan) -> None:
    """The planned writes, in order (surveys, units parents first, services, touchpoints), in the caller's
    transaction."""
    for write in plan.writes:
        write(conn)


async def import_catalogue(
    store: Any,
    catalogue: Catalogue,
    *,
    scope: str | None = None,
    plugins: PluginManager | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Check the catalogue on a reader, then apply it in one write job that plans again on what it sees;
    returns the summary. Raises CatalogueRejected (nothing written) with every problem."""
    templates = set(surveys.survey_templates(plugins)) if plugins is not None else set()

    def plan_on(conn: Connection) -> Plan:
        return make_plan(conn, catalogue, scope=scope, templates=templates, plugins=plugins)

    plan = await store.read(plan_on)
    if plan.problems:
        raise CatalogueRejected(plan.problems)
    if dry_run:
        return plan.summary(dry_run=True)

    def job(conn: Connection) -> dict[str, Any]:
        planned = plan_on(conn)
        if planned.problems:
            raise CatalogueRejected(planned.problems)
        apply_plan(conn, planned)
        return planned.summary()

    try:
        return await store.write(job)
    except CatalogueRejected:
        raise
    except FeedbackError as error:  # e.g. a code another import took a moment ago: the whole file waits
        column = error.field or "file"
        problem = Problem("file", None, column, REFUSED, {"message": error.message.split(": ", 1)[-1]})
        raise CatalogueRejected([problem]) from error
