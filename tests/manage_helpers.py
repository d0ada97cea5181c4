"""Helpers for tests of the manager web app: users with passwords, and signing in.

from tests.manage_helpers import add_user, sign_in
add_user(org.db, "mai", "correct horse 1", "manager", "A1")
sign_in(page, server, "mai", "correct horse 1")          # a Playwright Page
client = httpx.Client(base_url=server.url)
sign_in(client, server, "mai", "correct horse 1")        # an httpx Client: cookies kept on it
token = csrf_token(client)                               # for POST forms: data={"_csrf_token": token, …}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from feedback import passwords
from feedback.auth import save_user
from feedback.db import open_database
from feedback.migrations import apply_all
from tests.conftest import connect, default_plugins

_CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')
_HASHES: dict[str, str] = {}


def password_hash(password: str) -> str:
    """One argon2 hash per password and cost for the whole test process: the tests give hundreds of
    users the same few passwords, and each hash is as slow as a sign-in. Each hash still has its salt;
    users given the same password here share it, which nothing in the app relies on either way."""
    passwords.check_password(password)
    known = _HASHES.get(password)
    if known is None or passwords.needs_rehash(known):  # made at another cost (FEEDBACK_PASSWORD_HASHING)
        known = _HASHES[password] = passwords.hash_password(password)
    return known


def add_user(
    db: Path | str,
    name: str,
    password: str,
    role: str,
    unit: str | None = None,
    *,
    email: str | None = None,
    lang: str | None = None,
) -> None:
    """Create (or update) a user with a password, straight in the database."""
    database = open_database(str(db))
    try:
        apply_all(database, default_plugins())
        with database.conn:
            save_user(database.conn, name, role, unit, password_hash=password_hash(password), email=email, lang=lang)
    finally:
        database.close()


def csrf_token(client: httpx.Client, path: str = "/manage/login") -> str:
    """The CSRF token of a page's forms (also sets the CSRF cookie on the client)."""
    reply = client.get(path)
    match = _CSRF_INPUT.search(reply.text)
    assert match, f"no CSRF token on {path} ({reply.status_code})"
    return match.group(1)


def sign_in(page_or_client: Any, server: Any, name: str, password: str, *, next_path: str | None = None) -> Any:
    """Sign in through the form; any earlier session of the page or client is dropped first.

    A Playwright Page fills and submits the form and waits for the next page. An httpx Client posts
    the form (cookies stay on the client) and gets back the reply to the POST (303 on success).
    `server` is a tests.conftest.Server (its `url` is used)."""
    base = server.url if hasattr(server, "url") else str(server)
    login = "/manage/login" + (f"?next={next_path}" if next_path else "")
    if isinstance(page_or_client, httpx.Client):
        client = page_or_client
        client.cookies.delete("fb_session")  # signing in as someone else: drop the old session first
        if not str(client.base_url).startswith(base):
            client.base_url = base
        token = csrf_token(client, login)
        reply = client.post(
            "/manage/login",
            data={"username": name, "password": password, "_csrf_token": token, "next": next_path or "/manage/"},
        )
        assert reply.status_code == 303, f"sign-in as {name} failed: {reply.status_code}"
        return reply
    page = page_or_client
    page.context.clear_cookies(name="fb_session")
    page.goto(f"{base}{login}")
    page.fill("#username", name)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("form[action='/manage/login'] button[type=submit]")
    return page


def retire_touchpoint(server: Any, db: Path | str, token: str, unit: str) -> str:
    """Retire a touchpoint as an operator does, through the admin form (signed in as a new admin "boss");
    returns the stored `retired_at`."""
    password = "correct horse 1"
    add_user(db, "boss", password, "admin")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client, server, "boss", password)
        form = f"/manage/admin/touchpoints/?unit={unit}"
        reply = client.post(f"/manage/admin/touchpoints/{token}/retire", data={"_csrf_token": csrf_token(client, form)})
    assert reply.status_code == 303, reply.text[:500]
    conn = connect(db)
    try:
        retired_at = conn.execute("SELECT retired_at FROM touchpoints WHERE token = ?", (token,)).fetchone()[0]
    finally:
        conn.close()
    assert retired_at
    return retired_at
