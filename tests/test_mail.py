"""Mail end to end: a real SMTP server (aiosmtpd) on 127.0.0.1, the real server and `feedback tick`, events
from the real APIs: action mails to owners in their language, the weekly digest, the call-back with the
purge of the respondent's contact, and contact retention."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from feedback import auth
from feedback.db import open_database
from feedback_plugins import LOCALES
from feedback_plugins.mail import parse_smtp_url, send_message, tls_context
from tests.conftest import (
    ROOT,
    Org,
    Server,
    auth_header,
    connect,
    free_port,
    make_org,
    org_on,
    rows,
    run_cli,
    wait_for_dispatch,
)

# SQLite only: what these tests add on PostgreSQL is the store's SQL, which the two-backend modules cover.

HCM = ZoneInfo("Asia/Ho_Chi_Minh")  # units A, A1, A1a
SAKHALIN = ZoneInfo("Asia/Sakhalin")  # unit B


class Sink:
    """An SMTP server that keeps every message; it can answer the next N messages with a 451, and take
    each message `answer_after` seconds before it answers (the sender waits for the 250 meanwhile)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[list[str]] = []
        self.fail_next = 0
        self.answer_after = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - the aiosmtpd API
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return "451 4.3.0 try again later"
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            self.envelopes.append(list(envelope.rcpt_tos))
        await asyncio.sleep(self.answer_after)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m, rcpt in zip(self.messages, self.envelopes, strict=True) if address in rcpt]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} mail(s) to {address}, got {[m['Subject'] for m in self.messages]}")


@pytest.fixture
def smtp():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.url = f"smtp://127.0.0.1:{controller.port}"
    yield sink
    controller.stop()


def sql(org: Org, *statements: tuple[str, tuple]) -> None:
    conn = connect(org.db)
    try:
        with conn:
            for statement, params in statements:
                conn.execute(statement, params)
    finally:
        conn.close()


def staffed_org(org: Org | Path) -> Org:
    """make_org's `org` (or make_org at a path) plus unit owners with addresses: mai (A, no language of
    her own: A's English), lan (A1, Vietnamese), olga (B, no language of her own: B's Russian)."""
    if not isinstance(org, Org):
        org = make_org(org)
    handle = open_database(str(org.db))
    handle.conn.execute("BEGIN")
    org.tokens["mai"] = auth.create_token(handle.conn, "mai", "manager", "A")
    org.tokens["olga"] = auth.create_token(handle.conn, "olga", "manager", "B")
    handle.conn.execute("COMMIT")
    handle.close()
    sql(
        org,
        ("UPDATE users SET email = name || '@example.org' WHERE name IN ('mai', 'lan', 'olga')", ()),
        ("UPDATE users SET lang = 'vi' WHERE name = 'lan'", ()),
        ("UPDATE units SET owner = 'mai' WHERE code = 'A'", ()),
        ("UPDATE units SET owner = 'lan' WHERE code = 'A1'", ()),
        ("UPDATE units SET owner = 'olga' WHERE code = 'B'", ()),
    )
    return org


@pytest.fixture
def org(tmp_path: Path, backend: str) -> Org:
    return staffed_org(org_on(backend, tmp_path))


def serve(start_server, org: Org, **env: str) -> Server:
    """The server, with the weekly digest on a weekday far from today so it cannot join in."""
    return start_server(org.db, feedback_digest_weekday=str((date.today().weekday() + 3) % 7), **env)


def open_action(server: Server, org: Org, unit: str, title: str, **extra) -> dict:
    reply = httpx.post(
        f"{server.url}/api/v1/actions",
        json={"unit": unit, "title": title, **extra},
        headers=auth_header(org.tokens["admin"]),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def step(server: Server, org: Org, action_id: int, type_: str, **record) -> dict:
    reply = httpx.post(
        f"{server.url}/api/v1/actions/{action_id}/events",
        json={"type": type_, **record},
        headers=auth_header(org.tokens["admin"]),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def respond(server: Server, touchpoint: str, answers: dict, lang: str | None = None) -> dict:
    body = {"id": str(uuid.uuid4()), "touchpoint": touchpoint, "answers": answers}
    if lang:
        body["lang"] = lang
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def tick(org: Org, now: datetime, *jobs: str, env: dict[str, str]) -> dict:
    args = ["tick", "--db", str(org.db), "--now", now.isoformat()]
    for job in jobs:
        args += ["--job", job]
    # The servers' secret: a PostgreSQL database has no file beside it to keep one in.
    result = run_cli(*args, env={"FEEDBACK_SECRET": "test-secret", **env})
    assert result.returncode == 0, result.stderr
    return result


def all_mail_delivered(org: Org) -> bool:
    return not rows(org, "SELECT 1 FROM outbox WHERE channel = 'mail' AND delivered_at IS NULL")


def wait_until(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_the_owner_hears_of_a_new_action_in_their_language(org: Org, start_server, smtp: Sink) -> None:
    # No periodic jobs: what arrives was sent at once after the event, not by a later job run.
    server = serve(start_server, org, feedback_smtp_url=smtp.url, feedback_jobs="0")
    started = time.monotonic()
    vi = open_action(server, org, "A1", "Bảng hiển thị số thứ tự bị hỏng", owner="lan")
    [mail] = smtp.wait_for("lan@example.org")
    assert time.monotonic() - started < 3  # sent promptly
    assert mail["Subject"] == f"Đã mở hành động khắc phục #{vi['id']}: Bảng hiển thị số thứ tự bị hỏng"
    assert mail["To"] == "lan@example.org"
    assert mail["From"] == "feedback@127.0.0.1"
    assert mail.get_content_charset() == "utf-8"
    assert "Một hành động khắc phục đã được mở và giao cho Ông/Bà phụ trách." in mail.get_content()

    ru = open_action(server, org, "B", "Очередь у окна 2", owner="olga")  # olga has no language: B's
    [mail] = smtp.wait_for("olga@example.org")
    assert mail["Subject"] == f"Открыто корректирующее действие №{ru['id']}: Очередь у окна 2"
    assert "Подразделение: Пост Б" in mail.get_content()

    # Nothing is sent twice: a mail goes out before its row is recorded as delivered, so once every
    # event is handed over and every row delivered, all that will ever be sent has been.
    wait_for_dispatch(org)
    wait_until(lambda: all_mail_delivered(org))
    assert len(smtp.messages) == 2
    queued = rows(org, "SELECT dedupe_key, delivered_at FROM outbox WHERE channel = 'mail' ORDER BY id")
    assert [row["dedupe_key"] for row in queued] == [
        f"action.opened:{vi['id']}|mail:lan@example.org",
        f"action.opened:{ru['id']}|mail:olga@example.org",
    ]
    assert all(row["delivered_at"] for row in queued)


def test_a_refusing_smtp_server_gets_the_mail_again_later(org: Org, start_server, smtp: Sink) -> None:
    smtp.fail_next = 1
    server = serve(start_server, org, feedback_smtp_url=smtp.url)
    open_action(server, org, "A1", "Retry me", owner="lan")
    [mail] = smtp.wait_for("lan@example.org", timeout=30)
    # The server records the delivery just after the SMTP server accepted the mail.
    deadline = time.monotonic() + 10
    while True:
        [row] = rows(org, "SELECT attempts, last_error, delivered_at FROM outbox WHERE channel = 'mail'")
        if row["delivered_at"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row["attempts"] == 2 and row["delivered_at"]
    assert "451" in row["last_error"]
    assert len(smtp.to("lan@example.org")) == 1


def test_deadline_reminder_and_overdue_escalation(org: Org, start_server, smtp: Sink) -> None:
    env = {"FEEDBACK_SMTP_URL": smtp.url}
    server = serve(start_server, org, feedback_smtp_url=smtp.url, feedback_jobs="0")
    today = datetime.now(HCM).date()
    action = open_action(server, org, "A1", "Sửa quy trình tiếp nhận", owner="lan", due=today.isoformat())
    smtp.wait_for("lan@example.org")  # opened
    server.stop()

    morning = datetime.combine(today, clock(9), HCM)
    tick(org, morning, "actions.deadlines", "mail.deliver", env=env)
    reminder = smtp.wait_for("lan@example.org", 2)[-1]
    assert reminder["Subject"] == (
        f"Hành động khắc phục #{action['id']} đến hạn ngày {today.isoformat()}: Sửa quy trình tiếp nhận"
    )

    later = morning + timedelta(days=3)
    tick(org, later, "actions.deadlines", "mail.deliver", env=env)
    overdue = smtp.wait_for("lan@example.org", 3)[-1]
    assert overdue["Subject"] == f"Hành động khắc phục #{action['id']} đã quá hạn: Sửa quy trình tiếp nhận"
    [escalated] = smtp.wait_for("mai@example.org")  # the manager above, in A's English
    assert escalated["Subject"] == f"Corrective action #{action['id']} is overdue: Sửa quy trình tiếp nhận"
    assert "escalated to you" in escalated.get_content()

    tick(org, later + timedelta(hours=1), "actions.deadlines", "mail.deliver", env=env)
    assert len(smtp.to("lan@example.org")) == 3 and len(smtp.to("mai@example.org")) == 1


def test_a_mail_in_flight_when_the_server_stops_is_recorded_and_never_sent_again(
    org: Org, start_server, smtp: Sink
) -> None:
    smtp.answer_after = 1.0  # the receiver has the message a second before the server hears its 250
    server = serve(start_server, org, feedback_smtp_url=smtp.url, feedback_jobs="0")
    open_action(server, org, "A1", "Sửa quy trình tiếp nhận", owner="lan")
    smtp.wait_for("lan@example.org")  # taken, not yet answered
    server.stop()  # the delivery round ends, and its outcome is written, before the store closes
    assert all_mail_delivered(org)
    smtp.answer_after = 0.0
    # A day later (every lease long over), a delivery round finds nothing to send again.
    tick(org, datetime.now(UTC) + timedelta(days=1), "mail.deliver", env={"FEEDBACK_SMTP_URL": smtp.url})
    assert len(smtp.to("lan@example.org")) == 1


def next_monday(day: date) -> date:
    return day + timedelta(days=7 - day.weekday())


def test_weekly_digest_once_per_week(org: Org, start_server, smtp: Sink) -> None:
    env = {"FEEDBACK_SMTP_URL": smtp.url}
    server = serve(start_server, org, feedback_smtp_url=smtp.url, feedback_jobs="0")
    admin = auth_header(org.tokens["admin"])
    objective = httpx.post(
        f"{server.url}/api/v1/objectives",
        headers=admin,
        json={
            "unit": "A",
            "metric": "satisfaction",
            "target": 0.99,
            "period": "rolling_30",
            "min_n": 3,
            "owner": "mai",
            "title": "Satisfaction at least 99 %",
        },
    )
    assert objective.status_code == 201, objective.text
    for rating in (5, 5, 5, 5, 1, 1):
        respond(server, "tp-a1", {"overall": rating})
    today = datetime.now(HCM).date()
    action = open_action(server, org, "A1", "Fix the queue display", owner="lan", due=today.isoformat())
    server.stop()

    monday = next_monday(today)
    week = "{}-W{:02d}".format(*monday.isocalendar()[:2])
    at = datetime.combine(monday, clock(8), HCM)
    tick(org, at, "objectives.evaluate", "mail.digest", "mail.deliver", env=env)

    def digests(address: str) -> list[EmailMessage]:
        return [m for m in smtp.to(address) if m["Subject"].startswith(("Weekly quality digest", "Bản tin"))]

    [digest] = wait_until(lambda: digests("mai@example.org"))
    assert digest["Subject"] == f"Weekly quality digest, {week}"
    text = digest.get_content()
    last_monday = monday - timedelta(days=7)
    assert f"{last_monday.isoformat()} – {(monday - timedelta(days=1)).isoformat()}" in text
    assert "== Agency A (A) ==" in text
    assert "Satisfaction last week: 66.7 % (n = 6, 95% interval" in text
    assert "Satisfaction at least 99 %: breached (66.7 %, target ≥ 99.0 %, n = 6)" in text
    assert f"#{action['id']} Fix the queue display, due {today.isoformat()}, owner lan" in text
    # The audit log's newest hash as the digest was made: a copy outside the database anchors the log.
    head = rows(org, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")[0]
    assert f"Audit log: newest entry {head['seq']}, SHA-256 {head['hash']}." in text
    [vi_digest] = wait_until(lambda: digests("lan@example.org"))
    assert vi_digest["Subject"] == f"Bản tin chất lượng hằng tuần, {week}"
    assert "Mức độ hài lòng tuần trước: 66,7 % (n = 6" in vi_digest.get_content()
    # The breach itself went to the objective's owner too.
    assert any(
        m["Subject"] == "Quality objective breached: Satisfaction at least 99 %" for m in smtp.to("mai@example.org")
    )

    # Later the same Monday, and the rest of that week: nothing more.
    for moment in (at + timedelta(hours=2), at + timedelta(days=1), at + timedelta(days=6)):
        tick(org, moment, "mail.digest", "mail.deliver", env=env)
    # The next Monday before the digest hour: not yet; from the hour on: the next week's digest.
    tick(org, at + timedelta(days=7, hours=-2), "mail.digest", "mail.deliver", env=env)
    assert len(digests("mai@example.org")) == 1
    tick(org, at + timedelta(days=7), "mail.digest", "mail.deliver", env=env)
    following = "{}-W{:02d}".format(*(monday + timedelta(days=7)).isocalendar()[:2])
    assert [m["Subject"] for m in digests("mai@example.org")] == [
        f"Weekly quality digest, {week}",
        f"Weekly quality digest, {following}",
    ]
    assert len(digests("lan@example.org")) == 2


def action_for(server: Server, org: Org, response_id: str) -> dict:
    found = httpx.get(
        f"{server.url}/api/v1/actions", params={"unit": "B"}, headers=auth_header(org.tokens["admin"])
    ).json()
    [action] = [a for a in found if a["response_id"] == response_id]
    return action


VASH_LOW = {"service_time": 2, "waiting_time": 3, "staff_courtesy": 5, "premises": 4, "information": 4}


def test_call_back_mail_then_the_contact_is_purged(org: Org, start_server, smtp: Sink) -> None:
    server = serve(start_server, org, feedback_smtp_url=smtp.url)
    stored = respond(server, "tp-b", {**VASH_LOW, "contact": "Иван Петров, ivan.petrov@example.org"}, lang="ru")
    action = action_for(server, org, stored["id"])
    assert rows(org, "SELECT contact FROM contacts WHERE response_id = ?", (stored["id"],))

    step(server, org, action["id"], "verifying")
    wait_for_dispatch(org)  # every event so far handed to the mail plugin: nothing before the action closes
    assert rows(org, "SELECT 1 FROM outbox WHERE dedupe_key LIKE 'callback:%'") == []
    assert smtp.to("ivan.petrov@example.org") == []
    step(server, org, action["id"], "corrected", correction="Перераспределили операторов")
    step(server, org, action["id"], "implemented", action_taken="Открыли второе окно приёма")
    step(server, org, action["id"], "effectiveness_review")
    step(server, org, action["id"], "closed", result="Очередь сократилась до 10 минут")

    [mail] = smtp.wait_for("ivan.petrov@example.org")
    assert mail["Subject"] == f"Что сделано по вашему отзыву (номер {stored['receipt']})"
    text = mail.get_content()
    assert f"Спасибо за ваш отзыв (номер {stored['receipt']}) о работе подразделения «Пост Б»." in text
    assert "Что сделано: Очередь сократилась до 10 минут" in text
    wait_until(lambda: not rows(org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],)))
    [row] = rows(
        org,
        "SELECT dedupe_key, target, payload, delivered_at FROM outbox WHERE dedupe_key = ?",
        (f"callback:{stored['id']}",),
    )
    assert row["delivered_at"] and row["target"] == "(purged)" and "ivan" not in row["payload"]
    assert "ivan.petrov" not in server.log.read_text()
    assert f"contact of response {stored['id']} purged" in server.log.read_text()

    # Reopened and closed again: no second message (and nothing left to send it to).
    step(server, org, action["id"], "reopened")
    step(server, org, action["id"], "verifying")
    step(server, org, action["id"], "explained", explanation="Без изменений")
    step(server, org, action["id"], "closed")
    wait_for_dispatch(org)
    wait_until(lambda: all_mail_delivered(org))
    assert len(rows(org, "SELECT 1 FROM outbox WHERE dedupe_key LIKE 'callback:%'")) == 1
    assert len(smtp.to("ivan.petrov@example.org")) == 1


def test_a_phone_contact_is_purged_as_soon_as_its_action_closes(org: Org, start_server, smtp: Sink) -> None:
    server = serve(start_server, org, feedback_smtp_url=smtp.url)
    stored = respond(server, "tp-b", {**VASH_LOW, "contact": "+7 914 123-45-67"}, lang="ru")
    action = action_for(server, org, stored["id"])
    step(server, org, action["id"], "verifying")
    step(server, org, action["id"], "explained", explanation="Позвонили, объяснили порядок")
    assert rows(org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],))  # open: kept for the call
    step(server, org, action["id"], "closed")
    wait_until(lambda: not rows(org, "SELECT 1 FROM contacts WHERE response_id = ?", (stored["id"],)), timeout=5)
    wait_for_dispatch(org)  # the mail plugin has seen the closing, so "no mail" is its answer
    assert rows(org, "SELECT count(*) AS n FROM outbox WHERE channel = 'mail' AND event_type = 'action.changed'") == [
        {"n": 0}
    ]


def test_contacts_past_retention_are_purged_unless_their_action_is_open(org: Org, start_server, smtp: Sink) -> None:
    server = serve(start_server, org, feedback_smtp_url=smtp.url, feedback_jobs="0")
    happy = respond(server, "tp-a", {"overall": 5, "contact": "happy@example.org"})
    waiting = respond(server, "tp-b", {**VASH_LOW, "contact": "waiting@example.org"}, lang="ru")
    action_for(server, org, waiting["id"])
    server.stop()
    env = {"FEEDBACK_SMTP_URL": smtp.url, "FEEDBACK_CONTACT_RETENTION_DAYS": "30"}
    now = datetime.now(SAKHALIN)
    tick(org, now + timedelta(days=29), "mail.purge_contacts", env=env)
    assert len(rows(org, "SELECT * FROM contacts")) == 2
    tick(org, now + timedelta(days=31), "mail.purge_contacts", env=env)
    assert [row["response_id"] for row in rows(org, "SELECT response_id FROM contacts")] == [waiting["id"]]
    assert happy["id"] not in {row["response_id"] for row in rows(org, "SELECT response_id FROM contacts")}


def test_without_an_smtp_url_nothing_is_queued_and_the_log_says_so_once(org: Org, start_server) -> None:
    server = serve(start_server, org)
    open_action(server, org, "A1", "One", owner="lan")
    open_action(server, org, "A1", "Two", owner="lan")
    wait_for_dispatch(org)  # the mail plugin has seen both events
    assert rows(org, "SELECT count(*) AS n FROM outbox WHERE channel = 'mail'") == [{"n": 0}]
    server.stop()
    log = server.log.read_text()
    assert log.count("mail is off: FEEDBACK_SMTP_URL is not set") == 1


def test_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.scheme, plain.host, plain.port, plain.user) == ("smtp", "127.0.0.1", 2525, None)
    tls = parse_smtp_url("smtp+starttls://mailer%40example.org:p%3Ass@mail.example.org")
    assert (tls.port, tls.user, tls.password) == (587, "mailer@example.org", "p:ss")
    assert parse_smtp_url("smtps://mail.example.org").port == 465
    for bad in ("http://mail.example.org", "smtp://", "mail.example.org:25"):
        with pytest.raises(ValueError, match="smtp_url"):
            parse_smtp_url(bad)


def test_plain_smtp_builds_no_tls_context_and_tls_servers_share_one(smtp: Sink) -> None:
    """A TLS context costs tens of milliseconds to build (the CA store): a plain SMTP server gets none, and
    the TLS schemes share the process's one."""
    tls_context.cache_clear()
    for number in range(3):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "feedback@127.0.0.1", "lan@example.org", f"n{number}"
        message.set_content("body")
        send_message(parse_smtp_url(smtp.url), message)
    assert [mail["Subject"] for mail in smtp.wait_for("lan@example.org", count=3)] == ["n0", "n1", "n2"]
    assert tls_context.cache_info().currsize == 0
    assert tls_context() is tls_context() and tls_context().verify_mode == ssl.CERT_REQUIRED


def test_every_mail_text_is_translated() -> None:
    source = ROOT / "plugins" / "feedback_plugins" / "mail.py"
    ids = {message for _, message, _, _ in extract_from_file("python", str(source), keywords={"_": None})}
    ids.add("This is an automatic message from the feedback service; please do not reply.")
    assert len(ids) > 30
    for folder in ("vi", "ru", "zh_Hans", "en"):
        with (LOCALES / folder / "LC_MESSAGES" / "mail.po").open("rb") as handle:
            catalog = read_po(handle)
        present = {message.id for message in catalog if message.id}
        assert ids <= present, (folder, sorted(ids - present))
        if folder != "en":
            untranslated = [message.id for message in catalog if message.id and not message.string]
            assert untranslated == [], (folder, untranslated)
            for message in catalog:
                if message.id and "%(" in message.id:
                    names = set(re.findall(r"%\((\w+)\)s", message.id))
                    assert set(re.findall(r"%\((\w+)\)s", message.string)) == names, (folder, message.id)
