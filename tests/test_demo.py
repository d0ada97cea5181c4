"""`build_demo`: the demo organisation and its history, built through the app's own code paths."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feedback.actions import BASELINE_DAYS, effect_rate, effect_spec
from feedback.catalog import load_snapshot
from feedback.cli import open_migrated
from feedback.demo import BAD_FROM, BAD_TO, build_demo
from feedback.models import is_suspect
from tests.conftest import default_plugins

TODAY = date(2024, 3, 15)
DAYS = 21
SEED = 7


def build(path: Path, seed: int = SEED, days: int = DAYS) -> tuple[dict, sqlite3.Connection]:
    db = open_migrated(str(path), default_plugins())
    try:
        summary = build_demo(db, days=days, seed=seed, today=TODAY, plugins=default_plugins())
    finally:
        db.close()
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return summary, conn


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, sqlite3.Connection]:
    summary, conn = build(tmp_path_factory.mktemp("demo") / "demo.db")
    yield summary, conn
    conn.close()


def test_summary_matches_the_database(demo) -> None:
    summary, conn = demo
    assert summary["days"] == DAYS
    assert summary["units"] == conn.execute("SELECT count(*) FROM units").fetchone()[0]
    assert summary["touchpoints"] == conn.execute("SELECT count(*) FROM touchpoints").fetchone()[0]
    assert summary["responses"] == conn.execute("SELECT count(*) FROM responses").fetchone()[0]
    assert summary["responses"] > 5000


def test_every_response_has_its_stored_event_and_nothing_waits_for_dispatch(demo) -> None:
    """The history is logged as the server logs it (one `response.stored` per response, its aggregate
    the response) and handed over already: a server started on the demo replays none of it."""
    _summary, conn = demo
    missing = conn.execute(
        "SELECT count(*) FROM responses r LEFT JOIN event_log e ON e.id = 'response.stored:' || r.id"
        " AND e.aggregate = 'response:' || r.id WHERE e.id IS NULL"
    ).fetchone()[0]
    assert missing == 0
    assert conn.execute("SELECT count(*) FROM event_log WHERE dispatched_at IS NULL").fetchone()[0] == 0


def test_six_roots_in_four_languages(demo) -> None:
    summary, conn = demo
    roots = {row["code"]: row["lang"] for row in conn.execute("SELECT code, lang FROM units WHERE parent IS NULL")}
    assert len(roots) == 6
    assert set(roots) == set(summary["roots"])
    assert set(roots.values()) == {"vi", "ru", "zh", "en"}
    for row in conn.execute("SELECT code, names FROM units"):
        assert set(json.loads(row["names"])) == {"vi", "ru", "zh", "en"}, row["code"]


def test_every_service_is_named_in_four_languages(demo) -> None:
    """So that no page falls back to another script: a service's name is its agency's-language one."""
    _summary, conn = demo
    services = conn.execute("SELECT s.code, s.name, s.names, u.lang FROM services s JOIN units u ON u.code = s.agency")
    found = 0
    for row in services:
        names = json.loads(row["names"])
        assert set(names) == {"vi", "ru", "zh", "en"} and all(names.values()), row["code"]
        assert row["name"] == names[row["lang"]], row["code"]
        found += 1
    assert found >= 30


def test_every_root_has_qr_and_kiosk_touchpoints(demo) -> None:
    _summary, conn = demo
    kinds = {}
    for row in conn.execute(
        "SELECT root.code, t.kind FROM units root JOIN units u ON u.path LIKE root.path || '%'"
        " JOIN touchpoints t ON t.unit = u.code WHERE root.parent IS NULL"
    ):
        kinds.setdefault(row[0], set()).add(row[1])
    assert len(kinds) == 6
    assert all(found == {"qr", "kiosk"} for found in kinds.values()), kinds


def test_rollups_count_every_scored_response_that_is_not_suspect(demo) -> None:
    _summary, conn = demo
    counted = sum(
        1
        for row in conn.execute("SELECT flags, level FROM responses")
        if row["level"] is not None and not is_suspect(json.loads(row["flags"]))
    )
    assert counted > 0
    assert conn.execute("SELECT sum(n) FROM rollups").fetchone()[0] == counted


def test_responses_use_their_touchpoints_survey_and_channel(demo) -> None:
    _summary, conn = demo
    mismatched = conn.execute(
        "SELECT count(*) FROM responses r JOIN touchpoints t ON t.token = r.touchpoint"
        " WHERE r.survey != t.survey OR r.channel != t.kind OR r.unit != t.unit"
    ).fetchone()[0]
    assert mismatched == 0


def test_exposure_covers_every_response(demo) -> None:
    _summary, conn = demo
    assert conn.execute("SELECT count(*) FROM exposure").fetchone()[0] > 0
    rows = conn.execute(
        "SELECT e.unit, e.service, e.day, e.served, e.offered, count(r.id) AS answered FROM exposure e"
        " LEFT JOIN responses r ON r.unit = e.unit AND r.service = e.service AND r.day = e.day"
        " GROUP BY e.unit, e.service, e.day"
    ).fetchall()
    assert all(row["answered"] <= row["offered"] <= row["served"] for row in rows)
    served = sum(row["served"] for row in rows)
    answered = sum(row["answered"] for row in rows)
    assert 0.1 <= answered / served <= 0.3
    assert answered == conn.execute("SELECT count(*) FROM responses").fetchone()[0]


def test_history_ends_yesterday_and_weekends_are_quiet(demo) -> None:
    _summary, conn = demo
    first, last = conn.execute("SELECT min(day), max(day) FROM responses").fetchone()
    assert first == (TODAY - timedelta(days=DAYS)).isoformat()
    assert last == (TODAY - timedelta(days=1)).isoformat()
    by_weekday = dict(conn.execute("SELECT strftime('%w', day), count(*) FROM responses GROUP BY 1").fetchall())
    assert by_weekday.get("0", 0) * 20 < by_weekday["1"]  # Sunday vs Monday


def test_satisfaction_is_high_except_at_one_counter_in_its_bad_fortnight(demo) -> None:
    summary, conn = demo
    token = summary["bad_fortnight_touchpoint"]
    start = (TODAY - timedelta(days=BAD_FROM)).isoformat()
    end = (TODAY - timedelta(days=BAD_TO)).isoformat()
    overall = conn.execute("SELECT avg(satisfied) FROM responses WHERE touchpoint != ?", (token,)).fetchone()[0]
    bad = conn.execute(
        "SELECT avg(satisfied), count(*) FROM responses WHERE touchpoint = ? AND day BETWEEN ? AND ?",
        (token, start, end),
    ).fetchone()
    after = conn.execute(
        "SELECT avg(satisfied) FROM responses WHERE touchpoint = ? AND day > ?", (token, end)
    ).fetchone()[0]
    assert 0.9 <= overall <= 0.97
    assert bad[1] > 50 and 0.45 <= bad[0] <= 0.75
    assert after > 0.85


def test_ben_tre_is_too_sparse_to_judge(demo) -> None:
    _summary, conn = demo
    n = conn.execute(
        "SELECT count(*) FROM responses r JOIN units u ON u.code = r.unit WHERE u.path LIKE '/BT/%'"
    ).fetchone()[0]
    assert 0 < n < 30


def test_case_refs_officers_and_comments_look_real(demo) -> None:
    _summary, conn = demo
    refs = {row[0]: row[1] for row in conn.execute("SELECT unit, max(case_ref) FROM responses GROUP BY unit")}
    assert refs["KG-MC"].startswith("000.00.17.H33-")
    assert refs["SAK-YS"].startswith("10707090/")
    assert refs["HP-KV1"].isdigit() and len(refs["HP-KV1"]) == 12
    assert conn.execute("SELECT count(*) FROM responses WHERE officer IS NOT NULL").fetchone()[0] > 0
    langs = {row[0] for row in conn.execute("SELECT lang FROM responses WHERE answers LIKE '%\"comment\"%'")}
    assert langs >= {"vi", "ru", "zh", "en"}


def test_users(demo) -> None:
    _summary, conn = demo
    users = {row["name"]: row for row in conn.execute("SELECT * FROM users")}
    assert users["admin"]["role"] == "admin" and users["admin"]["unit"] is None
    managers = [u for u in users.values() if u["role"] == "manager"]
    assert {u["unit"] for u in managers} >= set(demo[0]["roots"])
    assert all(u["email"].endswith("@example.org") for u in managers)
    # Every unit has an owner: a manager of that very unit, who gets its mail.
    for unit in conn.execute("SELECT code, owner, country, action_days FROM units"):
        owner = users[unit["owner"]]
        assert (owner["role"], owner["unit"]) == ("manager", unit["code"])
        assert unit["country"] in ("VN", "RU", "CN", "US") and unit["action_days"] > 0


def test_objectives_from_the_articles(demo) -> None:
    _summary, conn = demo
    found = {
        (row["unit"], row["metric"], row["target"])
        for row in conn.execute(
            "SELECT o.unit, v.metric, v.target FROM objectives o JOIN objective_versions v ON v.objective = o.id"
        )
    }
    assert ("GX", "satisfaction", 0.9947) in found
    assert ("KG", "on_time_rectification", 0.998) in found
    assert ("HP-KV1", "satisfaction", 0.90) in found
    owners = conn.execute("SELECT count(*) FROM objective_versions WHERE owner IS NULL").fetchone()[0]
    assert owners == 0


def test_recent_bad_reviews_wait_in_the_queue(demo) -> None:
    _summary, conn = demo
    actions = [dict(row) for row in conn.execute("SELECT * FROM actions WHERE source_type = 'response'")]
    assert actions, "no work orders, call-backs or complaints from the last fortnight"
    kinds = {a["kind"] for a in actions}
    assert kinds == {"work_order", "callback", "complaint"}
    first_day = (TODAY - timedelta(days=14)).isoformat()
    surveys = {
        row["id"]: (row["survey"], row["day"], row["level"])
        for row in conn.execute(
            "SELECT id, survey, day, level FROM responses WHERE id IN (SELECT response_id FROM actions)"
        )
    }
    for action in actions:
        survey, day, level = surveys[action["response_id"]]
        assert day >= first_day
        own_rule = {"haochaping": "work_order", "vash_kontrol": "callback"}
        if survey in own_rule:
            assert action["kind"] == own_rule[survey]
        else:  # every other survey: the complaint rule, at the default levels 1 and 2
            assert action["kind"] == "complaint" and level <= 2
        assert action["owner"] and action["due"] > day
    # Every recent bad review has its action: a 好差评 one its work order, any other survey's its complaint.
    for surveys_of, kind in (("= 'haochaping'", "work_order"), ("NOT IN ('haochaping', 'vash_kontrol')", "complaint")):
        bad = conn.execute(
            f"SELECT count(*) FROM responses WHERE survey {surveys_of} AND level <= 2 AND day >= ? AND flags = '[]'",
            (first_day,),
        ).fetchone()[0]
        assert bad == sum(1 for a in actions if a["kind"] == kind)


def test_the_same_seed_gives_the_same_history(tmp_path: Path) -> None:
    # Two short histories (four weekdays) of the same seed: what the seed decides is the same in each.
    summary, conn = build(tmp_path / "first.db", days=4)
    again, conn2 = build(tmp_path / "again.db", days=4)
    try:
        query = "SELECT id, touchpoint, answers, occurred_at, case_ref FROM responses ORDER BY id"
        assert again == summary and summary["responses"] > 500
        assert [tuple(r) for r in conn2.execute(query)] == [tuple(r) for r in conn.execute(query)]
    finally:
        conn.close()
        conn2.close()


def test_one_stop_dossiers_and_other_indicators(demo) -> None:
    _summary, conn = demo
    by_unit = {
        row["unit"]: row
        for row in conn.execute(
            "SELECT unit, count(*) AS n, sum(returned > due) AS late, sum(returned IS NULL) AS open"
            " FROM cases GROUP BY unit"
        )
    }
    assert set(by_unit) == {"KG-MC", "BT-MC"}
    kg = by_unit["KG-MC"]
    assert kg["n"] > 300 and 0 < kg["late"] < 0.03 * kg["n"] and kg["open"] < 0.05 * kg["n"]
    # Every rated one-stop case has its dossier.
    rated = conn.execute(
        "SELECT count(*) FROM responses r WHERE r.unit = 'KG-MC' AND r.case_ref IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.ref = r.case_ref)"
    ).fetchone()[0]
    assert rated == 0
    # Guangxi's figures for every month of the history, each its share of the denominator.
    months = {
        row[0]
        for row in conn.execute("SELECT period FROM indicator_values WHERE unit = 'GX' AND indicator = 'error_rate'")
    }
    first = TODAY - timedelta(days=DAYS)
    assert months == {f"{first:%Y-%m}", f"{TODAY:%Y-%m}"}
    for numerator, denominator in conn.execute(
        "SELECT numerator, denominator FROM indicator_values WHERE unit = 'GX' AND indicator = 'case_closure'"
    ):
        assert 0.9 < numerator / denominator < 0.99


# Rates read from the responses' rollups alone (the others also read actions or dossiers, which change later).
ROLLUP_METRICS = ("satisfaction", "not_dissatisfied", "bad_review_rate", "mean_score", "indicator_mean")


def test_each_action_baseline_is_the_rate_of_the_days_stored_before_it(demo) -> None:
    """An action's baseline is its unit's rate over the 90 days before the day it opened. The history
    is stored day by day in order, so those days' rollups are now what they were then: a baseline that
    differs was read from rollups still missing some of those days' responses."""
    _summary, conn = demo
    snapshot = load_snapshot(conn, default_plugins())
    checked = 0
    for action in conn.execute("SELECT * FROM actions ORDER BY id"):
        row = dict(action)
        spec = effect_spec(row, snapshot)
        if spec["metric"] not in ROLLUP_METRICS:
            continue
        tz = ZoneInfo(snapshot.units[row["unit"]].tz)
        opened = datetime.fromisoformat(row["opened_at"]).astimezone(tz).date()
        successes, n = effect_rate(
            conn,
            snapshot,
            row["unit"],
            spec["metric"],
            (opened - timedelta(days=BASELINE_DAYS)).isoformat(),
            (opened - timedelta(days=1)).isoformat(),
            service=row["service"],
            indicator=row["indicator"],
        )
        assert row["baseline"] == (successes / n if n else None), (row["id"], spec["metric"], opened)
        checked += 1
    assert checked >= 50
