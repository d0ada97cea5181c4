"""A kiosk whose touchpoint is retired: its config says so, and the tablet stops taking taps.

The touchpoint is retired the way an operator does it, through the /manage admin form of the running
server. The tablet (Debian's Chromium) then shows an out-of-service screen in the touchpoint's language,
records nothing more, and still sends what it queued while the touchpoint was live.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.conftest import AXE, Org, Server, auth_header, axe_violations, rows
from tests.manage_helpers import retire_touchpoint
from tests.test_kiosk import FAST, kiosk_rows, kiosks, open_kiosk, shot, state, tap, wait_until
from tests.test_kiosk import enroll as enroll_tablet
from tests.test_kiosk_api import enroll as enroll_device
from tests.test_kiosk_api import item, sync

CONFIG_FIELDS = {"kiosk", "lang", "retired_at", "survey", "settings"}


def retire(server: Server, org: Org, token: str, unit: str) -> datetime:
    """Retire a touchpoint through the admin form; returns the stored retirement time."""
    return datetime.fromisoformat(retire_touchpoint(server, org.db, token, unit))


def config(server: Server, device: str) -> dict:
    reply = httpx.get(f"{server.url}/api/v1/kiosk/config", headers=auth_header(device))
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_config_carries_the_retirement_and_the_device_keeps_working(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="0")
    device, _kiosk_id = enroll_device(srv.url, org)
    live = config(srv, device)
    assert set(live) == CONFIG_FIELDS
    assert live["retired_at"] is None
    queued = item(0, level=4)  # tapped half an hour ago, not yet sent

    retired_at = retire(srv, org, "tp-a1a", "A1a")
    retired = config(srv, device)
    assert set(retired) == CONFIG_FIELDS
    assert datetime.fromisoformat(retired["retired_at"]) == retired_at
    assert datetime.fromisoformat(retired["retired_at"]).tzinfo is not None
    # Everything else is as it was: the survey stays, so the tablet can still send what it queued.
    assert {k: v for k, v in retired.items() if k != "retired_at"} == {
        k: v for k, v in live.items() if k != "retired_at"
    }

    beat = httpx.post(f"{srv.url}/api/v1/kiosk/heartbeat", json={"queue": 1}, headers=auth_header(device))
    assert beat.status_code == 200, beat.text
    later = {
        "id": "5d0f3c7e-1b2a-4c3d-8e9f-0a1b2c3d4e5f",
        "answers": {"overall": 5},
        "submitted_at": datetime.now(UTC).isoformat(),
    }
    results = sync(srv.url, device, [queued, later])
    assert [r["status"] for r in results] == ["stored", "rejected"]
    assert results[1]["field"] == "touchpoint"
    assert [r["id"] for r in kiosk_rows(org)] == [queued["id"]]


def tablet_store(page: Page) -> dict[str, int]:
    """What the tablet holds in IndexedDB: queued taps and dead letters."""
    return page.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open("feedback-kiosk");
        open.onsuccess = () => {
            const tx = open.result.transaction(["queue", "dead"], "readonly");
            const queued = tx.objectStore("queue").count();
            const dead = tx.objectStore("dead").count();
            tx.oncomplete = () => { open.result.close(); resolve({queue: queued.result, dead: dead.result}); };
            tx.onerror = () => reject(tx.error);
        };
        open.onerror = () => reject(open.error);
    })""")


def assert_accessible(page: Page) -> None:
    """No serious or critical WCAG 2.1 AA finding by axe-core on the page as it stands."""
    assert AXE.exists(), "run `npm install` in tests/browser (the CI script does)"
    bad = axe_violations(page)
    assert bad == []


def test_retired_tablet_shows_out_of_service_takes_no_tap_and_still_sends_its_queue(
    browser: Browser, start_server, org: Org
) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="0", **{k.lower(): v for k, v in FAST.items()})
    strings = httpx.get(f"{srv.url}/kiosk/strings.json").json()
    context, page = open_kiosk(browser, srv, bypass_csp=True)  # to inject axe for the audit
    enroll_tablet(page, org)

    # Someone rates while the tablet cannot reach the server: the tap waits in its queue.
    page.route("**/api/v1/kiosk/sync", lambda route: route.abort("connectionrefused"))
    tap(page, 4)
    expect(page.locator("[data-queue]")).to_have_text("1")
    assert kiosk_rows(org) == []

    retired_at = retire(srv, org, "tp-a1a", "A1a")

    # Within a heartbeat or two: no faces, the out-of-service text in the touchpoint's language.
    state(page, "retired", timeout=15_000)
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    expect(page.locator("#retired-title")).to_have_text(strings["zh"]["retired_title"])
    expect(page.locator("#screen-retired .hint")).to_have_text(strings["zh"]["retired_body"])
    expect(page.locator("#screen-rating")).to_be_hidden()
    expect(page.locator("[data-score]:visible")).to_have_count(0)
    shot(page, "retired-zh")
    assert_accessible(page)

    # The tap queued while live still reaches the server and is kept.
    page.unroute("**/api/v1/kiosk/sync")
    expect(page.locator("[data-queue]")).to_have_text("0", timeout=30_000)
    stored = kiosk_rows(org)
    assert len(stored) == 1 and json.loads(stored[0]["answers"])["overall"] == 4
    assert datetime.fromisoformat(stored[0]["client_time"]) < retired_at
    assert tablet_store(page) == {"queue": 0, "dead": 0}

    # Taps now record nothing: on the screen, and even on a face left hidden in the page.
    before_taps = kiosks(srv, org)[0]["last_seen"]
    box = page.viewport_size
    for x, y in ((box["width"] // 2, box["height"] // 2), (box["width"] // 4, box["height"] * 2 // 3)):
        page.mouse.click(x, y)
    page.evaluate("""() => document.querySelectorAll('[data-score]').forEach(face => face.click())""")
    # A heartbeat since the taps: time enough for a tap wrongly queued to have been sent (a tap is sent at once).
    assert wait_until(lambda: kiosks(srv, org)[0]["last_seen"] > before_taps, timeout=10, page=page)
    state(page, "retired")
    assert tablet_store(page) == {"queue": 0, "dead": 0}
    expect(page.locator("[data-queue]")).to_have_text("0")
    assert len(kiosk_rows(org)) == 1

    # The heartbeats go on: the fleet list keeps hearing from the tablet.
    seen = kiosks(srv, org)[0]["last_seen"]
    assert wait_until(lambda: kiosks(srv, org)[0]["last_seen"] > seen, timeout=10, page=page)
    assert kiosks(srv, org)[0]["dead_letters"] == 0

    # Each language has its own text for a visitor who switches.
    seen_titles = set()
    for lang in ("vi", "ru", "en", "zh"):
        page.click(f'.langs [data-lang="{lang}"]')
        expect(page.locator("#retired-title")).to_have_text(strings[lang]["retired_title"])
        expect(page.locator("#screen-retired .hint")).to_have_text(strings[lang]["retired_body"])
        seen_titles.add(page.locator("#retired-title").inner_text())
    assert len(seen_titles) == 4

    # Undone by hand in the database (the product has no un-retire): the faces come back and count.
    conn = sqlite3.connect(org.db)
    with conn:
        conn.execute("UPDATE touchpoints SET retired_at = NULL WHERE token = 'tp-a1a'")
    conn.close()
    state(page, "rating", timeout=20_000)
    tap(page, 5)
    assert wait_until(lambda: len(kiosk_rows(org)) == 2, page=page)
    assert tablet_store(page) == {"queue": 0, "dead": 0}
    context.close()


def heartbeat(server: Server, device: str) -> dict:
    reply = httpx.post(
        f"{server.url}/api/v1/kiosk/heartbeat", json={"queue": 0, "app_version": "1.0.3"}, headers=auth_header(device)
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_heartbeat_reply_carries_the_retirement(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="0")
    device, _kiosk_id = enroll_device(srv.url, org)
    other, _other_id = enroll_device(srv.url, org, touchpoint="tp-a")  # a tablet on another touchpoint
    live = heartbeat(srv, device)
    assert "retired_at" in live and live["retired_at"] is None
    assert live["survey_version"] == config(srv, device)["survey"]["version"]

    retired_at = retire(srv, org, "tp-a1a", "A1a")
    beat = heartbeat(srv, device)
    assert beat["retired_at"] is not None
    assert datetime.fromisoformat(beat["retired_at"]) == retired_at
    assert beat["retired_at"] == config(srv, device)["retired_at"]  # one value, whichever the tablet reads
    assert beat["survey_version"] == live["survey_version"]
    assert heartbeat(srv, other)["retired_at"] is None
    # The beat is still recorded for the fleet list.
    assert kiosks(srv, org)[0]["app_version"] == "1.0.3"


def test_retired_tablet_switches_on_the_heartbeat_without_reading_its_config(
    browser: Browser, start_server, org: Org
) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="0", **{k.lower(): v for k, v in FAST.items()})
    context, page = open_kiosk(browser, srv)
    enroll_tablet(page, org)
    config_reads: list[str] = []
    beats: list[str] = []
    page.on("request", lambda r: config_reads.append(r.url) if r.url.endswith("/api/v1/kiosk/config") else None)
    page.on("response", lambda r: beats.append(r.text()) if r.url.endswith("/api/v1/kiosk/heartbeat") else None)
    assert wait_until(lambda: beats, page=page)  # the tablet beats and rests on its faces
    config_reads.clear()

    retire(srv, org, "tp-a1a", "A1a")
    state(page, "retired", timeout=15_000)
    assert any(json.loads(body).get("retired_at") for body in beats)
    assert config_reads == []
    # Kept with the tablet's config: a restart (offline, from IndexedDB) still shows the retired screen.
    stored = page.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open("feedback-kiosk");
        open.onsuccess = () => {
            const get = open.result.transaction("kv", "readonly").objectStore("kv").get("config");
            get.onsuccess = () => { open.result.close(); resolve(get.result.retired_at); };
            get.onerror = () => reject(get.error);
        };
        open.onerror = () => reject(open.error);
    })""")
    assert stored and datetime.fromisoformat(stored) == datetime.fromisoformat(
        rows(org, "SELECT retired_at FROM touchpoints WHERE token = 'tp-a1a'")[0]["retired_at"]
    )
    context.close()
