"""SMS end to end on both backends: a real gateway server on 127.0.0.1 (http.server, capturing what it is
sent), the real server and `feedback tick`: invitations with their signed link and one response each,
replies by SMS through the one ingest path, the gateway's signature, STOP, one invitation per number and
day under concurrency, scope, the number's retention, retries while the gateway is down, call-back
messages of closed actions, the template variant and the `sms_gateway` hook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from feedback import invitations, outbox, sms
from feedback.errors import InvalidInput
from feedback.phones import find_phone, normalise_phone, phone_key
from feedback.settings import SettingsError, load_settings
from feedback_plugins.sms import HttpGateway, parse_template
from tests.conftest import (
    BOTH_BACKENDS,
    ROOT,
    Org,
    Server,
    auth_header,
    poll_until,
    rows,
    run_cli,
    wait_for_dispatch,
)

pytestmark = BOTH_BACKENDS

SMS_TOKEN = "gateway-token-1"
SMS_SECRET = "inbound-secret-1"
LINK = re.compile(r"https?://\S+/i/([A-Za-z0-9_-]{20})")
VASH_LOW = {"service_time": 2, "waiting_time": 3, "staff_courtesy": 5, "premises": 4, "information": 4}


class Gateway:
    """An SMS gateway on 127.0.0.1 that keeps every request; it can answer the next N with a 503."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.refuse_next = 0  # answered 400: the message is given up at once
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with gateway.lock:
                    failing, refusing = gateway.fail_next > 0, gateway.fail_next <= 0 < gateway.refuse_next
                    if failing:
                        gateway.fail_next -= 1
                    elif refusing:
                        gateway.refuse_next -= 1
                    else:
                        gateway.requests.append({"path": self.path, "headers": self.headers, "body": body})
                self.send_response(503 if failing else 400 if refusing else 202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self) -> list[dict[str, Any]]:
        """Every message as the default JSON body, with its request beside it."""
        with self.lock:
            taken = list(self.requests)
        found = []
        for request in taken:
            if request["headers"].get("content-type", "").startswith("application/json"):
                found.append({**json.loads(request["body"]), "request": request})
        return found

    def to(self, phone: str) -> list[dict[str, Any]]:
        return [message for message in self.messages() if message["to"] == phone]

    def wait_for(self, phone: str, count: int = 1) -> list[dict[str, Any]]:
        return poll_until(lambda: len(self.to(phone)) >= count and self.to(phone), what=f"{count} SMS to {phone}")

    def only_message_to(self, phone: str, org: Org) -> dict[str, Any]:
        """The one message to `phone`, checked once the outbox row that sent it is recorded as delivered or
        given up: a message goes out before its row is recorded, so no copy of it can come later."""
        first = self.wait_for(phone)[0]
        row_id = int(first["id"].partition(".")[0])  # `sms.message_id`: the row's id, then its key's hash
        done = "SELECT 1 FROM outbox WHERE id = ? AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)"
        poll_until(lambda: rows(org, done, (row_id,)), what=f"the outbox row of the SMS to {phone} recorded")
        [message] = self.to(phone)
        return message

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gateway(backend: str):
    """One per backend's run of the module: the same numbers are invited on each."""
    found = Gateway()
    yield found
    found.stop()


def sms_env(gateway: Gateway, **extra: str) -> dict[str, str]:
    return {
        "FEEDBACK_SMS_URL": gateway.url,
        "FEEDBACK_SMS_TOKEN": SMS_TOKEN,
        "FEEDBACK_SMS_SECRET": SMS_SECRET,
        **extra,
    }


@pytest.fixture(scope="module")
def server(shared_org: Org, gateway: Gateway):
    srv = Server(shared_org.db, env=sms_env(gateway)).start()
    yield srv
    srv.stop()


def invite(server: Server, org: Org, phone: str, token: str = "manager_a1", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/invitations",
        json={"touchpoint": "tp-a1", "phone": phone, **body},
        headers=auth_header(org.tokens[token]),
        timeout=30,
    )


def signed(body: Any, secret: str = SMS_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"content-type": "application/json", "X-Feedback-Signature": signature}


def inbound(server: Server, body: Any) -> httpx.Response:
    raw, headers = signed(body)
    return httpx.post(f"{server.url}/api/v1/sms/inbound", content=raw, headers=headers, timeout=30)


def invitation(org: Org, invitation_id: str) -> dict[str, Any]:
    [row] = rows(org, "SELECT * FROM sms_invitations WHERE id = ?", (invitation_id,))
    return row


def response(org: Org, response_id: str) -> list[dict[str, Any]]:
    return rows(org, "SELECT * FROM responses WHERE id = ?", (response_id,))


def form_id_of(page: str) -> str:
    return re.search(r'name="form_id" value="([^"]+)"', page).group(1)


# -- invitations ---------------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_an_invitation_goes_to_the_gateway_with_its_token_as_json(server: Server, shared_org: Org, gateway) -> None:
    reply = invite(server, shared_org, "+84 900 000 001", case_ref="HS-001", lang="vi")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert set(body) == {"id", "touchpoint", "lang", "case_ref", "expires_at"}
    assert (body["touchpoint"], body["lang"], body["case_ref"]) == ("tp-a1", "vi", "HS-001")
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    message = gateway.only_message_to("+84900000001", shared_org)
    request = message["request"]
    assert request["path"] == "/send"
    assert request["headers"]["authorization"] == f"Bearer {SMS_TOKEN}"
    assert set(message) - {"request"} == {"to", "text", "id"}
    assert message["text"].startswith("Đơn vị A1: Ông/Bà có hài lòng")
    [code] = LINK.findall(message["text"])
    assert invitations.invitation_id_of("test-secret", code) == body["id"]
    # The outbox row names the invitation, never the number; the invitation holds it while it is open.
    # The gateway has the message before the sender records its delivery: wait for the record.
    [row] = poll_until(
        lambda: [
            r
            for r in rows(
                shared_org,
                "SELECT target, payload, delivered_at FROM outbox WHERE channel = 'sms' AND dedupe_key = ?",
                (f"invitation:{body['id']}",),
            )
            if r["delivered_at"]
        ],
        what="the delivery recorded",
    )
    assert row["target"] == f"invitation:{body['id']}" and "900000001" not in row["payload"]
    # Delivered: the number goes in that write (a reply is matched by its keyed hash), the invitation stays open.
    found = invitation(shared_org, body["id"])
    assert found["phone"] is None and found["phone_key"] and found["answered_at"] is None
    assert "+84900000001" not in server.log.read_text()
    # The audit log has the invitation, without the number or the case.
    [entry] = rows(shared_org, "SELECT * FROM audit_log WHERE kind = 'invitation' AND record_id = ?", (body["id"],))
    assert "900000001" not in entry["change"] and "HS-001" not in entry["change"] and entry["unit"] == "A1"


def test_the_link_opens_the_survey_for_the_case_and_takes_one_response(
    server: Server, shared_org: Org, gateway
) -> None:
    reply = invite(server, shared_org, "+84900000002", case_ref="HS-002")
    assert reply.status_code == 201, reply.text
    invited = reply.json()
    message = gateway.only_message_to("+84900000002", shared_org)
    link = LINK.search(message["text"]).group(0)
    with httpx.Client(timeout=30) as browser:
        page = browser.get(link)
        assert page.status_code == 200 and "HS-002" in page.text
        response_id = invitations.response_id(invited["id"])
        assert form_id_of(page.text) == response_id
        # Every view carries the same form id: a second tab is still the same response.
        assert form_id_of(browser.get(link + "?lang=ru").text) == response_id
        form = {"form_id": response_id, "lang": "vi", "q.overall": "4", "case_ref": "FORGED", "case_sig": "x"}
        first = browser.post(link, data=form)
        assert first.status_code == 201, first.text
        again = browser.post(link, data=form)
        assert again.status_code == 200  # the same answer again: stored once
        other = browser.post(link, data={**form, "q.overall": "1"})
        assert other.status_code == 409  # other answers: the first stays
        # A form posted under another id, through the link, is still the invitation's one response.
        assert browser.post(link, data={**form, "form_id": str(uuid.uuid4())}).status_code == 200
        assert browser.get(link).status_code == 200  # answered: a thank-you page, no form
        assert 'name="form_id"' not in browser.get(link).text
    [stored] = response(shared_org, response_id)
    assert (stored["channel"], stored["case_ref"], stored["case_verified"], stored["touchpoint"]) == (
        "sms",
        "HS-002",
        1,
        "tp-a1",
    )
    assert json.loads(stored["answers"]) == {"overall": 4}
    found = invitation(shared_org, invited["id"])
    assert found["answered_at"] and found["phone"] is None
    # A reply by SMS now finds no open invitation, and stores nothing.
    answer = inbound(server, {"id": "gw-link-1", "from": "+84900000002", "text": "5"}).json()
    assert answer == {"id": "gw-link-1", "status": "ignored", "reason": "no_open_invitation"}
    assert len(response(shared_org, response_id)) == 1


def test_a_link_this_server_did_not_make_is_not_found(server: Server) -> None:
    assert httpx.get(f"{server.url}/i/AAAAAAAAAAAAAAAAAAAA", timeout=30).status_code == 404
    assert httpx.get(f"{server.url}/i/short", timeout=30).status_code == 404
    assert httpx.post(f"{server.url}/i/AAAAAAAAAAAAAAAAAAAA", data={"q.overall": "5"}, timeout=30).status_code == 404


# -- replies -----------------------------------------------------------------------------------------------


def test_a_one_digit_reply_is_the_primary_rating_and_a_replay_is_stored_once(
    server: Server, shared_org: Org, gateway
) -> None:
    # Ваш контроль asks five criteria; a reply answers the primary one alone.
    reply = invite(server, shared_org, "+79140000003", token="admin", touchpoint="tp-b", case_ref="ДТ-3", lang="ru")
    assert reply.status_code == 201, reply.text
    invited = reply.json()
    message = gateway.only_message_to("+79140000003", shared_org)
    assert message["text"].startswith("Пост Б: довольны ли вы нашим обслуживанием?")
    before = rows(shared_org, "SELECT count(*) AS n FROM responses")[0]["n"]

    body = {"id": "gw-3", "from": "79140000003", "text": " 4 "}
    answer = inbound(server, body)
    assert answer.status_code == 200, answer.text
    response_id = invitations.response_id(invited["id"])
    assert answer.json() == {"id": "gw-3", "status": "stored", "response": response_id}
    [stored] = response(shared_org, response_id)
    assert (stored["channel"], stored["case_ref"], stored["case_verified"], stored["lang"]) == ("sms", "ДТ-3", 1, "ru")
    assert json.loads(stored["answers"]) == {"service_time": 4}
    found = invitation(shared_org, invited["id"])
    assert found["answered_at"] and found["phone"] is None

    # The gateway delivers the same message again: the same answer, nothing stored twice.
    again = inbound(server, body)
    assert again.status_code == 200 and again.json() == answer.json()
    assert rows(shared_org, "SELECT count(*) AS n FROM responses")[0]["n"] == before + 1
    assert rows(shared_org, "SELECT count(*) AS n FROM sms_inbound WHERE id = 'gw-3'") == [{"n": 1}]
    # A later reply from the number finds the invitation answered.
    later = inbound(server, {"id": "gw-3b", "from": "+79140000003", "text": "5"}).json()
    assert later["status"] == "ignored"
    assert json.loads(response(shared_org, response_id)[0]["answers"]) == {"service_time": 4}


def test_replies_that_are_no_rating_are_ignored_and_not_retried(server: Server, shared_org: Org, gateway) -> None:
    assert invite(server, shared_org, "+84900000004").status_code == 201
    gateway.wait_for("+84900000004")
    for message_id, text, reason in (
        ("gw-4a", "Thanks!", "not_a_rating"),
        ("gw-4b", "9", "not_a_rating"),
        ("gw-4c", "0", "not_a_rating"),
        ("gw-4d", "45", "not_a_rating"),
    ):
        answer = inbound(server, {"id": message_id, "from": "+84900000004", "text": text})
        assert answer.status_code == 200 and answer.json() == {"id": message_id, "status": "ignored", "reason": reason}
    unknown = inbound(server, {"id": "gw-4e", "from": "+84999999999", "text": "3"}).json()
    assert unknown["reason"] == "no_open_invitation"
    # A full-width digit is a digit.
    assert inbound(server, {"id": "gw-4f", "from": "+84900000004", "text": "４"}).json()["status"] == "stored"
    # A body that is no message of the gateway's is a 400 naming the field (the gateway is misconfigured).
    assert inbound(server, {"id": "gw-4g", "from": "12", "text": "3"}).json()["field"] == "from"
    assert inbound(server, {"from": "+84900000004", "text": "3"}).json()["field"] == "id"
    assert inbound(server, ["not", "an", "object"]).json()["field"] == "body"


def test_a_missing_or_wrong_signature_is_refused(server: Server, shared_org: Org) -> None:
    body = {"id": "gw-sig", "from": "+84900000099", "text": "STOP"}
    raw, headers = signed(body)
    url = f"{server.url}/api/v1/sms/inbound"
    missing = httpx.post(url, content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert missing.status_code == 401 and missing.json()["field"] == "x-feedback-signature"
    wrong_secret = httpx.post(url, content=raw, headers=signed(body, "another-secret")[1], timeout=30)
    assert wrong_secret.status_code == 403
    tampered = httpx.post(url, content=raw.replace(b"STOP", b"5\x20\x20\x20"), headers=headers, timeout=30)
    assert tampered.status_code == 403
    assert rows(shared_org, "SELECT count(*) AS n FROM sms_inbound WHERE id = 'gw-sig'") == [{"n": 0}]


# -- STOP --------------------------------------------------------------------------------------------------


def test_stop_opts_the_number_out_and_erases_it_from_a_pending_invitation(
    server: Server, shared_org: Org, gateway
) -> None:
    phone = "+84900000005"
    gateway.fail_next = 2  # the invitation's SMS is still waiting for a retry (5 s, then 30 s) when STOP comes in
    reply = invite(server, shared_org, phone, case_ref="HS-005")
    assert reply.status_code == 201, reply.text
    key = f"invitation:{reply.json()['id']}"
    poll_until(
        lambda: rows(shared_org, "SELECT 1 FROM outbox WHERE dedupe_key = ? AND attempts > 0", (key,)),
        what="the first attempt failed",
    )
    answer = inbound(server, {"id": "gw-5", "from": phone, "text": "stop"})
    gateway.fail_next = 0
    assert answer.json() == {"id": "gw-5", "status": "opted_out"}
    assert invitation(shared_org, reply.json()["id"])["phone"] is None
    assert rows(shared_org, "SELECT 1 FROM outbox WHERE dedupe_key = ?", (key,)) == []  # withdrawn, never sent
    assert gateway.to(phone) == []
    # No further invitation, whatever day: 409 naming phone (before the one-a-day rule).
    refused = invite(server, shared_org, phone)
    assert refused.status_code == 409 and refused.json()["field"] == "phone", refused.text
    # Other words for STOP.
    for message_id, word in (("gw-5b", "СТОП"), ("gw-5c", "Dừng"), ("gw-5d", "退订")):
        assert inbound(server, {"id": message_id, "from": "+84900000055", "text": word}).json()["status"] == "opted_out"
    assert invite(server, shared_org, "+84900000055").status_code == 409


def test_an_invitation_sms_given_up_erases_the_number(server: Server, shared_org: Org, gateway) -> None:
    gateway.refuse_next = 1  # 400: the gateway will never take it
    reply = invite(server, shared_org, "+84900000012")
    assert reply.status_code == 201, reply.text
    key = f"invitation:{reply.json()['id']}"
    poll_until(
        lambda: rows(shared_org, "SELECT 1 FROM outbox WHERE dedupe_key = ? AND failed_at IS NOT NULL", (key,)),
        what="the SMS given up",
    )
    found = invitation(shared_org, reply.json()["id"])
    assert found["phone"] is None and found["phone_key"]
    assert gateway.to("+84900000012") == []


# -- the rules of inviting ---------------------------------------------------------------------------------------


def test_one_invitation_per_number_a_day_even_when_two_arrive_at_once(server: Server, shared_org: Org) -> None:
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: invite(server, shared_org, "+84900000006"), range(2)))
    assert sorted(reply.status_code for reply in replies) == [201, 429], [r.text for r in replies]
    [refused] = [reply for reply in replies if reply.status_code == 429]
    assert refused.json()["field"] == "phone" and refused.json()["detail"].startswith("phone: ")
    # The same number written otherwise, at another touchpoint: still its second invitation today.
    assert invite(server, shared_org, "0084 900-000-006", touchpoint="tp-a1a").status_code == 429
    key = phone_key("test-secret", "+84900000006")  # the number itself is gone once its SMS is delivered
    assert rows(shared_org, "SELECT count(*) AS n FROM sms_invitations WHERE phone_key = ?", (key,)) == [{"n": 1}]


@pytest.mark.postgres_covered_elsewhere
def test_the_link_is_the_public_urls_never_the_requests_host(
    org: Org, start_server, server: Server, shared_org: Org, gateway
) -> None:
    # Without FEEDBACK_PUBLIC_URL no invitation is sent: its link would name whatever Host the caller sent.
    bare = start_server(org.db, feedback_public_url="", **{k.lower(): v for k, v in sms_env(gateway).items()})
    refused = httpx.post(
        f"{bare.url}/api/v1/invitations",
        json={"touchpoint": "tp-a1", "phone": "+84900000013"},
        headers={**auth_header(org.tokens["manager_a1"]), "Host": "phish.example"},
        timeout=30,
    )
    assert refused.status_code == 503 and refused.json()["field"] == "public_url", refused.text
    assert rows(org, "SELECT count(*) AS n FROM sms_invitations") == [{"n": 0}]
    # With it, a forged Host changes nothing.
    reply = httpx.post(
        f"{server.url}/api/v1/invitations",
        json={"touchpoint": "tp-a1", "phone": "+84900000014"},
        headers={**auth_header(shared_org.tokens["manager_a1"]), "Host": "phish.example"},
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    message = gateway.only_message_to("+84900000014", shared_org)
    assert LINK.search(message["text"]).group(0).startswith(f"{server.url}/i/")
    assert "phish.example" not in message["text"]


def test_invitations_are_scoped_and_checked(server: Server, shared_org: Org) -> None:
    outside = invite(server, shared_org, "+84900000007", touchpoint="tp-b")  # lan manages A1, not B
    assert outside.status_code == 403 and outside.json()["field"] == "unit"
    viewer = invite(server, shared_org, "+84900000007", token="viewer_b", touchpoint="tp-b")
    assert viewer.status_code == 403 and viewer.json()["field"] == "role"
    unknown = invite(server, shared_org, "+84900000007", touchpoint="nowhere")
    assert unknown.status_code == 404 and unknown.json()["field"] == "touchpoint"
    for phone in ("0912345678", "+84 12", "+84 912 345 678 901 234", "+84abc1234567", "phone"):
        bad = invite(server, shared_org, phone)
        assert bad.status_code == 400 and bad.json()["field"] == "phone", (phone, bad.text)
    assert invite(server, shared_org, "+84900000007", lang="fr").json()["field"] == "lang"
    assert invite(server, shared_org, "+84900000007", case_ref="a\nb").json()["field"] == "case_ref"
    assert invite(server, shared_org, "+84900000007", colour="red").status_code == 400
    no_token = httpx.post(f"{server.url}/api/v1/invitations", json={"touchpoint": "tp-a1", "phone": "+84900000007"})
    assert no_token.status_code == 401
    key = phone_key("test-secret", "+84900000007")
    assert rows(shared_org, "SELECT count(*) AS n FROM sms_invitations WHERE phone_key = ?", (key,)) == [{"n": 0}]


# -- call-back messages -------------------------------------------------------------------------------------------


def low_rating_with_contact(server: Server, org: Org, contact: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A low Ваш контроль rating with a consented contact at tp-b, and the action it opened."""
    stored = httpx.post(
        f"{server.url}/api/v1/responses",
        json={"touchpoint": "tp-b", "lang": "ru", "answers": {**VASH_LOW, "contact": contact}},
        timeout=30,
    ).json()
    admin = auth_header(org.tokens["admin"])
    [action] = [
        a
        for a in httpx.get(f"{server.url}/api/v1/actions", params={"unit": "B"}, headers=admin, timeout=30).json()
        if a["response_id"] == stored["id"]
    ]
    return stored, action


@pytest.mark.parametrize(
    ("contact", "guesses"),
    [
        ("Lan, chiều 14/03/2026 15:30, 0912 345 678", ["+1403202615", "+14032026153", "+912345678"]),
        ("912 345 678", ["+912345678"]),
        ("Иван 8 914 555 00 11", ["+89145550011", "+79145550011"]),
    ],
)
def test_no_call_back_sms_to_a_number_without_its_country_code(
    server: Server, shared_org: Org, gateway, contact: str, guesses: list[str]
) -> None:
    stored, action = low_rating_with_contact(server, shared_org, contact)
    close_action(server, shared_org, action["id"])
    # Nothing to send to: the contact is purged when the action closes, and no SMS is queued.
    poll_until(lambda: not rows(shared_org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],)))
    assert rows(shared_org, "SELECT 1 FROM outbox WHERE dedupe_key = ?", (f"callback:{stored['id']}",)) == []
    assert [message for message in gateway.messages() if message["to"] in guesses] == []


def test_a_call_back_sms_when_the_action_closes(server: Server, shared_org: Org, gateway) -> None:
    stored, action = low_rating_with_contact(server, shared_org, "Иван, +7 914 555-00-11")
    admin = auth_header(shared_org.tokens["admin"])
    steps = [
        {"type": "verifying"},
        {"type": "corrected", "correction": "Перераспределили операторов"},
        {"type": "implemented", "action_taken": "Открыли второе окно приёма"},
        {"type": "effectiveness_review"},
    ]
    for step in steps:
        reply = httpx.post(f"{server.url}/api/v1/actions/{action['id']}/events", json=step, headers=admin, timeout=30)
        assert reply.status_code == 201, reply.text
    wait_for_dispatch(shared_org)
    assert gateway.to("+79145550011") == []  # nothing before the action closes
    closed = httpx.post(
        f"{server.url}/api/v1/actions/{action['id']}/events",
        json={"type": "closed", "result": "Очередь сократилась до 10 минут"},
        headers=admin,
        timeout=30,
    )
    assert closed.status_code == 201, closed.text
    message = gateway.only_message_to("+79145550011", shared_org)
    assert message["text"] == (
        f"Пост Б: мы рассмотрели ваш отзыв (номер {stored['receipt']}), дело закрыто."
        " Что сделано: Очередь сократилась до 10 минут. Спасибо."
    )
    poll_until(lambda: not rows(shared_org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],)))
    attempts = poll_until(
        lambda: rows(shared_org, "SELECT via, outcome, actor FROM callback_attempts WHERE action = ?", (action["id"],))
    )
    assert attempts == [{"via": "sms", "outcome": "reached", "actor": "system"}]
    [row] = rows(shared_org, "SELECT target, payload FROM outbox WHERE dedupe_key = ?", (f"callback:{stored['id']}",))
    assert row["target"] == "(purged)" and "Очередь" not in row["payload"]
    # No mail for it: the contact held no address (asked once the mail plugin has seen every event).
    wait_for_dispatch(shared_org)
    assert (
        rows(
            shared_org, "SELECT 1 FROM outbox WHERE channel = 'mail' AND dedupe_key = ?", (f"callback:{stored['id']}",)
        )
        == []
    )


def close_action(server: Server, org: Org, action_id: int) -> None:
    admin = auth_header(org.tokens["admin"])
    steps = [
        {"type": "verifying"},
        {"type": "corrected", "correction": "Ок"},
        {"type": "implemented", "action_taken": "Ок"},
        {"type": "effectiveness_review"},
        {"type": "closed", "result": "Ок"},
    ]
    for step in steps:
        reply = httpx.post(f"{server.url}/api/v1/actions/{action_id}/events", json=step, headers=admin, timeout=30)
        assert reply.status_code == 201, reply.text


def callback_on(server: Server, org: Org, action_id: int) -> dict[str, Any]:
    reply = httpx.get(f"{server.url}/api/v1/actions/{action_id}", headers=auth_header(org.tokens["admin"]), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["callback"]


def test_a_call_back_sms_the_outbox_gives_up_after_its_tries_is_not_reached_on_the_action(
    server: Server, shared_org: Org, gateway
) -> None:
    stored, action = low_rating_with_contact(server, shared_org, "Пётр, +7 914 555-00-22")
    key = f"callback:{stored['id']}"
    store = server.app.state.store
    gateway.fail_next = outbox.MAX_ATTEMPTS + 5  # 503 to every try
    try:
        close_action(server, shared_org, action["id"])
        poll_until(lambda: rows(shared_org, "SELECT 1 FROM outbox WHERE dedupe_key = ? AND attempts > 0", (key,)))
        # Each later try at its time, as the delivery job would make it (on the server's own loop).
        for _ in range(outbox.MAX_ATTEMPTS):
            [row] = rows(shared_org, "SELECT next_attempt_at, failed_at FROM outbox WHERE dedupe_key = ?", (key,))
            if row["failed_at"]:
                break
            due = datetime.fromisoformat(row["next_attempt_at"]) + timedelta(seconds=1)
            tried = asyncio.run_coroutine_threadsafe(sms.deliver(store, due, sms.current_settings(store)), server._loop)
            tried.result(30)
    finally:
        gateway.fail_next = 0
    [row] = rows(shared_org, "SELECT attempts, failed_at, target FROM outbox WHERE dedupe_key = ?", (key,))
    assert (row["attempts"], row["target"]) == (outbox.MAX_ATTEMPTS, "(purged)") and row["failed_at"]
    attempts = poll_until(
        lambda: rows(shared_org, "SELECT via, outcome, actor FROM callback_attempts WHERE action = ?", (action["id"],)),
        what="the call-back recorded",
    )
    assert attempts == [{"via": "sms", "outcome": "not_reached", "actor": "system"}]
    assert gateway.to("+79145550022") == []
    assert rows(shared_org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],)) == []
    callback = callback_on(server, shared_org, action["id"])
    assert [(a["via"], a["outcome"]) for a in callback["attempts"]] == [("sms", "not_reached")]
    assert callback["state"] == "pending" and callback["tries"] == 1  # one of FEEDBACK_CALLBACK_TRIES


def test_a_call_back_to_a_number_that_sent_stop_is_declined_on_the_action(
    server: Server, shared_org: Org, gateway
) -> None:
    phone = "+79145550033"
    assert inbound(server, {"id": "gw-cb-stop", "from": phone, "text": "STOP"}).json()["status"] == "opted_out"
    stored, action = low_rating_with_contact(server, shared_org, f"Ольга, {phone}")
    close_action(server, shared_org, action["id"])
    attempts = poll_until(
        lambda: rows(shared_org, "SELECT via, outcome, actor FROM callback_attempts WHERE action = ?", (action["id"],)),
        what="the call-back recorded",
    )
    assert attempts == [{"via": "sms", "outcome": "declined", "actor": "system"}]
    callback = callback_on(server, shared_org, action["id"])
    assert callback["state"] == "declined" and callback["settled_at"]
    assert rows(shared_org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],)) == []
    assert rows(shared_org, "SELECT 1 FROM outbox WHERE dedupe_key = ?", (f"callback:{stored['id']}",)) == []
    assert gateway.to(phone) == []
    # Final: a person cannot record another attempt on it.
    later = httpx.post(
        f"{server.url}/api/v1/actions/{action['id']}/callbacks",
        json={"via": "phone", "outcome": "reached"},
        headers=auth_header(shared_org.tokens["admin"]),
        timeout=30,
    )
    assert later.status_code == 409, later.text


# -- retries, retention, the template, the hook ---------------------------------------------------------------


def tick(org: Org, now: datetime, job: str, env: dict[str, str]) -> None:
    result = run_cli(
        "tick",
        "--db",
        str(org.db),
        "--now",
        now.isoformat(),
        "--job",
        job,
        env={"FEEDBACK_SECRET": "test-secret", **env},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.postgres_covered_elsewhere
def test_while_the_gateway_is_down_the_sms_waits_and_the_number_goes_when_it_is_done(
    org: Org, start_server, gateway
) -> None:
    env = sms_env(gateway, FEEDBACK_JOBS="0")
    server = start_server(org.db, **{k.lower(): v for k, v in env.items()})
    gateway.fail_next = 1
    reply = invite(server, org, "+84900000008", case_ref="HS-008")
    assert reply.status_code == 201, reply.text
    invited = reply.json()
    key = f"invitation:{invited['id']}"
    [failed] = poll_until(
        lambda: rows(
            org, "SELECT attempts, last_error, delivered_at FROM outbox WHERE dedupe_key = ? AND attempts = 1", (key,)
        ),
        what="the first attempt",
    )
    assert "503" in failed["last_error"] and failed["delivered_at"] is None
    server.stop()
    now = datetime.now(UTC)
    tick(org, now + timedelta(minutes=1), "sms.deliver", env)  # past the first backoff
    message = gateway.only_message_to("+84900000008", org)
    assert LINK.search(message["text"])
    assert rows(org, "SELECT attempts FROM outbox WHERE dedupe_key = ? AND delivered_at IS NOT NULL", (key,)) == [
        {"attempts": 2}
    ]
    # Delivered: the number went with it. Open for seven days: the case stays; then it goes, the keyed hash
    # stays for a while.
    assert invitation(org, invited["id"])["phone"] is None
    tick(org, now + timedelta(days=6), "sms.purge", env)
    assert invitation(org, invited["id"])["case_ref"] == "HS-008"
    tick(org, now + timedelta(days=8), "sms.purge", env)
    found = invitation(org, invited["id"])
    assert (found["phone"], found["case_ref"]) == (None, None) and found["phone_key"]
    [entry] = rows(org, "SELECT change FROM audit_log WHERE kind = 'sms'")
    assert json.loads(entry["change"])["after"]["numbers_erased"] == 1
    tick(org, now + timedelta(days=40), "sms.purge", env)
    assert rows(org, "SELECT 1 FROM sms_invitations WHERE id = ?", (invited["id"],)) == []


@pytest.mark.postgres_covered_elsewhere
def test_a_form_template_and_no_inbound_without_a_secret(org: Org, start_server, gateway) -> None:
    server = start_server(org.db, feedback_sms_url=gateway.url, feedback_sms_template="to={to}&body={text}&ref={id}")
    reply = invite(server, org, "+84900000009", lang="en")
    assert reply.status_code == 201, reply.text

    def form_message() -> dict[str, list[str]] | None:
        with gateway.lock:
            for request in gateway.requests:
                fields = parse_qs(request["body"].decode())
                if fields.get("to") == ["+84900000009"]:
                    return {"headers": request["headers"], **fields}
        return None

    found = poll_until(form_message, what="the form-encoded SMS")
    assert found["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert "authorization" not in found["headers"]
    assert found["body"][0].startswith("Unit A1: how satisfied were you with our service?")
    assert found["ref"][0]
    raw, headers = signed({"id": "x", "from": "+84900000009", "text": "5"})
    assert httpx.post(f"{server.url}/api/v1/sms/inbound", content=raw, headers=headers).status_code == 404


@pytest.mark.postgres_covered_elsewhere
def test_hook_sms_gateway(tmp_path: Path, org: Org, start_server, gateway) -> None:
    """A plugin's gateway answers first; the built-in HTTP gateway, configured too, is not used."""
    sent = tmp_path / "sent.jsonl"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "file_gateway.py").write_text(
        textwrap.dedent(
            f"""
            import json

            from feedback import hookimpl


            class FileGateway:
                async def send(self, to, text, message_id):
                    with open({str(sent)!r}, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps({{"to": to, "text": text, "id": message_id}}) + "\\n")


            @hookimpl
            def sms_gateway(settings):
                return FileGateway()
            """
        ),
        encoding="utf-8",
    )
    server = start_server(org.db, feedback_plugins_dir=str(folder), feedback_sms_url=gateway.url)
    assert invite(server, org, "+84900000010", lang="zh").status_code == 201
    line = poll_until(lambda: sent.exists() and sent.read_text(encoding="utf-8"), what="the plugin's gateway")
    message = json.loads(line)
    assert message["to"] == "+84900000010" and message["text"].startswith("Unit A1：您对我们的服务满意吗？")
    assert gateway.to("+84900000010") == []


# -- no server needed ------------------------------------------------------------------------------------------


def test_numbers_are_taken_in_international_form_only() -> None:
    assert normalise_phone("+84 (912) 345-678") == "+84912345678"
    assert normalise_phone("0084912345678") == "+84912345678"
    # What a gateway reports as the sender may lack the +; what a person typed may not.
    assert normalise_phone("84912345678", "from", prefixed=False) == "+84912345678"
    for bad in (
        "84912345678",
        "912 345 678",
        "0912345678",
        "+0912345678",
        "+8491234",
        "+849123456789012345",
        "+84 912 ABC",
        "٠١٢٣٤٥٦٧٨٩",
    ):
        with pytest.raises(InvalidInput, match="^phone: "):
            normalise_phone(bad)
    assert find_phone("Иван Петров, +7 914 123-45-67, после 18:00") == "+79141234567"
    assert find_phone("Lan, 14/03/2026 15:30, 0084 912 345 678") == "+84912345678"
    assert find_phone("+84 912 345 678 / +84-912-345-678") == "+84912345678"  # one number written twice
    for nothing in (
        "ivan.petrov@example.org",
        "Lan, chiều 14/03/2026 15:30, 0912 345 678",  # a date, a time and a national number
        "912 345 678",
        "Иван 8 914 555 00 11",
        "8 914 0079 145 550",  # a 00 inside a longer run of digits is no prefix
        "+84912345678 or +84900000001",  # two numbers: which is the respondent's is a guess
        None,
    ):
        assert find_phone(nothing) is None, nothing


def test_templates_and_gateway_urls_are_checked() -> None:
    json_template = parse_template('{"msisdn": "{to}", "message": "{text}", "ref": "{id}"}')
    body = json_template.render({"to": "+84900000000", "text": 'Say "hi"\nnow', "id": "7.ab"})
    assert json.loads(body) == {"msisdn": "+84900000000", "message": 'Say "hi"\nnow', "ref": "7.ab"}
    form = parse_template("to={to}&text={text}")
    assert parse_qs(form.render({"to": "+84900000000", "text": "a&b=c ё", "id": "1"}).decode()) == {
        "to": ["+84900000000"],
        "text": ["a&b=c ё"],
    }
    with pytest.raises(ValueError, match=r"unknown placeholder \{phone\}"):
        parse_template("to={phone}")
    with pytest.raises(ValueError, match="not JSON"):
        parse_template('{"to": {to}}')
    with pytest.raises(ValueError, match="not JSON"):  # a message id is no JSON number
        parse_template('{"to": "{to}", "text": "{text}", "ref": {id}}')
    for url in ("file:///etc/passwd", "ftp://gateway.example.org/", "gateway.example.org/send"):
        with pytest.raises(SettingsError, match="^FEEDBACK_SMS_URL: "):
            load_settings({"FEEDBACK_SMS_URL": url, "FEEDBACK_SECRET": "s"})
    with pytest.raises(SettingsError, match="^FEEDBACK_SMS_INVITATION_DAYS: "):
        load_settings({"FEEDBACK_SMS_INVITATION_DAYS": "0", "FEEDBACK_SECRET": "s"})


def test_the_gateways_answer_is_read_only_so_far() -> None:
    """A gateway that answers 202 with an endless body: the status is taken after a few KiB, not after the
    whole body (which would fill memory, or here wait for the timeout and count as a failure)."""
    release = threading.Event()

    class Endless(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(202)
            self.send_header("content-length", str(1 << 30))
            self.end_headers()
            self.wfile.write(b"x" * (256 * 1024))
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *args: Any) -> None:
            pass

    endless = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    endless.daemon_threads = True
    threading.Thread(target=endless.serve_forever, daemon=True).start()
    try:
        gateway = HttpGateway(f"http://127.0.0.1:{endless.server_port}/send", "", None)
        started = time.monotonic()
        asyncio.run(gateway.send("+84900000000", "text", "1.a"))
        assert time.monotonic() - started < 5
    finally:
        release.set()
        endless.shutdown()
        endless.server_close()


def test_every_sms_text_is_translated() -> None:
    ids: set[str] = set()
    for source in ("feedback/sms_texts.py", "feedback/web/invitation_page.py"):
        ids |= {message for _, message, _, _ in extract_from_file("python", str(ROOT / source), keywords={"_": None})}
    assert len(ids) >= 10
    for folder in ("vi", "ru", "zh_Hans", "en"):
        with (ROOT / "feedback" / "locales" / folder / "LC_MESSAGES" / "sms.po").open("rb") as handle:
            catalog = read_po(handle)
        present = {message.id for message in catalog if message.id}
        assert ids <= present, (folder, sorted(ids - present))
        if folder != "en":
            assert [m.id for m in catalog if m.id and not m.string] == [], folder
            for message in catalog:
                if message.id and "%(" in message.id:
                    names = set(re.findall(r"%\((\w+)\)s", message.id))
                    assert set(re.findall(r"%\((\w+)\)s", message.string)) == names, (folder, message.id)
