"""Dossiers and their deadlines: the batch upsert by case reference, the CSV and XLSX import, on-time rates
with Wilson intervals, the `dossier_on_time` objective, and ratings matched to their dossier — over a real
server, the real command line and a real database on both backends."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic as time_now
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest

from feedback import dossiers, sheets
from feedback.catalog import load_snapshot
from feedback.db import open_database
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    axe_violations,
    default_plugins,
    rows,
    run_cli,
    save_screenshot,
)
from tests.manage_helpers import add_user, sign_in
from tests.test_catalogue_import import sprawling_workbook

pytestmark = BOTH_BACKENDS

TZ_A = ZoneInfo("Asia/Ho_Chi_Minh")  # units A, A1, A1a
PASSWORD = "correct horse 1"


def today_a() -> date:
    return datetime.now(TZ_A).date()


def days_ago(days: int) -> str:
    return (today_a() - timedelta(days=days)).isoformat()


def post_cases(server: Server, token: str, items: Any) -> httpx.Response:
    body = items if isinstance(items, dict) or not isinstance(items, list) else {"items": items}
    return httpx.post(f"{server.url}/api/v1/cases", json=body, headers=auth_header(token), timeout=60)


def timeliness(server: Server, token: str, **params: str) -> dict[str, Any]:
    reply = httpx.get(f"{server.url}/api/v1/cases/timeliness", params=params, headers=auth_header(token), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def case(ref: str, unit: str = "A1", **fields: Any) -> dict[str, Any]:
    return {"ref": ref, "unit": unit, "received": "2025-03-03", "due": "2025-03-14", **fields}


def digest(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()[:16]


def count_cases(org: Org) -> int:
    return rows(org, "SELECT count(*) AS n FROM cases")[0]["n"]


@pytest.fixture
def fresh(org: Org, start_server) -> tuple[Org, Server]:
    """An organisation of its own and a server without jobs: every count a test reads is its own."""
    return org, start_server(org.db, feedback_jobs="0")


# -- the batch upsert --------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_a_batch_adds_then_updates_by_reference_and_logs_one_entry_per_batch(fresh) -> None:
    org, server = fresh
    admin = org.tokens["admin"]
    items = [
        case("H33.1-0001", service="S1", returned="2025-03-12", channel="online"),
        case("H33.1-0002", service="S1"),
        case("H33.1-0003", unit="A1a", channel="offline"),
    ]
    seq = rows(org, "SELECT coalesce(max(seq), 0) AS seq FROM audit_log")[0]["seq"]
    assert post_cases(server, admin, items).json() == {"added": 3, "updated": 0, "unchanged": 0}
    assert post_cases(server, admin, items).json() == {"added": 0, "updated": 0, "unchanged": 3}
    # The one-stop system returns the second dossier late and moves the third one's due day.
    items[1] = {**items[1], "returned": "2025-03-17"}
    items[2] = {**items[2], "due": "2025-03-21"}
    assert post_cases(server, admin, items).json() == {"added": 0, "updated": 2, "unchanged": 1}
    stored = {row["ref"]: row for row in rows(org, "SELECT * FROM cases")}
    assert stored["H33.1-0002"]["returned"] == "2025-03-17" and stored["H33.1-0002"]["status"] == "returned"
    assert stored["H33.1-0003"]["due"] == "2025-03-21" and stored["H33.1-0003"]["status"] == "open"
    assert stored["H33.1-0001"]["channel"] == "online" and stored["H33.1-0001"]["service"] == "S1"
    entries = rows(org, "SELECT * FROM audit_log WHERE seq > ? AND kind = 'cases' ORDER BY seq", (seq,))
    assert len(entries) == 2  # the batch sent again unchanged logs nothing
    first, second = (json.loads(entry["change"])["after"] for entry in entries)
    # The log is kept for good: it names each dossier by a digest of its reference, never the reference.
    assert first["added"] == [digest("H33.1-0001"), digest("H33.1-0002"), digest("H33.1-0003")]
    assert first["source"] == "api" and "H33.1" not in entries[0]["change"] + entries[1]["change"]
    assert second["updated"] == {
        digest("H33.1-0002"): {"returned": [None, "2025-03-17"], "status": ["open", "returned"]},
        digest("H33.1-0003"): {"due": ["2025-03-14", "2025-03-21"]},
    }
    assert second["unchanged"] == 1 and entries[1]["unit"] == "A1"  # the lowest unit holding the batch


@pytest.mark.postgres_covered_elsewhere
def test_an_rfc3339_time_is_the_day_it_is_in_the_units_zone(fresh) -> None:
    org, server = fresh
    # 20:00 UTC on 1 March is 03:00 on 2 March in Hanoi.
    item = case("T-1", received="2025-03-01T20:00:00Z", due="2025-03-10T09:00:00+07:00", returned="2025-03-10")
    assert post_cases(server, org.tokens["admin"], [item]).status_code == 200
    [stored] = rows(org, "SELECT received, due, returned FROM cases WHERE ref = 'T-1'")
    assert stored == {"received": "2025-03-02", "due": "2025-03-10", "returned": "2025-03-10"}


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([case("X", due="2025-03-01")], "items[0].due"),  # due before received
        ([case("X"), case("Y", returned="2025-03-01")], "items[1].returned"),  # returned before received
        ([case("X", unit="ZZ")], "items[0].unit"),
        ([case("X", service="S9")], "items[0].service"),
        ([case("X"), case("Y", unit="B", service="S1")], "items[1].service"),  # another agency's service
        ([case("X", received="0001-01-01T00:00:00+01:00")], "items[0].received"),  # leaves the calendar
        ([case("X", due="9999-12-31T23:00:00-05:00")], "items[0].due"),
        ([case("X", received="03/03/2025")], "items[0].received"),
        ([case("X", received="2025-03-03T10:00:00")], "items[0].received"),  # a time without its offset
        ([case("X", received=(date.today() + timedelta(days=3)).isoformat())], "items[0].received"),
        ([case("X", returned=(date.today() + timedelta(days=3)).isoformat())], "items[0].returned"),
        ([case("X", status="lost")], "items[0].status"),
        ([case("X", status="returned")], "items[0].returned"),
        ([case("X", status="open", returned="2025-03-10")], "items[0].status"),
        ([case("X", channel="fax")], "items[0].channel"),
        ([case("X", officer="OF-1")], "items[0].officer"),
        ([{"ref": "X", "unit": "A1", "received": "2025-03-03"}], "items[0].due"),
        ([case(" ")], "items[0].ref"),
        ([case("X" * 101)], "items[0].ref"),
        ([case("X"), case("Y"), case("X")], "items[2].ref"),  # one reference twice in a batch
        ([case("X"), 7], "items[1]"),
        ([], "items"),
        ([case(f"N-{i}") for i in range(5001)], "items"),
        ({"items": [case("X")], "source": "mc"}, "source"),
        ("lots", "body"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_a_bad_item_names_its_field_and_stores_nothing(server: Server, shared_org: Org, items, field: str) -> None:
    before = count_cases(shared_org)
    reply = post_cases(server, shared_org.tokens["admin"], items)
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field
    assert count_cases(shared_org) == before


@pytest.mark.postgres_covered_elsewhere
def test_writes_need_a_manager_whose_subtree_holds_every_dossier(server: Server, shared_org: Org) -> None:
    tokens = shared_org.tokens
    before = count_cases(shared_org)
    assert post_cases(server, tokens["viewer_b"], [case("S-1", unit="B")]).status_code == 403
    outside = post_cases(server, tokens["manager_a1"], [case("S-2"), case("S-3", unit="B")])
    assert outside.status_code == 403 and outside.json()["field"] == "items[1].unit"
    assert httpx.post(f"{server.url}/api/v1/cases", json={"items": [case("S-4")]}, timeout=10).status_code == 401
    # A reference another agency's system stored is not the manager's to move into their own unit.
    assert post_cases(server, tokens["admin"], [case("S-5", unit="B")]).status_code == 200
    taken = post_cases(server, tokens["manager_a1"], [case("S-6"), case("S-5")])
    assert taken.status_code == 403 and taken.json()["field"] == "items[1].ref"
    assert count_cases(shared_org) == before + 1
    assert rows(shared_org, "SELECT unit FROM cases WHERE ref = 'S-5'") == [{"unit": "B"}]
    assert post_cases(server, tokens["manager_a1"], [case("S-6", unit="A1a")]).json()["added"] == 1
    # Reading is scoped the same way.
    reply = httpx.get(
        f"{server.url}/api/v1/cases/timeliness", params={"unit": "B"}, headers=auth_header(tokens["manager_a1"])
    )
    assert reply.status_code == 403


# -- timeliness ----------------------------------------------------------------------------------------


def kien_giang_year() -> list[dict[str, Any]]:
    """Kien Giang's 2018 in 2024: 1,322 dossiers, 1,319 returned on time, two returned late and one still
    open long after its due day (the three late ones of the article)."""
    items = []
    first = date(2024, 1, 1)
    for i in range(1322):
        received = first + timedelta(days=i % 360)
        due = received + timedelta(days=5)
        service = "S1" if i % 2 else "S2"
        unit = "A1a" if i % 3 == 0 else "A1"
        item = {"ref": f"KG-{i:04d}", "unit": unit, "service": service, "received": received.isoformat()}
        item["due"] = due.isoformat()
        if i < 1319:
            item["returned"] = (due - timedelta(days=i % 3)).isoformat()
        elif i < 1321:
            item["returned"] = (due + timedelta(days=2)).isoformat()
        items.append(item)
    return items


def test_timeliness_of_kien_giangs_year_with_its_wilson_interval(fresh) -> None:
    org, server = fresh
    items = kien_giang_year()
    assert post_cases(server, org.tokens["admin"], items).json()["added"] == 1322
    year = {"unit": "A", "from": "2024-01-01", "to": "2024-12-31"}
    result = timeliness(server, org.tokens["admin"], **year)
    total = result["total"]
    assert (total["n"], total["on_time"], total["late"], total["open_overdue"]) == (1322, 1319, 2, 1)
    assert total["rate"] == pytest.approx(1319 / 1322)  # 99.8 %
    # By hand: p = 0.997731, z² / n = 0.0029058; centre 0.996287, half-width 0.002939.
    assert total["ci95"] == pytest.approx([0.993349, 0.999228], abs=1e-6)
    assert total["sufficient"] is True and total["key"] is None
    # The agency's one child carries its whole subtree.
    assert [(row["key"], row["n"]) for row in result["rows"]] == [("A1", 1322)]
    by_service = {row["key"]: row for row in timeliness(server, org.tokens["admin"], **year, by="service")["rows"]}
    assert by_service["S1"]["n"] + by_service["S2"]["n"] == 1322
    for row in by_service.values():
        assert row["on_time"] + row["late"] + row["open_overdue"] == row["n"]
        assert row["rate"] == pytest.approx(row["on_time"] / row["n"])
    months = timeliness(server, org.tokens["admin"], **year, by="month")["rows"]
    assert [row["key"] for row in months] == [f"2024-{m:02d}" for m in range(1, 13)]
    assert sum(row["n"] for row in months) == 1322
    assert sum(row["on_time"] for row in months) == 1319
    # The manager of A1 sees A1's subtree: the same dossiers.
    own = timeliness(server, org.tokens["manager_a1"], **{**year, "unit": "A1"})
    assert own["total"]["n"] == 1322
    assert [row["key"] for row in own["rows"]] == ["A1", "A1a"]


def test_open_dossiers_count_as_overdue_only_after_their_due_day(fresh) -> None:
    org, server = fresh
    items = [
        {"ref": "O-1", "unit": "A1", "received": days_ago(10), "due": days_ago(1)},  # open, due yesterday
        {"ref": "O-2", "unit": "A1", "received": days_ago(10), "due": days_ago(0)},  # open, due today
        {"ref": "O-3", "unit": "A1", "received": days_ago(10), "due": days_ago(-3)},  # open, due in 3 days
        {"ref": "O-4", "unit": "A1", "received": days_ago(10), "due": days_ago(2), "returned": days_ago(1)},
        {"ref": "O-5", "unit": "A1", "received": days_ago(10), "due": days_ago(4), "status": "withdrawn"},
    ]
    assert post_cases(server, org.tokens["admin"], items).json()["added"] == 5
    result = timeliness(server, org.tokens["admin"], unit="A1", **{"from": days_ago(30), "to": days_ago(-5)})
    total = result["total"]
    assert (total["n"], total["on_time"], total["late"], total["open_overdue"], total["pending"]) == (2, 0, 1, 1, 2)
    assert total["rate"] == 0 and total["sufficient"] is False
    # The overdue one is returned: it is late now, and no longer open.
    items[0]["returned"] = days_ago(0)
    assert post_cases(server, org.tokens["admin"], items).json() == {"added": 0, "updated": 1, "unchanged": 4}
    total = timeliness(server, org.tokens["admin"], unit="A1", **{"from": days_ago(30), "to": days_ago(-5)})["total"]
    assert (total["n"], total["late"], total["open_overdue"], total["pending"]) == (2, 2, 0, 2)


def test_a_bad_grouping_or_service_is_a_400(server: Server, shared_org: Org) -> None:
    for params, field in (({"unit": "A", "by": "week"}, "by"), ({"unit": "A", "service": "S9"}, "service")):
        reply = httpx.get(
            f"{server.url}/api/v1/cases/timeliness", params=params, headers=auth_header(shared_org.tokens["admin"])
        )
        assert reply.status_code == 400 and field in reply.text, reply.text


def test_the_timeliness_export_as_csv_and_xlsx(fresh) -> None:
    org, server = fresh
    assert post_cases(server, org.tokens["admin"], kien_giang_year()).status_code == 200
    params = {"unit": "A", "from": "2024-01-01", "to": "2024-12-31", "by": "service"}
    reply = httpx.get(
        f"{server.url}/api/v1/exports/timeliness.csv", params=params, headers=auth_header(org.tokens["admin"])
    )
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    assert 'filename="timeliness_by_service_A_2024-01-01_2024-12-31.csv"' in reply.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))
    assert [row["key"] for row in table] == ["S1", "S2", "total"]
    assert table[-1]["n"] == "1322" and table[-1]["on_time"] == "1319" and table[0]["name"] == "Đăng ký"
    assert float(table[-1]["ci95_low"]) == pytest.approx(0.993349, abs=1e-6)
    reply = httpx.get(
        f"{server.url}/api/v1/exports/timeliness.xlsx", params=params, headers=auth_header(org.tokens["admin"])
    )
    assert reply.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(reply.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:4] == ("key", "name", "n", "on_time") and values[-1][:4] == ("total", None, 1322, 1319)


# -- the import from a file ------------------------------------------------------------------------------


def import_cases(org: Org, path: Path):
    return run_cli("cases", "import", "--db", str(org.db), str(path))


@pytest.mark.postgres_covered_elsewhere
def test_a_csv_import_is_all_or_nothing_and_a_second_import_updates(tmp_path: Path, org: Org) -> None:
    good = tmp_path / "cases.csv"
    good.write_text(
        "\ufeffref;unit;service;received;due;returned;status;channel\n"
        "HS-1;A1;S1;2025-03-03;2025-03-14;2025-03-12;;online\n"
        "\n"
        "HS-2;A1a;;2025-03-04;2025-03-15;;;offline\n",
        encoding="utf-8",
    )
    done = import_cases(org, good)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"added": 2, "updated": 0, "unchanged": 0}
    good.write_text(
        "ref,unit,received,due,returned\nHS-1,A1,2025-03-03,2025-03-14,2025-03-12\nHS-2,A1a,2025-03-04,2025-03-15,"
        "2025-03-20\nHS-3,A1,2025-03-05,2025-03-16,\n",
        encoding="utf-8",
    )
    assert json.loads(import_cases(org, good).stdout) == {"added": 1, "updated": 2, "unchanged": 0}
    # HS-1 lost its service and channel (the file has no such columns), HS-2 was returned late.
    stored = {row["ref"]: row for row in rows(org, "SELECT * FROM cases")}
    assert stored["HS-1"]["service"] is None and stored["HS-2"]["returned"] == "2025-03-20"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "ref,unit,received,due,returned\n"
        "HS-4,A1,2025-03-05,2025-03-16,\n"
        "HS-5,A9,2025-03-05,2025-03-16,\n"
        "HS-6,A1,2025-03-05,2025-03-01,\n"
        "=HYPERLINK(1),A1,2025-03-05,2025-03-16,\n"
        "HS-4,A1,2025-03-05,2025-03-16,2025-03-04\n",
        encoding="utf-8",
    )
    refused = import_cases(org, bad)
    assert refused.returncode == 2
    assert "line 3, column unit: no unit 'A9'" in refused.stderr
    assert "line 4, column due: 2025-03-01 is before the day it was received (2025-03-05)" in refused.stderr
    assert "line 5, column ref: starts with '='" in refused.stderr
    assert "line 6, column returned:" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert count_cases(org) == 3 and not rows(org, "SELECT * FROM cases WHERE ref = 'HS-4'")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("ref,unit,received,deadline\nHS-7,A1,2025-03-05,2025-03-16\n", encoding="utf-8")
    refused = import_cases(org, unknown)
    assert refused.returncode == 2 and "line 1, column deadline: unknown column" in refused.stderr
    assert "the header lacks the column 'due'" in refused.stderr
    edge = tmp_path / "edge.csv"
    edge.write_text("ref,unit,received,due\nHS-8,A1,0001-01-01T00:00:00+01:00,9999-12-31T23:00:00-05:00\n")
    refused = import_cases(org, edge)
    assert refused.returncode == 2, refused.stderr
    assert "line 2, column received:" in refused.stderr and "Traceback" not in refused.stderr


def workbook(rows_: list[list[Any]], *, formula_at: tuple[int, int] | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Cases"
    for row in rows_:
        sheet.append(row)
    if formula_at:
        sheet.cell(*formula_at).value = "=TODAY()+10"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.postgres_covered_elsewhere
def test_an_xlsx_import_reads_date_cells_and_refuses_formulas(tmp_path: Path, org: Org) -> None:
    header = ["ref", "unit", "service", "received", "due", "returned"]
    lines = [
        header,
        ["X-1", "A1", "S2", datetime(2025, 4, 1, 9, 30), date(2025, 4, 8), date(2025, 4, 7)],
        ["X-2", "A1", None, date(2025, 4, 2), date(2025, 4, 9), None],
    ]
    path = tmp_path / "cases.xlsx"
    path.write_bytes(workbook(lines, formula_at=(3, 5)))  # line 3, column E: the due day is a formula
    refused = import_cases(org, path)
    assert refused.returncode == 2 and "line 3, column due: a formula, not a value" in refused.stderr
    assert count_cases(org) == 0
    path.write_bytes(workbook(lines))
    done = import_cases(org, path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"added": 2, "updated": 0, "unchanged": 0}
    stored = {row["ref"]: row for row in rows(org, "SELECT * FROM cases")}
    assert (stored["X-1"]["received"], stored["X-1"]["due"], stored["X-1"]["returned"]) == (
        "2025-04-01",
        "2025-04-08",
        "2025-04-07",
    )
    assert stored["X-2"]["status"] == "open"


@pytest.mark.postgres_covered_elsewhere
def test_an_xlsx_declaring_every_cell_or_unpacking_too_large_is_refused_quickly(tmp_path: Path, org: Org) -> None:
    """A small workbook whose sheet declares A1:XFD1048576 with one value on its last row (17 billion cells
    as declared), and one that would unpack into more than MAX_UNPACKED: each refused in seconds."""
    path = tmp_path / "sprawl.xlsx"
    path.write_bytes(sprawling_workbook("cases", ["ref", "unit", "received", "due"]))
    started = time_now()
    refused = import_cases(org, path)
    assert refused.returncode == 2, refused.stderr
    assert f"file: more than {sheets.MAX_LINES:,} lines" in refused.stderr
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("xl/sharedStrings.xml", b"a")
    # The ZIP's directory declares what the part unpacks to: here 4 GB (what a bomb's directory says).
    data = bomb.getvalue()
    directory = data.index(b"PK\x01\x02")
    data = data[: directory + 24] + (0xFFFFFFF0).to_bytes(4, "little") + data[directory + 28 :]
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].file_size > sheets.MAX_UNPACKED
    path.write_bytes(data)
    refused = import_cases(org, path)
    assert refused.returncode == 2 and "file: the workbook unpacks to more than" in refused.stderr, refused.stderr
    assert time_now() - started < 30
    assert count_cases(org) == 0


# -- the objective ------------------------------------------------------------------------------------------


def objective_status(server: Server, token: str, spec: dict[str, Any], at: str) -> dict[str, Any]:
    created = httpx.post(f"{server.url}/api/v1/objectives", json=spec, headers=auth_header(token), timeout=30)
    assert created.status_code == 201, created.text
    reply = httpx.get(
        f"{server.url}/api/v1/objectives/{created.json()['id']}/status",
        params={"at": at},
        headers=auth_header(token),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def month_of(unit: str, on_time: int, late: int, month: str = "2025-01") -> list[dict[str, Any]]:
    return [
        {
            "ref": f"{unit}-{month}-{i}",
            "unit": unit,
            "received": f"{month}-02",
            "due": f"{month}-{10 + i % 15:02d}",
            "returned": f"{month}-{(10 + i % 15) + (2 if i >= on_time else 0):02d}",
        }
        for i in range(on_time + late)
    ]


def test_a_dossier_on_time_objective_is_judged_met_or_breached_by_its_interval(fresh) -> None:
    org, server = fresh
    admin = org.tokens["admin"]
    items = month_of("A1", 100, 0) + month_of("B", 50, 50)
    assert post_cases(server, admin, items).json()["added"] == 200
    spec = {"metric": "dossier_on_time", "target": 0.95, "period": "month", "min_n": 30, "valid_from": "2025-01-01"}
    met = objective_status(server, admin, {**spec, "unit": "A1"}, "2025-01-31")
    assert (met["status"], met["n"], met["value"]) == ("met", 100, 1.0)
    assert met["ci95"] == pytest.approx([0.963007, 1.0], abs=1e-6)  # 100 of 100: the whole interval clears 95 %
    breached = objective_status(server, admin, {**spec, "unit": "B"}, "2025-01-31")
    assert (breached["status"], breached["n"], breached["successes"]) == ("breached", 100, 50)
    assert breached["ci95"] == pytest.approx([0.403832, 0.596168], abs=1e-6)
    too_few = objective_status(server, admin, {**spec, "unit": "A1", "min_n": 500}, "2025-01-31")
    assert too_few["status"] == "insufficient_data"
    february = objective_status(server, admin, {**spec, "unit": "B"}, "2025-02-28")
    assert (february["n"], february["status"]) == (0, "insufficient_data")


def test_the_evaluation_job_stores_a_breached_dossier_objective(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_jobs="0")
    items = [
        {"ref": f"J-{i}", "unit": "A1", "received": days_ago(20), "due": days_ago(10), "returned": days_ago(2)}
        for i in range(40)
    ]
    assert post_cases(server, org.tokens["admin"], items).json()["added"] == 40
    spec = {"unit": "A1", "metric": "dossier_on_time", "target": 0.9, "period": "rolling_30", "min_n": 30}
    created = httpx.post(f"{server.url}/api/v1/objectives", json=spec, headers=auth_header(org.tokens["admin"]))
    assert created.status_code == 201, created.text
    server.stop()
    result = run_cli("tick", "--db", str(org.db), "--job", "objectives.evaluate", env={"FEEDBACK_SECRET": "s"})
    assert result.returncode == 0, result.stderr
    [state] = rows(org, "SELECT status, n, value FROM objective_states WHERE objective = ?", (created.json()["id"],))
    assert state == {"status": "breached", "n": 40, "value": 0.0}
    assert rows(org, "SELECT count(*) AS n FROM event_log WHERE type = 'objective.breached'")[0]["n"] == 1


# -- ratings of dossiers ----------------------------------------------------------------------------------


def rate(server: Server, case_ref: str | None, level: int, days: int = 1) -> None:
    moment = datetime.combine(today_a() - timedelta(days=days), time(10), TZ_A).astimezone(UTC)
    body: dict[str, Any] = {"touchpoint": "tp-a1", "answers": {"overall": level}, "id": str(uuid.uuid4())}
    body["submitted_at"] = moment.isoformat()
    if case_ref:
        body["case_ref"] = case_ref
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=30)
    assert reply.status_code == 201, reply.text


def rated_dossiers(server: Server, org: Org) -> None:
    """Ten dossiers of A1's subtree and a rating for most: on time 4 of 5 satisfied, late 1 of 4 (returned
    late, or still open past the due day), one rating of a dossier not yet due, one of an unknown
    reference, one without any."""
    received, due = days_ago(20), days_ago(6)
    items = (
        [{"ref": f"OK-{i}", "unit": "A1", "received": received, "due": due, "returned": days_ago(8)} for i in range(5)]
        + [
            {"ref": f"LATE-{i}", "unit": "A1", "received": received, "due": due, "returned": days_ago(3)}
            for i in (0, 1)
        ]
        + [{"ref": "OPEN-LATE", "unit": "A1a", "received": received, "due": due}]  # open past its due day
        + [{"ref": "LATE-9", "unit": "A1", "received": received, "due": due, "returned": days_ago(2)}]
        + [{"ref": "WAITING", "unit": "A1", "received": received, "due": days_ago(-5)}]  # open, not yet due
    )
    assert post_cases(server, org.tokens["admin"], items).json()["added"] == 10
    for ref, level in (("OK-0", 5), ("OK-1", 5), ("OK-2", 4), ("OK-3", 5), ("OK-4", 2)):
        rate(server, ref, level)  # on time: 4 of 5 satisfied
    for ref, level in (("LATE-0", 1), ("LATE-1", 2), ("OPEN-LATE", 4), ("LATE-9", 1)):
        rate(server, ref, level)  # late: 1 of 4 satisfied
    rate(server, "WAITING", 5)
    rate(server, "NO-SUCH-DOSSIER", 3)
    rate(server, None, 5)


@pytest.mark.postgres_covered_elsewhere
def test_ratings_show_whether_their_dossier_was_late_and_the_unit_page_compares_them(fresh) -> None:
    org, server = fresh
    rated_dossiers(server, org)
    # The response export's column.
    params = {"unit": "A", "from": days_ago(5), "to": days_ago(0)}
    reply = httpx.get(
        f"{server.url}/api/v1/exports/responses.csv", params=params, headers=auth_header(org.tokens["admin"])
    )
    assert reply.status_code == 200
    exported = list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))
    late_by_case = {row["case_ref"]: row["dossier_late"] for row in exported}
    assert late_by_case == {
        **{f"OK-{i}": "0" for i in range(5)},
        **{ref: "1" for ref in ("LATE-0", "LATE-1", "OPEN-LATE", "LATE-9")},
        "WAITING": "",
        "NO-SUCH-DOSSIER": "",
        "": "",
    }
    reply = httpx.get(
        f"{server.url}/api/v1/exports/responses.xlsx", params=params, headers=auth_header(org.tokens["admin"])
    )
    sheet = list(openpyxl.load_workbook(io.BytesIO(reply.content)).active.iter_rows(values_only=True))
    column = sheet[0].index("dossier_late")
    assert sorted(str(row[column]) for row in sheet[1:]) == sorted(
        ["0"] * 5 + ["1"] * 4 + ["None"] * 3
    )  # empty cells read back as None
    # The manager's response list and unit page.
    add_user(org.db, "mai", PASSWORD, "manager", "A1", lang="en")
    with httpx.Client(base_url=server.url, timeout=30) as manager:
        sign_in(manager, server, "mai", PASSWORD)
        listing = manager.get("/manage/units/A1/responses", params=params).text
        shown = {}
        for cell in re.findall(r'<td class="dash-case">(.*?)</td>', listing, re.S):
            state = re.search(r'data-dossier="(\w+)"', cell)
            shown[re.sub(r"<.*", "", cell, flags=re.S).strip()] = state.group(1) if state else None
        assert shown == {
            **{f"OK-{i}": "on_time" for i in range(5)},
            **{ref: "late" for ref in ("LATE-0", "LATE-1", "OPEN-LATE", "LATE-9")},
            "WAITING": "pending",
            "NO-SUCH-DOSSIER": None,
            "–": None,
        }
        page = manager.get("/manage/units/A1", params=params).text
    section = page[page.index('id="dossiers"') :]
    section = section[: section.index("</section>")]

    def figures(key: str) -> list[str]:
        row = re.search(rf'<tr data-dossier="{key}">(.*?)</tr>', section, re.S)
        assert row, key
        return [
            re.sub(r"<[^>]+>|\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
        ]

    # 4 of 5 on time (80 %, Wilson 37.6 %–96.4 %), 1 of 4 late (25 %, 4.6 %–69.9 %).
    assert figures("on_time")[0].startswith("80") and figures("on_time")[1] == "5"
    assert "37.6" in figures("on_time")[2] and "96.4" in figures("on_time")[2]
    assert figures("late")[0].startswith("25") and figures("late")[1] == "4"
    assert "4.6" in figures("late")[2] and "69.9" in figures("late")[2]


@pytest.mark.postgres_covered_elsewhere
def test_a_case_reference_names_only_a_dossier_of_the_ratings_own_tree(fresh) -> None:
    """Agency B's system stores a dossier under a reference a rating at A1 also gives: it is not A1's dossier,
    so it shows nothing on the rating and does not move A's on-time vs late comparison."""
    org, server = fresh
    received, due = days_ago(20), days_ago(6)
    items = [
        {"ref": "OWN-1", "unit": "A1", "received": received, "due": due, "returned": days_ago(8)},
        {"ref": "THEIRS-1", "unit": "B", "received": received, "due": due, "returned": days_ago(2)},
    ]
    assert post_cases(server, org.tokens["admin"], items).json()["added"] == 2
    rate(server, "OWN-1", 5)
    rate(server, "THEIRS-1", 1)
    params = {"unit": "A", "from": days_ago(5), "to": days_ago(0)}
    reply = httpx.get(
        f"{server.url}/api/v1/exports/responses.csv", params=params, headers=auth_header(org.tokens["admin"])
    )
    exported = list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))
    assert {row["case_ref"]: row["dossier_late"] for row in exported} == {"OWN-1": "0", "THEIRS-1": ""}
    db = open_database(str(org.db))
    try:
        snapshot = load_snapshot(db.conn, default_plugins())
        compared = dossiers.satisfaction_by_timeliness(db.conn, snapshot, "A", days_ago(5), days_ago(0), 1)
    finally:
        db.close()
    assert (compared["on_time"]["n"], compared["late"]["n"]) == (1, 0)
    add_user(org.db, "mai", PASSWORD, "manager", "A1", lang="en")
    with httpx.Client(base_url=server.url, timeout=30) as manager:
        sign_in(manager, server, "mai", PASSWORD)
        listing = manager.get("/manage/units/A1/responses", params=params).text
    shown = {
        re.sub(r"<.*", "", cell, flags=re.S).strip(): re.findall(r'data-dossier="(\w+)"', cell)
        for cell in re.findall(r'<td class="dash-case">(.*?)</td>', listing, re.S)
    }
    assert shown == {"OWN-1": ["on_time"], "THEIRS-1": []}


@pytest.mark.parametrize("lang", ("vi", "zh"))
def test_the_unit_pages_dossier_section_passes_the_accessibility_audit(fresh, browser, lang: str) -> None:
    """At 1280 px and on a 390 px phone: the axe audit and nothing scrolling sideways."""
    org, server = fresh
    if org.backend == "postgresql":
        pytest.skip("the markup does not depend on the database: checked once, on SQLite")
    rated_dossiers(server, org)
    add_user(org.db, "boss", PASSWORD, "admin")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # to inject axe
    page = context.new_page()
    sign_in(page, server, "boss", PASSWORD)
    ARTIFACTS.mkdir(exist_ok=True)
    for width, path in ((1280, "/manage/units/A1"), (390, "/manage/units/A1"), (390, "/manage/units/A1/responses")):
        page.set_viewport_size({"width": width, "height": 900 if width > 390 else 844})
        page.goto(f"{server.url}{path}?lang={lang}&from={days_ago(7)}&to={days_ago(0)}")
        page.wait_for_load_state("load")
        assert page.locator("#dossier-satisfaction").count() == (1 if path.endswith("A1") else 0)
        save_screenshot(page, ARTIFACTS / f"dossiers-{path.rsplit('/', 1)[1]}-{lang}-{width}.png")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width, (path, width)
        serious = axe_violations(page)
        assert serious == [], (path, width)
    context.close()
