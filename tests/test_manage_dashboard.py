"""The dashboard, the unit page and the response list of the manager web app, over a real server."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser

from tests.conftest import (
    ARTIFACTS,
    AXE,
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    axe_violations,
    connect,
    resize,
    rows,
    save_screenshot,
)
from tests.manage_helpers import add_user, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
MARKUP = "<script>alert(1)</script> <b>bold</b> chậm quá"
LANGS = ("vi", "ru", "zh", "en")
DESKTOP = {"width": 1280, "height": 900}
# When the response with the markup comment was given: three days ago, 03:15 UTC (10:15 in Hanoi).
GIVEN = (datetime.now(UTC) - timedelta(days=3)).replace(hour=3, minute=15, second=0, microsecond=0)


def post(server: Server, touchpoint: str, answers: dict, token: str | None = None, **extra) -> dict:
    reply = httpx.post(
        f"{server.url}/api/v1/responses",
        headers={"Authorization": f"Bearer {token}"} if token else {},
        json={"touchpoint": touchpoint, "answers": answers, "id": str(uuid.uuid4()), **extra},
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def setup(shared_org: Org):
    org = shared_org
    add_user(org.db, "boss", PASSWORD, "admin", None)
    add_user(org.db, "mai", PASSWORD, "manager", "A1")
    add_user(org.db, "vera", PASSWORD, "viewer", "A")
    srv = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    post(srv, "tp-a1", {"overall": 1, "comment": MARKUP}, officer="OF-7", submitted_at=GIVEN.isoformat())
    post(srv, "tp-a1", {"overall": 2, "comment": "Nhân viên rất nhiệt tình"}, officer="OF-7")
    post(srv, "tp-a1", {"overall": 5}, case_ref="CASE-1", token=org.tokens["admin"])  # a verified case
    post(srv, "tp-a1", {"overall": 4}, case_ref="CASE-1")  # the same case again: flagged, left out of rates
    post(srv, "tp-a1a", {"overall": 5, "efficiency": 4, "competence": 5, "attitude": 5, "comment": "工作人员很热情"})
    post(
        srv,
        "tp-b",
        {
            "service_time": 5,
            "waiting_time": 4,
            "staff_courtesy": 5,
            "premises": 4,
            "information": 5,
            "comment": "Всё отлично, спасибо",
        },
    )
    for i in range(55):  # more than one page at A
        post(srv, "tp-a", {"overall": 1 + i % 5, "comment": f"hall remark number {i}"})
    yield org, srv
    srv.stop()


def client(srv: Server, name: str) -> httpx.Client:
    session = httpx.Client(base_url=srv.url)
    sign_in(session, srv, name, PASSWORD)
    return session


def cell(html: str, row_attr: str, css_class: str) -> str:
    row = re.search(rf'<tr data-unit="{row_attr}">(.*?)</tr>', html, re.S)
    assert row, f"no row {row_attr}"
    found = re.search(rf'class="[^"]*\b{css_class}\b[^"]*"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert found, f"no {css_class} in row {row_attr}"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_dashboard_figures_match_the_satisfaction_and_objectives_api(setup) -> None:
    org, srv = setup
    admin = auth_header(org.tokens["admin"])
    ids = []
    for spec in (
        {"metric": "satisfaction", "target": 0.99, "period": "rolling_30", "min_n": 1, "title": "Hard"},
        {"metric": "satisfaction", "target": 0.1, "period": "month", "min_n": 500, "title": "Soft"},
    ):
        reply = httpx.post(f"{srv.url}/api/v1/objectives", json={"unit": "A1", **spec}, headers=admin)
        assert reply.status_code == 201, reply.text
        ids.append(reply.json()["id"])
    statuses = [httpx.get(f"{srv.url}/api/v1/objectives/{i}/status", headers=admin).json()["status"] for i in ids]
    assert statuses == ["breached", "insufficient_data"]
    page = client(srv, "boss").get("/manage/?lang=en")
    assert page.status_code == 200
    a1 = re.search(r'<tr data-unit="A1">(.*?)</tr>', page.text, re.S).group(1)
    # Each objective with its badge, the worst first.
    assert re.findall(r'class="status status-(\w+)"', a1) == ["breached", "insufficient_data"]
    assert " ".join(cell(page.text, "A1", "dash-status").split()).startswith("Hard (≥ 99%) Breached")
    assert cell(page.text, "B", "dash-status") == "None set"
    unit_page = client(srv, "boss").get("/manage/units/A1?lang=en").text
    objectives = re.search(r'id="objectives">(.*?)</table>', unit_page, re.S).group(1)
    assert "Hard" in objectives and "Breached" in objectives and "Too few responses" in objectives
    for unit in ("A", "A1", "A1a", "B"):
        api = httpx.get(
            f"{srv.url}/api/v1/satisfaction", params={"unit": unit}, headers=auth_header(org.tokens["admin"])
        ).json()["total"]
        assert cell(page.text, unit, "dash-n") == f"{api['n']:,}"
        rate = cell(page.text, unit, "dash-rate").split(" ")[0]
        assert rate == f"{api['rate'] * 100:.1f}%"
        low, high = api["ci95"]
        assert cell(page.text, unit, "dash-ci") == f"{low * 100:.1f}% – {high * 100:.1f}%"
    # A manager sees their own subtree only.
    mine = client(srv, "mai").get("/manage/").text
    assert 'data-unit="A1"' in mine and 'data-unit="A1a"' in mine
    assert 'data-unit="B"' not in mine and 'data-unit="A"' not in mine


def test_unit_page_shows_breakdowns_raw_versus_counted_and_the_local_hour(setup) -> None:
    org, srv = setup
    html = client(srv, "boss").get("/manage/units/A1?lang=en").text
    api = httpx.get(
        f"{srv.url}/api/v1/satisfaction", params={"unit": "A1"}, headers=auth_header(org.tokens["admin"])
    ).json()["total"]
    assert re.search(rf'id="fig-n">{api["n"]}<', html)
    assert re.search(rf'id="fig-raw">{api["n"] + 1}<', html)  # the repeated case is received, not counted
    assert re.search(r'id="fig-suspect">1<', html)
    by_service = re.search(r'id="by-service">(.*?)</table>', html, re.S).group(1)
    assert "Đăng ký" in by_service
    assert "Quầy 1" in re.search(r'id="by-touchpoint">(.*?)</table>', html, re.S).group(1)
    assert "Counter 1" in re.search(r'id="by-counter">(.*?)</table>', html, re.S).group(1)
    assert "3号窗口" in html  # the kiosk of A1a, below A1
    # The heatmap puts the 03:15 UTC response at 10:00 local time on its local weekday.
    local = GIVEN.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    heat = re.search(r'id="heatmap">(.*?)</table>', html, re.S).group(1)
    hours = re.findall(r'<th scope="col">(\d\d)</th>', heat)
    weekday = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[local.weekday()]
    row = re.search(rf'<th scope="row">{weekday}</th>(.*?)</tr>', heat, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert 'class="heat-n">1<' in cells[hours.index(f"{local.hour:02d}")]
    # Levels and indicators come from the rollups of the subtree.
    levels = re.search(r'id="levels">(.*?)</table>', html, re.S).group(1)
    assert re.search(r"1 · Very dissatisfied</th><td class=\"num\">1<", levels)
    assert 'id="chart-p"' in html and 'id="dashboard-charts"' in html


def test_a_manager_cannot_open_another_units_pages(setup) -> None:
    _, srv = setup
    mai = client(srv, "mai")
    for path in ("/manage/units/B", "/manage/units/B/responses", "/manage/units/A"):
        assert mai.get(path).status_code == 403, path
    assert mai.get("/manage/units/A1a").status_code == 200
    assert mai.get("/manage/units/NOPE").status_code == 404
    assert mai.get("/manage/units/A1?from=2026-13-01").status_code == 400
    assert mai.get("/manage/units/A1/responses?level=9").status_code == 400
    assert httpx.get(f"{srv.url}/manage/units/A1").status_code == 303  # not signed in


def test_a_comment_with_markup_is_shown_as_text(setup, browser: Browser) -> None:
    _, srv = setup
    html = client(srv, "boss").get("/manage/units/A1/responses").text
    assert "<script>alert(1)</script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;bold&lt;/b&gt;" in html
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, srv, "boss", PASSWORD)
    page.goto(f"{srv.url}/manage/units/A1/responses")
    comments = page.locator("td.dash-comment").all_text_contents()
    assert MARKUP in comments
    assert page.locator("td.dash-comment b").count() == 0
    context.close()


def test_search_finds_words_in_each_script(setup) -> None:
    _, srv = setup
    boss = client(srv, "boss")

    def found(unit: str, q: str) -> list[str]:
        html = boss.get(f"/manage/units/{unit}/responses", params={"q": q}).text
        return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r'<td class="dash-comment">(.*?)</td>', html, re.S)]

    assert found("A", "nhiệt") == ["Nhân viên rất nhiệt tình"]
    assert found("A", "CHẬM") == ["&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;bold&lt;/b&gt; chậm quá"]
    assert found("A", "热情") == ["工作人员很热情"]  # two characters: below the trigram length
    assert found("B", "отлично") == ["Всё отлично, спасибо"]
    assert found("A", "number 17") == ["hall remark number 17"]
    assert found("A", "nowhere") == []


def test_filters_and_pages(setup) -> None:
    org, srv = setup
    boss = client(srv, "boss")

    def receipts(path: str, **params) -> tuple[list[str], str | None]:
        html = (boss.get(path, params=params) if params else boss.get(path)).text
        next_link = re.search(r'href="([^"]+)" rel="next"', html)
        return (
            re.findall(r"<code>([A-Z0-9-]+)</code>", html),
            next_link.group(1).replace("&amp;", "&") if next_link else None,
        )

    level_one, _ = receipts("/manage/units/A/responses", level="1")
    expected = {r["receipt"] for r in rows(org, "SELECT receipt FROM responses WHERE level = 1 AND unit LIKE 'A%'")}
    assert set(level_one) == expected and len(level_one) == len(expected)
    flagged, _ = receipts("/manage/units/A1/responses", flagged="yes")
    assert flagged == [r["receipt"] for r in rows(org, "SELECT receipt FROM responses WHERE flags LIKE '%duplicate%'")]
    clean, _ = receipts("/manage/units/A1/responses", flagged="no")
    assert set(flagged).isdisjoint(clean) and len(clean) == 4  # A1's three clean ones and A1a's kiosk answer
    only_kiosk, _ = receipts("/manage/units/A1/responses", touchpoint="tp-a1a")
    assert len(only_kiosk) == 1
    by_service, _ = receipts("/manage/units/A/responses", service="S1")
    assert len(by_service) == 4
    first, next_url = receipts("/manage/units/A/responses")
    assert len(first) == 50 and next_url
    second, last = receipts(next_url)
    total = rows(org, "SELECT count(*) AS n FROM responses WHERE unit IN ('A', 'A1', 'A1a')")[0]["n"]
    assert len(second) == total - 50 and last is None
    assert set(first).isdisjoint(second)


@pytest.mark.postgres_covered_elsewhere
def test_officer_column_only_for_roles_that_may_see_it(setup) -> None:
    _, srv = setup
    assert ">Officer</th>" in client(srv, "mai").get("/manage/units/A1/responses?lang=en").text
    viewer = client(srv, "vera").get("/manage/units/A1/responses?lang=en").text
    assert ">Officer</th>" not in viewer and "OF-7" not in viewer


# The pages that draw charts (Chart.js canvases).
CHART_PAGES = ("dashboard", "unit")

# What a browser shows of every button in the page's main part: the app's style, not the default.
BUTTON_STYLES = """() => [...document.querySelectorAll('main button')].filter(b => b.offsetParent !== null)
    .map(b => { const s = getComputedStyle(b); return [b.textContent.trim(), s.cursor, s.borderTopLeftRadius]; })"""


@pytest.mark.parametrize("lang", LANGS)
def test_pages_pass_the_accessibility_audit_and_draw_their_charts(setup, browser: Browser, lang: str) -> None:
    """At 1280 px and on a 390 px phone: the axe audit, no sideways scrolling, styled buttons, charts."""
    assert AXE.exists(), "run `npm install` in tests/browser (the CI script does)"
    org, srv = setup
    if org.backend == "postgresql":
        pytest.skip("the markup does not depend on the database: checked once, on SQLite")
    ARTIFACTS.mkdir(exist_ok=True)
    # One context with the strict CSP in force: Chart.js must run under it, and axe comes in through
    # the DevTools protocol. Each page is loaded once and laid out again at each width. The charts
    # are drawn at once, as for a person who asks for less motion: the screenshots show them whole
    # (and the browser draws no animation frames; the next test covers the animated default).
    context = browser.new_context(viewport=DESKTOP, reduced_motion="reduce")
    page = context.new_page()
    sign_in(page, srv, "boss", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    pages = (
        ("dashboard", "/manage/"),
        ("unit", "/manage/units/A"),
        ("responses", "/manage/units/A/responses"),
        ("objectives", "/manage/admin/objectives/"),
    )
    for name, path in pages:
        page.set_viewport_size(DESKTOP)
        page.goto(f"{srv.url}{path}?lang={lang}")
        page.wait_for_load_state("load")
        if name in CHART_PAGES:
            assert page.evaluate("() => Chart.defaults.animation") is False
        if name == "unit":
            assert page.evaluate("() => !!Chart.getChart(document.getElementById('chart-p'))")
        if name == "dashboard":
            assert page.evaluate("() => !!Chart.getChart(document.querySelector('canvas[data-spark=\"A1\"]'))")
        for width in (1280, 390, 320):
            resize(page, width, 900 if width > 390 else 844)
            if width <= 390:
                if name in CHART_PAGES:
                    # Chart.js sizes a canvas at load and follows a resize only on a later frame, which a
                    # loaded machine may not draw in time: a phone loads the page at its own width.
                    page.reload()
                    page.wait_for_load_state("load")
                # Nothing scrolls sideways on a phone: tables wrap or become cards.
                # What sticks out of a parent that does not (named in the failure message).
                wide = page.evaluate(
                    "w => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1"
                    " && e.parentElement.getBoundingClientRect().right <= w + 1)"
                    ".map(e => e.tagName + '.' + e.className + ' in ' + e.parentElement.tagName)",
                    width,
                )
                assert page.evaluate("() => document.documentElement.scrollWidth") <= width, (name, lang, width, wide)
            suffix = "" if width > 390 else f"-{width}"
            save_screenshot(page, ARTIFACTS / f"manage-{name}-{lang}{suffix}.png")
            for text, cursor, radius in page.evaluate(BUTTON_STYLES):
                assert cursor == "pointer" and radius != "0px", (name, lang, text)
            if width != 320:  # the audit at 390 covers the phone layout; 320 checks the width only
                assert axe_violations(page) == [], (name, lang, width)
    assert errors == []  # Chart.js runs under the strict CSP
    context.close()


def test_charts_animate_unless_less_motion_is_asked_for(setup, browser: Browser) -> None:
    org, srv = setup
    if org.backend == "postgresql":
        pytest.skip("the markup does not depend on the database: checked once, on SQLite")
    for motion, animated in (("no-preference", True), ("reduce", False)):
        context = browser.new_context(viewport=DESKTOP, reduced_motion=motion)
        page = context.new_page()
        sign_in(page, srv, "boss", PASSWORD)
        page.goto(f"{srv.url}/manage/units/A")
        page.wait_for_load_state("load")
        assert page.evaluate("() => !!Chart.getChart(document.getElementById('chart-p'))")
        assert (page.evaluate("() => Chart.defaults.animation") is not False) == animated, motion
        context.close()


def test_the_control_chart_starts_at_the_first_week_with_responses(setup) -> None:
    _, srv = setup
    html = client(srv, "boss").get("/manage/units/A?lang=en").text
    charts = json.loads(
        re.search(r'<script type="application/json" id="dashboard-charts">(.*?)</script>', html, re.S).group(1)
    )
    weeks = charts["p_chart"]
    # The responses came in over the last few days: one or two weeks, not 26 with nothing in most.
    assert 1 <= len(weeks["labels"]) <= 2 and weeks["p"][0] is not None
    first = GIVEN.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    monday = first - timedelta(days=first.weekday())
    assert weeks["labels"][0] == f"{monday:%b} {monday.day}"  # a day people read, not "2026-W45"
    table = re.search(r"<summary>Figures of the chart</summary>(.*?)</table>", html, re.S).group(1)
    assert "-W" not in table


def test_comment_search_is_filled_by_the_trigger_and_the_backfill(org: Org) -> None:
    from feedback.db import open_database

    conn = connect(org.db)
    insert = (
        "INSERT INTO responses (id, receipt, touchpoint, unit, survey, survey_version, channel, lang, answers,"
        " server_time, occurred_at, day, flags, content_hash, level, satisfied, dissatisfied)"
        " VALUES (?, 'R', 'tp-a', 'A', 'csat', 1, 'api', 'en', ?, '2026-01-05T02:00:00+00:00',"
        " '2026-01-05T02:00:00+00:00', '2026-01-05', ?, 'h', 3, 0, 0)"
    )
    conn.execute(insert, ("1", '{"overall":3,"reasons":"slow","comment":"queue too long"}', "[]"))
    conn.execute(insert, ("2", '{"overall":3,"reasons":"slow"}', '["duplicate_case"]'))
    conn.commit()
    assert [tuple(row) for row in conn.execute("SELECT body FROM comment_search").fetchall()] == [("queue too long",)]
    if org.backend == "postgresql":
        # The backfill of a database whose responses came in without the trigger (`feedback migrate`).
        from feedback.store import dialect_postgres

        conn.execute("DELETE FROM comment_search")
        dialect_postgres.fill_comment_search(conn)
        conn.close()
        assert rows(org, "SELECT body FROM comment_search") == [{"body": "queue too long"}]
        return
    conn.execute("DROP TABLE comment_search")
    conn.execute("DELETE FROM heatmap_rollups")
    conn.commit()
    conn.close()
    from feedback.migrations import m008_comment_search

    db = open_database(str(org.db))
    m008_comment_search(db)  # the backfill of a database that had responses before
    db.close()
    assert rows(org, "SELECT body FROM comment_search") == [{"body": "queue too long"}]
    assert rows(org, "SELECT unit, day, hour, n, suspect FROM heatmap_rollups") == [
        {"unit": "A", "day": "2026-01-05", "hour": 2, "n": 1, "suspect": 1}
    ]


def response_row(html: str, receipt: str) -> list[str]:
    """The cells of the response list's row of one receipt, as text."""
    row = next(tr for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S) if f"<code>{receipt}</code>" in tr)
    return [re.sub(r"<[^>]+>", "", td).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def service_options(html: str) -> list[tuple[str, str]]:
    select = re.search(r'<select id="f-service" name="service">(.*?)</select>', html, re.S).group(1)
    return [
        (value, text.strip()) for value, text in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    ]


@pytest.mark.postgres_covered_elsewhere
def test_the_response_list_names_services_in_the_readers_language(org: Org) -> None:
    from feedback import organisation
    from feedback.i18n import gettext_for

    names = {"vi": "Cấp hộ chiếu", "ru": "Выдача паспортов", "zh": "护照办理", "en": "Passports"}
    with closing(connect(org.db)) as conn, conn:
        organisation.add_service(conn, "S-PASS", "Passports", agency="A1", names=names)
        organisation.add_touchpoint(conn, "A1", "Quầy 2", "csat", service="S-PASS", token="tp-pass")
    add_user(org.db, "hoa", PASSWORD, "manager", "A", lang="vi")
    add_user(org.db, "olga", PASSWORD, "viewer", "A", lang="ru")
    srv = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    try:
        passport = post(srv, "tp-pass", {"overall": 4})["receipt"]
        registration = post(srv, "tp-a1", {"overall": 5})["receipt"]  # S1 has one name only
        hall = post(srv, "tp-a", {"overall": 3})["receipt"]  # no service at all
        for user, lang in (("hoa", "vi"), ("olga", "ru")):
            html = client(srv, user).get("/manage/units/A/responses").text
            assert f'<html lang="{lang}"' in html
            options = service_options(html)
            # The code stays the value (URLs do not change); people read the name.
            assert ("S-PASS", names[lang]) in options and ("S1", "Đăng ký") in options
            assert all(text not in ("S-PASS", "S1", "S2") for _, text in options)
            header = [re.sub(r"<[^>]+>", "", th).strip() for th in re.findall(r"<th[^>]*>(.*?)</th>", html, re.S)]
            column = header.index(gettext_for(lang)("Service"))
            assert response_row(html, passport)[column] == names[lang]
            assert response_row(html, registration)[column] == "Đăng ký"
            assert response_row(html, hall)[column] == "–"
            chosen = client(srv, user).get("/manage/units/A/responses", params={"service": "S-PASS"}).text
            assert re.search(r'<option value="S-PASS" selected>', chosen)
            assert re.findall(r"<code>([A-Z0-9-]+)</code>", chosen) == [passport]
    finally:
        srv.stop()
