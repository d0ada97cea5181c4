"""The citizen survey page in real headless Chromium (Debian's) against a real server."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import ARTIFACTS, AXE, Org, Server, axe_violations, rows, save_screenshot

PHONE = {"width": 360, "height": 640}
THANKS = {"vi": "Cảm ơn bạn!", "ru": "Спасибо!", "zh": "谢谢您！", "en": "Thank you!"}


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    save_screenshot(page, ARTIFACTS / f"{name}.png")


def rate(page: Page, key: str, value: int) -> None:
    page.locator(f'input[name="q.{key}"][value="{value}"]').check()


@pytest.mark.parametrize("lang", ["vi", "ru", "zh", "en"])
def test_fill_and_submit_on_a_phone_in_each_language(page: Page, server: Server, shared_org: Org, lang: str) -> None:
    page.goto(f"{server.url}/s/tp-a1?lang={lang}")
    assert page.locator("html").get_attribute("lang").startswith(lang)
    reasons = page.locator("#q-reasons")
    assert reasons.is_hidden()  # follow-up reasons wait for a low rating
    rate(page, "overall", 2)
    assert reasons.is_visible()
    reasons.locator('input[value="waiting_time"]').check()
    page.locator("#q-comment-in").fill(f"комментарий/评论/bình luận {lang}")
    assert page.locator("#q-contact-in").is_hidden()
    page.locator('input[name="contact_consent"]').check()
    page.locator("#q-contact-in").fill("+84 912 000 111")
    shot(page, f"survey-{lang}")
    page.locator("button.send").click()
    page.wait_for_selector(".receipt")
    assert THANKS[lang] in page.content()
    receipt = page.locator(".receipt").inner_text().strip()
    shot(page, f"thanks-{lang}")
    stored = rows(shared_org, "SELECT * FROM responses WHERE receipt = ?", (receipt,))
    assert len(stored) == 1
    response = stored[0]
    answers = json.loads(response["answers"])
    assert answers["overall"] == 2 and answers["reasons"] == ["waiting_time"]
    assert (response["lang"], response["channel"], response["unit"]) == (lang, "qr", "A1")
    assert "+84" not in response["answers"]
    contact = rows(shared_org, "SELECT contact FROM contacts WHERE response_id = ?", (response["id"],))
    assert contact == [{"contact": "+84 912 000 111"}]


def test_submit_with_javascript_off(browser: Browser, server: Server, shared_org: Org) -> None:
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/s/tp-a1?lang=en")
    assert page.locator("#q-reasons").is_visible()  # no script: the optional reasons are simply there
    rate(page, "overall", 5)
    page.locator("button.send").click()
    page.wait_for_selector(".receipt")
    receipt = page.locator(".receipt").inner_text().strip()
    stored = rows(shared_org, "SELECT answers, flags FROM responses WHERE receipt = ?", (receipt,))
    assert json.loads(stored[0]["answers"]) == {"overall": 5}
    context.close()


def test_double_submit_stores_one_response(browser: Browser, server: Server, shared_org: Org) -> None:
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/s/tp-a?lang=en&case=DBL-1")
    form_id = page.locator('input[name="form_id"]').get_attribute("value")
    rate(page, "overall", 4)
    page.locator("button.send").click()
    page.wait_for_selector(".receipt")
    first = page.locator(".receipt").inner_text().strip()
    page.go_back()
    if page.locator('input[name="form_id"]').count() == 0:
        page.go_back()
    assert page.locator('input[name="form_id"]').get_attribute("value") == form_id
    rate(page, "overall", 4)
    page.locator("button.send").click()
    page.wait_for_selector(".receipt")
    assert page.locator(".receipt").inner_text().strip() == first
    assert "already recorded" in page.content()
    assert len(rows(shared_org, "SELECT id FROM responses WHERE id = ?", (form_id,))) == 1
    context.close()


def test_page_weight_stays_small(page: Page, server: Server) -> None:
    sizes: dict[str, int] = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())))
    page.goto(f"{server.url}/s/tp-b?lang=ru")
    page.wait_for_load_state("networkidle")
    document = sizes[f"{server.url}/s/tp-b?lang=ru"]
    assert document < 40 * 1024
    assert sum(sizes.values()) < 100 * 1024
    assert all(url.startswith(server.url) for url in sizes)  # no third-party resources


def test_no_inline_script_and_a_strict_policy(server: Server) -> None:
    reply = httpx.get(f"{server.url}/s/tp-a")
    policy = reply.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)", reply.text)
    assert " style=" not in reply.text


@pytest.mark.parametrize(("token", "lang"), [("tp-a1", "vi"), ("tp-b", "ru"), ("tp-a1a", "zh"), ("tp-a", "en")])
def test_accessibility_audit_has_no_serious_violations(browser: Browser, server: Server, token: str, lang: str) -> None:
    assert AXE.exists(), "run `npm install` in tests/browser (the CI script does)"
    context = browser.new_context(viewport=PHONE, bypass_csp=True)  # to inject axe itself
    page = context.new_page()
    page.goto(f"{server.url}/s/{token}?lang={lang}")
    bad = axe_violations(page)
    assert bad == []
    context.close()


def test_touch_targets_are_at_least_44px_and_the_page_reflows_at_200_percent(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{server.url}/s/tp-a1?lang=vi")
    rate(page, "overall", 1)
    for selector in (".opt", ".langs a", "button.send", "label.check"):
        for box in [el.bounding_box() for el in page.locator(selector).all() if el.is_visible()]:
            assert box["height"] >= 44 and box["width"] >= 44, (selector, box)
    context.close()
    # 200 % zoom on a 360 px phone is a 180 px CSS viewport: nothing may scroll sideways.
    zoomed = browser.new_context(viewport={"width": 180, "height": 320})
    page = zoomed.new_page()
    page.goto(f"{server.url}/s/tp-b?lang=ru")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "survey-ru-200pct")
    zoomed.close()


def test_missing_rating_is_named_and_the_comment_kept_escaped(server: Server) -> None:
    # Browsers enforce `required` themselves; a client that does not gets the page back with an alert.
    form_id = "2b8f0f5e-7f5c-4f1a-9d7e-3a1c2b4d5e6f"
    reply = httpx.post(
        f"{server.url}/s/tp-a?lang=en",
        data={"form_id": form_id, "lang": "en", "q.comment": "<script>window.hacked=1</script>"},
    )
    assert reply.status_code == 400
    assert 'role="alert"' in reply.text
    assert "Please answer:" in reply.text
    assert "&lt;script&gt;window.hacked=1&lt;/script&gt;" in reply.text  # kept, and escaped
    assert "<script>window.hacked" not in reply.text


def test_case_reference_is_carried_and_escaped(page: Page, server: Server, shared_org: Org) -> None:
    page.goto(f"{server.url}/s/tp-a1?lang=vi&case=<b>H33-0001</b>")
    assert page.locator(".case strong").inner_text() == "<b>H33-0001</b>"
    rate(page, "overall", 5)
    page.locator("button.send").click()
    page.wait_for_selector(".receipt")
    receipt = page.locator(".receipt").inner_text().strip()
    assert rows(shared_org, "SELECT case_ref FROM responses WHERE receipt = ?", (receipt,)) == [
        {"case_ref": "<b>H33-0001</b>"}
    ]


def test_honeypot_and_repeat_cookie_are_stored_flagged_not_counted(server: Server, shared_org: Org) -> None:
    def post(client: httpx.Client, form_id: str, **extra: str) -> httpx.Response:
        return client.post(f"{server.url}/s/tp-a1a", data={"form_id": form_id, "q.overall": "5", **extra})

    with httpx.Client() as bot:
        hit = post(bot, "0b9c0a1e-1111-4c1a-8d7e-000000000001", website="http://spam.example")
    assert hit.status_code == 201
    with httpx.Client() as person:
        first = post(person, "0b9c0a1e-1111-4c1a-8d7e-000000000002")
        second = post(person, "0b9c0a1e-1111-4c1a-8d7e-000000000003")
    assert first.status_code == second.status_code == 201
    flags = {
        r["id"][-1]: json.loads(r["flags"])
        for r in rows(shared_org, "SELECT id, flags FROM responses WHERE id LIKE '0b9c0a1e-1111-%'")
    }
    assert flags == {"1": ["honeypot"], "2": [], "3": ["repeat_device"]}


def test_short_code_opens_the_page_and_unknown_codes_get_a_polite_404(server: Server, shared_org: Org) -> None:
    code = rows(shared_org, "SELECT short_code FROM touchpoints WHERE token = 'tp-b'")[0]["short_code"]
    reply = httpx.get(f"{server.url}/s/{code.lower()}")
    assert reply.status_code == 200 and "Пост Б" in reply.text
    missing = httpx.get(f"{server.url}/s/NOPE-0000", headers={"accept-language": "vi-VN,vi;q=0.9"})
    assert missing.status_code == 404
    assert "Không tìm thấy trang" in missing.text


def test_language_defaults_to_the_touchpoint_and_switches(server: Server) -> None:
    assert 'lang="ru"' in httpx.get(f"{server.url}/s/tp-b").text
    switched = httpx.get(f"{server.url}/s/tp-b?lang=zh").text
    assert 'lang="zh-Hans"' in switched and "提交评价" in switched


def test_cookie_is_secure_when_the_public_url_is_https(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_public_url="https://feedback.example.gov")
    reply = httpx.post(f"{srv.url}/s/tp-a", data={"form_id": "5b9c0a1e-1111-4c1a-8d7e-000000000009", "q.overall": "4"})
    cookie = reply.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_too_many_posts_get_a_polite_429_page(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_rate_limit="2")
    codes = [httpx.post(f"{srv.url}/s/tp-a?lang=ru", data={"q.overall": "4"}).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    last = httpx.post(f"{srv.url}/s/tp-a?lang=ru", data={"q.overall": "4"})
    assert "text/html" in last.headers["content-type"] and "Попробуйте через минуту" in last.text
