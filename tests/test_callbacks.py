"""Call-backs: every attempt to reach a respondent is recorded on the action (by phone through the API and
the action page, by mail when the call-back mail is delivered or given up by a real SMTP server), the
call-back's state follows (reached, declined, not reached after FEEDBACK_CALLBACK_TRIES tries), and the
call-back rate counts only the call-backs that reached the respondent."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller

from feedback import actions, auth, callbacks
from feedback.catalog import load_snapshot
from feedback.db import open_database
from feedback.models import ActionRequest
from feedback.rates import wilson
from feedback.store import Connection, Row, dialect
from tests.conftest import (
    ARTIFACTS,
    AXE,
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    axe_violations,
    default_plugins,
    free_port,
    poll_until,
    resize,
    rows,
    save_screenshot,
    wait_for_dispatch,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
SAKHALIN = ZoneInfo("Asia/Sakhalin")  # unit B
HCM = ZoneInfo("Asia/Ho_Chi_Minh")  # units A, A1, A1a
TRIES = 2  # FEEDBACK_CALLBACK_TRIES of the module's server
# «Ваш контроль» answers with criteria below 4: the rule opens a call-back.
VASH_LOW = {"service_time": 2, "waiting_time": 3, "staff_courtesy": 5, "premises": 4, "information": 4}


class Sink:
    """An SMTP server that keeps every message and refuses, for good, any address starting with nobody@."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()
        self.url = ""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802 - aiosmtpd
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - the aiosmtpd API
        with self.lock:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [message for rcpt, message in self.messages if address in rcpt]


class Site:
    def __init__(self, org: Org, server: Server, sink: Sink) -> None:
        self.org, self.server, self.sink = org, server, sink

    def api(self, method: str, path: str, token: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = auth_header(self.org.tokens[token])
        return httpx.request(method, f"{self.server.url}{path}", headers=headers, timeout=20, **kwargs)

    def attempt(self, action_id: int, token: str = "olga", **body: Any) -> httpx.Response:
        return self.api("POST", f"/api/v1/actions/{action_id}/callbacks", token, json=body)

    def respond(self, touchpoint: str, answers: dict[str, Any], **extra: Any) -> str:
        body = {"touchpoint": touchpoint, "answers": answers, **extra}
        reply = httpx.post(f"{self.server.url}/api/v1/responses", json=body, timeout=20)
        assert reply.status_code == 201, reply.text
        return reply.json()["id"]

    def action_of(self, response_id: str) -> dict[str, Any]:
        [found] = rows(self.org, "SELECT * FROM actions WHERE response_id = ?", (response_id,))
        return found

    def detail(self, action_id: int, token: str = "olga") -> dict[str, Any]:
        reply = self.api("GET", f"/api/v1/actions/{action_id}", token)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def close(self, action_id: int) -> None:
        for target, fields in (("verifying", {}), ("explained", {"explanation": "Разъяснили порядок"}), ("closed", {})):
            reply = self.api("POST", f"/api/v1/actions/{action_id}/events", json={"type": target, **fields})
            assert reply.status_code == 201, reply.text

    def database(self, fn: Callable[[Connection, Any], Any]) -> Any:
        """fn(conn, snapshot) in one write transaction on the database, beside the server."""
        handle = open_database(str(self.org.db))
        conn = handle.conn
        conn.row_factory = Row
        try:
            with dialect.of(conn).write_transaction(conn):
                return fn(conn, load_snapshot(conn, default_plugins()))
        finally:
            handle.close()


@pytest.fixture(scope="module")
def site(shared_org: Org) -> Iterator[Site]:
    add_user(shared_org.db, "olga", PASSWORD, "manager", "B", lang="ru")
    add_user(shared_org.db, "mai", PASSWORD, "manager", "A1")
    handle = open_database(str(shared_org.db))
    handle.conn.execute("BEGIN")
    shared_org.tokens["olga"] = auth.create_token(handle.conn, "olga", "manager", "B")
    handle.conn.execute("COMMIT")
    handle.close()
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.url = f"smtp://127.0.0.1:{controller.port}"
    env = {"FEEDBACK_CALLBACK_TRIES": str(TRIES), "FEEDBACK_JOBS": "0", "FEEDBACK_SMTP_URL": sink.url}
    server = Server(shared_org.db, env=env).start()
    try:
        yield Site(shared_org, server, sink)
    finally:
        server.stop()
        controller.stop()


def callback_action(site: Site, contact: str | None = None) -> int:
    """A «Ваш контроль» response with low criteria at B (and a consented contact): its call-back action's id."""
    answers = {**VASH_LOW, "contact": contact} if contact else dict(VASH_LOW)
    return site.action_of(site.respond("tp-b", answers, lang="ru"))["id"]


# -- which actions owe a call-back -------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_call_back_actions_and_actions_with_a_consented_contact_owe_a_call_back(site: Site) -> None:
    vash = callback_action(site)
    assert site.detail(vash)["callback"] == {
        "state": "pending",
        "tries": 0,
        "due": rows(site.org, "SELECT due FROM actions WHERE id = ?", (vash,))[0]["due"],
        "settled_at": None,
        "attempts": [],
    }
    # A complaint (CSAT rated 2) whose respondent left a number owes one; the same without contact does not.
    with_contact = site.action_of(site.respond("tp-a1", {"overall": 2, "contact": "+84 90 123 4567"}))
    without = site.action_of(site.respond("tp-a1", {"overall": 2}))
    assert with_contact["kind"] == without["kind"] == "complaint"
    assert site.detail(with_contact["id"], "admin")["callback"]["state"] == "pending"
    assert site.detail(without["id"], "admin")["callback"] is None
    refused = site.attempt(without["id"], "admin", via="phone", outcome="reached")
    assert refused.status_code == 409 and refused.json()["field"] == "id"
    # The rule was applied when the action opened: purging the contact later does not take the call-back away.
    site.close(with_contact["id"])
    poll_until(
        lambda: not rows(site.org, "SELECT 1 FROM contacts WHERE response_id = ?", (with_contact["response_id"],))
    )
    assert site.detail(with_contact["id"], "admin")["callback"]["state"] == "pending"
    assert site.attempt(with_contact["id"], "admin", via="phone", outcome="reached").status_code == 201


# -- attempts through the API ---------------------------------------------------------------------------------------


def test_tries_that_do_not_reach_make_it_not_reached_then_it_is_final(site: Site) -> None:
    action_id = callback_action(site)
    first = site.attempt(action_id, via="phone", outcome="not_reached", note="  нет ответа  ")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["state"], body["tries"], body["settled_at"]) == ("pending", 1, None)
    assert body["attempt"]["via"] == "phone" and body["attempt"]["by"] == "olga"
    assert body["attempt"]["note"] == "нет ответа"
    second = site.attempt(action_id, via="sms", outcome="not_reached").json()
    assert (second["state"], second["tries"]) == ("not_reached", TRIES) and second["settled_at"]
    assert [a["via"] for a in second["attempts"]] == ["phone", "sms"]
    late = site.attempt(action_id, via="phone", outcome="reached")
    assert late.status_code == 409 and late.json()["field"] == "id"
    assert site.detail(action_id)["callback"] == {k: v for k, v in second.items() if k != "attempt"}

    # Each attempt logged its event in its own transaction, and an audit entry that keeps no note.
    wait_for_dispatch(site.org)
    events = rows(
        site.org,
        "SELECT id, data FROM event_log WHERE type = 'action.callback' AND id LIKE ? ORDER BY seq",
        (f"action.callback:{action_id}:%",),
    )
    assert [e["id"] for e in events] == [f"action.callback:{action_id}:{a['id']}" for a in second["attempts"]]
    assert json.loads(events[-1]["data"])["callback"]["state"] == "not_reached"
    entries = rows(
        site.org,
        "SELECT actor_id, change FROM audit_log WHERE kind = 'action' AND record_id = ? AND action = 'callback'"
        " ORDER BY seq",
        (str(action_id),),
    )
    assert [e["actor_id"] for e in entries] and len(entries) == 2
    assert [json.loads(e["change"])["after"]["callback"] for e in entries] == ["pending", "not_reached"]
    assert "нет ответа" not in entries[0]["change"]


@pytest.mark.parametrize("outcome", ["reached", "declined"])
def test_reached_and_declined_are_final_at_once(site: Site, outcome: str) -> None:
    action_id = callback_action(site)
    body = site.attempt(action_id, via="phone", outcome=outcome).json()
    assert (body["state"], body["tries"]) == (outcome, 0) and body["settled_at"]
    assert site.attempt(action_id, via="phone", outcome="not_reached").status_code == 409
    assert len(rows(site.org, "SELECT 1 FROM callback_attempts WHERE action = ?", (action_id,))) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"via": "fax", "outcome": "reached"}, "via"),
        ({"via": "phone", "outcome": "maybe"}, "outcome"),
        ({"via": "phone", "outcome": "reached", "note": "x" * 2001}, "note"),
        ({"via": "phone", "outcome": "reached", "note": 5}, "note"),
        ({"outcome": "reached"}, "via"),
        ({"via": "phone"}, "outcome"),
        ({"via": "phone", "outcome": "reached", "by": "someone else"}, "by"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(site: Site, body: dict, field: str) -> None:
    action_id = callback_action(site)
    reply = site.attempt(action_id, **body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field and reply.json()["detail"].startswith(field)
    assert rows(site.org, "SELECT count(*) AS n FROM callback_attempts WHERE action = ?", (action_id,)) == [{"n": 0}]
    assert site.detail(action_id)["callback"]["state"] == "pending"


def test_only_managers_of_the_actions_unit_record_attempts(site: Site) -> None:
    action_id = callback_action(site)
    outside = site.attempt(action_id, "manager_a1", via="phone", outcome="reached")  # a manager of A1, not B
    assert outside.status_code == 403, outside.text
    assert site.attempt(action_id, "viewer_b", via="phone", outcome="reached").status_code == 403
    missing = site.attempt(10**9, via="phone", outcome="reached")
    assert missing.status_code == 404 and missing.json()["field"] == "id"
    assert rows(site.org, "SELECT count(*) AS n FROM callback_attempts WHERE action = ?", (action_id,)) == [{"n": 0}]


# -- the action page ---------------------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_a_phone_call_is_recorded_from_the_action_page(site: Site) -> None:
    action_id = callback_action(site)
    page = f"/manage/actions/{action_id}"
    with httpx.Client(base_url=site.server.url, timeout=20) as olga:
        sign_in(olga, site.server, "olga", PASSWORD)
        olga.cookies.set("fb_lang", "ru")
        shown = olga.get(page)
        assert 'id="callback-form"' in shown.text and "Обратный звонок" in shown.text
        assert "Попыток связаться с автором отзыва пока не записано." in shown.text
        # Without its CSRF token the form is refused and nothing is recorded.
        assert olga.post(f"{page}/callbacks", data={"outcome": "reached"}).status_code == 403
        token = csrf_token(olga, page)
        unchosen = olga.post(f"{page}/callbacks", data={"_csrf_token": token, "outcome": ""})
        assert unchosen.status_code == 400 and "Выберите итог звонка." in unchosen.text
        assert rows(site.org, "SELECT count(*) AS n FROM callback_attempts WHERE action = ?", (action_id,)) == [
            {"n": 0}
        ]

        missed = olga.post(f"{page}/callbacks", data={"_csrf_token": token, "outcome": "not_reached", "note": "занято"})
        assert missed.status_code == 303 and missed.headers["location"].startswith(f"{page}?called=1")
        after = olga.get(f"{page}?called=1")
        assert "Звонок записан." in after.text and f"1 из {TRIES}" in after.text
        assert "Не дозвонились (нет ответа, занято, неверный номер)" in after.text and "занято" in after.text
        reached = olga.post(f"{page}/callbacks", data={"_csrf_token": csrf_token(olga, page), "outcome": "reached"})
        assert reached.status_code == 303
        final = olga.get(page)
        assert "Связались" in final.text and 'id="callback-form"' not in final.text
        again = olga.post(f"{page}/callbacks", data={"_csrf_token": csrf_token(olga, page), "outcome": "declined"})
        assert again.status_code == 409 and "По этому обратному звонку уже есть итог" in again.text

        # The section in the other languages.
        for lang, heading in (("vi", "Gọi lại"), ("zh", "回访"), ("en", "Call-back")):
            olga.cookies.set("fb_lang", lang)
            assert f'<h2 id="act-callback-h">{heading}</h2>' in olga.get(page).text
    stored = rows(
        site.org, "SELECT via, outcome, actor, note FROM callback_attempts WHERE action = ? ORDER BY id", (action_id,)
    )
    assert stored == [
        {"via": "phone", "outcome": "not_reached", "actor": "olga", "note": "занято"},
        {"via": "phone", "outcome": "reached", "actor": "olga", "note": None},
    ]

    # A manager of another unit is refused.
    with httpx.Client(base_url=site.server.url, timeout=20) as mai:
        sign_in(mai, site.server, "mai", PASSWORD)
        other = callback_action(site)
        refused = mai.post(
            f"/manage/actions/{other}/callbacks",
            data={"_csrf_token": csrf_token(mai, "/manage/actions"), "outcome": "reached"},
        )
        assert refused.status_code == 403
    assert rows(site.org, "SELECT count(*) AS n FROM callback_attempts WHERE action = ?", (other,)) == [{"n": 0}]


def test_the_call_back_section_in_chromium_in_each_language(site: Site, browser: Any) -> None:
    assert AXE.exists(), "run `npm install` in tests/browser"
    action_id = callback_action(site)
    assert site.attempt(action_id, via="sms", outcome="not_reached", note="Доставка не удалась").status_code == 201
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    try:
        sign_in(page, site.server, "olga", PASSWORD)
        ARTIFACTS.mkdir(exist_ok=True)
        for lang in ("vi", "ru", "zh", "en"):  # each page loaded once, laid out again at each width
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{site.server.url}/manage/actions/{action_id}?lang={lang}")
            for width in (1280, 320):
                resize(page, width, 900)
                assert page.locator("#act-callback-h").is_visible()
                assert page.evaluate("() => document.documentElement.scrollWidth") <= width, (lang, width)
                assert axe_violations(page) == [], (lang, width)
                suffix = "-320" if width == 320 else ""
                save_screenshot(page, ARTIFACTS / f"manage-action-callback-{lang}{suffix}.png")
        # The form, as a person uses it: the outcome chosen by its label, then the button.
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_label("Outcome").select_option("declined")
        with page.expect_navigation():
            page.get_by_role("button", name="Record the call").click()
        assert page.locator(".act-callback-done").is_visible()
        assert page.locator(".act-callback-state").inner_text() == "Declined"
    finally:
        context.close()
    assert callback_state(site, action_id) == {"state": "declined", "tries": 1}


# -- mail ----------------------------------------------------------------------------------------------------------


def callback_state(site: Site, action_id: int) -> dict[str, Any] | None:
    found = rows(site.org, "SELECT state, tries FROM callbacks WHERE action = ?", (action_id,))
    return found[0] if found else None


@pytest.mark.postgres_covered_elsewhere
def test_a_delivered_call_back_mail_records_reached_and_a_refused_one_not_reached(site: Site) -> None:
    delivered = callback_action(site, "Иван, ivan.petrov@example.org")
    refused = callback_action(site, "nobody@example.org")
    site.close(delivered)
    site.close(refused)

    poll_until(lambda: callback_state(site, delivered) == {"state": "reached", "tries": 0}, what="reached by mail")
    [mail] = site.sink.to("ivan.petrov@example.org")
    assert "Что сделано по вашему отзыву" in mail["Subject"]
    [attempt] = site.detail(delivered)["callback"]["attempts"]
    assert (attempt["via"], attempt["outcome"], attempt["by"], attempt["note"]) == ("mail", "reached", "system", None)

    # The address refused for good: the mail is given up, one try that did not reach (of TRIES).
    poll_until(lambda: callback_state(site, refused) == {"state": "pending", "tries": 1}, what="given up by mail")
    [attempt] = site.detail(refused)["callback"]["attempts"]
    assert (attempt["via"], attempt["outcome"], attempt["by"]) == ("mail", "not_reached", "system")
    assert "nobody" not in json.dumps(rows(site.org, "SELECT * FROM callback_attempts WHERE action = ?", (refused,)))
    assert site.sink.to("nobody@example.org") == []


# -- the rate ---------------------------------------------------------------------------------------------------------


def test_the_call_back_rate_counts_only_those_reached(site: Site) -> None:
    today = datetime.now(SAKHALIN).date()

    def at(days_ago: int, zone: ZoneInfo = SAKHALIN) -> datetime:
        return datetime.combine(today - timedelta(days=days_ago), time(10), zone).astimezone(UTC)

    def history(conn: Connection, snapshot: Any) -> None:
        def opened(key: str, days_ago: int, due: date, unit: str = "B") -> int:
            request = ActionRequest(
                kind="callback", source_key=f"rate:{key}", unit=unit, title=key, due=due.isoformat()
            )
            zone = SAKHALIN if unit == "B" else HCM
            return actions.open_action(conn, request, snapshot=snapshot, now=at(days_ago, zone))["id"]

        due = today - timedelta(days=5)
        reached = opened("reached", 15, due)
        callbacks.record_attempt(conn, reached, via="phone", outcome="reached", by="olga", at=at(12))
        declined = opened("declined", 15, due)
        callbacks.record_attempt(conn, declined, via="phone", outcome="declined", by="olga", at=at(11))
        missed = opened("not-reached", 15, due)
        # Outside a server the setting comes from this process's environment: the default, 3 tries.
        for days_ago in (12, 11, 10):
            callbacks.record_attempt(conn, missed, via="phone", outcome="not_reached", by="olga", at=at(days_ago))
        opened("not-due-yet", 3, today + timedelta(days=5))  # pending before its due day: not counted yet
        opened("overdue", 15, due, unit="A1a")  # pending past its due day: counts against

    site.database(history)
    period = {"from": (today - timedelta(days=20)).isoformat(), "to": (today - timedelta(days=1)).isoformat()}
    total = site.api("GET", "/api/v1/kpis", params={"unit": "B", **period}).json()["total"]
    counted = ("callbacks", "callbacks_reached", "callbacks_declined", "callbacks_not_reached", "callbacks_overdue")
    assert tuple(total[k] for k in counted) == (3, 1, 1, 1, 0)
    assert total["callback_rate"] == pytest.approx(1 / 3)
    assert total["callback_ci95"] == pytest.approx(list(wilson(1, 3)))
    a1a = site.api("GET", "/api/v1/kpis", params={"unit": "A1a", **period}).json()["total"]
    assert (a1a["callbacks"], a1a["callbacks_overdue"], a1a["callback_rate"]) == (1, 1, 0.0)

    # An objective on the call-back rate is judged on the same definition.
    created = site.api(
        "POST",
        "/api/v1/objectives",
        json={
            "unit": "B",
            "metric": "callback_rate",
            "target": 0.9,
            "min_n": 1,
            "period": "rolling_30",
            "valid_from": (today - timedelta(days=25)).isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    reply = site.api("GET", f"/api/v1/objectives/{created.json()['id']}/status", params={"at": period["to"]})
    doc = reply.json()
    assert (doc["n"], doc["successes"], doc["value"]) == (3, 1, pytest.approx(1 / 3))
    assert doc["ci95"] == pytest.approx(list(wilson(1, 3)))
    assert doc["status"] == "breached"  # the whole interval (6.1 % to 79.2 %) is under 90 %
