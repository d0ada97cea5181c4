"""Sign-in, sessions, lockout, CSRF, roles and the admin user pages of the manager web app, in Debian's
Chromium and over HTTP against a real server and a real SQLite file."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Browser, Page

from feedback.catalog import load_snapshot
from feedback.db import open_database
from feedback.errors import Forbidden
from feedback.web.manage import auth
from feedback.web.security import Principal
from tests.conftest import (
    ARTIFACTS,
    AXE,
    BOTH_BACKENDS,
    Org,
    ProcessServer,
    Server,
    axe_violations,
    connect,
    default_plugins,
    rows,
    run_cli,
    save_screenshot,
)
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
DESKTOP = {"width": 1280, "height": 900}
LANGS = ("vi", "ru", "zh", "en")
SIGN_IN = {"vi": "Đăng nhập", "ru": "Вход", "zh": "登录", "en": "Sign in"}
WRONG = {"vi": "Tên đăng nhập hoặc mật khẩu không đúng.", "en": "The user name or the password is wrong."}
LOCKED = "Too many failed sign-ins for this user name"


@pytest.fixture(scope="module")
def people(shared_org: Org) -> Org:
    add_user(shared_org.db, "boss", PASSWORD, "admin", lang="en")
    add_user(shared_org.db, "mai", PASSWORD, "manager", "A1", lang="vi")
    add_user(shared_org.db, "olga", PASSWORD, "viewer", "B", lang="ru")
    add_user(shared_org.db, "wei", PASSWORD, "auditor", "A", lang="zh")
    return shared_org


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def client(server: Server, people: Org):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    save_screenshot(page, ARTIFACTS / f"{name}.png")


def alert(html: str) -> str:
    match = re.search(r'role="alert"[^>]*>([^<]*)<', html)
    return match.group(1).strip() if match else ""


@pytest.mark.browser_on_postgresql
@pytest.mark.postgres_covered_elsewhere
def test_sign_in_through_the_form_lands_on_the_page_asked_for(page: Page, server: Server, people: Org) -> None:
    page.goto(f"{server.url}/manage/admin/users?lang=en")
    assert "/manage/login" in page.url and "next=" in page.url  # not signed in: the form, remembering the page
    page.fill("#username", "boss")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("form[action='/manage/login'] button[type=submit]")
    assert page.url == f"{server.url}/manage/admin/users?lang=en"
    header = page.locator(".whoami").inner_text()
    assert "boss" in header and "Administrator" in header
    assert page.locator("#users tr[data-user='mai']").count() == 1
    assert page.locator("main#main").count() == 1 and page.locator("a.skip-link").get_attribute("href") == "#main"
    # The language switcher names each language in itself and keeps the page.
    page.click(".langs a[lang='ru']")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert "Пользователи" in page.locator("h1").inner_text()
    assert page.locator(".main-nav a[href='/manage/admin']").inner_text() == "Администрирование"
    # The choice sticks (cookie fb_lang) on the next page without ?lang=.
    page.goto(f"{server.url}/manage/admin/users/mai")
    assert page.locator("html").get_attribute("lang") == "ru"


def test_a_wrong_password_says_so_in_the_page_language(page: Page, server: Server, people: Org) -> None:
    page.goto(f"{server.url}/manage/login?lang=vi")
    assert page.locator("h1").inner_text() == SIGN_IN["vi"]
    page.fill("#username", "mai")
    page.fill("#password", "not the password")
    page.click("form[action='/manage/login'] button[type=submit]")
    page.wait_for_selector("[role=alert]")
    assert page.locator("[role=alert]").inner_text() == WRONG["vi"]
    assert page.locator("#username").input_value() == "mai"  # kept; the password is not
    assert page.locator("#password").input_value() == ""
    assert page.context.cookies() and not [c for c in page.context.cookies() if c["name"] == "fb_session"]


def test_lockout_after_five_failures_holds_even_with_the_right_password(org: Org, start_server) -> None:
    add_user(org.db, "lan2", PASSWORD, "manager", "A1")
    # 15 seconds: long enough for the slow password hashing of a loaded machine, short enough to outwait.
    window = 15.0
    srv = start_server(org.db, feedback_lockout_minutes=str(window / 60))
    with httpx.Client(base_url=srv.url) as c:
        token = csrf_token(c)
        for _ in range(5):
            reply = c.post("/manage/login", data={"username": "lan2", "password": "wrong!!!", "_csrf_token": token})
            assert reply.status_code == 401 and alert(reply.text) == WRONG["en"]
        last_failure = time.monotonic()
        locked = c.post("/manage/login", data={"username": "LAN2", "password": PASSWORD, "_csrf_token": token})
        assert locked.status_code == 429 and LOCKED in alert(locked.text)
        assert "fb_session" not in locked.headers.get("set-cookie", "")
        # A name that does not exist gets the same answers: nothing tells whether a user exists.
        for _ in range(5):
            reply = c.post("/manage/login", data={"username": "ghost", "password": "wrong!!!", "_csrf_token": token})
            assert reply.status_code == 401 and alert(reply.text) == WRONG["en"]
        ghost = c.post("/manage/login", data={"username": "ghost", "password": "wrong!!!", "_csrf_token": token})
        assert ghost.status_code == 429 and alert(ghost.text) == alert(locked.text)
        assert len(rows(org, "SELECT * FROM login_attempts WHERE username = 'sign_in/lan2'")) == 5
        # The lockout window itself is under test: only its passing ends the lockout.
        time.sleep(max(0.0, window + 0.5 - (time.monotonic() - last_failure)))
        ok = c.post("/manage/login", data={"username": "lan2", "password": PASSWORD, "_csrf_token": token})
        assert ok.status_code == 303
        assert rows(org, "SELECT * FROM login_attempts WHERE username = 'sign_in/lan2'") == []  # a success clears them


def test_the_default_lockout_is_five_failures_for_fifteen_minutes(client: httpx.Client, people: Org) -> None:
    add_user(people.db, "tuan", PASSWORD, "viewer", "A1")
    token = csrf_token(client)
    for _ in range(5):
        client.post("/manage/login", data={"username": "tuan", "password": "nope nope", "_csrf_token": token})
    reply = client.post("/manage/login", data={"username": "tuan", "password": PASSWORD, "_csrf_token": token})
    assert reply.status_code == 429 and "15" in alert(reply.text)


@pytest.mark.postgres_covered_elsewhere
def test_a_form_posted_without_its_csrf_token_is_refused(client: httpx.Client, server: Server, people: Org) -> None:
    sign_in(client, server, "boss", PASSWORD)
    new_user = {"name": "eve", "password": PASSWORD, "role": "viewer", "unit": "A1"}
    assert client.post("/manage/admin/users", data=new_user).status_code == 403
    bogus = {**new_user, "_csrf_token": "0" * 128}
    assert client.post("/manage/admin/users", data=bogus).status_code == 403
    assert client.post("/manage/logout").status_code == 403
    # With the session cookie but from another client without the CSRF cookie: refused too.
    token = csrf_token(client, "/manage/admin/users")
    with httpx.Client(base_url=server.url, cookies={"fb_session": client.cookies["fb_session"]}) as other:
        assert other.post("/manage/admin/users", data={**new_user, "_csrf_token": token}).status_code == 403
    assert rows(people, "SELECT name FROM users WHERE name = 'eve'") == []
    ok = client.post("/manage/admin/users", data={**new_user, "_csrf_token": token})
    assert ok.status_code == 303
    assert rows(people, "SELECT role, unit FROM users WHERE name = 'eve'") == [{"role": "viewer", "unit": "A1"}]


@pytest.mark.postgres_covered_elsewhere
def test_sign_out_deletes_the_session(client: httpx.Client, server: Server, people: Org) -> None:
    sign_in(client, server, "mai", PASSWORD, next_path="/manage/login")
    value = client.cookies["fb_session"]
    assert client.get("/manage/login").status_code == 303  # signed in: the form sends you on
    sessions = rows(people, 'SELECT "user", created_at, expires_at, lang FROM sessions WHERE "user" = \'mai\'')
    assert sessions and sessions[-1]["expires_at"] > sessions[-1]["created_at"]
    assert not rows(people, "SELECT 1 FROM sessions WHERE id = ?", (value,))  # only a hash is stored
    token = csrf_token(client, "/manage/admin/users")  # a 403 page for a manager, with the sign-out form
    reply = client.post("/manage/logout", data={"_csrf_token": token})
    assert reply.status_code == 303 and reply.headers["location"] == "/manage/login"
    assert 'fb_session=""' in reply.headers["set-cookie"] or "Max-Age=0" in reply.headers["set-cookie"]
    assert len(rows(people, "SELECT 1 FROM sessions WHERE \"user\" = 'mai'")) == len(sessions) - 1
    # The old cookie no longer signs anyone in.
    with httpx.Client(base_url=server.url, cookies={"fb_session": value}) as stale:
        again = stale.get("/manage/admin/users")
        assert again.status_code == 303 and again.headers["location"].startswith("/manage/login?next=")


@pytest.mark.postgres_covered_elsewhere
def test_session_cookie_flags(client: httpx.Client, server: Server, org: Org, start_server) -> None:
    reply = sign_in(client, server, "wei", PASSWORD)
    cookie = [c for c in reply.headers.get_list("set-cookie") if c.startswith("fb_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1
    add_user(org.db, "boss", PASSWORD, "admin")
    srv = start_server(org.db, feedback_public_url="https://feedback.example.gov")
    with httpx.Client(base_url=srv.url) as c:
        form = c.get("/manage/login")
        assert "Secure" in form.headers["set-cookie"] and "fb_csrf=" in form.headers["set-cookie"]
        token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text).group(1)
        c.cookies.set("fb_csrf", token)  # a Secure cookie: the client keeps it to itself over plain http
        signed = c.post("/manage/login", data={"username": "boss", "password": PASSWORD, "_csrf_token": token})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("fb_session=") and "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.postgres_covered_elsewhere
def test_a_manager_viewer_and_auditor_may_not_open_admin_pages(server: Server, people: Org) -> None:
    for name in ("mai", "olga", "wei"):
        with httpx.Client(base_url=server.url) as c:
            sign_in(c, server, name, PASSWORD)
            page = c.get("/manage/admin/users", headers={"accept": "text/html"})
            assert page.status_code == 403 and "<html" in page.text and '<main id="main"' in page.text
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
            post = c.post("/manage/admin/users/mai/disable", data={"_csrf_token": token})
            assert post.status_code == 403
    assert rows(people, "SELECT disabled FROM users WHERE name = 'mai'") == [{"disabled": 0}]


def test_roles_and_unit_scope(people: Org) -> None:
    db = open_database(str(people.db))
    snapshot = load_snapshot(db.conn, default_plugins())
    db.close()
    manager, viewer = Principal("mai", "manager", "A1"), Principal("olga", "viewer", "B")
    auditor, admin = Principal("wei", "auditor", "A"), Principal("boss", "admin", None)
    assert [auth.may_see_officers(p) for p in (admin, manager, auditor, viewer)] == [True, True, True, False]
    auth.require_writer(manager)
    auth.require_writer(admin)
    for read_only in (auditor, viewer):
        with pytest.raises(Forbidden):
            auth.require_writer(read_only)
    with pytest.raises(Forbidden):
        auth.require_admin(manager)
    assert manager.may_see("A1a", snapshot) and not manager.may_see("A", snapshot)
    with pytest.raises(Forbidden):
        manager.require_unit("B", snapshot)


def test_exports_take_a_session_or_a_token_and_keep_to_the_unit(
    client: httpx.Client, server: Server, people: Org
) -> None:
    assert client.get("/api/v1/exports/rates.csv?unit=A1").status_code == 401
    sign_in(client, server, "mai", PASSWORD)
    assert client.get("/api/v1/exports/rates.csv?unit=A1").status_code == 200
    assert client.get("/api/v1/exports/rates.csv?unit=B").status_code == 403
    bearer = {"Authorization": f"Bearer {people.tokens['viewer_b']}"}
    assert httpx.get(f"{server.url}/api/v1/exports/rates.csv?unit=B", headers=bearer).status_code == 200


@pytest.mark.postgres_covered_elsewhere
def test_only_paths_of_the_app_are_followed_after_sign_in(client: httpx.Client, server: Server) -> None:
    for target in ("https://evil.example/", "//evil.example/manage", "/\\evil.example", "/s/tp-a"):
        token = csrf_token(client)
        reply = client.post(
            "/manage/login", data={"username": "boss", "password": PASSWORD, "_csrf_token": token, "next": target}
        )
        assert reply.status_code == 303 and reply.headers["location"] == "/manage/"
        client.cookies.clear()


@pytest.mark.postgres_covered_elsewhere
def test_feedback_user_add_on_the_cli(org: Org, start_server) -> None:
    done = run_cli(
        "user",
        "add",
        "--db",
        str(org.db),
        "--user",
        "hoa",
        "--password-stdin",
        "--role",
        "manager",
        "--unit",
        "A1",
        "--email",
        "hoa@example.gov.vn",
        "--lang",
        "vi",
        input="s3cret pass phrase\n",
    )
    assert done.returncode == 0, done.stderr
    [user] = rows(org, "SELECT role, unit, email, lang, password_hash FROM users WHERE name = 'hoa'")
    assert (user["role"], user["unit"], user["email"], user["lang"]) == ("manager", "A1", "hoa@example.gov.vn", "vi")
    assert user["password_hash"].startswith("$argon2id$") and "s3cret" not in user["password_hash"]
    # Again: updates the same user (new role, new password).
    again = run_cli(
        "user",
        "add",
        "--db",
        str(org.db),
        "--user",
        "hoa",
        "--password-stdin",
        "--role",
        "auditor",
        "--unit",
        "A",
        input="another pass phrase\n",
    )
    assert again.returncode == 0, again.stderr
    assert rows(org, "SELECT role, unit FROM users WHERE name = 'hoa'") == [{"role": "auditor", "unit": "A"}]
    # Every role but admin needs a unit; a short password and an unknown unit are refused.
    assert (
        run_cli(
            "user",
            "add",
            "--db",
            str(org.db),
            "--user",
            "x",
            "--password-stdin",
            "--role",
            "viewer",
            input="long enough pw\n",
        ).returncode
        != 0
    )
    assert (
        run_cli(
            "user",
            "add",
            "--db",
            str(org.db),
            "--user",
            "x",
            "--password-stdin",
            "--role",
            "viewer",
            "--unit",
            "A",
            input="short\n",
        ).returncode
        != 0
    )
    assert (
        run_cli(
            "user",
            "add",
            "--db",
            str(org.db),
            "--user",
            "x",
            "--password-stdin",
            "--role",
            "viewer",
            "--unit",
            "NOPE",
            input="long enough pw\n",
        ).returncode
        != 0
    )
    assert (
        run_cli(
            "user",
            "add",
            "--db",
            str(org.db),
            "--user",
            "root2",
            "--password-stdin",
            "--role",
            "admin",
            input="admin pass phrase\n",
        ).returncode
        == 0
    )
    srv = start_server(org.db)
    with httpx.Client(base_url=srv.url) as c:
        sign_in(c, srv, "hoa", "another pass phrase")
        sign_in(c, srv, "root2", "admin pass phrase", next_path="/manage/admin/users")
        assert c.get("/manage/admin/users").status_code == 200


def test_admin_manages_users_in_the_browser(page: Page, server: Server, people: Org, browser: Browser) -> None:
    sign_in(page, server, "boss", PASSWORD, next_path="/manage/admin/users")
    page.goto(f"{server.url}/manage/admin/users?lang=en")
    page.fill("#new-name", "<em>khanh")  # markup in a name must show as text
    page.fill("#new-password", "first pass phrase")
    page.select_option("#new-role", "manager")
    page.select_option("#new-unit", "A1a")
    page.fill("#new-email", "khanh@example.gov.vn")
    page.click("#create-user button[type=submit]")
    page.wait_for_selector("[role=status]")
    row = page.locator("#users tr[data-user='<em>khanh']")
    assert "<em>khanh" in row.inner_text() and page.locator("#users em").count() == 0
    # Missing unit for a viewer: refused with a message, nothing stored.
    page.fill("#new-name", "nounit")
    page.fill("#new-password", "first pass phrase")
    page.select_option("#new-role", "viewer")
    page.click("#create-user button[type=submit]")
    assert "every role but administrator" in page.locator("[role=alert]").inner_text()
    assert rows(people, "SELECT 1 FROM users WHERE name = 'nounit'") == []
    # Change role and unit, reset the password, disable and enable.
    row.locator("a").click()
    page.select_option("#edit-role", "viewer")
    page.select_option("#edit-unit", "B")
    page.click("#update-user button[type=submit]")
    page.wait_for_selector("[role=status]")
    assert rows(people, "SELECT role, unit FROM users WHERE name = '<em>khanh'") == [{"role": "viewer", "unit": "B"}]
    page.fill("#reset-password-in", "second pass phrase")
    page.click("#password-user button[type=submit]")
    page.wait_for_selector("[role=status]")
    with httpx.Client(base_url=server.url) as c:
        sign_in(c, server, "<em>khanh", "second pass phrase")
        assert c.get("/manage/login").status_code == 303  # signed in
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#disable-user button[type=submit]")
        page.wait_for_selector("#enable-user")
        assert rows(people, "SELECT disabled FROM users WHERE name = '<em>khanh'") == [{"disabled": 1}]
        gone = c.get("/manage/admin/users")  # the disabled user's session is gone
        assert gone.status_code == 303 and gone.headers["location"].startswith("/manage/login")
        token = csrf_token(c)
        refused = c.post(
            "/manage/login", data={"username": "<em>khanh", "password": "second pass phrase", "_csrf_token": token}
        )
        assert refused.status_code == 401
    page.click("#enable-user button[type=submit]")
    page.wait_for_selector("#disable-user")
    assert rows(people, "SELECT disabled FROM users WHERE name = '<em>khanh'") == [{"disabled": 0}]
    assert page.locator("#disable-user").count() == 1
    page.goto(f"{server.url}/manage/admin/users/boss")
    assert page.locator("#disable-user").count() == 0  # nobody can lock themselves out


@pytest.mark.parametrize("lang", LANGS)
def test_pages_pass_axe_and_are_captured_in_each_language(
    browser: Browser, server: Server, people: Org, lang: str
) -> None:
    if people.backend == "postgresql":
        pytest.skip("the markup does not depend on the database: checked once, on SQLite")
    assert AXE.exists(), "run `npm install` in tests/browser (the CI script does)"
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)  # to inject axe itself
    page = context.new_page()
    targets = [("login", "/manage/login"), ("users", "/manage/admin/users"), ("user", "/manage/admin/users/mai")]
    for name, path in targets:
        if name == "users":
            sign_in(page, server, "boss", PASSWORD)
        page.goto(f"{server.url}{path}?lang={lang}")
        assert page.locator("html").get_attribute("lang").startswith(lang)
        if name == "login":
            assert page.locator("h1").inner_text() == SIGN_IN[lang]
        shot(page, f"manage-auth-{name}-{lang}")
        bad = axe_violations(page)
        assert bad == [], (name, lang, bad)
    context.close()


def test_pages_have_no_inline_script_or_style(client: httpx.Client, server: Server) -> None:
    sign_in(client, server, "boss", PASSWORD)
    for path in ("/manage/admin/users", "/manage/admin/users/mai", "/manage/nowhere"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html, path
    client.cookies.clear()
    html = client.get("/manage/login").text
    assert '<script src="/static/manage.js"' in html and " style=" not in html


def test_an_unknown_manage_page_is_a_page_with_the_signed_in_header(
    client: httpx.Client, server: Server, people: Org
) -> None:
    sign_in(client, server, "wei", PASSWORD)
    client.get("/manage/admin/users")  # 403 for an auditor, and the session is now cached
    missing = client.get("/manage/nowhere?lang=zh")
    assert missing.status_code == 404 and 'lang="zh-Hans"' in missing.text and "此页面不存在" in missing.text
    assert '<span class="who">wei</span>' in missing.text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', missing.text).group(1)
    assert client.post("/manage/logout", data={"_csrf_token": token}).status_code == 303
    as_json = client.get("/manage/nowhere", headers={"accept": "application/json"})
    assert as_json.status_code == 404 and as_json.json()["status_code"] == 404


def test_numbers_and_dates_follow_the_page_language() -> None:
    from feedback.web.manage.layout import formatters

    expected = {
        "vi": ("87,3%", "12.345,7", "5 thg 3, 2026", "08:02 5 thg 3, 2026"),
        "ru": ("87,3\xa0%", "12\xa0345,7", "5 мар. 2026\u202fг.", "5 мар. 2026\u202fг., 08:02"),
        "zh": ("87.3%", "12,345.7", "2026年3月5日", "2026年3月5日 08:02"),
        "en": ("87.3%", "12,345.7", "Mar 5, 2026", "Mar 5, 2026, 8:02\u202fAM"),
    }
    for lang, (percent, number, day, moment) in expected.items():
        fmt = formatters(lang, "Asia/Ho_Chi_Minh")
        assert fmt["fmt_percent"](0.8734) == percent
        assert fmt["fmt_number"](12345.678, 1) == number
        assert fmt["fmt_date"]("2026-03-05") == day
        assert fmt["fmt_datetime"]("2026-03-05T01:02:00+00:00") == moment  # shown in the unit's time zone
        assert fmt["fmt_percent"](None) == "–"


def test_sessions_forms_and_lockout_hold_across_workers(org: Org) -> None:
    add_user(org.db, "boss", PASSWORD, "admin")
    # No FEEDBACK_SECRET: `feedback serve` makes one secret for all its workers, beside the SQLite file.
    # A PostgreSQL database has no such file: there the secret must be set (the same on every node).
    no_secret = {"FEEDBACK_SECRET": ""} if org.backend == "sqlite" else {}
    srv = ProcessServer(org.db, env={**no_secret, "FEEDBACK_JOBS": "0"}, workers=2).start()
    try:
        token = None
        for _round in range(3):
            # New connections each time, so requests land on both workers.
            with httpx.Client(base_url=srv.url, cookies={"fb_csrf": token} if token else None) as c:
                token = token or csrf_token(c)
                for _ in range(2):
                    reply = c.post(
                        "/manage/login", data={"username": "boss", "password": "wrong one", "_csrf_token": token}
                    )
                    assert reply.status_code in (401, 429)
        with httpx.Client(base_url=srv.url, cookies={"fb_csrf": token}) as c:
            locked = c.post("/manage/login", data={"username": "boss", "password": PASSWORD, "_csrf_token": token})
            assert locked.status_code == 429
        conn = connect(org.db)
        conn.execute("DELETE FROM login_attempts")
        conn.commit()
        conn.close()
        with httpx.Client(base_url=srv.url) as c:
            sign_in(c, srv, "boss", PASSWORD)
            session = c.cookies["fb_session"]
        for _ in range(6):
            with httpx.Client(base_url=srv.url, cookies={"fb_session": session}) as c:
                assert c.get("/manage/admin/users").status_code == 200
    finally:
        srv.stop()


def test_a_server_on_postgresql_without_its_secret_refuses_to_start(org: Org) -> None:
    """Every node must sign forms, links and sessions with the same secret, and a database server has no
    folder to keep one in beside the database: the secret must be set."""
    if org.backend == "sqlite":
        pytest.skip("an SQLite file keeps its secret beside it")
    result = run_cli("serve", "--db", str(org.db), "--port", "9", env={"FEEDBACK_SECRET": ""})
    assert result.returncode != 0
    assert "FEEDBACK_SECRET: must be set when FEEDBACK_DB is a PostgreSQL database" in result.stderr
    assert "Traceback" not in result.stderr
