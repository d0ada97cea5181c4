"""Objective badges never stand alone: the dashboard and the unit page show the period judged (its
name and days) and its n beside each badge, the last complete period beside a period still too young
to judge, and the nonconformity an objective has open. A real SQLite file and a real server."""

from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.dates import format_date, format_interval, format_skeleton

from tests.conftest import Server, auth_header, make_org, rows, run_cli
from tests.manage_helpers import add_user, sign_in

PASSWORD = "correct horse 1"


def local_today() -> date:
    """A1's day now (it keeps Vietnam's time), read when used: the suite may pass A1's midnight (17:00 UTC)
    between collecting this module and running it, and the server judges by the day it is asked on."""
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()


def previous_month(today: date) -> tuple[date, date]:
    """The first and last day of the month before `today`'s."""
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


LOCALES = {"en": "en", "ru": "ru", "vi": "vi", "zh": "zh_Hans_CN"}


def insert_responses(db, day: date, levels: list[int]) -> None:
    """Ratings of the A1 counter on a local day, as ingest stores them (the rollups are rebuilt after)."""
    conn = sqlite3.connect(db)
    with conn:
        for level in levels:
            moment = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(
                hours=9
            )
            stamp = moment.astimezone(UTC).isoformat()
            conn.execute(
                "INSERT INTO responses (id, receipt, touchpoint, unit, service, survey, survey_version, channel, lang,"
                " answers, server_time, occurred_at, day, flags, content_hash, level, satisfied, dissatisfied)"
                " VALUES (?, ?, 'tp-a1', 'A1', 'S1', 'csat', 1, 'api', 'vi', ?, ?, ?, ?, '[]', ?, ?, ?, ?)",
                (
                    str(uuid.uuid4()),
                    uuid.uuid4().hex[:8].upper(),
                    f'{{"overall": {level}}}',
                    stamp,
                    stamp,
                    day.isoformat(),
                    uuid.uuid4().hex,
                    level,
                    int(level >= 4),
                    int(level <= 2),
                ),
            )
    conn.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("badges") / "feedback.db")
    add_user(org.db, "boss", PASSWORD, "admin", None)
    today = local_today()
    previous_start, _ = previous_month(today)
    insert_responses(org.db, previous_start + timedelta(days=14), [5] * 25)  # last month: plenty
    insert_responses(org.db, today, [5, 1])  # this month: two so far
    result = run_cli("rebuild-rollups", "--db", str(org.db))
    assert result.returncode == 0, result.stderr
    srv = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    admin = auth_header(org.tokens["admin"])
    ids = {}
    for name, spec in (
        ("young", {"metric": "satisfaction", "target": 0.5, "period": "month", "min_n": 20, "title": "Monthly"}),
        ("strict", {"metric": "satisfaction", "target": 0.999, "period": "rolling_30", "min_n": 1, "title": "Strict"}),
    ):
        reply = httpx.post(
            f"{srv.url}/api/v1/objectives",
            json={"unit": "A1", "valid_from": previous_start.isoformat(), **spec},
            headers=admin,
        )
        assert reply.status_code == 201, reply.text
        ids[name] = reply.json()["id"]
    result = run_cli("tick", "--db", str(org.db), "--job", "objectives.evaluate")
    assert result.returncode == 0, result.stderr + result.stdout
    opened = rows(org, "SELECT id FROM actions WHERE objective_id = ?", (ids["strict"],))
    assert len(opened) == 1, "the breach opens a nonconformity"
    yield org, srv, ids, opened[0]["id"]
    srv.stop()


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def days(first: date, last: date, lang: str) -> str:
    if first == last:
        return " ".join(format_date(first, "medium", locale=LOCALES[lang]).split())
    return " ".join(format_interval(first, last, "yMMMd", locale=LOCALES[lang]).split())


def month(day: date, lang: str) -> str:
    return " ".join(format_skeleton("yMMMM", day, locale=LOCALES[lang]).split())


def judgement(html: str, objective: int) -> str:
    found = re.search(rf'<div class="obj-judgement" data-objective="{objective}">(.*?)</div>', html, re.S)
    assert found, f"no badge for objective {objective}"
    return text(found.group(1))


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_young_month_shows_its_days_and_n_and_the_last_complete_month(site, lang: str) -> None:
    _, srv, ids, _ = site
    session = httpx.Client(base_url=srv.url, timeout=30)
    sign_in(session, srv, "boss", PASSWORD)
    too_few = {"en": "Too few responses", "ru": "Слишком мало ответов"}[lang]
    met = {"en": "Met", "ru": "Выполнена"}[lang]
    last_complete = {"en": "Last complete period", "ru": "Последний полный период"}[lang]
    today = local_today()
    month_start = today.replace(day=1)
    previous_start, previous_end = previous_month(today)
    this_month = f"{month(month_start, lang)}: {days(month_start, today, lang)}"
    previous = f"{month(previous_start, lang)}: {days(previous_start, previous_end, lang)}"
    for path in ("/manage/", "/manage/units/A1"):
        html = session.get(f"{path}?lang={lang}").text
        badge = judgement(html, ids["young"])
        assert badge.startswith(too_few), badge
        assert this_month in badge or path != "/manage/", badge
        assert f"{last_complete}: {met}" in badge and previous in badge and "n = 25" in badge, badge
        if path == "/manage/":
            assert "n = 2 " in badge + " "  # this month's two responses, beside the badge
        else:
            row = re.search(rf'<tr data-objective="{ids["young"]}">(.*?)</tr>', html, re.S).group(1)
            assert this_month in text(row) and re.search(r'class="num obj-n"[^>]*>2<', row)


def test_a_breach_shows_its_window_and_the_nonconformity_it_opened(site) -> None:
    _, srv, ids, action = site
    session = httpx.Client(base_url=srv.url, timeout=30)
    sign_in(session, srv, "boss", PASSWORD)
    for path in ("/manage/?lang=en", "/manage/units/A1?lang=en"):
        html = session.get(path).text
        badge = judgement(html, ids["strict"])
        assert badge.startswith("Breached"), badge
        assert f"Open corrective action: #{action} Objective breached: Strict is" in badge, badge
        assert "R30:" not in html
        assert f'href="/manage/actions/{action}"' in html
    dashboard = session.get("/manage/?lang=en").text
    today = local_today()
    assert f"30 days: {days(today - timedelta(days=29), today, 'en')}" in judgement(dashboard, ids["strict"])
    # The target reads as a sign and a percentage with the precision it was set with.
    unit = session.get("/manage/units/A1?lang=en").text
    row = text(re.search(rf'<tr data-objective="{ids["strict"]}">(.*?)</tr>', unit, re.S).group(1))
    assert row.startswith("Strict ≥ 99.9%"), row
