"""The kiosk tablet app (`/kiosk/`) in Debian's Chromium against a real server and a real SQLite file.

The network is taken away by stopping the server (Chromium's offline switch does not cover
service-worker traffic); it comes back on the same port, so the kiosk's origin never changes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from feedback import kiosks as kiosk_store
from feedback import surveys
from feedback.kiosk_strings import KIOSK_MESSAGES
from feedback.web import kiosk_api
from feedback_plugins.templates import HAOCHAPING
from tests.conftest import (
    ARTIFACTS,
    AXE,
    Org,
    ProcessServer,
    Server,
    auth_header,
    axe_violations,
    enrollment_code,
    poll_until,
    rows,
    save_screenshot,
)

PORTRAIT = {"width": 800, "height": 1280}
LANDSCAPE = {"width": 1280, "height": 800}
FAST = {"FEEDBACK_KIOSK_THANKS_SECONDS": "0.5", "FEEDBACK_KIOSK_HEARTBEAT_SECONDS": "2"}


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts (and restarts); all are stopped after it."""
    started: list[Server] = []
    yield started
    for srv in started:
        srv.stop()


def serve(
    servers: list[Server],
    org: Org,
    env: dict[str, str],
    same_as: Server | None = None,
    srv: Server | ProcessServer | None = None,
) -> Server:
    """Start a server; with `same_as`, on that server's port (the kiosk's origin must not change)."""
    srv = srv or Server(org.db, env=env)
    if same_as is not None:
        srv.port, srv.url = same_as.port, same_as.url
    servers.append(srv)
    deadline = time.monotonic() + 15
    while True:  # the old socket may linger for a moment after a kill
        try:
            return srv.start()
        except RuntimeError:
            if same_as is None or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def kiosk_rows(org: Org) -> list[dict]:
    return rows(org, "SELECT * FROM responses WHERE channel = 'kiosk' ORDER BY client_time")


def wait_until(check, timeout: float = 15.0, page: Page | None = None):
    """Poll `check`; with a page, wait through Playwright so that its route handlers keep running."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    save_screenshot(page, ARTIFACTS / f"kiosk-{name}.png", full_page=False)


def state(page: Page, name: str, timeout: float = 10_000) -> None:
    page.wait_for_selector(f'body[data-kiosk-state="{name}"]', timeout=timeout)


def open_kiosk(browser: Browser, srv: Server, viewport: dict = PORTRAIT, **options) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    page.goto(f"{srv.url}/kiosk/")
    return context, page


def enroll(page: Page, org: Org, touchpoint: str = "tp-a1a") -> None:
    code = enrollment_code(org, touchpoint)
    assert re.fullmatch(r"\d{6}", code)
    state(page, "enroll")
    page.fill("input[name=code]", code)
    page.press("input[name=code]", "Enter")
    state(page, "rating")
    page.wait_for_selector('[data-score="5"]')


def worker_ready(page: Page) -> None:
    """The service worker controls the page and holds the shell: from here on the app starts offline."""
    assert page.evaluate("""async () => {
        await navigator.serviceWorker.ready;
        for (let i = 0; i < 100 && !navigator.serviceWorker.controller; i++) await new Promise(r => setTimeout(r, 50));
        return !!navigator.serviceWorker.controller;
    }""")


def tap(page: Page, score: int, reasons: tuple[str, ...] = (), finish: bool = True) -> None:
    """One person: a face, optionally some reasons, Done, the thank-you, back to rest."""
    state(page, "rating")
    page.click(f'[data-score="{score}"]')
    state(page, "reasons")
    for key in reasons:
        page.click(f'#reasons [data-option="{key}"]')
    if finish:
        page.click('[data-action="done"]')
        state(page, "thanks")
        state(page, "rating")


def queue(page: Page) -> str:
    return page.locator("[data-queue]").inner_text().strip()


def kiosks(srv: Server, org: Org) -> list[dict]:
    reply = httpx.get(f"{srv.url}/api/v1/kiosks", headers=auth_header(org.tokens["admin"]))
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_offline_taps_survive_a_reload_and_a_server_killed_mid_sync(browser: Browser, servers, org: Org) -> None:
    env = {**FAST, "FEEDBACK_KIOSK_MIN_INTERVAL": "0"}
    first = serve(servers, org, env)
    context, page = open_kiosk(browser, first)
    enroll(page, org)
    worker_ready(page)
    shot(page, "rating-portrait")

    # Ten people online; a bad rating with its reasons among them.
    for n in range(10):
        tap(page, 1 + n % 5, reasons=("poor_attitude", "repeated_visits") if n == 0 else ())
    assert wait_until(lambda: len(kiosk_rows(org)) == 10)
    expect(page.locator("[data-queue]")).to_have_text("0")
    expect(page.locator("#queue")).to_be_hidden()  # nothing waits: no number in the corner
    bad = [r for r in kiosk_rows(org) if json.loads(r["answers"])["overall"] == 1][0]
    assert json.loads(bad["answers"])["bad_reasons"] == ["poor_attitude", "repeated_visits"]

    # The network goes away: twenty more, each counted at once in the corner.
    first.stop()
    for n in range(20):
        tap(page, 5 - n % 5)
        expect(page.locator("[data-queue]")).to_have_text(str(n + 1))
    # Staff read what the number is: a label in the kiosk's language beside it.
    expect(page.locator("#queue")).to_be_visible()
    label = page.locator("#queue [data-t=queue_label]").inner_text().strip()
    assert label and label != "queue_label"
    expect(page.locator("#queue")).to_have_text(f"{label}: 20")
    shot(page, "offline-queue")
    assert len(kiosk_rows(org)) == 10

    # A reload with no server: the service worker serves the shell; the queue is in IndexedDB.
    page.reload()
    state(page, "rating")
    page.wait_for_selector('[data-score="5"]')
    expect(page.locator("[data-queue]")).to_have_text("20")

    # The server comes back but dies right after storing the batch, before the kiosk hears back.
    acknowledged: list[int] = []
    second = ProcessServer(org.db, env=env)  # a process, to be killed

    def sync_then_die(route: Route) -> None:
        if acknowledged:
            route.continue_()
            return
        reply = route.fetch()
        acknowledged.append(reply.status)
        second.kill()
        route.abort("connectionreset")

    page.route("**/api/v1/kiosk/sync", sync_then_die)
    serve(servers, org, env, same_as=first, srv=second)
    assert wait_until(lambda: acknowledged, timeout=30, page=page), "no sync after the server came back"
    assert acknowledged == [200]
    assert len(kiosk_rows(org)) == 30
    expect(page.locator("[data-queue]")).to_have_text("20")  # never acknowledged: still queued

    # Back for good: the kiosk resends, the server recognises every item, the queue drains.
    serve(servers, org, env, same_as=first)
    expect(page.locator("[data-queue]")).to_have_text("0", timeout=30_000)
    stored = kiosk_rows(org)
    assert len(stored) == 30
    assert len({r["id"] for r in stored}) == 30
    assert {r["channel"] for r in stored} == {"kiosk"}
    assert {r["touchpoint"] for r in stored} == {"tp-a1a"}
    assert all(json.loads(r["flags"]) == [] for r in stored)  # FEEDBACK_KIOSK_MIN_INTERVAL=0: no filter
    assert all(r["client_time"] and r["server_time"] for r in stored)
    offline = stored[10:]
    assert all(r["server_time"] > r["client_time"] for r in offline)  # device time kept beside receipt time

    # The heartbeat tells the fleet list the kiosk is healthy again.
    def healthy() -> dict | None:
        listed = kiosks(servers[-1], org)
        return listed[0] if listed and listed[0]["backlog"] == 0 and listed[0]["app_version"] else None

    assert wait_until(healthy, timeout=15)
    listed = healthy()
    assert listed["dead_letters"] == 0 and listed["last_seen"] and not listed["revoked"]
    context.close()


def test_invitation_shows_the_rating_screen_and_tags_only_the_next_tap(browser: Browser, servers, org: Org) -> None:
    srv = serve(servers, org, {**FAST, "FEEDBACK_KIOSK_MIN_INTERVAL": "0"})
    context, page = open_kiosk(browser, srv, viewport=LANDSCAPE)
    enroll(page, org)
    shot(page, "rating-landscape")
    kiosk_id = kiosks(srv, org)[0]["id"]

    # Someone is still on the reasons screen when the counter ends the next case.
    tap(page, 2, reasons=("unclear_guidance",), finish=False)
    waiting = kiosk_api.invitation_events(srv.app.state.store)  # a long-poll under way registers here
    poll_until(lambda: kiosk_id in waiting, what="the kiosk's long-poll waiting")
    started = time.monotonic()
    reply = httpx.post(
        f"{srv.url}/api/v1/kiosks/{kiosk_id}/invite",
        headers=auth_header(org.tokens["admin"]),
        json={"case_ref": "H33-0001", "service": "S1", "officer": "lan"},
    )
    assert reply.status_code == 201, reply.text
    state(page, "rating", timeout=2_000)
    assert time.monotonic() - started < 2.0
    expect(page.locator("#case")).to_contain_text("H33-0001")
    shot(page, "invitation")

    tap(page, 4)  # the invited person
    expect(page.locator("#case")).to_be_hidden()
    tap(page, 3)  # the next, uninvited
    assert wait_until(lambda: len(kiosk_rows(org)) == 3)
    dropped, invited, plain = kiosk_rows(org)
    assert json.loads(dropped["answers"]) == {"overall": 2, "bad_reasons": ["unclear_guidance"]}
    assert dropped["case_ref"] is None
    assert json.loads(invited["answers"]) == {"overall": 4}
    assert (invited["case_ref"], invited["service"], invited["officer"]) == ("H33-0001", "S1", "lan")
    assert invited["case_verified"] == 1  # the server itself sent this tablet that case
    assert plain["case_ref"] is None and plain["officer"] is None

    # Revoked while away: the tablet falls back to enrollment; its queued tap is kept for later.
    srv.stop()
    tap(page, 5)
    expect(page.locator("[data-queue]")).to_have_text("1")
    conn = sqlite3.connect(org.db)
    with conn:
        kiosk_store.revoke(conn, kiosk_id)  # what POST /api/v1/kiosks/{id}/revoke does
    conn.close()
    srv = serve(servers, org, {**FAST, "FEEDBACK_KIOSK_MIN_INTERVAL": "0"}, same_as=srv)
    state(page, "enroll", timeout=15_000)
    expect(page.locator("#enroll-error")).to_have_text(re.compile(r"\S"))
    expect(page.locator("[data-queue]")).to_have_text("1")
    enroll(page, org)
    expect(page.locator("[data-queue]")).to_have_text("0", timeout=15_000)
    assert len(kiosk_rows(org)) == 4
    context.close()


def test_fast_repeats_are_flagged_and_a_rejected_item_becomes_a_dead_letter(
    browser: Browser, servers, org: Org
) -> None:
    # Taps come about 1.2 s apart, more on a loaded machine: a 10 s interval flags them all the same.
    srv = serve(servers, org, {**FAST, "FEEDBACK_KIOSK_MIN_INTERVAL": "10"})
    context, page = open_kiosk(browser, srv)
    enroll(page, org)
    for score in (5, 5, 5):  # one hand, over and over
        tap(page, score)
    assert wait_until(lambda: len(kiosk_rows(org)) == 3)
    flags = [json.loads(r["flags"]) for r in kiosk_rows(org)]
    assert flags[0] == []
    assert all("fast_repeat" in f for f in flags[1:]), flags

    # An item the server refuses (here: planted straight into the queue) leaves it for the dead
    # letters, and the heartbeat reports it to the fleet list.
    page.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open("feedback-kiosk");
        open.onsuccess = () => {
            const tx = open.result.transaction("queue", "readwrite");
            tx.objectStore("queue").put({id: "0b9c0a1e-2222-4c1a-8d7e-000000000001", answers: {overall: 9},
                submitted_at: new Date().toISOString(), lang: "zh", seq: Date.now(), ready: true});
            tx.oncomplete = () => resolve(true);
            tx.onerror = () => reject(tx.error);
        };
        open.onerror = () => reject(open.error);
    })""")
    assert wait_until(lambda: kiosks(srv, org)[0]["dead_letters"] == 1, timeout=20, page=page)
    expect(page.locator("[data-queue]")).to_have_text("0")
    assert len(kiosk_rows(org)) == 3
    context.close()


def test_screens_return_to_rating_on_time_and_a_crash_on_reasons_keeps_the_tap(
    browser: Browser, servers, org: Org
) -> None:
    # The thank-you's own time is measured here: a whole second, not FAST's half.
    timed = {
        "FEEDBACK_KIOSK_THANKS_SECONDS": "1",
        "FEEDBACK_KIOSK_IDLE_SECONDS": "2",
        "FEEDBACK_KIOSK_MIN_INTERVAL": "0",
    }
    srv = serve(servers, org, {**FAST, **timed})
    context, page = open_kiosk(browser, srv)
    enroll(page, org)

    # Nobody touches the reasons screen: it finishes by itself after the idle time, then thanks. The
    # times are taken in the page, as each screen shows (the test sees a change later on a loaded machine).
    page.evaluate(
        """() => { window.shown = [];
        new MutationObserver(() => window.shown.push([document.body.dataset.kioskState, performance.now()]))
            .observe(document.body, {attributes: true, attributeFilter: ["data-kiosk-state"]}); }"""
    )
    page.click('[data-score="1"]')
    state(page, "reasons")
    state(page, "thanks", timeout=5_000)
    state(page, "rating", timeout=5_000)
    shown = page.evaluate("() => window.shown")
    order = ["reasons", "thanks", "rating"]
    at: dict[str, float] = {}  # when reasons showed, then the thanks after it, then the rating after that
    for name, ms in shown:
        if len(at) < len(order) and name == order[len(at)]:
            at[name] = ms / 1000
    assert list(at) == order, shown
    idle, thanks = at["thanks"] - at["reasons"], at["rating"] - at["thanks"]
    assert 1.5 <= idle <= 3.5, idle
    assert 0.6 <= thanks <= 2.5, thanks

    # A tap left on the reasons screen survives a reload (a crash, a power cut) and is sent.
    page.click('[data-score="4"]')
    state(page, "reasons")
    page.reload()
    state(page, "rating")
    assert wait_until(lambda: len(kiosk_rows(org)) == 2)
    assert sorted(json.loads(r["answers"])["overall"] for r in kiosk_rows(org)) == [1, 4]

    # No way back: history cannot leave the rating screen.
    page.go_back()
    state(page, "rating")
    assert page.url == f"{srv.url}/kiosk/"
    context.close()


def test_each_language_switches_every_text(browser: Browser, servers, org: Org) -> None:
    # The thanks screen stays 1.5 s: long enough to read its title before the kiosk turns back to the
    # next person in the default language, even on a loaded machine.
    srv = serve(servers, org, {**FAST, "FEEDBACK_KIOSK_THANKS_SECONDS": "1.5"})
    strings = httpx.get(f"{srv.url}/kiosk/strings.json").json()
    survey = httpx.get(f"{srv.url}/api/v1/touchpoints/tp-a1a/survey").json()
    overall = next(q for q in survey["questions"] if q["key"] == "overall")
    assert set(strings) == {"vi", "ru", "zh", "en"}
    assert all(set(table) == set(KIOSK_MESSAGES) for table in strings.values())
    context, page = open_kiosk(browser, srv)
    enroll(page, org)
    assert page.locator("html").get_attribute("lang") == "zh-Hans"  # the touchpoint's own language
    seen = set()
    for lang in ("vi", "ru", "en", "zh"):
        page.click(f'.langs [data-lang="{lang}"]')
        assert page.locator("html").get_attribute("lang").startswith(lang)
        expect(page.locator("#question")).to_have_text(overall["text"][lang])
        expect(page.locator('[data-score="5"]')).to_contain_text(overall["labels"][lang][4])
        expect(page.locator("#note")).to_have_text(strings[lang]["anonymous"])
        shot(page, f"rating-{lang}")
        page.click('[data-score="2"]')
        state(page, "reasons")
        expect(page.locator('[data-action="done"]')).to_have_text(strings[lang]["done"])
        expect(page.locator("#reasons-title")).to_have_text(strings[lang]["reasons_title"])
        bad_reasons = next(q for q in survey["questions"] if q["key"] == "bad_reasons")
        expect(page.locator('#reasons [data-option="poor_attitude"]')).to_have_text(
            next(o["text"][lang] for o in bad_reasons["options"] if o["key"] == "poor_attitude")
        )
        if lang == "ru":
            shot(page, "reasons-ru")
        page.click('[data-action="done"]')
        state(page, "thanks")
        expect(page.locator("#thanks-title")).to_have_text(strings[lang]["thanks_title"])
        seen.add(page.locator("#thanks-title").inner_text())
        if lang == "vi":
            shot(page, "thanks-vi")
        state(page, "rating")
        assert page.locator("html").get_attribute("lang") == "zh-Hans"  # the next person starts in the default
    assert len(seen) == 4
    context.close()


def test_the_shell_is_static_strict_and_versioned(servers, org: Org) -> None:
    srv = serve(servers, org, {})
    page = httpx.get(f"{srv.url}/kiosk/")
    assert page.status_code == 200 and 'data-action="done"' in page.text
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text) and " style=" not in page.text
    manifest = httpx.get(f"{srv.url}/kiosk/manifest.webmanifest").json()
    assert (manifest["display"], manifest["start_url"], manifest["scope"]) == ("fullscreen", "/kiosk/", "/kiosk/")
    assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
    for icon in manifest["icons"]:
        assert httpx.get(f"{srv.url}/kiosk/{icon['src']}").headers["content-type"] == "image/png"
    app = httpx.get(f"{srv.url}/kiosk/app.js").text
    worker = httpx.get(f"{srv.url}/kiosk/sw.js").text
    # A new app version must ship a new shell cache, or tablets keep the old one.
    assert re.search(r'APP_VERSION = "([^"]+)"', app)[1] == re.search(r'VERSION = "([^"]+)"', worker)[1]


def test_a_new_survey_version_is_picked_up_at_rest(browser: Browser, servers, org: Org) -> None:
    # A long idle time: the chosen language must not fall back to the default while we wait.
    srv = serve(servers, org, {**FAST, "FEEDBACK_KIOSK_MIN_INTERVAL": "0", "FEEDBACK_KIOSK_IDLE_SECONDS": "60"})
    context, page = open_kiosk(browser, srv)
    enroll(page, org)
    page.click('.langs [data-lang="en"]')
    expect(page.locator("#question")).to_have_text("How do you rate this service overall?")

    # A manager publishes version 2 with a reworded question; the heartbeat tells the kiosk.
    questions = [
        msgspec.structs.replace(q, text={**q.text, "en": "How was your visit today?"}) if q.key == "overall" else q
        for q in HAOCHAPING.questions
    ]
    conn = sqlite3.connect(org.db)
    with conn:
        version = surveys.publish(conn, msgspec.structs.replace(HAOCHAPING, questions=questions))
    conn.close()
    assert version == 2
    expect(page.locator("#question")).to_have_text("How was your visit today?", timeout=20_000)
    tap(page, 4)
    assert wait_until(lambda: len(kiosk_rows(org)) == 1)
    assert kiosk_rows(org)[0]["survey_version"] == 2
    context.close()


@pytest.mark.parametrize("viewport", [PORTRAIT, LANDSCAPE], ids=["portrait", "landscape"])
def test_accessibility_audit_of_rating_and_reasons(browser: Browser, servers, org: Org, viewport: dict) -> None:
    assert AXE.exists(), "run `npm install` in tests/browser (the CI script does)"
    srv = serve(servers, org, FAST)
    context, page = open_kiosk(browser, srv, viewport=viewport, bypass_csp=True)  # to inject axe itself
    name = "portrait" if viewport is PORTRAIT else "landscape"
    state(page, "enroll")
    shot(page, f"enroll-{name}")

    def audit(where: str) -> None:
        bad = axe_violations(page)
        assert bad == [], where

    audit("enroll")
    enroll(page, org)

    audit("rating")
    for box in [b.bounding_box() for b in page.locator("[data-score], .langs button").all()]:
        assert box["width"] >= 44 and box["height"] >= 44, box
    page.click('[data-score="1"]')
    state(page, "reasons")
    page.click('#reasons [data-option="over_time_limit"]')
    audit("reasons")
    shot(page, f"reasons-{name}")
    context.close()


def test_kiosk_without_its_slash_is_redirected_to_the_app(browser: Browser, servers, org: Org) -> None:
    srv = serve(servers, org, {})
    for path, target in (("/kiosk", "/kiosk/"), ("/kiosk?lang=vi", "/kiosk/?lang=vi")):
        reply = httpx.get(f"{srv.url}{path}", follow_redirects=False)
        assert reply.status_code in (301, 308) and reply.headers["location"] == target, path
        assert httpx.head(f"{srv.url}{path}").status_code == reply.status_code
    # In the browser the app then starts where its relative URLs and its worker's scope belong.
    context = browser.new_context(viewport=PORTRAIT)
    page = context.new_page()
    page.goto(f"{srv.url}/kiosk")
    assert page.url == f"{srv.url}/kiosk/"
    state(page, "enroll")
    worker_ready(page)
    context.close()


def test_only_the_apps_own_files_are_served(servers, org: Org) -> None:
    from pathlib import Path

    srv = serve(servers, org, {})
    # The app's source folder, the package feedback_kiosk.
    folder = Path(__file__).resolve().parent.parent / "kiosk" / "feedback_kiosk"
    python = [path for path in folder.rglob("*") if path.is_file() and path.suffix in (".py", ".pyc")]
    assert python, "the app's folder is a Python package"
    for path in python:
        assert httpx.get(f"{srv.url}/kiosk/{path.relative_to(folder).as_posix()}").status_code == 404, path
    assert httpx.get(f"{srv.url}/kiosk/__pycache__/").status_code == 404
    # Everything the service worker puts in its shell cache is still there (an install fails on one 404).
    worker = httpx.get(f"{srv.url}/kiosk/sw.js")
    assert worker.status_code == 200
    shell = json.loads(re.search(r"var SHELL = (\[[^\]]*\]);", worker.text)[1])
    assert "./" in shell and "app.js" in shell
    for name in shell:
        assert httpx.get(f"{srv.url}/kiosk/{name}").status_code == 200, name


def test_head_answers_like_get_without_a_body(servers, org: Org) -> None:
    srv = serve(servers, org, {})
    for path in ("/kiosk/", "/kiosk/index.html", "/kiosk/app.js", "/kiosk/manifest.webmanifest", "/kiosk/icon-192.png"):
        got = httpx.get(f"{srv.url}{path}")
        head = httpx.head(f"{srv.url}{path}")
        assert (head.status_code, got.status_code) == (200, 200), path
        assert head.content == b"", path
        for name in ("content-type", "cache-control", "etag", "content-security-policy"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        assert int(head.headers["content-length"]) == len(got.content), path
    assert httpx.head(f"{srv.url}/kiosk/__init__.py").status_code == 404
