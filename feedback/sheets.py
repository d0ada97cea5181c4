"""One table read from a CSV file or an XLSX workbook, for the imports of figures kept elsewhere (dossiers,
indicator values): each line with its number and its values by column name, or every problem found.

The first line names the columns (any case, any order). CSV is UTF-8 with or without a byte-order mark,
separated by commas, semicolons or tabs (whichever the header line uses most: spreadsheets save CSV
differently by language). A workbook's table is the sheet named as the caller asks, else its first
sheet; a formula cell is refused (its value is whatever the spreadsheet last computed, or nothing), and
so is text starting with "=", which a spreadsheet would run as one. Date cells become their day
(YYYY-MM-DD). The caller checks the values and names a bad one as "line 4, column due".
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from feedback.errors import InvalidInput

MAX_BYTES = 64 * 1024 * 1024
#: What a workbook may hold unpacked (its parts as the ZIP's directory declares them), so a small file
#: cannot unpack into gigabytes.
MAX_UNPACKED = 256 * 1024 * 1024
#: Lines read from a file, blank ones included: a workbook may declare a million rows around one cell.
MAX_LINES = 200_000
#: Cells read to the right of the known columns (enough to report a line with values past its header).
EXTRA_COLUMNS = 8
MAX_PROBLEMS = 100  # enough to fix a file by; a file wrong on every line says so in its first lines


@dataclass(frozen=True)
class Problem:
    where: str  # "file", "line 1" or "line 4, column due"
    message: str

    def readable(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Line:
    number: int  # as a spreadsheet numbers it: the header is line 1
    values: dict[str, str | None]  # column -> its text, None when empty
    problems: tuple[Problem, ...] = ()  # cells that cannot be read (a formula): the line is not checked


class Rejected(InvalidInput):
    """A file with problems: nothing of it is stored. The message and field are the first problem's;
    `problems` holds them all (at most MAX_PROBLEMS)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0].readable(), problems[0].where)
        self.problems = problems


def where(line: int, column: str | None = None) -> str:
    return f"line {line}, column {column}" if column else f"line {line}"


def read_table(data: bytes, filename: str, columns: Sequence[str], required: Sequence[str], sheet: str) -> list[Line]:
    """The lines of the file's table (blank lines left out); Rejected naming every problem found."""
    if len(data) > MAX_BYTES:
        raise Rejected([Problem("file", f"larger than {MAX_BYTES // (1024 * 1024)} MB; split it")])
    if not data.strip():
        raise Rejected([Problem("file", "the file is empty")])
    name = filename.lower()
    if name.endswith(".xls"):
        raise Rejected([Problem("file", "an .xls workbook is not read; save it as .xlsx or .csv")])
    if name.endswith(".xlsx") or (not name.endswith(".csv") and data.startswith(b"PK\x03\x04")):
        rows = _xlsx_rows(data, sheet, len(columns) + EXTRA_COLUMNS)
    else:
        rows = _csv_rows(data)
    return _lines(rows, columns, required)


# A cell as read: (its text or None, the problem it has or None).
Cell = tuple[str | None, str | None]


def _text(raw: str) -> Cell:
    text = raw.strip()
    if not text:
        return None, None
    if text.startswith("="):
        return None, "starts with '=', which a spreadsheet runs as a formula; type the value itself"
    return text, None


def _csv_rows(data: bytes) -> list[tuple[int, list[Cell]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise Rejected([Problem(where(line), f"not UTF-8 text (byte {error.start}); save the file as UTF-8")]) from None
    header = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=header.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    while True:
        line = reader.line_num + 1  # where the record starts (a quoted value may span lines)
        try:
            values = next(reader)
        except StopIteration:
            return rows
        except csv.Error as error:
            raise Rejected([Problem(where(line), f"not CSV: {error}")]) from None
        if line > MAX_LINES:
            raise _too_many_lines()
        rows.append((line, [_text(value) for value in values]))


def _xlsx_cell(cell: Any) -> Cell:
    value = cell.value
    if getattr(cell, "data_type", None) == "f" or type(value).__name__ in ("ArrayFormula", "DataTableFormula"):
        return None, "a formula, not a value; type the value itself"
    if getattr(cell, "data_type", None) == "e":
        return None, f"an error value ({value})"
    if value is None:
        return None, None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, float) and value.is_integer():
        return str(int(value)), None
    if isinstance(value, dt.datetime):
        return value.date().isoformat(), None  # a spreadsheet's time is local: its day is the day
    if isinstance(value, dt.date):
        return value.isoformat(), None
    return _text(str(value))


def _too_many_lines() -> Rejected:
    return Rejected([Problem("file", f"more than {MAX_LINES:,} lines (blank ones included); split it")])


def _xlsx_rows(data: bytes, sheet: str, width: int) -> list[tuple[int, list[Cell]]]:
    """The sheet's lines, each at most `width` cells: the size a workbook declares is not trusted (openpyxl
    would pad every row to it), rows are read as they are stored and no further than MAX_LINES."""
    import openpyxl
    from openpyxl.cell.read_only import EMPTY_CELL
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED:
            raise Rejected([Problem("file", f"the workbook unpacks to more than {MAX_UNPACKED // (1024 * 1024)} MB")])
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise Rejected([Problem("file", f"not an .xlsx workbook that can be read ({reason})")]) from None
    try:
        names = {name.strip().lower(): name for name in workbook.sheetnames}
        if not names:
            raise Rejected([Problem("file", "the workbook has no sheet")])
        found = workbook[names.get(sheet, workbook.sheetnames[0])]
        found.reset_dimensions()
        rows = []
        for line, row in enumerate(found.iter_rows(max_col=width), start=1):
            if line > MAX_LINES:
                raise _too_many_lines()
            # A missing row comes as empty cells: kept as a blank line without reading each cell.
            rows.append((line, [] if all(cell is EMPTY_CELL for cell in row) else [_xlsx_cell(cell) for cell in row]))
        return rows
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as error:
        raise Rejected([Problem("file", f"not an .xlsx workbook that can be read ({str(error)[:200]})")]) from None
    finally:
        workbook.close()


def _lines(rows: list[tuple[int, list[Cell]]], columns: Sequence[str], required: Sequence[str]) -> list[Line]:
    problems: list[Problem] = []
    header_row = next((row for row in rows if any(text for text, _ in row[1])), None)
    expected = ",".join(columns)
    if header_row is None:
        raise Rejected([Problem("line 1", f"no header; expected the columns {expected}")])
    header_line, header_cells = header_row
    header = [(text or "").strip().lower() or None for text, _ in header_cells]
    while header and header[-1] is None:
        header.pop()
    for number, name in enumerate(header, start=1):
        if name is None:
            problems.append(Problem(where(header_line), f"column {number} has no name"))
        elif name not in columns:
            problems.append(Problem(where(header_line, name), f"unknown column; the columns are {expected}"))
        elif header.count(name) > 1:
            problems.append(Problem(where(header_line, name), "named twice"))
    for name in required:
        if name not in header:
            problems.append(Problem(where(header_line), f"the header lacks the column {name!r}"))
    if problems:
        raise Rejected(problems)
    lines = []
    for number, cells in rows:
        if number <= header_line or not any(text or problem for text, problem in cells):
            continue  # the header, and blank lines (a spreadsheet's export often ends with some)
        found = []
        extra = [text for text, _ in cells[len(header) :] if text]
        if extra:
            found.append(Problem(where(number), f"{len(header) + len(extra)} values for {len(header)} columns"))
        values: dict[str, str | None] = {}
        for name, (text, problem) in zip(header, cells, strict=False):
            if problem and name:
                found.append(Problem(where(number, name), problem))
            if name:
                values[name] = text
        lines.append(Line(number, values, tuple(found)))
    return lines


def check_lines(lines: list[Line], check: Callable[[Line], Any]) -> list[Any]:
    """`check(line)` on every line, each InvalidInput it raises kept as a problem (its message names the
    line and column); Rejected with all of them when any, else the checked values."""
    checked, problems = [], []
    for line in lines:
        if line.problems:
            problems.extend(line.problems)
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        try:
            checked.append(check(line))
        except InvalidInput as error:
            found, _, message = error.message.partition(": ")
            problems.append(Problem(found, message) if message else Problem(where(line.number), error.message))
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise Rejected(problems[:MAX_PROBLEMS])
    return checked
