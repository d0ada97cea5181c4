"""Two-factor sign-in for local accounts (TOTP and recovery codes) over HTTP against a real server, on both
databases, and the set-up page once in Debian's Chromium. Codes are computed with pyotp, as a phone's
authenticator app computes them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser

from feedback.i18n import translations
from feedback.settings import SettingsError, load_settings
from feedback.store import users as user_store
from feedback.web.manage import account, users
from feedback.web.manage.layout import TEMPLATES
from tests.conftest import (
    ARTIFACTS,
    BOTH_BACKENDS,
    Org,
    Server,
    axe_violations,
    poll_until,
    rows,
    run_cli,
    save_screenshot,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
WRONG_CODE = "The code is wrong."
USED_CODE = "This code was used already. Wait for the next code and enter it."
PAGE_TEMPLATES = ("account.html", "account_codes.html", "login_code.html", "sessions_table.html", "auth_user.html")


@pytest.fixture(scope="module")
def people(shared_org: Org) -> Org:
    for name in ("tam", "rec", "dis", "busy"):
        add_user(shared_org.db, name, PASSWORD, "manager", "A1", lang="en")
    return shared_org


def alert(html: str) -> str:
    match = re.search(r'role="alert"[^>]*>([^<]*)<', html)
    return match.group(1).strip() if match else ""


def token_of(client: httpx.Client) -> str:
    """The CSRF token of the client's forms (the fb_csrf cookie holds the same token the pages embed)."""
    return client.cookies["fb_csrf"]


def post(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"_csrf_token": token_of(client), **data})


def now_code(secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * steps))


def wrong_code(secret: str) -> str:
    """A code that fits none of the steps a server could take it for."""
    near = {now_code(secret, steps) for steps in range(-2, 3)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in near)


class Enrolled:
    def __init__(self, secret: str, code: str, codes: list[str], shown: httpx.Response) -> None:
        self.secret, self.code, self.codes, self.shown = secret, code, codes, shown


def enrol(client: httpx.Client, next_path: str = "") -> Enrolled:
    """Set TOTP up on the account page as a person does: start, read the key, confirm a current code (the
    forms carry the page to go on to). Returns the secret, the code that confirmed it, the recovery codes
    and the answer that showed them."""
    started = post(client, "/manage/account/2fa/setup", next=next_path)
    assert started.status_code == 303
    page = client.get(started.headers["location"])
    assert page.status_code == 200
    secret = re.search(r'id="totp-secret">([^<]+)<', page.text).group(1).replace(" ", "")
    assert re.search(r'<img id="totp-qr" src="data:image/png;base64,', page.text)
    form = page.text[page.text.index('id="confirm-2fa"') :]
    going_on = re.search(r'name="next" value="([^"]*)"', form).group(1)
    code = now_code(secret)
    shown = post(client, "/manage/account/2fa/confirm", code=code, next=going_on)
    assert shown.status_code == 200, shown.text[:500]
    codes = re.findall(r'<li><code class="token-value">([^<]+)</code></li>', shown.text)
    return Enrolled(secret, code, codes, shown)


def audit_entries(org: Org, user: str, action: str) -> list[dict]:
    return rows(
        org,
        "SELECT actor_kind, actor_id, change FROM audit_log WHERE kind = 'user' AND record_id = ? AND action = ?",
        (user, action),
    )


def password_step(client: httpx.Client, server: Server, name: str, next_path: str = "/manage/actions") -> str:
    """Sign in with the password; returns where the answer sends the browser."""
    reply = sign_in(client, server, name, PASSWORD, next_path=next_path)
    return reply.headers["location"]


@pytest.mark.postgres_covered_elsewhere
def test_totp_enrolment_then_sign_in_with_a_code(server: Server, people: Org) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert password_step(client, server, "tam") == "/manage/actions"  # no second factor yet
        enrolled = enrol(client)
        secret, codes = enrolled.secret, enrolled.codes
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", code) for code in codes)
        assert "shown only once" in enrolled.shown.text
        # Stored: the secret encrypted, the recovery codes as argon2id hashes; none of them in plain text.
        [user] = rows(people, "SELECT totp_secret, recovery_codes, totp_enabled_at FROM users WHERE name = 'tam'")
        assert user["totp_enabled_at"] and secret not in user["totp_secret"]
        assert user["recovery_codes"].count("$argon2id$") == 10
        assert not any(code in user["recovery_codes"] for code in codes)
        # Never shown again: the account page says it is on, without the key or the QR code.
        page = client.get("/manage/account")
        assert "totp-secret" not in page.text and "totp-qr" not in page.text and secret not in page.text
        assert "Recovery codes left: 10" in page.text
        # Logged, without the secret or the codes.
        [entry] = audit_entries(people, "tam", "2fa_enabled")
        assert (entry["actor_kind"], entry["actor_id"]) == ("user", "tam")
        assert secret not in entry["change"] and not any(code in entry["change"] for code in codes)
        assert user["totp_secret"] not in entry["change"]

    with httpx.Client(base_url=server.url, timeout=30) as client:
        # The password alone signs nobody in now: the session waits for the code.
        assert password_step(client, server, "tam") == "/manage/login/code?next=/manage/actions"
        for path in ("/manage/actions", "/manage/account", "/manage/"):
            reply = client.get(path, follow_redirects=True)
            assert str(reply.url).startswith(f"{server.url}/manage/login/code"), path
        assert client.get("/api/v1/exports/rates.csv?unit=A1").status_code == 401
        wrong = post(client, "/manage/login/code", code=wrong_code(secret))
        assert wrong.status_code == 401 and alert(wrong.text) == WRONG_CODE
        # The code that confirmed the set-up was taken then: sent again, it is a replay.
        replayed = post(client, "/manage/login/code", code=enrolled.code, next="/manage/actions")
        assert replayed.status_code == 401 and alert(replayed.text) == USED_CODE
        # The next step's code (a phone's clock a little ahead) is accepted, once.
        later = now_code(secret, 1)
        done = post(client, "/manage/login/code", code=later, next="/manage/actions")
        assert done.status_code == 303 and done.headers["location"] == "/manage/actions"
        assert client.get("/manage/actions").status_code == 200
        assert client.get("/api/v1/exports/rates.csv?unit=A1").status_code == 200

    with httpx.Client(base_url=server.url, timeout=30) as other:
        password_step(other, server, "tam")
        again = post(other, "/manage/login/code", code=later)
        assert again.status_code == 401 and alert(again.text) == USED_CODE
    # The secret reaches no log line.
    assert secret not in server.log.read_text()


def test_a_recovery_code_signs_in_once(server: Server, people: Org) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        password_step(client, server, "rec")
        codes = enrol(client).codes
    with httpx.Client(base_url=server.url, timeout=30) as client:
        password_step(client, server, "rec")
        used = post(client, "/manage/login/code", code=codes[3].upper().replace("-", " "), next="/manage/")
        assert used.status_code == 303 and used.headers["location"] == "/manage/"
        assert "Recovery codes left: 9" in client.get("/manage/account").text
    with httpx.Client(base_url=server.url, timeout=30) as client:
        password_step(client, server, "rec")
        refused = post(client, "/manage/login/code", code=codes[3])
        assert refused.status_code == 401 and alert(refused.text) == WRONG_CODE
        assert client.get("/manage/").status_code == 303  # still not signed in
        assert post(client, "/manage/login/code", code=codes[4]).status_code == 303
    entries = audit_entries(people, "rec", "recovery_code_used")
    assert [(e["actor_kind"], e["actor_id"]) for e in entries] == [("user", "rec")] * 2  # the two codes spent
    assert not any(code in entry["change"] for code in codes for entry in entries)
    [user] = rows(people, "SELECT recovery_codes FROM users WHERE name = 'rec'")
    assert user["recovery_codes"].count("$argon2id$") == 8


@pytest.mark.postgres_covered_elsewhere
def test_turning_two_factor_off_needs_a_code_or_the_password(server: Server, people: Org) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        password_step(client, server, "dis")
        enrol(client)
        refused = post(client, "/manage/account/2fa/disable", password="not the password")
        assert refused.status_code == 401 and "The password is wrong." in refused.text
        assert post(client, "/manage/account/2fa/disable").status_code == 401  # neither given
        assert rows(people, "SELECT totp_secret IS NOT NULL AS on_ FROM users WHERE name = 'dis'")[0]["on_"]
        off = post(client, "/manage/account/2fa/disable", password=PASSWORD)
        assert off.status_code == 303
        assert rows(people, "SELECT totp_secret, recovery_codes FROM users WHERE name = 'dis'") == [
            {"totp_secret": None, "recovery_codes": None}
        ]
        assert audit_entries(people, "dis", "2fa_disabled")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert password_step(client, server, "dis") == "/manage/actions"  # the password alone again


def test_wrong_codes_are_limited_like_passwords_even_when_sent_at_once(org: Org, start_server) -> None:
    add_user(org.db, "lim", PASSWORD, "manager", "A1")
    srv = start_server(org.db, feedback_lockout_attempts="3")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        password_step(client, srv, "lim")
        secret = enrol(client).secret
    # A name typed into the sign-in form counts against that name only: typing "2fa/lim" there, however
    # often, leaves lim's count of wrong codes alone.
    with httpx.Client(base_url=srv.url, timeout=30) as stranger:
        form = {"username": "2FA/lim", "password": "guess", "_csrf_token": csrf_token(stranger)}
        assert [stranger.post("/manage/login", data=form).status_code for _ in range(4)] == [401] * 3 + [429]
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        password_step(client, srv, "lim")
        assert post(client, "/manage/login/code", code=now_code(secret, 1)).status_code == 303
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        password_step(client, srv, "lim")
        cookies = dict(client.cookies)
        wrong = wrong_code(secret)
        answers: list[int] = []

        def guess() -> None:
            with httpx.Client(base_url=srv.url, cookies=cookies, timeout=30) as each:
                answers.append(post(each, "/manage/login/code", code=wrong).status_code)

        threads = [threading.Thread(target=guess) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [401] * 3 + [429] * 5  # no more than three guesses were ever checked
        locked = post(client, "/manage/login/code", code=now_code(secret, 1))
        assert locked.status_code == 429 and "Too many wrong codes" in alert(locked.text)
        # A right password does not wipe the wrong codes: signing in again still finds them locked.
        password_step(client, srv, "lim")
        assert post(client, "/manage/login/code", code=now_code(secret, 1)).status_code == 429


def test_required_for_admins_forces_enrolment_before_anything_else(org: Org, start_server) -> None:
    add_user(org.db, "chief", PASSWORD, "admin", lang="en")
    add_user(org.db, "mgr", PASSWORD, "manager", "A1", lang="en")
    srv = start_server(org.db, feedback_require_2fa="admin")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert password_step(client, srv, "mgr") == "/manage/actions"  # a manager is not asked
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert password_step(client, srv, "chief", "/manage/admin/users") == "/manage/account?next=/manage/admin/users"
        for path in ("/manage/", "/manage/admin/users", "/manage/actions"):
            reply = client.get(path, follow_redirects=True)
            assert str(reply.url).startswith(f"{srv.url}/manage/account"), path
            assert "Set up two-factor sign-in to continue" in reply.text
        assert client.get("/api/v1/exports/rates.csv?unit=A1").status_code == 401
        page = client.get("/manage/account?next=/manage/admin/users")
        assert 'id="session-list"' not in page.text and 'href="/manage/admin"' not in page.text
        waiting = client.cookies["fb_session"]
        enrolled = enrol(client, "/manage/admin/users")
        assert len(enrolled.codes) == 10
        # Enrolled: a new signed-in session replaces the waiting one, and the way on is the page asked for.
        assert client.cookies["fb_session"] != waiting
        assert 'href="/manage/admin/users"' in enrolled.shown.text
        assert client.get("/manage/admin/users").status_code == 200
        # The full session is a sign-in of its own in the log, the code set up its method.
        [opened] = rows(org, "SELECT sid FROM sessions WHERE \"user\" = 'chief'")
        [signed_in] = rows(
            org,
            "SELECT record_id, actor_kind, actor_id, change FROM audit_log"
            " WHERE kind = 'session' AND action = 'sign_in' ORDER BY seq DESC LIMIT 1",
        )
        assert signed_in["record_id"] == opened["sid"]
        assert (signed_in["actor_kind"], signed_in["actor_id"]) == ("user", "chief")
        assert json.loads(signed_in["change"])["after"] == {"user": "chief", "method": "totp"}
    with httpx.Client(base_url=srv.url, timeout=30, cookies={"fb_session": waiting}) as stale:
        assert stale.get("/manage/account").status_code == 303
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert password_step(client, srv, "chief", "/manage/") == "/manage/login/code?next=/manage/"
        assert post(client, "/manage/login/code", code=now_code(enrolled.secret, 1)).status_code == 303
        assert client.get("/manage/admin/users").status_code == 200


@pytest.mark.postgres_covered_elsewhere
def test_a_set_up_does_not_sign_in_a_waiting_session_revoked_meanwhile(org: Org, start_server) -> None:
    add_user(org.db, "boss", PASSWORD, "admin", lang="en")
    srv = start_server(org.db, feedback_require_2fa="admin", feedback_jobs="0")
    store = srv.app.state.store
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert password_step(client, srv, "boss", "/manage/") == "/manage/account?next=/manage/"
        page = client.get(post(client, "/manage/account/2fa/setup", next="/manage/").headers["location"])
        secret = re.search(r'id="totp-secret">([^<]+)<', page.text).group(1).replace(" ", "")
        # An administrator signs the waiting session out in a write that is still running when the code
        # arrives: the request reads the session as it was, its own write comes after the sign-out.
        revoking, release = threading.Event(), threading.Event()

        def revoke(conn: Any) -> None:
            user_store.end_sessions_of(conn, "boss")
            revoking.set()
            release.wait(30)

        held = asyncio.run_coroutine_threadsafe(store.write(revoke), srv._loop)
        assert revoking.wait(30)
        answers: list[httpx.Response] = []
        confirm = threading.Thread(
            target=lambda: answers.append(post(client, "/manage/account/2fa/confirm", code=now_code(secret)))
        )
        confirm.start()
        poll_until(lambda: store.queue_depth > 0, what="the set-up's write queued behind the sign-out")
        release.set()
        held.result(30)
        confirm.join(30)
    [answer] = answers
    assert answer.status_code == 303 and answer.headers["location"].startswith("/manage/login"), answer.text[:300]
    assert rows(org, 'SELECT "user" FROM sessions WHERE "user" = \'boss\'') == []
    assert rows(org, "SELECT totp_secret FROM users WHERE name = 'boss'") == [{"totp_secret": None}]
    assert audit_entries(org, "boss", "2fa_enabled") == []


def test_the_audit_log_still_verifies_after_all_of_it(server: Server, people: Org) -> None:
    # Every change to a user's second factor was logged as the verifier reads the user's row (the last
    # accepted step, which every sign-in moves, is not part of it).
    done = run_cli("audit", "verify", "--db", str(people.db))
    assert done.returncode == 0, done.stdout + done.stderr


def test_require_2fa_takes_none_admin_or_all() -> None:
    environ = {"FEEDBACK_SECRET": "x", "FEEDBACK_DB": ":memory:"}
    assert load_settings(environ).require_2fa == "none"
    assert load_settings({**environ, "FEEDBACK_REQUIRE_2FA": "ALL"}).require_2fa == "all"
    with pytest.raises(SettingsError, match=r"^FEEDBACK_REQUIRE_2FA: 'sometimes' is not one of none, admin, all"):
        load_settings({**environ, "FEEDBACK_REQUIRE_2FA": "sometimes"})


def test_every_text_of_the_account_pages_is_translated() -> None:
    """Each message of the account, code and session pages (templates and page modules) has a
    Vietnamese, Russian and Chinese text."""
    pages = [TEMPLATES / name for name in PAGE_TEMPLATES] + [Path(account.__file__), Path(users.__file__)]
    found: set[str] = set()
    for path in pages:
        text = path.read_text(encoding="utf-8")
        found |= {a or b for a, b in re.findall(r"""\b_\((?:"([^"]+)"|'([^']+)')""", text)}
        if path.suffix == ".py":  # notices and messages kept in dicts, translated where shown
            found |= set(re.findall(r'^\s+"[a-z_0-9]+": "([^"]+)",$', text, re.M))
    assert len(found) > 40
    for lang in ("vi", "ru", "zh"):
        untranslated = sorted(m for m in found if translations(lang).gettext(m) == m)
        assert untranslated == [], lang


@pytest.mark.backends("sqlite")
def test_the_set_up_page_in_a_browser(browser: Browser, server: Server, people: Org) -> None:
    add_user(people.db, "qr", PASSWORD, "manager", "A1", lang="en")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # to inject axe
    page = context.new_page()
    try:
        sign_in(page, server, "qr", PASSWORD)
        page.goto(f"{server.url}/manage/account")
        page.click("#start-2fa button[type=submit]")
        page.wait_for_selector("#totp-qr")
        ARTIFACTS.mkdir(exist_ok=True)
        save_screenshot(page, ARTIFACTS / "account-2fa-setup.png")
        bad = axe_violations(page)
        assert bad == []
        # The QR code on the page holds the otpauth URI of the key printed beside it.
        assert page.evaluate("document.getElementById('totp-qr').naturalWidth") == 264
        src = page.get_attribute("#totp-qr", "src")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        [found] = zxingcpp.read_barcodes(image)
        uri = pyotp.parse_uri(found.text)
        secret = page.inner_text("#totp-secret").replace(" ", "")
        assert uri.secret == secret and uri.name == "qr" and uri.issuer == "Feedback"
        page.fill("#confirm-code", pyotp.TOTP(secret).now())
        with page.expect_navigation():
            page.click("#confirm-2fa button[type=submit]")
        assert page.locator("#recovery-codes li").count() == 10
        page.click("#codes-done")
        assert page.locator("#two-factor-state .badge").inner_text() == "On"
    finally:
        context.close()
