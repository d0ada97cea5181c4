"""Exposure counts (customers served / offered a survey): the API, the CSV import, and response rates
beside every satisfaction rate."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Org, Server, auth_header, make_org, rows, run_cli

TZ_A = ZoneInfo("Asia/Ho_Chi_Minh")


def today_a() -> date:
    return datetime.now(TZ_A).date()


def day(days_ago: int) -> str:
    return (today_a() - timedelta(days=days_ago)).isoformat()


def post(server: Server, token: str, body) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/exposure", json=body, headers=auth_header(token), timeout=20)


def get(server: Server, path: str, token: str, **params) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=auth_header(token), timeout=20)


def respond(server: Server, touchpoint: str, level: int, days_ago: int, token: str | None = None, **extra) -> None:
    moment = datetime.combine(today_a() - timedelta(days=days_ago), time(12), TZ_A)
    body = {"touchpoint": touchpoint, "answers": {"overall": level}, "submitted_at": moment.isoformat(), **extra}
    headers = auth_header(token) if token else {}
    assert httpx.post(f"{server.url}/api/v1/responses", json=body, headers=headers, timeout=20).status_code == 201


@pytest.fixture
def fresh(tmp_path: Path, start_server) -> tuple[Org, Server]:
    org = make_org(tmp_path / "feedback.db")
    return org, start_server(org.db, feedback_jobs="0")


def test_exposure_is_stored_listed_and_updated(fresh) -> None:
    org, server = fresh
    admin = org.tokens["admin"]
    one = post(server, admin, {"unit": "A1", "service": "S1", "day": day(1), "served": 40, "offered": 30})
    assert one.status_code == 200 and one.json() == {"stored": 1}
    many = post(
        server,
        admin,
        [
            {"unit": "A1a", "day": day(1), "served": 12},
            {"unit": "A1", "service": "S1", "day": day(2), "served": 25, "offered": 0},
            {"unit": "B", "day": day(1), "served": 7},
        ],
    )
    assert many.json() == {"stored": 3}
    # The same cell again replaces the count (a queue system re-sends its day's total).
    assert post(server, admin, {"unit": "A1", "service": "S1", "day": day(1), "served": 41}).status_code == 200
    listed = get(server, "/api/v1/exposure", org.tokens["manager_a1"], unit="A1", **{"from": day(5), "to": day(0)})
    assert listed.status_code == 200
    body = listed.json()
    cells = {(r["unit"], r["service"], r["day"]): (r["served"], r["offered"]) for r in body["rows"]}
    assert cells == {("A1", "S1", day(1)): (41, None), ("A1a", None, day(1)): (12, None), ("A1", "S1", day(2)): (25, 0)}
    assert body["served"] == 78
    assert get(server, "/api/v1/exposure", org.tokens["viewer_b"], unit="B").json()["served"] == 7
    assert get(server, "/api/v1/exposure", org.tokens["viewer_b"], unit="A").status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unit": "A1", "day": "2026-01-01", "served": -1}, "served"),
        ({"unit": "A1", "day": "2026-01-01", "served": 1.5}, "served"),
        ({"unit": "A1", "day": "2026-01-01", "served": True}, "served"),
        ({"unit": "A1", "day": "2026-01-01"}, "served"),
        ({"unit": "A1", "day": "2026-01-01", "served": 5, "offered": 6}, "offered"),
        ({"unit": "A1", "day": "01/02/2026", "served": 5}, "day"),
        ({"unit": "ZZ", "day": "2026-01-01", "served": 5}, "unit"),
        ({"unit": "A1", "service": "S9", "day": "2026-01-01", "served": 5}, "service"),
        ({"unit": "A1", "day": "2026-01-01", "served": 5, "respondents": 3}, "respondents"),
        (
            [{"unit": "A1", "day": "2026-01-01", "served": 5}] * 3
            + [{"unit": "A1", "day": "2026-01-01", "served": "ten"}],
            "[3].served",
        ),
        ([{"unit": "A1", "day": "2026-01-01", "served": 5}, 7], "[1]"),
        ([], "body"),
        ([{"unit": "A1", "day": "2026-01-01", "served": 1}] * 5001, "body"),
        ("lots", "body"),
    ],
)
def test_bad_exposure_stores_nothing_and_names_the_field(server: Server, shared_org: Org, body, field) -> None:
    before = rows(shared_org, "SELECT count(*) AS n FROM exposure")[0]["n"]
    reply = post(server, shared_org.tokens["admin"], body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field
    assert rows(shared_org, "SELECT count(*) AS n FROM exposure")[0]["n"] == before


def test_exposure_writes_need_a_manager_within_scope(server: Server, shared_org: Org) -> None:
    cell = {"unit": "A1", "day": "2026-01-01", "served": 5}
    assert post(server, shared_org.tokens["viewer_b"], {**cell, "unit": "B"}).status_code == 403
    outside = post(server, shared_org.tokens["manager_a1"], [cell, {**cell, "unit": "A"}])
    assert outside.status_code == 403 and outside.json()["field"] == "[1].unit"
    assert rows(shared_org, "SELECT * FROM exposure WHERE day = '2026-01-01'") == []
    assert post(server, shared_org.tokens["manager_a1"], cell).json() == {"stored": 1}
    garbage = httpx.post(f"{server.url}/api/v1/exposure", content=b"{", headers=auth_header(shared_org.tokens["admin"]))
    assert garbage.status_code == 400 and garbage.json()["field"] == "body"
    assert httpx.post(f"{server.url}/api/v1/exposure", json=cell).status_code == 401


def test_csv_import_is_all_or_nothing(tmp_path: Path) -> None:
    org = make_org(tmp_path / "feedback.db")
    good = tmp_path / "good.csv"
    good.write_text(
        "\ufeffunit,service,day,served,offered\nA1,S1,2026-03-02,120,80\nA1a,,2026-03-02,35,\nB,,2026-03-03,9,9\n\n",
        encoding="utf-8",
    )
    result = run_cli("exposure", "import", "--db", str(org.db), str(good))
    assert result.returncode == 0, result.stderr
    assert "3 rows stored" in result.stdout
    stored = rows(org, "SELECT unit, service, day, served, offered, source FROM exposure ORDER BY unit")
    assert stored == [
        {"unit": "A1", "service": "S1", "day": "2026-03-02", "served": 120, "offered": 80, "source": "csv"},
        {"unit": "A1a", "service": "", "day": "2026-03-02", "served": 35, "offered": None, "source": "csv"},
        {"unit": "B", "service": "", "day": "2026-03-03", "served": 9, "offered": 9, "source": "csv"},
    ]

    cases = [
        (
            "unit,service,day,served\nA1,S1,2026-03-04,10\nA1,S1,2026-03-05,10\nA1,S1,2026-03-06,-4\n",
            "line 4, column served",
        ),
        ("unit,service,day,served\nA1,S1,2026-03-04,10\nA1,S1,2026-03-05,lots\n", "line 3, column served"),
        ("unit,service,day,served,offered\nA1,S1,2026-03-04,10,11\n", "line 2, column offered"),
        ("unit,service,day,served\nA9,,2026-03-04,10\n", "line 2, column unit"),
        ("unit,service,day,served\nA1,S7,2026-03-04,10\n", "line 2, column service"),
        ("unit,service,day,served\nA1,S1,4 March,10\n", "line 2, column day"),
        ("unit,service,day,served\nA1,S1,2026-03-04\n", "line 2"),
        ("unit,day,served\nA1,2026-03-04,10\n", "line 1"),
        ("unit,service,day,served,colour\nA1,S1,2026-03-04,10,red\n", "line 1, column 'colour'"),
        ("", "line 1"),
    ]
    for text, where in cases:
        bad = tmp_path / "bad.csv"
        bad.write_text(text, encoding="utf-8")
        result = run_cli("exposure", "import", "--db", str(org.db), str(bad))
        assert result.returncode != 0, text
        assert where in result.stderr, (where, result.stderr)
        assert len(rows(org, "SELECT * FROM exposure")) == 3  # nothing of the bad file was stored


def test_response_rates_beside_satisfaction_rates(fresh) -> None:
    org, server = fresh
    admin = org.tokens["admin"]
    for level in (5, 4, 2):
        respond(server, "tp-a1", level, days_ago=2)  # A1, service S1
    respond(server, "tp-a1", 5, days_ago=2, case_ref="C-1", token=admin)  # a verified case
    respond(server, "tp-a1", 5, days_ago=2, case_ref="C-1")  # the same case again: suspect, still a respondent
    respond(server, "tp-a", 5, days_ago=2)  # A itself, no service
    respond(server, "tp-a1", 5, days_ago=3)  # a day without exposure counts
    post(
        server,
        admin,
        [{"unit": "A1", "service": "S1", "day": day(2), "served": 20}, {"unit": "A", "day": day(2), "served": 4}],
    )
    window = {"from": day(6), "to": day(0)}

    by_unit = get(server, "/api/v1/satisfaction", admin, unit="A", by="unit", **window).json()
    units = {row["key"]: row for row in by_unit["rows"]}
    assert (units["A1"]["served"], units["A1"]["response_rate"]) == (20, pytest.approx(5 / 20))
    assert (units["A"]["served"], units["A"]["response_rate"]) == (4, pytest.approx(1 / 4))
    assert by_unit["total"]["served"] == 24 and by_unit["total"]["response_rate"] == pytest.approx(6 / 24)
    # The existing figures are untouched: the suspect repeat stays out of n.
    assert units["A1"]["n"] == 5 and units["A1"]["suspect"] == 1

    by_service = get(server, "/api/v1/satisfaction", admin, unit="A", by="service", **window).json()
    services = {row["key"]: row for row in by_service["rows"]}
    assert services["S1"]["served"] == 20 and services["S1"]["response_rate"] == pytest.approx(5 / 20)
    assert services[None]["served"] == 4 and services[None]["response_rate"] == pytest.approx(1 / 4)

    by_day = get(server, "/api/v1/satisfaction", admin, unit="A", by="day", **window).json()
    days = {row["key"]: row for row in by_day["rows"]}
    assert days[day(2)]["response_rate"] == pytest.approx(6 / 24)
    assert days[day(3)]["served"] is None and days[day(3)]["response_rate"] is None
    for by in ("week", "month"):
        body = get(server, "/api/v1/satisfaction", admin, unit="A", by=by, **window).json()
        assert sum(row["served"] or 0 for row in body["rows"]) == 24
        assert all(row["response_rate"] is None or 0 < row["response_rate"] <= 1 for row in body["rows"])

    by_touchpoint = get(server, "/api/v1/satisfaction", admin, unit="A", by="touchpoint", **window).json()
    assert all(row["served"] is None and row["response_rate"] is None for row in by_touchpoint["rows"])
    filtered = get(server, "/api/v1/satisfaction", admin, unit="A", service="S1", **window).json()
    assert filtered["total"]["response_rate"] == pytest.approx(5 / 20)
    nothing = get(server, "/api/v1/satisfaction", admin, unit="B", **window).json()
    assert nothing["total"]["served"] is None and nothing["total"]["response_rate"] is None


def test_respondents_are_capped_at_customers_served(fresh) -> None:
    org, server = fresh
    for _ in range(3):
        respond(server, "tp-a1", 5, days_ago=1)
    post(server, org.tokens["admin"], {"unit": "A1", "service": "S1", "day": day(1), "served": 2})
    total = get(
        server, "/api/v1/satisfaction", org.tokens["admin"], unit="A1", **{"from": day(1), "to": day(1)}
    ).json()["total"]
    assert total["served"] == 2 and total["response_rate"] == 1.0
