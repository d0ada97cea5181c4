"""The public receipt page `/r/{receipt}`: when and where a rating was received and what its action
came to, in the citizen's language, never anything private; guessing is bounded; staff find a
response by its receipt."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from babel.dates import format_date
from playwright.sync_api import Browser

from tests.conftest import (
    ARTIFACTS,
    AXE,
    Org,
    Server,
    auth_header,
    axe_violations,
    make_org,
    resize,
    rows,
    save_screenshot,
)
from tests.manage_helpers import add_user, sign_in

LANGS = ("vi", "ru", "zh", "en")
BABEL = {"en": "en", "vi": "vi", "ru": "ru", "zh": "zh_Hans"}
# What the citizen left that no one else may read, and the officer they rated.
COMMENT = "The clerk at the window was rude ZQXJ"
OFFICER = "OFF-SECRET-42"
CONTACT = "private.person@example.org"
CASE = "CASE-777-XYZ"
DONE = f"Queue screens fixed; {OFFICER} retrained on courtesy"
HEADINGS = {"vi": "Ý kiến của bạn", "ru": "Ваш отзыв", "zh": "您的评价", "en": "Your feedback"}
NOT_FOUND = {
    "vi": "Không tìm thấy mã biên nhận",
    "ru": "Квитанция не найдена",
    "zh": "未找到该回执码",
    "en": "Receipt not found",
}
SETTLED = {
    "vi": "Đã đóng: sự việc đã được giải quyết",
    "ru": "Закрыто: вопрос решён",
    "zh": "已办结",
    "en": "Closed: the case is settled",
}
WAITING = {
    "vi": "Đã tiếp nhận, đang chờ xem xét",
    "ru": "Получено, ожидает рассмотрения",
    "zh": "已受理，等待核查",
    "en": "Received, waiting to be looked into",
}


def respond(url: str, level: int, **extra: Any) -> dict[str, Any]:
    body = {"touchpoint": "tp-a1", "answers": {"overall": level, **extra.pop("answers", {})}, **extra}
    reply = httpx.post(f"{url}/api/v1/responses", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def close_its_action(url: str, org: Org, response_id: str) -> None:
    [action] = rows(org, "SELECT id FROM actions WHERE response_id = ?", (response_id,))
    steps = [
        {"type": "verifying"},
        {"type": "corrected", "correction": "Queue screens fixed"},
        {"type": "implemented"},
        {"type": "effectiveness_review"},
        {"type": "closed", "result": DONE},
    ]
    for step in steps:
        reply = httpx.post(
            f"{url}/api/v1/actions/{action['id']}/events", json=step, headers=auth_header(org.tokens["admin"])
        )
        assert reply.status_code in (200, 201), reply.text


class Site:
    """A server with three ratings: one whose complaint was closed, one with its complaint open, one good."""

    def __init__(self, server: Server, org: Org) -> None:
        self.server, self.org, self.url = server, org, server.url
        private = {"answers": {"comment": COMMENT, "contact": CONTACT}, "officer": OFFICER, "case_ref": CASE}
        self.closed = respond(self.url, 1, **private)
        close_its_action(self.url, org, self.closed["id"])
        self.open = respond(self.url, 2)
        self.good = respond(self.url, 5)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("receipts") / "feedback.db")
    server = Server(org.db).start()
    yield Site(server, org)
    server.stop()


def page_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("lang", LANGS)
def test_the_page_says_when_where_and_what_became_of_the_action(site: Site, lang: str) -> None:
    closed = httpx.get(f"{site.url}/r/{site.closed['receipt']}?lang={lang}")
    assert closed.status_code == 200
    assert closed.headers["cache-control"] == "private, no-store"
    text = page_text(closed.text)
    assert HEADINGS[lang] in text and site.closed["receipt"] in text
    assert SETTLED[lang] in text
    assert "Queue screens fixed; … retrained on courtesy" in text  # the officer taken out of the note
    assert "Đơn vị A1" in text or "Unit A1" in text  # where: the unit, in the reader's language when it has it
    assert "Quầy 1" in text  # the touchpoint
    stored = rows(site.org, "SELECT occurred_at FROM responses WHERE id = ?", (site.closed["id"],))[0]
    assert str(date.fromisoformat(stored["occurred_at"][:10]).year) in text
    opened = page_text(httpx.get(f"{site.url}/r/{site.open['receipt']}?lang={lang}").text)
    assert WAITING[lang] in opened
    [due] = rows(site.org, "SELECT due FROM actions WHERE response_id = ?", (site.open["id"],))
    assert " ".join(format_date(date.fromisoformat(due["due"]), "long", locale=BABEL[lang]).split()) in opened
    good = httpx.get(f"{site.url}/r/{site.good['receipt']}?lang={lang}")
    assert good.status_code == 200 and SETTLED[lang] not in good.text and WAITING[lang] not in good.text


def test_nothing_private_appears(site: Site) -> None:
    private = [COMMENT, "ZQXJ", OFFICER, CONTACT, CASE, "Very dissatisfied", "Rất không hài lòng", "Complaint (level"]
    for receipt in (site.closed["receipt"], site.open["receipt"]):
        for lang in LANGS:
            page = httpx.get(f"{site.url}/r/{receipt}?lang={lang}").text
            found = [secret for secret in private if secret in page]
            assert found == [], f"{receipt} {lang}: {found}"
            # Nor the level or the answers in any form.
            assert '"overall"' not in page and "level" not in page_text(page).lower()


def test_a_receipt_is_read_however_it_is_typed(site: Site) -> None:
    receipt = site.open["receipt"]
    canonical = httpx.get(f"{site.url}/r/{receipt}?lang=en").text
    for typed in (receipt.lower(), receipt.replace("-", ""), receipt.lower().replace("-", " ")):
        reply = httpx.get(f"{site.url}/r/{typed}?lang=en")
        assert reply.status_code == 200 and reply.text == canonical
    # The survey page's look-up form sends the code as typed; the answer points to its page.
    form = httpx.get(f"{site.url}/r", params={"receipt": f" {receipt.lower().replace('-', '')} ", "lang": "ru"})
    assert form.status_code == 303 and form.headers["location"] == f"/r/{receipt}?lang=ru"


def test_an_unknown_receipt_is_a_404_page_in_the_language(site: Site) -> None:
    answers = {}
    for typed in ("ZZZZ-ZZZZ", "not a receipt at all", "0000-1111"):
        reply = httpx.get(f"{site.url}/r/{typed}?lang=ru")
        assert reply.status_code == 404 and NOT_FOUND["ru"] in reply.text
        answers[typed] = reply.text
    assert len(set(answers.values())) == 1  # malformed or merely unknown: the same page
    by_header = httpx.get(f"{site.url}/r/ZZZZ-ZZZZ", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert by_header.status_code == 404 and NOT_FOUND["zh"] in by_header.text


def test_the_language_follows_the_survey_pages_rules(site: Site) -> None:
    # No ?lang=: the touchpoint's language (tp-a1 is Vietnamese), whatever the browser prefers.
    reply = httpx.get(f"{site.url}/r/{site.open['receipt']}", headers={"Accept-Language": "ru"})
    assert '<html lang="vi">' in reply.text and HEADINGS["vi"] in reply.text


def test_guessing_is_bounded_per_client(org: Org, start_server) -> None:
    srv = start_server(org.db)
    receipt = respond(srv.url, 4)["receipt"]
    for _ in range(9):
        assert httpx.get(f"{srv.url}/r/ZZZZ-{uuid.uuid4().hex[:4].upper()}").status_code == 404
    for _ in range(5):  # found receipts never count
        assert httpx.get(f"{srv.url}/r/{receipt}").status_code == 200
    assert httpx.get(f"{srv.url}/r/ZZZZ-ZZZZ").status_code == 404  # the tenth wrong one
    refused = httpx.get(f"{srv.url}/r/{receipt}?lang=en")  # now even a right one waits
    assert refused.status_code == 429 and "Too many look-ups" in refused.text
    assert httpx.get(f"{srv.url}/s/tp-a1").status_code == 200  # the survey page is not held up


def test_the_rate_limit_covers_the_receipt_pages(org: Org, start_server) -> None:
    srv = start_server(org.db, feedback_rate_limit="3")
    receipt = respond(srv.url, 4)["receipt"]  # one post: two requests left this minute
    assert httpx.get(f"{srv.url}/r/{receipt}").status_code == 200
    assert httpx.get(f"{srv.url}/r", params={"receipt": receipt}).status_code == 303
    limited = httpx.get(f"{srv.url}/r/{receipt}?lang=vi")
    assert limited.status_code == 429 and "Tra cứu quá nhiều lần" in limited.text
    assert httpx.get(f"{srv.url}/healthz").status_code == 200


def test_staff_find_a_response_by_its_receipt(site: Site) -> None:
    add_user(site.org.db, "mai", "correct horse 1", "manager", "A1")
    add_user(site.org.db, "olga", "correct horse 2", "manager", "B")
    receipt = site.open["receipt"]
    with httpx.Client(base_url=site.url) as client:
        sign_in(client, site.server, "mai", "correct horse 1")
        # Typed loosely, and outside the period shown: the receipt still finds its response, alone.
        page = client.get(
            "/manage/units/A1/responses",
            params={"q": receipt.lower().replace("-", ""), "from": "2001-01-01", "to": "2001-01-31"},
        )
        assert page.status_code == 200
        assert (
            receipt in page.text and site.closed["receipt"] not in page.text and site.good["receipt"] not in page.text
        )
        sign_in(client, site.server, "olga", "correct horse 2")
        other = client.get("/manage/units/B/responses", params={"q": receipt.lower()})
        assert other.status_code == 200 and receipt not in other.text  # another subtree's receipt finds nothing


# -- in the browser ------------------------------------------------------------------------------------


def test_the_page_in_every_language_passes_axe_and_fits(browser: Browser, site: Site) -> None:
    """Each language's page is loaded once and laid out again at each width."""
    assert AXE.exists(), "run `npm install` in tests/browser"
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 320, "height": 800}, bypass_csp=True)  # to inject axe
    page = context.new_page()
    try:
        for lang in LANGS:
            page.set_viewport_size({"width": 320, "height": 800})
            page.goto(f"{site.url}/r/{site.closed['receipt']}?lang={lang}")
            assert page.locator("h1").inner_text() == HEADINGS[lang]
            for width in (320, 390, 1280):
                resize(page, width, 800)
                assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (lang, width)
                save_screenshot(page, ARTIFACTS / f"receipt-{lang}-{width}.png")
                assert axe_violations(page) == [], (lang, width)
    finally:
        context.close()


def test_the_survey_pages_look_up_form_leads_to_the_receipt(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 700})
    page = context.new_page()
    try:
        page.goto(f"{site.url}/s/tp-a1?lang=zh")
        page.locator(".lookup summary").click()
        page.fill("#receipt-in", site.open["receipt"].lower().replace("-", ""))
        with page.expect_navigation():
            page.locator(".lookup button").click()
        assert page.url.endswith(f"/r/{site.open['receipt']}?lang=zh")
        assert page.locator("h1").inner_text() == HEADINGS["zh"] and WAITING["zh"] in page.content()
        # The thank-you page links to the receipt of the rating just given.
        page.goto(f"{site.url}/s/tp-a1?lang=en")
        page.locator('input[name="q.overall"][value="4"]').check()
        page.locator("button.send").click()
        page.wait_for_selector(".receipt")
        receipt = page.locator(".receipt").inner_text().strip()
        with page.expect_navigation():
            page.get_by_role("link", name="Follow your feedback with this code").click()
        assert page.url.endswith(f"/r/{receipt}?lang=en")
        assert "No corrective action was opened for this rating." in page.content()
    finally:
        context.close()
