"""Quality objectives (ISO 9001 6.2): versions, statuses decided by the Wilson interval, the weekly
p-chart and its signals, and the periodic evaluation that fires `objective.breached` once."""

from __future__ import annotations

import json
import math
import textwrap
import uuid
from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedback.catalog import load_snapshot
from feedback.db import open_database
from feedback.ingest import prepare, store_job
from feedback.models import Submission
from feedback.rates import wilson
from feedback.store import Row, dialect
from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, connect, default_plugins, rows, run_cli

pytestmark = BOTH_BACKENDS

TZ_A = ZoneInfo("Asia/Ho_Chi_Minh")


def today_a() -> date:
    return datetime.now(TZ_A).date()


def api(server: Server, method: str, path: str, token: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers=auth_header(token), timeout=20, **kwargs)


def respond(server: Server, touchpoint: str, level: int, days_ago: int, **extra) -> None:
    """A real response through the public API, given at local noon `days_ago` days back."""
    moment = datetime.combine(today_a() - timedelta(days=days_ago), time(12), TZ_A)
    answers = extra.pop("answers", {"overall": level})
    body = {"touchpoint": touchpoint, "answers": answers, "submitted_at": moment.isoformat(), **extra}
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=20)
    assert reply.status_code == 201, reply.text


def create(server: Server, token: str, **body) -> httpx.Response:
    return api(server, "POST", "/api/v1/objectives", token, json=body)


def status(server: Server, token: str, objective: int, at: date | None = None) -> dict:
    params = {"at": at.isoformat()} if at else {}
    reply = api(server, "GET", f"/api/v1/objectives/{objective}/status", token, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture
def org5(org: Org, start_server) -> tuple[Org, Server]:
    return org, start_server(org.db, feedback_min_n="5", feedback_jobs="0")


# -- definitions through the API ----------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_objective_is_created_versioned_and_retired_never_deleted(org5) -> None:
    org, server = org5
    admin = org.tokens["admin"]
    reply = create(
        server,
        admin,
        unit="A1",
        metric="satisfaction",
        target=0.8,
        period="quarter",
        owner="lan",
        title="Hài lòng ≥ 80 %",
        valid_from=(today_a() - timedelta(days=7)).isoformat(),
    )
    assert reply.status_code == 201, reply.text
    objective = reply.json()
    oid = objective["id"]
    assert objective["unit"] == "A1" and objective["retired"] is False
    assert objective["current"]["target"] == 0.8 and objective["current"]["comparator"] == ">="
    assert objective["min_n"] == 5  # the server's minimum n when none is given
    assert objective["method"] == "wilson" and objective["valid_from"] == (today_a() - timedelta(days=7)).isoformat()
    assert [v["version"] for v in objective["versions"]] == [1]

    changed = api(server, "PUT", f"/api/v1/objectives/{oid}", admin, json={"target": 0.9})  # from today
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert [v["target"] for v in body["versions"]] == [0.8, 0.9]
    assert body["current"]["version"] == 2 and body["period"] == "quarter" and body["owner"] == "lan"
    # A version cannot take effect before the latest one did.
    early = api(
        server,
        "PUT",
        f"/api/v1/objectives/{oid}",
        admin,
        json={"target": 0.7, "valid_from": (today_a() - timedelta(days=1)).isoformat()},
    )
    assert body["valid_from"] == today_a().isoformat()
    assert early.status_code == 400 and early.json()["field"] == "valid_from"

    listed = api(server, "GET", "/api/v1/objectives", admin, params={"unit": "A"}).json()
    item = next(o for o in listed if o["id"] == oid)
    assert item["versions"] == 2 and item["target"] == 0.9 and item["retired"] is False

    retired = api(server, "POST", f"/api/v1/objectives/{oid}/retire", admin, json={})
    assert retired.status_code == 200 and retired.json()["retired"] is True
    assert retired.json()["retired_from"] == today_a().isoformat()
    assert status(server, admin, oid)["status"] == "retired"
    yesterday = status(server, admin, oid, today_a() - timedelta(days=1))
    assert yesterday["status"] == "insufficient_data" and (yesterday["version"], yesterday["target"]) == (1, 0.8)
    again = api(server, "PUT", f"/api/v1/objectives/{oid}", admin, json={"target": 0.95})
    assert again.status_code == 409
    # Still there, with its whole history: retired, never deleted.
    shown = api(server, "GET", f"/api/v1/objectives/{oid}", admin).json()
    assert len(shown["versions"]) == 2 and shown["retired"] is True
    assert len(rows(org, "SELECT * FROM objective_versions WHERE objective = ?", (oid,))) == 2


@pytest.mark.postgres_covered_elsewhere
def test_roles_and_scope_on_objectives(org5) -> None:
    org, server = org5
    admin, manager, viewer = org.tokens["admin"], org.tokens["manager_a1"], org.tokens["viewer_b"]
    assert create(server, viewer, unit="B", metric="satisfaction", target=0.9).status_code == 403
    outside = create(server, manager, unit="A", metric="satisfaction", target=0.9)
    assert outside.status_code == 403 and outside.json()["field"] == "unit"
    inside = create(server, manager, unit="A1a", metric="satisfaction", target=0.9)
    assert inside.status_code == 201
    on_b = create(server, admin, unit="B", metric="mean_score", target=80).json()
    # The viewer reads B's objective and its status but may not change it.
    assert api(server, "GET", f"/api/v1/objectives/{on_b['id']}", viewer).status_code == 200
    assert api(server, "GET", f"/api/v1/objectives/{on_b['id']}/status", viewer).status_code == 200
    assert api(server, "PUT", f"/api/v1/objectives/{on_b['id']}", viewer, json={"target": 90}).status_code == 403
    assert api(server, "POST", f"/api/v1/objectives/{on_b['id']}/retire", viewer).status_code == 403
    # The manager of A1 sees nothing of B.
    assert api(server, "GET", f"/api/v1/objectives/{on_b['id']}", manager).status_code == 403
    assert api(server, "GET", "/api/v1/objectives", manager, params={"unit": "B"}).status_code == 403
    own = api(server, "GET", "/api/v1/objectives", manager).json()
    assert [o["unit"] for o in own] == ["A1a"]
    assert api(server, "GET", "/api/v1/objectives/999", admin).status_code == 404
    assert api(server, "GET", "/api/v1/objectives/999/status", admin).status_code == 404
    assert api(server, "PUT", "/api/v1/objectives/999", admin, json={"target": 0.5}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric": "happiness", "target": 0.9}, "metric"),
        ({"target": 0.9}, "metric"),
        ({"metric": "satisfaction"}, "target"),
        ({"metric": "satisfaction", "target": 95}, "target"),
        ({"metric": "satisfaction", "target": "high"}, "target"),
        ({"metric": "mean_score", "target": 120}, "target"),
        ({"metric": "satisfaction", "target": 0.9, "comparator": ">"}, "comparator"),
        ({"metric": "satisfaction", "target": 0.9, "period": "year"}, "period"),
        ({"metric": "satisfaction", "target": 0.9, "min_n": 0}, "min_n"),
        ({"metric": "satisfaction", "target": 0.9, "owner": "nobody"}, "owner"),
        ({"metric": "satisfaction", "target": 0.9, "method": "normal"}, "method"),
        ({"metric": "indicator_mean", "target": 80}, "indicator"),
        ({"metric": "indicator_mean", "target": 80, "indicator": "mood"}, "indicator"),
        ({"metric": "satisfaction", "target": 0.9, "indicator": "overall"}, "indicator"),
        ({"metric": "satisfaction", "target": 0.9, "service": "S9"}, "service"),
        ({"metric": "satisfaction", "target": 0.9, "valid_from": "2026-02-30"}, "valid_from"),
        ({"metric": "satisfaction", "target": 0.9, "colour": "red"}, "colour"),
        ({"unit": "ZZ", "metric": "satisfaction", "target": 0.9}, "unit"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_bad_objective_fields_are_named(server: Server, shared_org: Org, body: dict, field: str) -> None:
    reply = create(server, shared_org.tokens["admin"], **{"unit": "A", **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field


def test_bad_bodies_and_queries_are_400(server: Server, shared_org: Org) -> None:
    admin = shared_org.tokens["admin"]
    raw = httpx.post(f"{server.url}/api/v1/objectives", content=b"{nope", headers=auth_header(admin))
    assert raw.status_code == 400 and raw.json()["field"] == "body"
    listed = api(server, "POST", "/api/v1/objectives", admin, json=[1, 2])
    assert listed.status_code == 400 and listed.json()["field"] == "body"
    oid = create(server, admin, unit="A", metric="satisfaction", target=0.9).json()["id"]
    bad_at = api(server, "GET", f"/api/v1/objectives/{oid}/status", admin, params={"at": "yesterday"})
    assert bad_at.status_code == 400 and bad_at.json()["field"] == "at"
    before = api(server, "GET", f"/api/v1/objectives/{oid}/status", admin, params={"at": "2001-01-01"})
    assert before.status_code == 400 and before.json()["field"] == "at"
    moved = api(server, "PUT", f"/api/v1/objectives/{oid}", admin, json={"unit": "B"})
    assert moved.status_code == 400 and moved.json()["field"] == "unit"
    retire = api(server, "POST", f"/api/v1/objectives/{oid}/retire", admin, json={"from": "2001-01-01"})
    assert retire.status_code == 400 and retire.json()["field"] == "from"
    for params, field in (
        ({"unit": "A", "weeks": "0"}, "weeks"),
        ({"unit": "A", "metric": "mood"}, "metric"),
        ({"unit": "A", "to": "soon"}, "to"),
        ({"unit": "A", "service": "S9"}, "service"),
    ):
        chart = api(server, "GET", "/api/v1/control-chart", admin, params=params)
        assert chart.status_code == 400 and chart.json()["field"] == field, chart.text


# -- statuses from real responses ---------------------------------------------------------------


def test_each_status_from_real_responses_with_wilson_deciding(org5) -> None:
    org, server = org5
    admin = org.tokens["admin"]
    # 20 responses at A1 over three weeks: 16 satisfied (5 or 4), 1 neutral, 3 dissatisfied (2 or 1).
    levels = [5] * 10 + [4] * 6 + [3] + [2, 1, 1]
    for i, level in enumerate(levels):
        respond(server, "tp-a1", level, days_ago=1 + i)
    low, high = wilson(16, 20)
    assert 0.7 < 16 / 20 and low < 0.7 < high  # the at-risk case below: the estimate alone would pass

    cases = [
        ({"metric": "satisfaction", "target": 0.5}, "met"),
        ({"metric": "satisfaction", "target": 0.7}, "at_risk"),
        ({"metric": "satisfaction", "target": 0.95}, "breached"),
        ({"metric": "satisfaction", "target": 0.5, "min_n": 21}, "insufficient_data"),
        ({"metric": "bad_review_rate", "target": 0.5}, "met"),
        ({"metric": "bad_review_rate", "target": 0.02}, "breached"),
        ({"metric": "not_dissatisfied", "target": 0.6}, "met"),
    ]
    for spec, expected in cases:
        oid = create(server, admin, unit="A1", period="rolling_30", **spec).json()["id"]
        doc = status(server, admin, oid)
        assert doc["status"] == expected, (spec, doc)
        assert doc["n"] == 20 and doc["period"] == "rolling_30"
        assert doc["period_key"] == f"R30:{today_a().isoformat()}"
        assert doc["from"] == (today_a() - timedelta(days=29)).isoformat() and doc["to"] == today_a().isoformat()
    satisfaction = status(
        server,
        admin,
        create(server, admin, unit="A", metric="satisfaction", target=0.7, period="rolling_30").json()["id"],
    )
    assert satisfaction["value"] == pytest.approx(0.8) and satisfaction["successes"] == 16
    assert satisfaction["ci95"] == pytest.approx([low, high])
    assert satisfaction["unit"] == "A"  # A's subtree holds A1's responses
    bad = status(
        server,
        admin,
        create(server, admin, unit="A1", metric="bad_review_rate", target=0.5, period="rolling_30").json()["id"],
    )
    assert bad["comparator"] == "<=" and bad["successes"] == 3 and bad["value"] == pytest.approx(0.15)

    # The mean score on 0-100 (CSAT: 5 → 100, 4 → 75, 3 → 50, 2 → 25, 1 → 0) with the interval of a mean.
    mean = sum({5: 100, 4: 75, 3: 50, 2: 25, 1: 0}[level] for level in levels) / 20
    doc = status(
        server,
        admin,
        create(server, admin, unit="A1", metric="mean_score", target=60, period="rolling_30").json()["id"],
    )
    assert doc["value"] == pytest.approx(mean) and doc["n"] == 20
    m_low, m_high = wilson(mean / 100 * 20, 20)
    assert doc["ci95"] == pytest.approx([m_low * 100, m_high * 100])
    assert doc["status"] == ("met" if m_low * 100 >= 60 else "at_risk")
    overall = status(
        server,
        admin,
        create(
            server, admin, unit="A1", metric="indicator_mean", indicator="overall", target=95, period="rolling_30"
        ).json()["id"],
    )
    assert overall["value"] == pytest.approx(mean) and overall["status"] == "breached"
    nothing = status(
        server, admin, create(server, admin, unit="B", metric="satisfaction", target=0.5, period="month").json()["id"]
    )
    assert nothing["n"] == 0 and nothing["value"] is None and nothing["ci95"] is None
    assert nothing["status"] == "insufficient_data"
    # A service filter reads the detailed rollup: tp-a1 serves S1, nothing was rated for S2.
    s2 = status(
        server,
        admin,
        create(server, admin, unit="A", metric="satisfaction", target=0.5, service="S2", period="rolling_30").json()[
            "id"
        ],
    )
    assert s2["n"] == 0 and s2["service"] == "S2"


def test_a_past_day_is_judged_against_the_target_then_in_force(org5) -> None:
    org, server = org5
    admin = org.tokens["admin"]
    for i in range(20):
        respond(server, "tp-a1", 5 if i < 16 else 1, days_ago=8 + i % 5)
    start = today_a() - timedelta(days=20)
    oid = create(
        server, admin, unit="A1", metric="satisfaction", target=0.5, period="rolling_30", valid_from=start.isoformat()
    ).json()["id"]
    raised_from = today_a() - timedelta(days=3)
    reply = api(
        server, "PUT", f"/api/v1/objectives/{oid}", admin, json={"target": 0.95, "valid_from": raised_from.isoformat()}
    )
    assert reply.status_code == 200, reply.text
    past = status(server, admin, oid, today_a() - timedelta(days=5))
    assert (past["version"], past["target"], past["status"]) == (1, 0.5, "met")
    now = status(server, admin, oid)
    assert (now["version"], now["target"], now["status"]) == (2, 0.95, "breached")
    assert past["n"] == now["n"] == 20  # the same responses, judged against different targets


def test_response_rate_objective_counts_only_days_with_exposure(org5) -> None:
    org, server = org5
    admin = org.tokens["admin"]
    for days_ago in (2, 2, 2, 3, 9):
        respond(server, "tp-a1", 5, days_ago=days_ago)
    counts = [
        {"unit": "A1", "service": "S1", "day": (today_a() - timedelta(days=d)).isoformat(), "served": served}
        for d, served in ((2, 10), (3, 10))
    ]
    assert api(server, "POST", "/api/v1/exposure", admin, json=counts).json() == {"stored": 2}
    oid = create(server, admin, unit="A", metric="response_rate", target=0.1, period="rolling_30", min_n=5).json()["id"]
    doc = status(server, admin, oid)
    # Day 9 has no exposure count, so its response does not count: 4 respondents of 20 served.
    assert (doc["n"], doc["successes"], doc["value"]) == (20, 4, pytest.approx(0.2))
    assert doc["ci95"] == pytest.approx(list(wilson(4, 20)))
    assert doc["signals"] == []


def test_callback_rate_objective_reads_the_corrective_actions(org5) -> None:
    org, server = org5
    admin = org.tokens["admin"]
    # Ваш контроль: a criterion rated below 4 opens a call-back, which nobody has made yet.
    respond(
        server,
        "tp-b",
        0,
        days_ago=1,
        answers={"service_time": 2, "waiting_time": 2, "staff_courtesy": 3, "premises": 4, "information": 3},
    )
    found = rows(org, "SELECT id, kind FROM actions")
    assert [row["kind"] for row in found] == ["callback"]
    oid = create(server, admin, unit="B", metric="callback_rate", target=0.9, min_n=1, period="rolling_30").json()["id"]
    # Pending and not yet due: not counted yet.
    assert status(server, admin, oid)["n"] == 0
    # The respondent declined the call: a call-back due that was not reached.
    reply = api(
        server,
        "POST",
        f"/api/v1/actions/{found[0]['id']}/callbacks",
        admin,
        json={"via": "phone", "outcome": "declined"},
    )
    assert reply.status_code == 201, reply.text
    doc = status(server, admin, oid)
    assert (doc["n"], doc["successes"], doc["value"]) == (1, 0, 0.0)
    assert doc["status"] == "breached"  # even the upper bound of 0 out of 1 is under 90 %
    on_time = status(
        server,
        admin,
        create(server, admin, unit="B", metric="on_time_rectification", target=0.9, period="rolling_30").json()["id"],
    )
    assert on_time["metric"] == "on_time_rectification" and on_time["status"] == "insufficient_data"


# -- the p-chart --------------------------------------------------------------------------------

MONDAY = date(2025, 1, 6)  # ISO week 2025-W02
# 18 weeks of 20 responses at A1: 18 satisfied a week, except a collapse in week 3, then eight weeks at 14.
WEEKLY_SATISFIED = [18, 18, 2, 18, 18, 18, 18, 18, 18, 18] + [14] * 8


def store_history(org: Org, weekly: list[int], per_week: int = 20, touchpoint: str = "tp-a1") -> None:
    """Write months of responses through the real ingest path, on a connection as the demo does."""
    handle = open_database(str(org.db))
    conn = handle.conn
    conn.row_factory = Row
    snapshot = load_snapshot(conn, default_plugins())
    dialect.of(conn).begin_write(conn)
    for week, satisfied in enumerate(weekly):
        for i in range(per_week):
            local = datetime.combine(MONDAY + timedelta(weeks=week, days=i % 5), time(9 + i % 8), TZ_A)
            submission = Submission(
                touchpoint=touchpoint,
                answers={"overall": 5 if i < satisfied else 2},
                id=str(uuid.uuid4()),
                submitted_at=local.isoformat(),
            )
            result, _ = store_job(prepare(submission, snapshot, plugins=default_plugins(), now=local.astimezone(UTC)))(
                conn
            )
            assert result.created and not result.flags
    conn.execute("COMMIT")
    handle.close()


def test_p_chart_limits_and_signals(org: Org, start_server) -> None:
    store_history(org, WEEKLY_SATISFIED)
    server = start_server(org.db, feedback_min_n="5", feedback_jobs="0")
    last_sunday = MONDAY + timedelta(weeks=len(WEEKLY_SATISFIED) - 1, days=6)
    reply = api(
        server,
        "GET",
        "/api/v1/control-chart",
        org.tokens["manager_a1"],
        params={"unit": "A1", "to": last_sunday.isoformat(), "weeks": "20"},
    )
    assert reply.status_code == 200, reply.text
    chart = reply.json()
    weeks = chart["weeks"]
    assert len(weeks) == 20 and weeks[-1]["to"] == last_sunday.isoformat()
    assert [w["n"] for w in weeks[:2]] == [0, 0] and weeks[0]["p"] is None and weeks[0]["lcl"] is None
    assert weeks[2]["week"] == "2025-W02" and weeks[2]["from"] == MONDAY.isoformat()
    centre = sum(WEEKLY_SATISFIED) / (20 * len(WEEKLY_SATISFIED))
    assert chart["centre"] == pytest.approx(centre)
    sigma = math.sqrt(centre * (1 - centre) / 20)
    for week, satisfied in zip(weeks[2:], WEEKLY_SATISFIED, strict=True):
        assert week["n"] == 20 and week["p"] == pytest.approx(satisfied / 20)
        assert week["lcl"] == pytest.approx(max(0, centre - 3 * sigma))
        assert week["ucl"] == pytest.approx(min(1, centre + 3 * sigma))
    assert chart["signals"] == [
        {"rule": "beyond_limits", "week": "2025-W04", "side": "below", "adverse": True},
        {"rule": "run_of_eight", "week": "2025-W19", "side": "below", "adverse": True},
    ]
    bad = api(
        server,
        "GET",
        "/api/v1/control-chart",
        org.tokens["admin"],
        params={"unit": "A", "to": last_sunday.isoformat(), "metric": "bad_review_rate"},
    ).json()
    assert {(s["rule"], s["week"], s["side"], s["adverse"]) for s in bad["signals"]} == {
        ("beyond_limits", "2025-W04", "above", True),
        ("run_of_eight", "2025-W19", "above", True),
    }
    assert api(server, "GET", "/api/v1/control-chart", org.tokens["viewer_b"], params={"unit": "A"}).status_code == 403

    # The objective's status carries the signals of the weeks that overlap its period.
    oid = create(
        server,
        org.tokens["admin"],
        unit="A1",
        metric="satisfaction",
        target=0.4,
        period="month",
        valid_from="2025-01-01",
    ).json()["id"]
    may = status(server, org.tokens["admin"], oid, last_sunday)  # 2025-05-11
    assert may["period_key"] == "2025-05" and may["status"] == "met"
    assert [s["rule"] for s in may["signals"]] == ["run_of_eight"]
    january = status(server, org.tokens["admin"], oid, date(2025, 1, 31))
    assert january["signals"] == [{"rule": "beyond_limits", "week": "2025-W04", "side": "below", "adverse": True}]


# -- the periodic evaluation --------------------------------------------------------------------

EVENT_LOG_PLUGIN = """
    import json
    import os

    from feedback import hookimpl


    @hookimpl
    def track_event(event):
        if event.type.startswith("objective."):
            with open(os.environ["EVENT_LOG"], "a", encoding="utf-8") as log:
                log.write(json.dumps({"type": event.type, "id": event.id, "data": event.data}) + "\\n")
"""


def tick(org: Org, now: datetime, env: dict[str, str]) -> None:
    # A secret of its own: a PostgreSQL database has no file beside it to keep one in.
    env = {"FEEDBACK_SECRET": "test-secret", **env}
    result = run_cli("tick", "--db", str(org.db), "--now", now.isoformat(), "--job", "objectives.evaluate", env=env)
    assert result.returncode == 0, result.stderr + result.stdout


def test_evaluation_job_stores_states_and_fires_a_breach_once(tmp_path: Path, org: Org) -> None:
    # A good quarter, then a bad May: 10 of 20 satisfied a week against a target of 90 %.
    store_history(org, [19] * 16 + [10] * 3)
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "event_log.py").write_text(textwrap.dedent(EVENT_LOG_PLUGIN), encoding="utf-8")
    log = tmp_path / "events.jsonl"
    env = {"FEEDBACK_PLUGINS_DIR": str(folder), "EVENT_LOG": str(log), "FEEDBACK_MIN_N": "5"}
    with closing(connect(org.db)) as conn, conn:
        from feedback.objectives import create_objective

        conn.execute(
            "INSERT INTO users (name, role, unit, email, created_at) VALUES"
            " ('qa', 'manager', 'A1', 'qa@example.org', '2025-01-01')"
        )
        good = create_objective(
            conn,
            "A1",
            {
                "metric": "satisfaction",
                "target": 0.9,
                "period": "month",
                "min_n": 5,
                "owner": "qa",
                "valid_from": "2025-01-01",
            },
            actor="test",
            today="2025-01-01",
        )
        calm = create_objective(
            conn,
            "A1",
            {"metric": "satisfaction", "target": 0.5, "period": "quarter", "valid_from": "2025-01-01"},
            actor="test",
            today="2025-01-01",
        )
        rolling = create_objective(
            conn,
            "A1",
            {"metric": "satisfaction", "target": 0.9, "period": "rolling_30", "min_n": 5, "valid_from": "2025-01-01"},
            actor="test",
            today="2025-01-01",
        )

    # Local noon in Ho Chi Minh City on 2025-05-20, 21 and 22.
    for day in (20, 20, 21, 22):
        tick(org, datetime(2025, 5, day, 5, tzinfo=UTC), env)
    states = {(s["objective"], s["period"]): s for s in rows(org, "SELECT * FROM objective_states")}
    assert states[(good, "2025-05")]["status"] == "breached"
    assert states[(good, "2025-05")]["n"] > 20 and states[(good, "2025-05")]["high"] < 0.9
    assert states[(calm, "2025-Q2")]["status"] == "met"
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    # Once per period: a month's breach once, a rolling window's breach once per episode, not once a day.
    assert sorted(e["id"] for e in events) == [
        f"objective.breached:{good}:2025-05",
        f"objective.breached:{rolling}:R30:2025-05-20",
    ]
    assert rows(org, "SELECT count(*) AS n FROM objective_states WHERE objective = ?", (rolling,)) == [{"n": 3}]
    data = next(e for e in events if e["data"]["objective"] == good)["data"]
    assert (data["objective"], data["status"], data["owner"], data["period_key"]) == (good, "breached", "qa", "2025-05")
    assert data["to"] == "2025-05-20" and data["ci95"][1] < 0.9
    # The breach opened one nonconformity for the objective and period, however often the job ran.
    opened = rows(org, "SELECT kind, unit, objective_id, period, owner FROM actions WHERE objective_id = ?", (good,))
    assert opened == [{"kind": "nonconformity", "unit": "A1", "objective_id": good, "period": "2025-05", "owner": "qa"}]
    # A new month starts insufficient, then the breach of June is a new breach.
    tick(org, datetime(2025, 6, 1, 5, tzinfo=UTC), env)
    assert rows(org, "SELECT status FROM objective_states WHERE objective = ? AND period = '2025-06'", (good,)) == [
        {"status": "insufficient_data"}
    ]
    assert len(log.read_text(encoding="utf-8").splitlines()) == 2
