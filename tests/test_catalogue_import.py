"""The catalogue import: `feedback import catalogue` and /manage/admin/import, on real databases.

The example files of docs/ import into a fresh database; a re-import updates by code and deletes nothing;
a file with errors is refused as a whole (every problem by sheet, line and column, nothing written); the
admin page takes an upload with its CSRF token and keeps an admin of one unit inside that unit's
subtree; a province-sized catalogue (578 procedures across 30 units) imports well under 30 s.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import openpyxl
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from feedback import catalogue_import
from feedback.audit_verify import verify_database
from feedback.db import open_database
from feedback.migrations import apply_all
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    ROOT,
    Org,
    Server,
    axe_violations,
    default_plugins,
    new_postgres_database,
    rows,
    run_cli,
    save_screenshot,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

DOCS = ROOT / "docs"
PASSWORD = "correct horse 1"
#: The tables an import writes (and the audit log): compared before and after a refused one.
TABLES = ("units", "services", "touchpoints", "surveys", "survey_versions", "audit_log")


@cache
def examples() -> ModuleType:
    """docs/catalogue_example.py, which makes the example files and the province-sized catalogue."""
    spec = importlib.util.spec_from_file_location("catalogue_example", DOCS / "catalogue_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fresh_database(backend: str, folder: Path) -> str:
    """An empty database with the schema (as `feedback init` makes it)."""
    db = new_postgres_database() if backend == "postgresql" else str(folder / "fresh.db")
    handle = open_database(db)
    try:
        apply_all(handle, default_plugins())
    finally:
        handle.close()
    return db


def run_import(db: Any, path: Path, *options: str) -> tuple[int, Any, str]:
    """`feedback import catalogue`: (exit status, its JSON stdout, its stderr)."""
    done = run_cli("import", "catalogue", "--db", str(db), *options, str(path))
    try:
        printed = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not JSON (exit {done.returncode}): {done.stdout[:500]} {done.stderr[-2000:]}")
    return done.returncode, printed, done.stderr


def table_contents(db: Any) -> dict[str, list[dict]]:
    org = Org(db=db)
    return {table: rows(org, f"SELECT * FROM {table} ORDER BY 1, 2") for table in TABLES}


def counts(added: int, updated: int, unchanged: int) -> dict[str, int]:
    return {"added": added, "updated": updated, "unchanged": unchanged}


def write_xlsx(path: Path, catalogue: dict) -> Path:
    path.write_bytes(examples().xlsx_bytes(catalogue))
    return path


def write_csv(path: Path, catalogue: dict) -> Path:
    path.write_text(examples().csv_text(catalogue), encoding="utf-8")
    return path


# -- the example files --------------------------------------------------------------------------------------


def test_the_example_files_are_what_their_script_makes() -> None:
    """docs/catalogue-example.{csv,xlsx} hold what docs/catalogue_example.py makes (remake them with it)."""
    example = examples().example()
    assert (DOCS / "catalogue-example.csv").read_text(encoding="utf-8") == examples().csv_text(example)
    made = openpyxl.load_workbook(io.BytesIO(examples().xlsx_bytes(example)), read_only=True)
    kept = openpyxl.load_workbook(DOCS / "catalogue-example.xlsx", read_only=True)
    assert made.sheetnames == kept.sheetnames == ["units", "services", "touchpoints"]
    for sheet in made.sheetnames:
        assert list(made[sheet].iter_rows(values_only=True)) == list(kept[sheet].iter_rows(values_only=True))


@pytest.mark.parametrize("name", ["catalogue-example.xlsx", "catalogue-example.csv"])
@pytest.mark.postgres_covered_elsewhere
def test_each_example_imports_into_a_fresh_database(backend: str, tmp_path: Path, name: str) -> None:
    db = fresh_database(backend, tmp_path)
    status, summary, _err = run_import(db, DOCS / name)
    assert status == 0
    assert summary == {
        "units": counts(4, 0, 0),
        "services": counts(6, 0, 0),
        "touchpoints": counts(4, 0, 0),
        "surveys_published": ["vn_one_stop"],  # the touchpoints' survey, published from its template
        "dry_run": False,
    }
    org = Org(db=db)
    units = {u["code"]: u for u in rows(org, "SELECT * FROM units")}
    assert units["KHDT-MC"]["path"] == "/KHDT/KHDT-MC/"
    assert (units["KHDT-MC"]["lang"], units["KHDT-MC"]["tz"]) == ("vi", "Asia/Ho_Chi_Minh")  # from its parent
    assert (units["KHDT"]["country"], units["KHDT"]["action_days"]) == ("VN", 5)
    assert json.loads(units["KHDT-DKKD"]["names"])["ru"] == "Отдел регистрации предприятий"
    service = rows(org, "SELECT * FROM services WHERE code = 'KHDT.DT.01'")[0]
    assert (service["agency"], service["kind"], json.loads(service["names"])["zh"]) == (
        "KHDT",
        "administrative",
        "核发投资登记证",
    )
    kiosk = rows(org, "SELECT * FROM touchpoints WHERE token = 'khdt-mc-kiosk'")[0]
    assert (kiosk["kind"], kiosk["unit"], kiosk["lang"], kiosk["retired_at"]) == ("kiosk", "KHDT-MC", "vi", None)
    # The other example, a CSV with a byte-order mark and semicolons as a spreadsheet saves it, changes nothing.
    before = table_contents(db)
    other = tmp_path / "again.csv"
    text = (DOCS / "catalogue-example.csv").read_text(encoding="utf-8").replace(",", ";")
    other.write_bytes(b"\xef\xbb\xbf" + text.encode())
    status, summary, _err = run_import(db, other)
    assert status == 0
    assert (summary["units"], summary["services"], summary["touchpoints"]) == (
        counts(0, 0, 4),
        counts(0, 0, 6),
        counts(0, 0, 4),
    )
    assert table_contents(db) == before  # no audit entry either
    verify_database(str(db))  # every record as its last audit entry says


def test_the_command_makes_no_database_and_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    typo = tmp_path / "feedbak.db"
    done = run_cli("import", "catalogue", "--db", str(typo), str(DOCS / "catalogue-example.csv"))
    assert done.returncode == 2 and "--db" in done.stderr and not typo.exists()
    db = fresh_database("sqlite", tmp_path)
    old = tmp_path / "catalogue.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0 an old binary workbook")
    status, problems, stderr = run_import(db, old)
    assert status == 2
    assert problems == [{"sheet": "file", "line": None, "column": None, "message": FILE_XLS_MESSAGE}]
    assert FILE_XLS_MESSAGE in stderr


FILE_XLS_MESSAGE = "file: an .xls workbook is not read; save it as .xlsx or .csv"


# -- re-import ----------------------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_a_reimport_updates_by_code_adds_and_deletes_nothing(org: Org, tmp_path: Path) -> None:
    first = examples().example()
    status, _summary, _err = run_import(org.db, write_csv(tmp_path / "first.csv", first))
    assert status == 0
    head = rows(org, "SELECT max(seq) AS seq FROM audit_log")[0]["seq"]

    second = examples().example()
    second["units"][3]["name_en"] = "Investment and Procurement Office"  # KHDT-DT renamed in English
    second["units"].append({"code": "KHDT-TT", "parent": "KHDT", "name_vi": "Trung tâm Xúc tiến Đầu tư"})
    second["services"] = [s for s in second["services"] if s["code"] != "KHDT.DN.04"]  # left out: stays
    second["touchpoints"] = [t for t in second["touchpoints"] if t["token"] != "khdt-mc-3"]  # left out: stays
    second["touchpoints"][-1]["retired"] = "yes"  # the kiosk, retired explicitly
    for line in second["touchpoints"]:
        line["token"] = line["token"].upper() if line["token"] == "khdt-mc-1" else line["token"]
    short = rows(org, "SELECT short_code FROM touchpoints WHERE token = 'khdt-mc-2'")[0]["short_code"]
    second["touchpoints"][1]["token"] = short.lower()  # a touchpoint named by its short code
    second["touchpoints"][0]["token"] = "khdt-mc-1"

    # --dry-run says what would change and writes nothing.
    path = write_xlsx(tmp_path / "second.xlsx", second)
    before = table_contents(org.db)
    status, summary, _err = run_import(org.db, path, "--dry-run")
    assert status == 0 and summary["dry_run"] is True
    assert table_contents(org.db) == before

    status, summary, _err = run_import(org.db, path)
    assert status == 0
    assert summary == {
        "units": counts(1, 1, 3),
        "services": counts(0, 0, 5),
        "touchpoints": counts(0, 1, 2),
        "surveys_published": [],
        "dry_run": False,
    }
    units = {u["code"]: u for u in rows(org, "SELECT * FROM units")}
    renamed = units["KHDT-DT"]
    assert json.loads(renamed["names"])["en"] == "Investment and Procurement Office"
    assert renamed["name"] == "Phòng Đầu tư"  # its one name is the Vietnamese, its own language's
    assert units["KHDT-TT"]["path"] == "/KHDT/KHDT-TT/"
    assert {"A", "A1", "A1a", "B"} <= set(units)  # units the file never named
    assert rows(org, "SELECT count(*) AS n FROM services WHERE code = 'KHDT.DN.04'")[0]["n"] == 1
    left_out = rows(org, "SELECT retired_at FROM touchpoints WHERE token = 'khdt-mc-3'")[0]
    assert left_out["retired_at"] is None
    assert rows(org, "SELECT retired_at FROM touchpoints WHERE token = 'khdt-mc-kiosk'")[0]["retired_at"]
    logged = rows(org, "SELECT kind, record_id, action FROM audit_log WHERE seq > ? ORDER BY seq", (head,))
    assert logged == [
        {"kind": "unit", "record_id": "KHDT-DT", "action": "update"},
        {"kind": "unit", "record_id": "KHDT-TT", "action": "create"},
        {"kind": "touchpoint", "record_id": "khdt-mc-kiosk", "action": "retire"},
    ]
    verify_database(str(org.db))


# -- a file with errors -------------------------------------------------------------------------------------


def error_workbook(path: Path) -> Path:
    """A workbook over make_org's organisation with one or two errors on most lines."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    units = workbook.create_sheet("units")
    units.append(["code", "parent", "name_vi", "name_en", "lang", "tz"])
    units.append(["N1", "NOPE", "Một", None, None, None])  # 2: unknown parent
    units.append(["N2", None, "Hai", None, "xx", "Mars/Base"])  # 3: a language and a time zone not known
    units.append(["N2", "A", "Lại", None, None, None])  # 4: the same code again
    units.append(["C1", "C2", "c1", None, None, None])  # 5, 6: a cycle
    units.append(["C2", "C1", "c2", None, None, None])
    units.append(["N3", "A", None, None, None, None])  # 7: no name
    units.append(["N4", "A", "x" * 201, None, None, None])  # 8: a name too long
    units.append(["N5", "A", "Năm", '=UPPER("five")', None, None])  # 9: a formula is not a name
    services = workbook.create_sheet("Services")  # sheet names in any case
    services.append(["code", "name_en", "kind", "unit"])
    services.append(["SV1", "Service 1", "odd", "A"])  # 2: a kind not known
    services.append(["SV2", "Service 2", None, "GHOST"])  # 3: an owning unit not known
    services.append(["SV3", None, "administrative", "A"])  # 4: no name
    touchpoints = workbook.create_sheet("touchpoints")
    touchpoints.append(["token", "name", "unit", "survey", "service", "kind"])
    touchpoints.append(["tp-new1", "T1", "A1", "nosuch", None, None])  # 2: a survey that does not exist
    touchpoints.append(["tp-new2", "T2", "A1", "csat", "S9", None])  # 3: a service that does not exist
    touchpoints.append(["tp-new3", "T3", "B", "csat", "S1", None])  # 4: agency A's service at unit B
    touchpoints.append(["tp-new4", None, "A1", "csat", None, None])  # 5: no name
    touchpoints.append(["tp-new5", "T5", "A1", "csat", None, "drone"])  # 6: a kind not known
    touchpoints.append(["tp-a", "T", "B", None, None, None])  # 7: a touchpoint is not moved
    workbook.create_sheet("notes").append(["other sheets are left alone"])
    workbook.save(path)
    return path


EXPECTED_PROBLEMS = {
    ("units", 2, "parent"),
    ("units", 3, "lang"),
    ("units", 3, "tz"),
    ("units", 4, "code"),
    ("units", 5, "parent"),
    ("units", 6, "parent"),
    ("units", 7, "name_en"),
    ("units", 8, "name_vi"),
    ("units", 9, "name_en"),
    ("Services", 2, "kind"),
    ("Services", 3, "unit"),
    ("Services", 4, "name_en"),
    ("touchpoints", 2, "survey"),
    ("touchpoints", 3, "service"),
    ("touchpoints", 4, "service"),
    ("touchpoints", 5, "name"),
    ("touchpoints", 6, "kind"),
    ("touchpoints", 7, "unit"),
}


@pytest.mark.postgres_covered_elsewhere
def test_a_file_with_errors_is_refused_whole_with_every_error_placed(org: Org, tmp_path: Path) -> None:
    before = table_contents(org.db)
    status, problems, stderr = run_import(org.db, error_workbook(tmp_path / "errors.xlsx"))
    assert status == 2
    assert {(p["sheet"], p["line"], p["column"]) for p in problems} == EXPECTED_PROBLEMS
    for problem in problems:
        assert problem["message"].startswith(f"{problem['column']}: "), problem
    by_place = {(p["sheet"], p["line"], p["column"]): p["message"] for p in problems}
    assert "formula" in by_place[("units", 9, "name_en")]
    assert "NOPE" in by_place[("units", 2, "parent")]
    assert "C1 → C2 → C1" in by_place[("units", 5, "parent")]
    assert "first on line 3" in by_place[("units", 4, "code")]
    assert "another agency" in by_place[("touchpoints", 4, "service")]
    assert "18 problem(s); nothing was written" in stderr and "units line 9: name_en:" in stderr
    assert table_contents(org.db) == before


def test_a_formula_cell_is_refused_even_with_a_cached_text_value(tmp_path: Path) -> None:
    """A formula cell is refused whatever it shows; a CSV cell starting with '=' too."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "services"
    sheet.append(["code", "name_en"])
    sheet.append(["S-F", '=CONCATENATE("Pass", "ports")'])
    sheet.append(["S-OK", "Passports"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    read = catalogue_import.read_catalogue(buffer.getvalue(), "f.xlsx")
    assert [(p.sheet, p.line, p.column, p.template) for p in read.problems] == [
        ("services", 2, "name_en", catalogue_import.FORMULA)
    ]
    assert [row.cells for row in read.rows["services"]] == [{"code": "S-F"}, {"code": "S-OK", "name_en": "Passports"}]
    text = 'record,code,name_en\nservice,S-F,"=HYPERLINK(""http://x"")"\n'
    read = catalogue_import.read_catalogue(text.encode(), "f.csv")
    assert [(p.sheet, p.line, p.column, p.template) for p in read.problems] == [
        ("csv", 2, "name_en", catalogue_import.EQUALS_TEXT)
    ]


def test_a_workbook_that_unpacks_too_large_or_chains_too_deep_is_refused(tmp_path: Path) -> None:
    """A small upload that would unpack into gigabytes is not opened; a tree deeper than MAX_DEPTH is a
    problem at the line that passes it (and a long chain is walked without recursion)."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b"a" * (catalogue_import.MAX_UNPACKED + 1))
    read = catalogue_import.read_catalogue(packed.getvalue(), "bomb.xlsx")
    assert [p.template for p in read.problems] == [catalogue_import.FILE_UNPACKS_TOO_BIG]
    chain = ["record,code,parent,name_en,lang,tz", "unit,U0,,Zero,en,UTC"]
    chain += [f"unit,U{i},U{i - 1},Unit {i},," for i in range(1, 3000)]
    read = catalogue_import.read_catalogue("\n".join(chain).encode(), "chain.csv")
    handle = open_database(fresh_database("sqlite", tmp_path))
    try:
        plan = catalogue_import.make_plan(handle.conn, read)
    finally:
        handle.close()
    depth = catalogue_import.MAX_DEPTH
    assert [(p.line, p.column, p.template) for p in plan.problems] == [(depth + 2, "parent", catalogue_import.TOO_DEEP)]


def sprawling_workbook(title: str, header: list[str]) -> bytes:
    """A small workbook whose sheet declares every cell a spreadsheet can hold (A1:XFD1048576) and has one
    value on its last row: read as declared, that is 17 billion cells."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(header)
    sheet.cell(1048576, 1).value = "last"
    buffer = io.BytesIO()
    workbook.save(buffer)
    patched = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.startswith("xl/worksheets/"):
                content = re.sub(rb'<dimension ref="[A-Z0-9:]+"', b'<dimension ref="A1:XFD1048576"', content)
                assert b"A1:XFD1048576" in content
            target.writestr(info, content)
    return patched.getvalue()


def test_a_workbook_declaring_every_cell_is_refused_quickly() -> None:
    data = sprawling_workbook("services", ["code", "name_en"])
    started = time.monotonic()
    read = catalogue_import.read_catalogue(data, "sprawl.xlsx")
    assert time.monotonic() - started < 10
    assert [(p.sheet, p.template) for p in read.problems] == [("services", catalogue_import.TOO_MANY_ROWS)]


# -- the admin page -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def people(shared_org: Org) -> Org:
    add_user(shared_org.db, "boss", PASSWORD, "admin")
    add_user(shared_org.db, "ada", PASSWORD, "admin", "A1")  # an admin of one unit's subtree
    add_user(shared_org.db, "mai", PASSWORD, "manager", "A1")
    return shared_org


@contextmanager
def signed_in(server: Server, name: str) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=server.url, timeout=60)
    try:
        sign_in(client, server, name, PASSWORD)
        yield client
    finally:
        client.close()


def upload(client: httpx.Client, name: str, content: bytes, *, lang: str = "en", **data: str) -> httpx.Response:
    token = csrf_token(client, f"/manage/admin/import?lang={lang}")
    return client.post(
        "/manage/admin/import", data={"_csrf_token": token, **data}, files={"file": (name, content, "text/csv")}
    )


@pytest.mark.postgres_covered_elsewhere
def test_the_admin_page_imports_an_upload(people: Org, server: Server) -> None:
    with signed_in(server, "boss") as boss:
        assert 'href="/manage/admin/import"' in boss.get("/manage/admin").text
        page = boss.get("/manage/admin/import")
        assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
        content = (DOCS / "catalogue-example.csv").read_bytes()
        # Without its CSRF token the form is refused.
        refused = boss.post("/manage/admin/import", files={"file": ("c.csv", content, "text/csv")})
        assert refused.status_code == 403
        checked = upload(boss, "catalogue-example.csv", content, dry_run="1")
        assert checked.status_code == 200 and 'id="import-summary"' in checked.text
        assert rows(people, "SELECT code FROM units WHERE code = 'KHDT'") == []
        done = upload(boss, "catalogue-example.csv", content)
        assert done.status_code == 200, done.text[-2000:]
        assert 'id="import-summary"' in done.text
        assert len(rows(people, "SELECT code FROM units WHERE code LIKE 'KHDT%'")) == 4
        entries = rows(people, "SELECT actor_kind, actor_id FROM audit_log WHERE record_id = 'KHDT'")
        assert entries and all(e["actor_id"] == "boss" for e in entries)
        # The new touchpoints take ratings at once (the catalog was reloaded).
        assert httpx.get(f"{server.url}/api/v1/touchpoints/khdt-mc-1/survey", timeout=30).status_code == 200
        # A file that is too large is refused before it is read.
        big = upload(boss, "big.csv", b"x" * (catalogue_import.MAX_BYTES + 1))
        assert big.status_code == 413


@pytest.mark.postgres_covered_elsewhere
def test_an_admin_of_one_unit_imports_only_inside_it(people: Org, server: Server) -> None:
    lines = "\n".join(
        [
            "record,code,parent,name_en,token,name,unit,survey",
            "unit,A1-X,A1,Inside,,,,",  # 2: inside A1's subtree
            "unit,B-X,B,Outside,,,,",  # 3: under B
            "unit,ROOT-X,,A root,,,,",  # 4: a new root
            "touchpoint,,,,tp-bx,Window,B,csat",  # 5: a touchpoint at B
            "unit,A,,,,,,",  # 6: the unit above A1
        ]
    )
    with signed_in(server, "ada") as ada:
        before = table_contents(people.db)  # signed in (which the audit log records)
        refused = upload(ada, "scope.csv", lines.encode(), lang="ru")
        assert refused.status_code == 400
        assert 'id="import-problems"' in refused.text
        assert "вне вашего подразделения" in refused.text  # the problems in the page's language
        assert table_contents(people.db) == before
        read = catalogue_import.read_catalogue(lines.encode(), "scope.csv")
        assert not read.problems
        done = upload(ada, "inside.csv", b"record,code,parent,name_en\nunit,A1-X,A1,Inside\n")
        assert done.status_code == 200, done.text[-2000:]
    assert rows(people, "SELECT path FROM units WHERE code = 'A1-X'") == [{"path": "/A/A1/A1-X/"}]
    with signed_in(server, "mai") as manager:
        assert manager.get("/manage/admin/import").status_code == 403
        assert 'href="/manage/admin/import"' not in manager.get("/manage/admin").text


@pytest.mark.backends("sqlite")
def test_the_page_in_a_browser(browser: Any, people: Org, server: Server, tmp_path: Path) -> None:
    """A real upload from the page's form (multipart, CSRF), the problems table in Vietnamese, and no serious
    accessibility violation (axe-core, WCAG 2.1 AA) on the page with its problems."""
    bad = tmp_path / "bad.csv"
    bad.write_text("record,code,parent,name_vi\nunit,Z-1,NOPE,Zet\nunit,Z-2,A,\n", encoding="utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # to inject axe
    page = context.new_page()
    try:
        sign_in(page, server, "boss", PASSWORD)
        page.goto(f"{server.url}/manage/admin/import?lang=vi")
        page.set_input_files("#f-file", str(bad))
        with page.expect_navigation():
            page.click("#import-form button[type=submit]")
        cells = page.locator("#import-problems tbody tr").all_inner_texts()
        assert len(cells) == 2
        assert "không có đơn vị NOPE" in cells[0] and "name_en" in cells[1]
        ARTIFACTS.mkdir(exist_ok=True)
        save_screenshot(page, ARTIFACTS / "admin-import-problems-vi.png")
        serious = axe_violations(page)
        assert serious == []
    finally:
        context.close()
    assert rows(people, "SELECT code FROM units WHERE code LIKE 'Z-%'") == []


def test_scope_problems_name_their_line_and_column(people: Org) -> None:
    """The planner's side of the scope rule, on the database itself (no server): each line outside the
    subtree, the new root and the unit above are problems at their line and column."""
    from feedback.catalogue_import import make_plan

    text = (
        "record,code,parent,name_en,token,name,unit,survey\n"
        "unit,B-X,B,Outside,,,,\nunit,ROOT-X,,A root,,,,\ntouchpoint,,,,tp-bx,Window,B,csat\nunit,A,,,,,,\n"
    )
    handle = open_database(str(people.db))
    try:
        plan = make_plan(handle.conn, catalogue_import.read_catalogue(text.encode(), "s.csv"), scope="A1")
    finally:
        handle.close()
    assert {(p.line, p.column, p.template) for p in plan.problems} == {
        (2, "parent", catalogue_import.OUT_OF_SCOPE),
        (3, "parent", catalogue_import.ROOT_NEEDS_ROOT_ADMIN),
        (4, "unit", catalogue_import.OUT_OF_SCOPE),
        (5, "code", catalogue_import.OUT_OF_SCOPE),
    }


def test_every_text_of_the_page_and_its_problems_is_translated() -> None:
    sources = [
        (ROOT / "feedback" / "web" / "templates" / "manage" / "admin_import.html", "jinja2.ext:babel_extract"),
        (ROOT / "feedback" / "web" / "manage" / "admin_import.py", "python"),
    ]
    ids = set(catalogue_import.MESSAGES)
    for path, method in sources:
        ids |= {message for _, message, _, _ in extract_from_file(method, str(path), keywords={"_": None, "N_": None})}
    assert len(ids) > 70
    for folder in ("vi", "ru", "zh_Hans"):
        translated: dict[str, str] = {}
        for po in sorted((ROOT / "feedback" / "locales" / folder / "LC_MESSAGES").glob("*.po")):
            with po.open("rb") as handle:
                translated.update({m.id: m.string for m in read_po(handle) if m.id and m.string})
        assert sorted(ids - set(translated)) == [], folder


# -- size ---------------------------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_a_province_sized_catalogue_imports_in_under_30_seconds(backend: str, tmp_path: Path) -> None:
    """578 procedures across 30 units and a touchpoint per unit, as Ben Tre's catalogue: the whole command
    (start-up included) well under 30 s; bench/catalogue_import.py measures it beside a floor."""
    db = fresh_database(backend, tmp_path)
    path = write_xlsx(tmp_path / "province.xlsx", examples().province())
    started = time.monotonic()
    status, summary, _err = run_import(db, path)
    elapsed = time.monotonic() - started
    assert status == 0
    assert (summary["units"], summary["services"], summary["touchpoints"]) == (
        counts(30, 0, 0),
        counts(578, 0, 0),
        counts(30, 0, 0),
    )
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert rows(Org(db=db), "SELECT count(*) AS n FROM services")[0]["n"] == 578
