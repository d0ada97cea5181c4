"""Guess limits hold when the guesses arrive at once: the manager sign-in lockout and the kiosk
enrollment code limit, each hit by 40 simultaneous wrong guesses against a real server and SQLite file."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import httpx

from feedback.web.manage.auth import sign_in_key
from tests.conftest import enrollment_code, make_org, rows
from tests.manage_helpers import add_user

PASSWORD = "correct horse 1"
GUESSES = 40
LOCKOUT_ATTEMPTS = 5  # the default of FEEDBACK_LOCKOUT_ATTEMPTS
ENROLL_LIMIT = 10  # wrong enrollment codes per client per 15 minutes
_CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


def alert(html: str) -> str:
    match = re.search(r'role="alert"[^>]*>([^<]*)<', html)
    return match.group(1).strip() if match else ""


async def _sign_in_at_once(url: str, attempts: list[tuple[str, str]]) -> list[httpx.Response]:
    """Each attempt as its own browser (its own CSRF cookie and token), all posted at the same moment."""
    clients = [httpx.AsyncClient(base_url=url, timeout=120) for _ in attempts]
    try:
        tokens = []
        for client in clients:
            page = await client.get("/manage/login")
            tokens.append(_CSRF_INPUT.search(page.text).group(1))
        gate = asyncio.Event()

        async def post(client: httpx.AsyncClient, token: str, name: str, password: str) -> httpx.Response:
            await gate.wait()
            return await client.post(
                "/manage/login", data={"username": name, "password": password, "_csrf_token": token}
            )

        tasks = [
            asyncio.create_task(post(c, t, name, pw))
            for c, t, (name, pw) in zip(clients, tokens, attempts, strict=True)
        ]
        await asyncio.sleep(0)  # one turn of the loop: every task now waits at the gate
        gate.set()
        return await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()


async def _enroll_at_once(url: str, codes: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=len(codes))) as client:
        return await asyncio.gather(*(client.post("/api/v1/kiosk/enroll", json={"code": code}) for code in codes))


def test_forty_simultaneous_wrong_passwords_check_at_most_the_lockout_attempts(tmp_path: Path, start_server) -> None:
    org = make_org(tmp_path / "feedback.db")
    add_user(org.db, "lan", PASSWORD, "manager", "A1")
    srv = start_server(org.db)
    # A user that exists and a name that does not, guessed at the same moment.
    attempts = [("lan", f"wrong guess {n}") for n in range(GUESSES)]
    attempts += [("ghost", f"wrong guess {n}") for n in range(GUESSES)]
    replies = asyncio.run(_sign_in_at_once(srv.url, attempts))
    for name, answers in (("lan", replies[:GUESSES]), ("ghost", replies[GUESSES:])):
        statuses = Counter(reply.status_code for reply in answers)
        assert statuses[401] == LOCKOUT_ATTEMPTS and statuses[429] == GUESSES - LOCKOUT_ATTEMPTS, (name, statuses)
        # Only the reserved attempts were checked, and each is recorded as a failure.
        counted = rows(org, "SELECT * FROM login_attempts WHERE username = ?", (sign_in_key(name),))
        assert len(counted) == LOCKOUT_ATTEMPTS
    # The same answer whether or not the user exists.
    # Which guesses were refused depends on arrival order; every refusal reads the same.
    locked_answers = {alert(r.text) for r in replies if r.status_code == 429}
    assert len(locked_answers) == 1 and "Too many failed sign-ins" in locked_answers.pop()
    # Locked: even the right password is refused, and checked against nothing.
    right = asyncio.run(_sign_in_at_once(srv.url, [("lan", PASSWORD)] * 3))
    assert [r.status_code for r in right] == [429] * 3
    assert all("fb_session" not in r.headers.get("set-cookie", "") for r in right)
    assert rows(org, "SELECT count(*) AS n FROM sessions")[0]["n"] == 0
    assert len(rows(org, "SELECT * FROM login_attempts WHERE username = 'sign_in/lan'")) == LOCKOUT_ATTEMPTS


def test_a_success_clears_the_failures_and_the_lock_holds_for_the_right_password_after_them(
    tmp_path: Path, start_server
) -> None:
    org = make_org(tmp_path / "feedback.db")
    add_user(org.db, "mai", PASSWORD, "manager", "A1")
    srv = start_server(org.db)
    # Four failures and the right password at once: at most five are checked; when the right one is
    # among them it signs in and clears the failures; either way no sixth guess is ever checked.
    replies = asyncio.run(_sign_in_at_once(srv.url, [("mai", "wrong guess")] * 4 + [("mai", PASSWORD)]))
    assert sorted(r.status_code for r in replies) == [303, 401, 401, 401, 401]
    left = rows(org, "SELECT * FROM login_attempts WHERE username = 'sign_in/mai'")
    assert len(left) <= 4
    # Then the name is guessed at in earnest: the lock holds for the right password too.
    asyncio.run(_sign_in_at_once(srv.url, [("mai", f"guess {n}") for n in range(GUESSES)]))
    assert len(rows(org, "SELECT * FROM login_attempts WHERE username = 'sign_in/mai'")) == LOCKOUT_ATTEMPTS
    assert [r.status_code for r in asyncio.run(_sign_in_at_once(srv.url, [("mai", PASSWORD)]))] == [429]


def test_forty_simultaneous_wrong_enrollment_codes_check_at_most_ten(tmp_path: Path, start_server) -> None:
    org = make_org(tmp_path / "feedback.db")
    code = enrollment_code(org)
    srv = start_server(org.db)
    wrong = [f"{n:06d}" for n in range(GUESSES) if f"{n:06d}" != code]
    replies = asyncio.run(_enroll_at_once(srv.url, wrong))
    statuses = Counter(reply.status_code for reply in replies)
    assert statuses[404] == ENROLL_LIMIT and statuses[429] == len(wrong) - ENROLL_LIMIT, statuses
    limited = next(r for r in replies if r.status_code == 429).json()
    assert limited["field"] == "code" and limited["detail"].startswith("code:")
    # While the client is limited even the right code is refused, and it is not spent.
    right = asyncio.run(_enroll_at_once(srv.url, [code] * 3))
    assert [r.status_code for r in right] == [429] * 3
    assert rows(org, "SELECT used_at FROM kiosk_enrollments") == [{"used_at": None}]
    assert rows(org, "SELECT count(*) AS n FROM kiosks")[0]["n"] == 0
    # The limit is per client: another address still trades the code for a device token.
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=srv.url, transport=other, timeout=30) as client:
        enrolled = client.post("/api/v1/kiosk/enroll", json={"code": code})
    assert enrolled.status_code == 201, enrolled.text
