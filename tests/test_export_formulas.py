"""No export carries a spreadsheet formula: anonymous comments and other text that starts like a formula
reach CSV with a leading apostrophe and XLSX as string cells, from a real server and SQLite file."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pypdfium2 as pdfium
import pytest
from openpyxl import load_workbook

from feedback import organisation, surveys
from tests.conftest import Server, auth_header, default_plugins, make_org

TODAY = datetime.now(UTC).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
PERIOD = {"from": (TODAY - timedelta(days=2)).isoformat(), "to": (TODAY + timedelta(days=1)).isoformat()}
HOSTILE = ['=HYPERLINK("http://evil.example/?x","open me")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TOUCHPOINT_NAME = '=HYPERLINK("http://evil.example/","desk")'
SERVICE_NAME = "@SUM(1+2) licences"
CONTROL = "ring\x07ring\x01"  # characters an XLSX file cannot hold at all


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("formulas") / "feedback.db")
    conn = sqlite3.connect(org.db)
    conn.execute("BEGIN")
    surveys.publish_template(conn, "a11_v2", default_plugins())
    organisation.add_service(conn, "S3", SERVICE_NAME, agency="A")
    organisation.add_touchpoint(conn, "A1", TOUCHPOINT_NAME, "a11_v2", service="S3", token="tp-x")
    conn.execute("COMMIT")
    conn.close()
    server = Server(org.db).start()
    posted = {}
    for n, text in enumerate(HOSTILE):
        body = {
            "touchpoint": "tp-a1",
            "service": "S1",
            "answers": {"overall": 5 - n % 5, "comment": text},
            "case_ref": text,
            "officer": HOSTILE[(n + 1) % len(HOSTILE)],
            "counter": HOSTILE[(n + 2) % len(HOSTILE)],
        }
        reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=10)
        assert reply.status_code == 201, reply.text
        posted[reply.json()["id"]] = body
    reply = httpx.post(
        f"{server.url}/api/v1/responses",
        timeout=10,
        json={"touchpoint": "tp-a1", "service": "S1", "answers": {"overall": 4, "comment": CONTROL}},
    )
    assert reply.status_code == 201, reply.text
    control = reply.json()["id"]
    for text in HOSTILE[:2]:
        reply = httpx.post(
            f"{server.url}/api/v1/responses",
            timeout=10,
            json={"touchpoint": "tp-x", "answers": {"satisfaction": 4, "comment": text}},
        )
        assert reply.status_code == 201, reply.text
    yield org, server, posted, control
    server.stop()


def _get(server: Server, path: str, token: str, **params: str) -> httpx.Response:
    reply = httpx.get(f"{server.url}{path}", params=params, headers=auth_header(token), timeout=60)
    assert reply.status_code == 200, reply.text
    return reply


def _csv(reply: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"), newline="")))


def _sheet(reply: httpx.Response) -> list[list]:
    """Every cell of the workbook's sheet (openpyxl loads formulas as formulas: data_type "f")."""
    workbook = load_workbook(io.BytesIO(reply.content))
    return [list(row) for row in workbook.worksheets[0].iter_rows()]


def _quoted(text: str) -> str:
    return "'" + text


def _as_read_back(text: str) -> str:
    # XML reads a bare carriage return back as a line feed; the cell is text either way.
    return text.replace("\r", "\n")


def test_responses_csv_quotes_every_cell_that_starts_like_a_formula(hostile) -> None:
    org, server, posted, control = hostile
    table = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], unit="A", **PERIOD))
    header, body = table[0], table[1:]
    assert not [cell for row in table for cell in row if cell.startswith(FORMULA_STARTS)]
    by_id = {row[header.index("id")]: dict(zip(header, row, strict=True)) for row in body}
    assert set(posted) <= set(by_id)
    for response_id, sent in posted.items():
        row = by_id[response_id]
        assert row["comment"] == _quoted(sent["answers"]["comment"])
        assert row["case_ref"] == _quoted(sent["case_ref"])
        assert row["officer"] == _quoted(sent["officer"])
        assert row["counter"] == _quoted(sent["counter"])
        assert row["overall"] == str(sent["answers"]["overall"]) and row["level"].isdigit()  # numbers untouched
    assert by_id[control]["comment"] == CONTROL  # CSV holds any character


def test_responses_xlsx_has_no_formula_and_keeps_the_text(hostile) -> None:
    org, server, posted, control = hostile
    cells = _sheet(_get(server, "/api/v1/exports/responses.xlsx", org.tokens["admin"], unit="A", **PERIOD))
    assert not [cell.coordinate for row in cells for cell in row if cell.data_type == "f"]
    header = [cell.value for cell in cells[0]]
    by_id = {row[header.index("id")].value: dict(zip(header, row, strict=True)) for row in cells[1:]}
    for response_id, sent in posted.items():
        row = by_id[response_id]
        for column, text in (
            ("comment", sent["answers"]["comment"]),
            ("case_ref", sent["case_ref"]),
            ("officer", sent["officer"]),
            ("counter", sent["counter"]),
        ):
            assert row[column].data_type == "s", (column, text)
            assert row[column].value == _as_read_back(text), column
        # Numbers stay numbers.
        assert row["overall"].data_type == "n" and row["overall"].value == sent["answers"]["overall"]
        assert row["level"].data_type == "n" and isinstance(row["level"].value, int)
    # Control characters cannot be stored in XLSX: they are shown as U+FFFD instead of failing the export.
    assert by_id[control]["comment"].value == "ring\ufffdring\ufffd"


@pytest.mark.parametrize(("by", "name"), [("touchpoint", TOUCHPOINT_NAME), ("service", SERVICE_NAME)])
def test_rates_exports_carry_no_formula(hostile, by: str, name: str) -> None:
    org, server, _, _ = hostile
    params = {"unit": "A1", "by": by, **PERIOD}
    table = _csv(_get(server, "/api/v1/exports/rates.csv", org.tokens["admin"], **params))
    assert not [cell for row in table for cell in row if cell.startswith(FORMULA_STARTS)]
    assert _quoted(name) in [row[1] for row in table]
    cells = _sheet(_get(server, "/api/v1/exports/rates.xlsx", org.tokens["admin"], **params))
    assert not [cell.coordinate for row in cells for cell in row if cell.data_type == "f"]
    named = [row for row in cells if row[1].value == name]
    assert len(named) == 1 and named[0][1].data_type == "s"
    assert named[0][2].data_type == "n" and named[0][2].value == 2  # n stays a number


def test_a11_csv_quotes_a_service_name_that_starts_like_a_formula(hostile) -> None:
    org, server, _, _ = hostile
    table = _csv(_get(server, "/api/v1/exports/a11.csv", org.tokens["admin"], unit="A1", **PERIOD))
    assert not [cell for row in table for cell in row if cell.startswith(FORMULA_STARTS)]
    header = table[0]
    s3 = [dict(zip(header, row, strict=True)) for row in table[1:] if row[0] == "S3"]
    assert [row["service_name"] for row in s3] == [_quoted(SERVICE_NAME)]
    assert s3[0]["respondents"] == "2"


def test_the_management_review_pdf_shows_names_as_they_are(hostile) -> None:
    org, server, _, _ = hostile
    reply = _get(server, "/api/v1/reports/management-review.pdf", org.tokens["admin"], unit="A1", lang="en", **PERIOD)
    document = pdfium.PdfDocument(reply.content)
    try:
        text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    finally:
        document.close()
    squashed = "".join(text.split())
    assert "".join(SERVICE_NAME.split()) in squashed and "'@SUM" not in squashed
