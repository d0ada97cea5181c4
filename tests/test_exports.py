"""Exports (responses, rates, A-11 v2) and the public results page, against a real server and SQLite file."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from feedback import organisation, surveys
from feedback.auth import save_user
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    axe_violations,
    connect,
    default_plugins,
    rows,
    save_screenshot,
)

pytestmark = BOTH_BACKENDS

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = datetime.now(UTC).astimezone(TZ).date()
FROM = (TODAY - timedelta(days=20)).isoformat()
TO = (TODAY + timedelta(days=1)).isoformat()  # B (Sakhalin) may already be a day ahead
PASSWORD = "correct horse battery"

A11_ANSWERS = [
    {"satisfaction": 5, "went_well": ["ease", "employee"]},
    {"satisfaction": 4, "went_well": ["ease"]},
    {"satisfaction": 2, "could_be_better": ["efficiency", "transparency"]},
    {"satisfaction": 1, "could_be_better": ["efficiency"], "comment": "Slow"},
    {"satisfaction": 5, "went_well": ["other"]},
]


def _post(server: Server, body: dict, token: str | None = None) -> dict:
    response = httpx.post(
        f"{server.url}/api/v1/responses", json=body, timeout=10, headers=auth_header(token) if token else {}
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def setup(shared_org: Org):
    org = shared_org
    conn = connect(org.db)
    conn.execute("BEGIN")
    surveys.publish_template(conn, "a11_v2", default_plugins())
    org.touchpoints["a11"] = organisation.add_touchpoint(
        conn, "A1", "A-11 desk", "a11_v2", service="S2", token="tp-a11"
    )
    organisation.set_exposure(conn, "A1", "S2", TODAY.isoformat(), served=40, offered=30)
    conn.execute("UPDATE units SET public_results = 1 WHERE code = 'A1'")
    save_user(conn, "reporter", "manager", "A", password=PASSWORD, lang="en")
    conn.execute("COMMIT")
    conn.close()
    server = Server(org.db).start()
    posted: dict[str, list[str]] = {"a1": [], "a11": [], "a1a": [], "b": []}
    for level in (5, 4, 5, 2, 1, 5, 4):
        posted["a1"].append(
            _post(
                server,
                {
                    "touchpoint": "tp-a1",
                    "answers": {"overall": level, "comment": f"Nice <b>service</b> {level}"},
                    "officer": "OFF-7",
                    "case_ref": "CASE-123",
                    "service": "S1",
                },
            )["id"]
        )
    for answers in A11_ANSWERS:
        posted["a11"].append(_post(server, {"touchpoint": "tp-a11", "answers": answers, "officer": "OFF-9"})["id"])
    posted["a1a"].append(
        _post(server, {"touchpoint": "tp-a1a", "answers": {"overall": 1}, "case_ref": "HC-2026-9", "officer": "OFF-3"})[
            "id"
        ]
    )
    posted["b"].append(
        _post(
            server,
            {
                "touchpoint": "tp-b",
                "answers": dict.fromkeys(
                    ("service_time", "waiting_time", "staff_courtesy", "premises", "information"), 5
                ),
                "officer": "OFF-B",
            },
        )["id"]
    )
    yield org, server, posted
    server.stop()


def _get(server: Server, path: str, token: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=auth_header(token), timeout=30)


def _csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.content.startswith("\ufeff".encode()), "CSV must start with a UTF-8 BOM for Excel"
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def _xlsx(response: httpx.Response) -> list[dict]:
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    sheet = workbook.worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    header = values[0]
    return [dict(zip(header, row, strict=True)) for row in values[1:]]


@pytest.mark.postgres_covered_elsewhere
def test_responses_csv_and_xlsx_hold_every_response_of_the_subtree(setup) -> None:
    org, server, posted = setup
    expected = set(posted["a1"] + posted["a11"] + posted["a1a"])
    csv_response = _get(
        server, "/api/v1/exports/responses.csv", org.tokens["admin"], unit="A1", **{"from": FROM, "to": TO}
    )
    assert csv_response.status_code == 200, csv_response.text
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert f'filename="responses_A1_{FROM}_{TO}.csv"' in csv_response.headers["content-disposition"]
    table = _csv(csv_response)
    assert {row["id"] for row in table} == expected
    assert len(table) == len(expected)
    xlsx_response = _get(
        server, "/api/v1/exports/responses.xlsx", org.tokens["admin"], unit="A1", **{"from": FROM, "to": TO}
    )
    assert xlsx_response.status_code == 200, xlsx_response.text
    sheet = _xlsx(xlsx_response)
    assert {row["id"] for row in sheet} == expected
    # Same rows in both files, and the stored values behind them.
    stored = {r["id"]: r for r in rows(org, "SELECT id, receipt, level, unit FROM responses")}
    for row in sheet:
        assert row["receipt"] == stored[row["id"]]["receipt"]
        assert row["level"] == stored[row["id"]]["level"]
    by_id = {row["id"]: row for row in table}
    first = by_id[posted["a1"][0]]
    assert first["unit"] == "A1" and first["unit_name"] == "Đơn vị A1"
    assert first["overall"] == "5" and first["comment"] == "Nice <b>service</b> 5"
    assert first["case_ref"] == "CASE-123" and first["service"] == "S1"
    assert first["occurred_at"].endswith("+07:00")
    a11 = by_id[posted["a11"][0]]
    assert a11["went_well"] == "ease;employee" and a11["satisfaction"] == "5"
    # Agency B's response is not in A1's subtree; A's own touchpoints are not either.
    assert posted["b"][0] not in by_id


def test_response_filters_narrow_the_export(setup) -> None:
    org, server, posted = setup
    params = {"unit": "A", "from": FROM, "to": TO}
    by_service = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], service="S2", **params))
    assert {row["id"] for row in by_service} == set(posted["a11"])
    by_level = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], level="1", **params))
    level_one = {r["id"] for r in rows(org, "SELECT id FROM responses WHERE level = 1 AND unit != 'B'")}
    assert level_one and {row["id"] for row in by_level} == level_one
    by_touchpoint = _csv(
        _get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], touchpoint="tp-a1a", **params)
    )
    assert [row["id"] for row in by_touchpoint] == posted["a1a"]
    flagged = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], flagged="true", **params))
    unflagged = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], flagged="false", **params))
    everything = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], **params))
    assert all(row["flag"] for row in flagged)
    assert not any(row["flag"] for row in unflagged)
    assert len(flagged) + len(unflagged) == len(everything)


def test_flagged_responses_carry_their_flags(setup, tmp_path) -> None:
    org, server, _ = setup
    # The same case rated twice at the kiosk touchpoint: the second is stored as a duplicate (suspect).
    first = _post(
        server, {"touchpoint": "tp-a1", "answers": {"overall": 4}, "case_ref": "DUP-1"}, org.tokens["admin"]
    )  # the counter's system vouches for the case
    second = _post(server, {"touchpoint": "tp-a1", "answers": {"overall": 2}, "case_ref": "DUP-1"})
    table = {
        row["id"]: row
        for row in _csv(
            _get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], unit="A1", **{"from": FROM, "to": TO})
        )
    }
    stored = {r["id"]: r["flags"] for r in rows(org, "SELECT id, flags FROM responses WHERE case_ref = 'DUP-1'")}
    assert table[first["id"]]["flag"] == ""
    assert "duplicate_case" in stored[second["id"]]
    assert "duplicate_case" in table[second["id"]]["flag"]


def test_officer_column_only_for_roles_allowed(setup) -> None:
    org, server, _ = setup
    params = {"from": FROM, "to": TO}
    admin = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], unit="A1", **params))
    assert "officer" in admin[0] and {row["officer"] for row in admin} >= {"OFF-7", "OFF-9"}
    viewer = _get(server, "/api/v1/exports/responses.csv", org.tokens["viewer_b"], unit="B", **params)
    assert viewer.status_code == 200
    assert "officer" not in viewer.content.decode("utf-8-sig").splitlines()[0].split(",")
    viewer_xlsx = _xlsx(_get(server, "/api/v1/exports/responses.xlsx", org.tokens["viewer_b"], unit="B", **params))
    assert viewer_xlsx and "officer" not in viewer_xlsx[0]


def test_manager_of_a1_may_not_export_b(setup) -> None:
    org, server, _ = setup
    for path in (
        "/api/v1/exports/responses.csv",
        "/api/v1/exports/responses.xlsx",
        "/api/v1/exports/rates.csv",
        "/api/v1/exports/rates.xlsx",
        "/api/v1/exports/a11.csv",
        "/api/v1/reports/management-review.pdf",
    ):
        response = _get(server, path, org.tokens["manager_a1"], unit="B")
        assert response.status_code == 403, (path, response.text)
        assert response.json()["field"] == "unit"
    assert httpx.get(f"{server.url}/api/v1/exports/responses.csv", timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-05-01", "to": "2026-04-01"}, "from"),
        ({"level": "7"}, "level"),
        ({"level": "\u00b3"}, "level"),  # "³" counts as a digit to str.isdigit, but int() refuses it
        ({"flagged": "maybe"}, "flagged"),
        ({"unit": "NOPE"}, "unit"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(setup, params: dict, field: str) -> None:
    org, server, _ = setup
    response = _get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], **{"unit": "A1", **params})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"]


def test_bad_dates_on_every_export(setup) -> None:
    org, server, _ = setup
    for path in (
        "/api/v1/exports/responses.xlsx",
        "/api/v1/exports/rates.csv",
        "/api/v1/exports/rates.xlsx",
        "/api/v1/exports/a11.csv",
        "/api/v1/reports/management-review.pdf",
    ):
        response = _get(server, path, org.tokens["admin"], unit="A1", to="31/12/2026")
        assert response.status_code == 400, (path, response.text)
        assert response.json()["field"] == "to"
    for path in ("/api/v1/exports/rates.csv", "/api/v1/exports/rates.xlsx"):
        bad_by = _get(server, path, org.tokens["admin"], unit="A1", by="officer")
        assert bad_by.status_code == 400 and bad_by.json()["field"] == "by", bad_by.text
    bad_lang = _get(server, "/api/v1/reports/management-review.pdf", org.tokens["admin"], unit="A1", lang="fr")
    assert bad_lang.status_code == 400 and bad_lang.json()["field"] == "lang"


@pytest.mark.parametrize("by", ["unit", "service", "touchpoint", "day", "month"])
def test_rates_exports_match_the_satisfaction_api(setup, by: str) -> None:
    org, server, _ = setup
    params = {"unit": "A", "from": FROM, "to": TO, "by": by}
    api = _get(server, "/api/v1/satisfaction", org.tokens["admin"], **params).json()
    expected = {row["key"]: row for row in api["rows"]}
    expected["total"] = api["total"]
    table = _csv(_get(server, "/api/v1/exports/rates.csv", org.tokens["admin"], **params))
    sheet = _xlsx(_get(server, "/api/v1/exports/rates.xlsx", org.tokens["admin"], **params))
    assert [row["key"] for row in table] == [*(row["key"] or "" for row in api["rows"]), "total"]
    assert len(sheet) == len(table)
    for row in sheet:
        want = expected[row["key"] if row["key"] != "" else None]
        assert row["n"] == want["n"] and row["satisfied"] == want["satisfied"]
        assert row["rate"] == pytest.approx(want["rate"]) if want["rate"] is not None else row["rate"] in ("", None)
        if want["ci95"]:
            assert row["ci95_low"] == pytest.approx(want["ci95"][0])
            assert row["ci95_high"] == pytest.approx(want["ci95"][1])
        assert row["sufficient"] == want["sufficient"]
        assert (row["served"] or None) == want["served"]
    for row in table:
        want = expected[row["key"] or None]
        assert int(row["n"]) == want["n"]
        if want["rate"] is not None:
            assert float(row["rate"]) == pytest.approx(want["rate"])


def test_a11_csv_counts_match_the_posted_responses(setup) -> None:
    org, server, _ = setup
    response = _get(server, "/api/v1/exports/a11.csv", org.tokens["admin"], unit="A", **{"from": FROM, "to": TO})
    assert response.status_code == 200, response.text
    assert "a11_v2_A_" in response.headers["content-disposition"]
    table = _csv(response)
    assert len({row["quarter"] for row in table}) >= 1
    s2 = [row for row in table if row["service"] == "S2"]
    assert sum(int(row["respondents"]) for row in s2) == len(A11_ANSWERS)
    levels = Counter(answer["satisfaction"] for answer in A11_ANSWERS)
    went_well = Counter(option for answer in A11_ANSWERS for option in answer.get("went_well", []))
    better = Counter(option for answer in A11_ANSWERS for option in answer.get("could_be_better", []))
    for level in range(1, 6):
        assert sum(int(row[f"satisfaction_{level}"]) for row in s2) == levels[level]
    for option in ("effectiveness", "ease", "efficiency", "transparency", "humanity", "employee", "other"):
        assert sum(int(row[f"went_well_{option}"]) for row in s2) == went_well[option]
        assert sum(int(row[f"could_be_better_{option}"]) for row in s2) == better[option]
    assert sum(int(row["customers_served"] or 0) for row in s2) == 40
    assert sum(int(row["surveys_offered"] or 0) for row in s2) == 30
    # Only the A-11 v2 survey is counted: the CSAT responses of service S1 are not.
    assert not [row for row in table if row["service"] == "S1"]


def test_xlsx_row_cap_names_the_period(tmp_path) -> None:
    from feedback import exports

    flt = exports.ResponseFilter(("A",), "2026-01-01", "2026-12-31")
    with pytest.raises(exports.TooLarge) as caught:
        exports.check_xlsx_size(exports.XLSX_MAX_ROWS + 1, flt)
    assert caught.value.status_code == 413
    assert "2026-01-01" in caught.value.message and "2026-12-31" in caught.value.message
    exports.check_xlsx_size(exports.XLSX_MAX_ROWS, flt)


def test_keyset_pages_return_every_row_once(org: Org) -> None:
    """Small pages over several units and days still give each response exactly once, in order."""
    from feedback import exports

    conn = connect(org.db)
    ids = []
    for i in range(23):
        unit = ("A", "A1", "A1a")[i % 3]
        day = f"2026-03-{1 + i % 4:02d}"
        ids.append(f"r{i}")
        conn.execute(
            "INSERT INTO responses (id, receipt, touchpoint, unit, survey, survey_version, channel, lang, answers,"
            " server_time, occurred_at, day, flags, content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                f"r{i}",
                f"R{i}",
                "tp-a",
                unit,
                "csat",
                1,
                "api",
                "en",
                "{}",
                "t",
                "2026-03-01T00:00:00+00:00",
                day,
                '["burst"]' if i % 5 == 0 else "[]",
                "h",
            ),
        )
    conn.commit()
    flt = exports.ResponseFilter(("A", "A1", "A1a"), "2026-03-01", "2026-03-31")
    seen, cursor = [], exports.Cursor()
    while not cursor.done:
        page, cursor = exports.fetch_page(conn, flt, cursor, limit=4)
        assert len(page) <= 4
        seen.extend(row["id"] for row in page)
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
    suspect = exports.ResponseFilter(("A", "A1", "A1a"), "2026-03-01", "2026-03-31", flagged=True)
    assert exports.count_responses(conn, suspect) == len([i for i in range(23) if i % 5 == 0])
    conn.close()


# -- the public page ----------------------------------------------------------------------------------


def _close_the_bad_review(org: Org, server: Server) -> int:
    found = rows(org, "SELECT id FROM actions WHERE unit = 'A1a'")
    assert found, "the bad review should have opened a work order"
    action = found[0]["id"]
    token = org.tokens["admin"]
    steps = [
        {"type": "verifying", "note": "Checked the case"},
        {"type": "corrected", "correction": "Apologised and finished the dossier the same day"},
        {"type": "implemented", "action_taken": "Second officer assigned to window 3 at peak hours"},
        {"type": "effectiveness_review", "note": "Watching"},
        {"type": "closed", "result": "Waiting time at window 3 fell below ten minutes"},
    ]
    for step in steps:
        response = httpx.post(
            f"{server.url}/api/v1/actions/{action}/events", json=step, headers=auth_header(token), timeout=10
        )
        assert response.status_code == 201, response.text
    return action


def test_public_page_is_404_when_switched_off(setup) -> None:
    _, server, _ = setup
    assert httpx.get(f"{server.url}/results/B", timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/results/NOPE", timeout=10).status_code == 404


def test_public_page_shows_rates_and_closed_actions_without_personal_data(setup) -> None:
    org, server, _ = setup
    _close_the_bad_review(org, server)
    page = httpx.get(f"{server.url}/results/A1", params={"lang": "en"}, timeout=10)
    assert page.status_code == 200
    html = page.text
    api = _get(
        server, "/api/v1/satisfaction", org.tokens["admin"], unit="A1", by="month", **{"from": FROM, "to": TO}
    ).json()
    assert f">{api['total']['n']}<" in html
    assert "Second officer assigned to window 3 at peak hours" in html
    assert "Waiting time at window 3 fell below ten minutes" in html
    for secret in ("HC-2026-9", "CASE-123", "OFF-3", "OFF-7", "OFF-9", "Nice", "contact"):
        assert secret not in html, secret
    assert 'lang="en"' in html
    vi = httpx.get(f"{server.url}/results/A1", params={"lang": "vi"}, timeout=10).text
    assert 'lang="vi"' in vi and "Đơn vị A1" in vi


def _sign_in(context, server: Server) -> None:
    page = context.new_page()
    page.goto(f"{server.url}/manage/login")
    page.fill("input[name=username]", "reporter")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.close()


@pytest.mark.parametrize("lang", ["vi", "ru", "zh", "en"])
def test_pages_pass_axe_and_are_kept_as_screenshots(setup, browser, lang: str) -> None:
    org, server, _ = setup
    if org.backend == "postgresql":
        pytest.skip("the markup does not depend on the database: checked once, on SQLite")
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(locale="en-US", bypass_csp=True)  # to inject axe itself
    try:
        page = context.new_page()
        page.goto(f"{server.url}/results/A1?lang={lang}")
        assert axe_violations(page) == [], f"public page ({lang})"
        save_screenshot(page, ARTIFACTS / f"public_results_{lang}.png")
        _sign_in(context, server)
        page.goto(f"{server.url}/manage/reports?lang={lang}")
        assert page.url.startswith(f"{server.url}/manage/reports"), page.url
        assert page.locator("form[action='/api/v1/reports/management-review.pdf']").count() == 1
        assert axe_violations(page) == [], f"/manage/reports ({lang})"
        save_screenshot(page, ARTIFACTS / f"manage_reports_{lang}.png")
    finally:
        context.close()


def test_report_forms_download_with_the_session(setup, browser) -> None:
    """The forms of /manage/reports work with the signed-in session alone (no token)."""
    _, server, _ = setup
    context = browser.new_context()
    try:
        _sign_in(context, server)
        page = context.new_page()
        page.goto(f"{server.url}/manage/reports?unit=A1")
        with page.expect_download() as download:
            page.locator("form[action='/api/v1/exports/responses.csv'] button[formaction]").click()
        assert download.value.suggested_filename.startswith("responses_A1_")
        assert download.value.suggested_filename.endswith(".xlsx")
        response = context.request.get(f"{server.url}/api/v1/exports/rates.csv?unit=B")
        assert response.status == 403  # the manager of A may not export B
    finally:
        context.close()


@pytest.mark.postgres_covered_elsewhere
def test_large_csv_export_streams_every_page(org: Org, start_server) -> None:
    """More rows than several pages: the streamed CSV and the XLSX still hold each response exactly once."""
    from feedback import exports

    total = exports.PAGE_SIZE * 2 + 123
    conn = connect(org.db)
    conn.executemany(
        "INSERT INTO responses (id, receipt, touchpoint, unit, survey, survey_version, channel, lang, answers,"
        " server_time, occurred_at, day, flags, content_hash, level) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                f"big-{i:05d}",
                f"R{i}",
                "tp-a1",
                ("A1", "A1a")[i % 2],
                "csat",
                1,
                "api",
                "vi",
                '{"overall": 4, "comment": "Tốt 很好"}',
                "t",
                "2026-03-01T03:00:00+00:00",
                f"2026-03-{1 + i % 28:02d}",
                "[]",
                "h",
                4,
            )
            for i in range(total)
        ],
    )
    conn.commit()
    conn.close()
    server = start_server(org.db)
    params = {"unit": "A1", "from": "2026-03-01", "to": "2026-03-31"}
    table = _csv(_get(server, "/api/v1/exports/responses.csv", org.tokens["admin"], **params))
    assert len(table) == total and len({row["id"] for row in table}) == total
    assert table[0]["comment"] == "Tốt 很好" and table[0]["occurred_at"] == "2026-03-01T10:00:00+07:00"
    sheet = _xlsx(_get(server, "/api/v1/exports/responses.xlsx", org.tokens["admin"], **params))
    assert {row["id"] for row in sheet} == {row["id"] for row in table}
