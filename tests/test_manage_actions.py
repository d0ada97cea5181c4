"""The corrective-action queue of the manager web app, in Debian's Chromium and over plain HTTP.

A real server over a real SQLite file; bad 好差评 ratings open the work orders the pages then walk.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import (
    ARTIFACTS,
    AXE,
    BOTH_BACKENDS,
    Org,
    ProcessServer,
    Server,
    auth_header,
    axe_violations,
    connect,
    resize,
    rows,
    save_screenshot,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
LANGS = ("vi", "ru", "zh", "en")
# Error texts the pages must show, per language (from manage_actions.po).
NOT_ALLOWED = {
    "vi": "Không thể thực hiện bước này từ trạng thái hiện tại của hành động.",
    "en": "This step is not allowed from the action's current status.",
}
NEED_DUE = {"ru": "Укажите срок, который ещё не прошёл.", "en": "Give a due date that is not in the past."}
# A bad 好差评 rating's work order: stored in the unit's language (vi), shown in the reader's.
STORED_TITLE = "Đánh giá không hài lòng (mức 1) tại 3号窗口"
TITLE_EN = "Bad review (level 1) at 3号窗口"


@pytest.fixture(scope="module")
def people(shared_org: Org) -> Org:
    add_user(shared_org.db, "mai", PASSWORD, "manager", "A1")
    add_user(shared_org.db, "olga", PASSWORD, "manager", "B")
    add_user(shared_org.db, "vera", PASSWORD, "viewer", "A")
    add_user(shared_org.db, "boss", PASSWORD, "admin", None)
    return shared_org


@pytest.fixture(scope="module")
def site(people: Org, server: Server) -> Server:
    return server


def client_for(site: Server, user: str, lang: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=site.url, timeout=20)
    if lang:
        client.cookies.set("fb_lang", lang)
    sign_in(client, site, user, PASSWORD)
    return client


def bad_rating(site: Server, org: Org) -> dict[str, Any]:
    """A 好差评 'very dissatisfied' at the A1a kiosk: the rules open a work order for it."""
    reply = httpx.post(
        f"{site.url}/api/v1/responses", json={"touchpoint": "tp-a1a", "answers": {"overall": 1}}, timeout=15
    )
    assert reply.status_code == 201, reply.text
    opened = rows(org, "SELECT * FROM actions WHERE response_id = ?", (reply.json()["id"],))
    assert len(opened) == 1 and opened[0]["kind"] == "work_order" and opened[0]["unit"] == "A1a"
    assert opened[0]["title"] == STORED_TITLE
    return {**opened[0], "receipt": reply.json()["receipt"]}


def step(client: httpx.Client, action_id: int, target: str, **fields: str) -> httpx.Response:
    token = csrf_token(client, f"/manage/actions/{action_id}")
    return client.post(f"/manage/actions/{action_id}/events", data={"_csrf_token": token, "type": target, **fields})


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def walk_to_closed(page: Page, people: Org, action: dict[str, Any]) -> None:
    """Walk an action's page through its forms: verifying → corrected → implemented → review → closed."""
    walk = [
        ("verifying", {"note": "Checked the kiosk log"}),
        ("corrected", {"correction": "Apologised and served the citizen again"}),
        ("implemented", {"result": "Queue numbers now called aloud"}),
        ("effectiveness_review", {"note": "Watch the next weeks"}),
        ("closed", {"result": "No more complaints"}),
    ]
    for target, fields in walk:
        form = page.locator(f"#step-{target}")
        for name, value in fields.items():
            form.locator(f'[name="{name}"]').fill(value)
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        assert f"done={target}" in page.url
        expect(page.locator(".act-done")).to_be_visible()
    expect(page.locator(".act-facts .act-status")).to_contain_text("Closed")
    assert page.locator("form.act-step").count() == 1  # only "reopen" is left
    record = page.locator(".act-record").inner_text()
    for _, fields in walk:
        for value in fields.values():
            assert value in record
    stored = rows(
        people,
        "SELECT type, actor, correction, result FROM action_events WHERE action = ? ORDER BY seq",
        (action["id"],),
    )
    assert [e["type"] for e in stored] == [
        "opened",
        "verifying",
        "corrected",
        "implemented",
        "effectiveness_review",
        "closed",
    ]
    assert {e["actor"] for e in stored[1:]} == {"mai"}
    assert stored[2]["correction"] == "Apologised and served the citizen again"
    assert rows(people, "SELECT status FROM actions WHERE id = ?", (action["id"],))[0]["status"] == "closed"


@pytest.mark.browser_on_postgresql
@pytest.mark.postgres_covered_elsewhere
def test_a_bad_rating_is_followed_from_the_queue_and_walked_to_closed(page: Page, site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    sign_in(page, site, "mai", PASSWORD)
    page.goto(f"{site.url}/manage/actions?lang=en")
    row = page.locator(f"#action-{action['id']}")
    expect(row).to_contain_text(TITLE_EN)
    expect(row).to_contain_text("New")
    row.get_by_role("link").first.click()
    expect(page.locator("h1")).to_contain_text(f"#{action['id']}")
    expect(page.locator(".act-facts")).to_contain_text(action["receipt"])
    assert page.locator('.act-facts a[href="/manage/units/A1a"]').count() >= 1
    walk_to_closed(page, people, action)


def test_markup_in_a_note_is_shown_escaped(page: Page, site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    client = client_for(site, "mai")
    markup = '<b id="injected">bold</b><script>window.pwned = 1</script>'
    assert step(client, action["id"], "verifying", note=markup).status_code == 303
    html = client.get(f"/manage/actions/{action['id']}").text
    assert "&lt;b id=&#34;injected&#34;&gt;" in html or "&lt;b id=&quot;injected&quot;&gt;" in html
    assert '<b id="injected">' not in html
    sign_in(page, site, "mai", PASSWORD)
    page.goto(f"{site.url}/manage/actions/{action['id']}")
    assert page.locator("#injected").count() == 0
    assert markup in page.locator(".act-record").inner_text()
    assert page.evaluate("() => window.pwned") is None


@pytest.mark.postgres_covered_elsewhere
def test_a_refused_step_is_shown_on_the_page_in_its_language(site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    vi = client_for(site, "mai", lang="vi")
    reply = step(vi, action["id"], "closed", result="too early")
    assert reply.status_code == 409
    assert NOT_ALLOWED["vi"] in reply.text and 'role="alert"' in reply.text
    assert step(vi, action["id"], "verifying").status_code == 303
    ru = client_for(site, "mai", lang="ru")
    reply = step(ru, action["id"], "action_planned", root_cause="кадры", action_taken="обучение")
    assert reply.status_code == 400 and NEED_DUE["ru"] in reply.text
    reply = step(ru, action["id"], "action_planned", due="2001-01-01", root_cause="кадры", action_taken="обучение")
    assert reply.status_code == 400 and NEED_DUE["ru"] in reply.text
    assert "обучение" in reply.text  # what was typed is kept in the form
    assert step(ru, action["id"], "no_such_state").status_code == 400
    assert rows(people, "SELECT status FROM actions WHERE id = ?", (action["id"],))[0]["status"] == "verifying"


@pytest.mark.postgres_covered_elsewhere
def test_an_appeal_cannot_be_decided_by_the_person_who_appealed(site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    en = client_for(site, "mai", lang="en")
    assert step(en, action["id"], "verifying").status_code == 303
    assert step(en, action["id"], "appealed", note="the rating was a mistake").status_code == 303
    reply = step(en, action["id"], "appeal_upheld", note="agreed")
    assert reply.status_code == 403
    assert "someone other than the rated officer" in reply.text
    boss = client_for(site, "boss", lang="en")
    assert step(boss, action["id"], "appeal_rejected", note="the rating stands").status_code == 303


@pytest.mark.postgres_covered_elsewhere
def test_a_manager_of_another_unit_is_refused(site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    olga = client_for(site, "olga", lang="en")
    assert olga.get(f"/manage/actions/{action['id']}").status_code == 403
    assert step_without_page(olga, action["id"]).status_code == 403
    assert f'id="action-{action["id"]}"' not in olga.get("/manage/actions").text
    assert olga.get("/manage/actions?unit=A1").status_code == 403
    assert olga.get("/manage/actions/board?unit=A").status_code == 403
    assert rows(people, "SELECT status FROM actions WHERE id = ?", (action["id"],))[0]["status"] == "new"


def step_without_page(client: httpx.Client, action_id: int) -> httpx.Response:
    token = csrf_token(client, "/manage/actions")
    return client.post(f"/manage/actions/{action_id}/events", data={"_csrf_token": token, "type": "verifying"})


def test_viewers_read_without_forms_and_cannot_post(site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    with closing(connect(people.db)) as conn, conn:  # the respondent left a number for a call-back
        conn.execute(
            "INSERT INTO contacts (response_id, contact, created_at) VALUES (?, ?, ?)",
            (action["response_id"], "+84 90 555 0101", action["opened_at"]),
        )
    assert "+84 90 555 0101" in client_for(site, "mai", lang="en").get(f"/manage/actions/{action['id']}").text
    vera = client_for(site, "vera", lang="en")
    page_html = vera.get(f"/manage/actions/{action['id']}").text
    assert TITLE_EN in page_html and "+84 90 555 0101" not in page_html
    assert "act-step" not in page_html and "your role cannot change it" in page_html
    assert step_without_page(vera, action["id"]).status_code == 403
    assert vera.get("/manage/actions/new").status_code == 403


def test_a_post_without_its_csrf_token_is_refused(site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    mai = client_for(site, "mai")
    reply = mai.post(f"/manage/actions/{action['id']}/events", data={"type": "verifying"})
    assert reply.status_code == 403
    assert rows(people, "SELECT status FROM actions WHERE id = ?", (action["id"],))[0]["status"] == "new"


def test_an_action_is_opened_by_hand(site: Server, people: Org) -> None:
    mai = client_for(site, "mai", lang="en")
    token = csrf_token(mai, "/manage/actions/new")
    reply = mai.post("/manage/actions/new", data={"_csrf_token": token, "unit": "B", "title": "not mine"})
    assert reply.status_code == 403
    reply = mai.post("/manage/actions/new", data={"_csrf_token": token, "unit": "A1", "title": ""})
    assert reply.status_code == 400 and "Give the action a title." in reply.text
    reply = mai.post(
        "/manage/actions/new",
        data={
            "_csrf_token": token,
            "unit": "A1",
            "title": "Audit finding 7",
            "due": "2099-12-31",
            "note": "found in the internal audit",
        },
    )
    assert reply.status_code == 303
    action_id = int(reply.headers["location"].split("/")[-1].split("?")[0])
    found = rows(people, "SELECT kind, unit, due, created_by FROM actions WHERE id = ?", (action_id,))[0]
    assert found == {"kind": "manual", "unit": "A1", "due": "2099-12-31", "created_by": "mai"}
    assert "Audit finding 7" in mai.get(f"/manage/actions/{action_id}").text


def test_the_queue_filters_and_puts_overdue_first(site: Server, people: Org) -> None:
    first = bad_rating(site, people)
    second = bad_rating(site, people)
    # Make the second one overdue, as the deadline job would see it.
    with closing(connect(people.db)) as conn, conn:
        conn.execute("UPDATE actions SET due = '2020-01-02' WHERE id = ?", (second["id"],))
    mai = client_for(site, "mai", lang="en")
    html = mai.get("/manage/actions?status=open").text
    assert html.index(f'id="action-{second["id"]}"') < html.index(f'id="action-{first["id"]}"')
    overdue_row = html[html.index(f'id="action-{second["id"]}"') :].split("</tr>")[0]
    assert "Overdue" in overdue_row  # a word, not only a colour
    only = mai.get("/manage/actions?overdue=1").text
    assert f'id="action-{second["id"]}"' in only and f'id="action-{first["id"]}"' not in only
    assert f'id="action-{first["id"]}"' not in mai.get("/manage/actions?status=closed").text
    assert f'id="action-{first["id"]}"' in mai.get("/manage/actions?kind=work_order&unit=A1a").text
    board = mai.get("/manage/actions/board").text
    assert 'id="col-new"' in board and f'id="action-{first["id"]}"' in board


class Stream:
    """An SSE client on its own thread: parsed events land in a queue."""

    def __init__(self, client: httpx.Client) -> None:
        self.events: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.client = client
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the stream did not open"

    def _run(self) -> None:
        try:
            with self.client.stream(
                "GET",
                "/manage/actions/stream",
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(60, read=60),
            ) as reply:
                assert reply.status_code == 200
                event: dict[str, str] = {}
                for line in reply.iter_lines():
                    if line.startswith(":"):
                        self.ready.set()
                    elif line.startswith("event:"):
                        event["event"] = line[6:].strip()
                    elif line.startswith("data:"):
                        event["data"] = line[5:].strip()
                    elif line == "":
                        if "event" in event:  # comments and keep-alives carry no event name
                            self.events.put(event)
                        event = {}
        except (httpx.HTTPError, RuntimeError):
            pass

    def next(self, timeout: float = 15) -> dict[str, Any]:
        event = self.events.get(timeout=timeout)
        return {"event": event.get("event"), **json.loads(event.get("data", "{}"))}

    def next_about(self, action_id: int, timeout: float = 15) -> dict[str, Any]:
        """The next event of one action (other actions may change meanwhile, e.g. by the deadline job)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            if event.get("id") == action_id:
                return event

    def close(self) -> None:
        self.client.close()


@pytest.mark.postgres_covered_elsewhere
def test_stream_sends_the_subtree_events_only(site: Server, people: Org) -> None:
    mai = Stream(client_for(site, "mai"))
    olga = Stream(client_for(site, "olga"))
    try:
        action = bad_rating(site, people)
        seen = mai.next_about(action["id"])
        assert seen["event"] == "action.opened" and seen["id"] == action["id"] and seen["unit"] == "A1a"
        assert "contact" not in seen
        step(client_for(site, "mai"), action["id"], "verifying")
        changed = mai.next_about(action["id"])
        assert changed["event"] == "action.changed" and changed["status"] == "verifying"
        # The manager of B hears nothing of A1a: everything she got by the time B's own arrives is B's.
        reply = httpx.post(
            f"{site.url}/api/v1/actions",
            headers=auth_header(people.tokens["admin"]),
            json={"unit": "B", "title": "Окно 2: очередь"},
            timeout=15,
        )
        assert reply.status_code == 201
        heard = [olga.next()]
        while heard[-1]["id"] != reply.json()["id"]:
            heard.append(olga.next())
        assert {event["unit"] for event in heard} == {"B"} and heard[-1]["event"] == "action.opened"
    finally:
        mai.close()
        olga.close()


@pytest.mark.postgres_covered_elsewhere
def test_a_change_made_in_another_worker_reaches_the_stream(org: Org) -> None:
    add_user(org.db, "mai", PASSWORD, "manager", "A1")
    srv = ProcessServer(org.db, workers=2).start()
    try:
        listener = Stream(client_for(srv, "mai"))
        opened = {bad_rating(srv, org)["id"] for _ in range(4)}
        heard = set()
        deadline = time.monotonic() + 30
        while heard != opened and time.monotonic() < deadline:
            event = listener.next(timeout=30)
            if event["event"] == "action.opened":
                heard.add(event["id"])
        assert heard == opened
        listener.close()
    finally:
        srv.stop()


@pytest.mark.browser_on_postgresql
@pytest.mark.postgres_covered_elsewhere
def test_the_list_updates_live_without_reload(page: Page, site: Server, people: Org) -> None:
    sign_in(page, site, "mai", PASSWORD)
    page.goto(f"{site.url}/manage/actions?lang=en")
    page.wait_for_selector("html[data-live=on]")
    page.evaluate("() => { window.sameDocument = true; }")
    action = bad_rating(site, people)
    expect(page.locator(f"#action-{action['id']}")).to_be_visible(timeout=15000)
    expect(page.locator("#actions-live")).to_contain_text(TITLE_EN)
    assert page.evaluate("() => window.sameDocument") is True  # no reload happened
    page.goto(f"{site.url}/manage/actions/board")
    page.wait_for_selector("html[data-live=on]")
    step(client_for(site, "mai"), action["id"], "verifying")
    expect(page.locator(f"#col-verifying ~ ul #action-{action['id']}")).to_be_visible(timeout=15000)


# Every visible button of the page's main part: (text, cursor, corner radius) as the browser draws it.
BUTTON_STYLES = """() => [...document.querySelectorAll('main button')].filter(b => b.offsetParent !== null)
    .map(b => { const s = getComputedStyle(b); return [b.textContent.trim(), s.cursor, s.borderTopLeftRadius]; })"""


@pytest.mark.parametrize("lang", LANGS)
def test_pages_pass_axe_in_each_language_with_screenshots(
    browser: Browser, site: Server, people: Org, lang: str
) -> None:
    if people.backend == "postgresql":
        pytest.skip("the markup does not depend on the database: checked once, on SQLite")
    assert AXE.exists(), "run `npm install` in tests/browser"
    action = bad_rating(site, people)
    client = client_for(site, "mai")
    step(client, action["id"], "verifying", note="Đã kiểm tra / проверено / 已核实")
    # Each page is loaded once, under its strict CSP, and laid out again at each width.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, site, "mai", PASSWORD)
        ARTIFACTS.mkdir(exist_ok=True)
        for name, path in (
            ("list", "/manage/actions"),
            ("board", "/manage/actions/board"),
            ("action", f"/manage/actions/{action['id']}"),
            ("new", "/manage/actions/new"),
        ):
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{site.url}{path}?lang={lang}")
            assert page.locator("html").get_attribute("lang").startswith(lang)
            for width in (1280, 390, 320):
                resize(page, width, 900 if width > 390 else 844)
                suffix = "" if width > 390 else f"-{width}"
                if width <= 390:  # a phone never scrolls sideways: the list becomes cards
                    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, (name, lang, width)
                styles = page.evaluate(BUTTON_STYLES)
                assert styles and all(c == "pointer" and r != "0px" for _, c, r in styles), (name, lang, styles)
                if width != 320:  # the audit at 390 covers the phone layout; 320 checks the width only
                    assert axe_violations(page) == [], (name, lang, width)
                save_screenshot(page, ARTIFACTS / f"manage-actions-{name}-{lang}{suffix}.png")
    finally:
        context.close()


def test_a_bad_rating_is_followed_from_the_dashboard_to_its_action(page: Page, site: Server, people: Org) -> None:
    action = bad_rating(site, people)
    sign_in(page, site, "mai", PASSWORD)
    page.goto(f"{site.url}/manage/?lang=en")
    page.locator('a[href^="/manage/units/A1a"]').first.click()
    expect(page.locator("h1")).to_be_visible()
    page.locator('a[href^="/manage/units/A1a/responses"]').first.click()
    row = page.locator("tr", has_text=action["receipt"])
    expect(row).to_have_count(1)
    row.locator(f'a[href="/manage/actions/{action["id"]}"]').click()
    expect(page.locator("h1")).to_contain_text(f"#{action['id']}")
    walk_to_closed(page, people, action)


def test_an_objective_action_names_its_metric_in_the_readers_language(site: Server, people: Org) -> None:
    import re

    from tests.conftest import run_cli

    reply = httpx.post(
        f"{site.url}/api/v1/objectives",
        headers=auth_header(people.tokens["admin"]),
        json={
            "unit": "A1a",
            "metric": "not_dissatisfied",
            "target": 0.99,
            "period": "rolling_30",
            "min_n": 1,
            "title": "Few complaints at the kiosk",
        },
    )
    assert reply.status_code == 201, reply.text
    objective = reply.json()["id"]
    for _ in range(3):
        bad_rating(site, people)
    # The server's secret (a PostgreSQL database has no file beside it to keep one in).
    result = run_cli(
        "tick", "--db", str(people.db), "--job", "objectives.evaluate", env={"FEEDBACK_SECRET": "test-secret"}
    )
    assert result.returncode == 0, result.stderr + result.stdout
    opened = rows(people, "SELECT id FROM actions WHERE objective_id = ?", (objective,))
    assert len(opened) == 1, "the breach opens a nonconformity"
    add_user(people.db, "linh", PASSWORD, "manager", "A1", lang="vi")
    add_user(people.db, "pyotr", PASSWORD, "viewer", "A", lang="ru")
    # The names of manage_reports.po: one message id, one translation, on every page.
    for user, lang, name in (("linh", "vi", "Tỷ lệ không phàn nàn"), ("pyotr", "ru", "Доля ответов без недовольства")):
        html = client_for(site, user).get(f"/manage/actions/{opened[0]['id']}").text
        assert re.search(rf'<html lang="{lang}"', html)
        metric = re.search(r'<span class="act-metric">(.*?)</span>', html, re.S)
        assert metric and metric.group(1).strip() == name
        assert "not_dissatisfied" not in html
        assert "Few complaints at the kiosk" in html
        assert re.search(r"≥\s*99\s?%", html)  # a share target as a percentage, not 0.99
        source = re.search(r'<span class="act-metric">.*?</dd>', html, re.S).group(0)
        assert not re.search(r"\d{4}-\d\d\b", source)  # the period by its name, not "2026-12"


def service_options(html: str) -> dict[str, str]:
    """value -> visible text of the service dropdown of the new-action form."""
    import re

    box = re.search(r'<select id="new-service" name="service">(.*?)</select>', html, re.S)
    assert box, html[:2000]
    return {
        value: text.strip()
        for value, text in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', box.group(1), re.S)
    }


@pytest.mark.postgres_covered_elsewhere
def test_the_new_action_form_names_services_in_the_readers_language(site: Server, people: Org) -> None:
    names = {"vi": "Thông quan hàng hóa", "ru": "Таможенное оформление", "en": "Customs clearance"}
    boss = client_for(site, "boss")
    token = csrf_token(boss, "/manage/admin/services/")
    reply = boss.post(
        "/manage/admin/services/",
        data={
            "_csrf_token": token,
            "code": "CUS-1",
            "agency": "A",
            "kind": "customs",
            **{f"name_{lang}": name for lang, name in names.items()},
        },
    )
    assert reply.status_code == 303, reply.text[:500]
    add_user(people.db, "sasha", PASSWORD, "manager", "A1", lang="ru")
    add_user(people.db, "thu", PASSWORD, "manager", "A1", lang="vi")
    for user, lang in (("sasha", "ru"), ("thu", "vi")):
        client = client_for(site, user)
        page = client.get("/manage/actions/new")
        assert page.status_code == 200 and f'<html lang="{lang}"' in page.text
        options = service_options(page.text)
        assert options["CUS-1"] == names[lang]  # the code stays the value, the name is what one reads
        assert options["S1"] == "Đăng ký"  # a service with one name shows that name in every language
        assert ">CUS-1<" not in page.text
        # A refused form comes back with the same names and the chosen service still chosen.
        token = csrf_token(client, "/manage/actions/new")
        refused = client.post(
            "/manage/actions/new", data={"_csrf_token": token, "unit": "A1", "title": "", "service": "CUS-1"}
        )
        assert refused.status_code == 400
        assert service_options(refused.text)["CUS-1"] == names[lang]
        assert '<option value="CUS-1" selected>' in refused.text
    # The service chosen by name is stored by its code.
    client = client_for(site, "sasha")
    token = csrf_token(client, "/manage/actions/new")
    reply = client.post(
        "/manage/actions/new",
        data={"_csrf_token": token, "unit": "A1", "title": "Очередь на таможне", "service": "CUS-1"},
    )
    assert reply.status_code == 303, reply.text[:500]
    action_id = int(reply.headers["location"].split("/")[-1].split("?")[0])
    assert rows(people, "SELECT service FROM actions WHERE id = ?", (action_id,)) == [{"service": "CUS-1"}]
