"""Sign-in, server-side sessions, roles and unit scope for the manager web app.

Passwords are argon2id hashes. A session is a random id in the `fb_session` cookie; SQLite keeps
only its SHA-256 (table `sessions`), so every worker sees the same sessions and a copy of the
database cannot be used to sign in. Sign-ins are counted per user name in SQLite
(`login_attempts`), each reserved before its password is checked; after `settings.lockout_attempts`
failures within `settings.lockout_minutes` the name is locked for that long, whether or not such a
user exists, and however many guesses arrive at once.

Page handlers take the signed-in user with the `current_user` dependency:

    @get("/manage/things", dependencies={"user": Provide(current_user)})
    async def things(request: Request, user: Principal) -> Response: ...

Not signed in → 303 to /manage/login?next=<path>. Errors raised under /manage (Forbidden, NotFound,
a missing CSRF token…) leave as an HTML page in the user's language unless the client asked for JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.exceptions import HTTPException
from litestar.response import Redirect

from feedback import attempts
from feedback import auth as tokens
from feedback.errors import FeedbackError, InvalidInput, Unauthorized
from feedback.models import LANGUAGES, ROLES
from feedback.web.manage import layout
from feedback.web.security import Principal, current_principal

SESSION_COOKIE = "fb_session"
CSRF_COOKIE = layout.CSRF_COOKIE
CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrftoken"
LOGIN_PATH = "/manage/login"
HOME_PATH = "/manage/"
WRITER_ROLES = ("admin", "manager")
# Per-officer figures: everyone but viewers.
OFFICER_ROLES = ("admin", "manager", "auditor")
# Session look-ups are cached this long per worker; a sign-out on the same worker takes effect at
# once, a disabled user or a sign-out elsewhere within this many seconds.
SESSION_CACHE_SECONDS = 5.0
MIN_PASSWORD = 8
MAX_FIELD = 200

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Unknown names are verified against this, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


# -- passwords and users ----------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters", "password")
    if len(password) > 1024:
        raise InvalidInput("password: at most 1024 characters", "password")


def save_user(
    conn: sqlite3.Connection,
    name: str,
    role: str,
    unit: str | None,
    *,
    password: str | None = None,
    email: str | None = None,
    lang: str | None = None,
    password_hash: str | None = None,
) -> None:
    """Create or update a user (role, unit, e-mail, language; the password when given).

    Every role but admin is scoped to a unit subtree, so it needs a unit. On the writer thread pass
    `password_hash` (from `hash_password`, computed beforehand) instead of `password`: hashing is slow.
    """
    name = name.strip()
    if not name or len(name) > MAX_FIELD or any(ch.isspace() or ch in "/\\" for ch in name):
        raise InvalidInput("user: a name without spaces or slashes, at most 200 characters", "user")
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {list(ROLES)}", "role")
    if role != "admin" and not unit:
        raise InvalidInput("unit: every role but admin needs a unit", "unit")
    if lang is not None and lang not in LANGUAGES:
        raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
    if password is not None:
        check_password(password)
    tokens.ensure_user(conn, name, role, unit or None, email or None)
    if lang is not None:
        conn.execute("UPDATE users SET lang = ? WHERE name = ?", (lang, name))
    if password is not None:
        password_hash = hash_password(password)
    if password_hash is not None:
        conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))
        # A new password ends every session of the user.
        conn.execute("DELETE FROM sessions WHERE user = ?", (name,))


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool) -> None:
    conn.execute("UPDATE users SET disabled = ? WHERE name = ?", (1 if disabled else 0, name))
    if disabled:
        conn.execute("DELETE FROM sessions WHERE user = ?", (name,))


# -- sessions -----------------------------------------------------------------------------------


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def session_cookie(request: Request, value: str, max_age: int | None) -> Cookie:
    settings = request.app.state.settings
    secure = bool(settings.public_url and settings.public_url.startswith("https"))
    return Cookie(
        key=SESSION_COOKIE, value=value, path="/", httponly=True, samesite="lax", secure=secure, max_age=max_age
    )


def clearing_cookie(request: Request) -> Cookie:
    return session_cookie(request, "", 0)


# digest -> ((user, role, unit, lang) or None, valid until monotonic)
_sessions: dict[str, tuple[tuple[str, str, str | None, str | None] | None, float]] = {}


async def session_principal(request: Request) -> Principal | None:
    """The signed-in user of this request, or None. Reads SQLite on a reader thread only."""
    cached_user = request.scope.get("fb_user")  # type: ignore[typeddict-item]
    if cached_user is not None:
        return cached_user
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > 200:
        return None
    digest = _digest(value)
    now = time.monotonic()
    entry = _sessions.get(digest)
    if entry is None or entry[1] < now:
        state = request.app.state
        rows = await state.store.query(
            "SELECT s.user, s.expires_at, s.lang, u.role, u.unit, coalesce(u.disabled, 0) AS disabled"
            " FROM sessions s JOIN users u ON u.name = s.user WHERE s.id = ?",
            (digest,),
        )
        found = None
        if rows:
            row = rows[0]
            if row["disabled"]:
                user = row["user"]
                await state.store.write(lambda conn: conn.execute("DELETE FROM sessions WHERE user = ?", (user,)))
            elif row["expires_at"] > _now().isoformat():
                found = (row["user"], row["role"], row["unit"], row["lang"])
        if len(_sessions) > 10_000:
            _sessions.clear()
        _sessions[digest] = (found, now + SESSION_CACHE_SECONDS)
    else:
        found = entry[0]
    if found is None:
        return None
    principal = Principal(found[0], found[1], found[2])
    request.scope["fb_user"] = principal  # type: ignore[typeddict-unknown-key]
    request.scope["fb_session_lang"] = found[3]  # type: ignore[typeddict-unknown-key]
    return principal


def forget_sessions(user: str) -> None:
    """Drop this worker's cached sessions of a user (after disabling it or changing its password)."""
    for digest, (found, _until) in list(_sessions.items()):
        if found is not None and found[0] == user:
            _sessions.pop(digest, None)


def cached_principal(request: Request) -> Principal | None:
    """The signed-in user from this worker's session cache only (for code that may not await)."""
    value = request.cookies.get(SESSION_COOKIE)
    entry = _sessions.get(_digest(value)) if value and len(value) <= 200 else None
    if entry is None or entry[0] is None or entry[1] < time.monotonic():
        return None
    found = entry[0]
    principal = Principal(found[0], found[1], found[2])
    request.scope["fb_user"] = principal  # type: ignore[typeddict-unknown-key]
    request.scope["fb_session_lang"] = found[3]  # type: ignore[typeddict-unknown-key]
    return principal


class SignInRequired(Exception):
    """Raised by `current_user`; becomes a 303 to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


async def current_user(request: Request, state: State) -> Principal:
    """Dependency for manager pages: the signed-in Principal, else a 303 to /manage/login?next=…"""
    principal = await session_principal(request)
    if principal is None:
        path = request.url.path
        if request.url.query:
            path += "?" + request.url.query
        raise SignInRequired(path)
    return principal


async def api_principal(request: Request, state: State) -> Principal:
    """Dependency for /api/v1/exports/* and /api/v1/reports/*: a bearer token, else a session, else 401."""
    if request.headers.get("authorization"):
        return await current_principal(request, state)
    principal = await session_principal(request)
    if principal is None:
        raise Unauthorized("authorization: a bearer token or a signed-in session is required", "authorization")
    return principal


def may_see_officers(principal: Principal) -> bool:
    """Per-officer columns and results: admin, manager and auditor; not viewer."""
    return principal.role in OFFICER_ROLES


def require_writer(principal: Principal) -> None:
    """403 unless admin or manager (auditor and viewer are read-only)."""
    principal.require_role(*WRITER_ROLES)


def require_admin(principal: Principal) -> None:
    principal.require_role("admin")


def require_unit(principal: Principal, unit: str, request: Request) -> None:
    """403 unless `unit` is inside the principal's subtree (an unknown unit is outside too)."""
    snapshot = request.app.state.catalog.snapshot
    principal.require_unit(unit, snapshot)


def safe_next(value: str | None) -> str:
    """Only paths of this app: no scheme, no host, no `//` (an open redirect otherwise)."""
    if not value or not value.startswith("/manage") or value.startswith("//") or "\\" in value:
        return HOME_PATH
    if any(ch in value for ch in "\r\n") or len(value) > 2000:
        return HOME_PATH
    return value


# -- sign-in, lockout, sign-out ---------------------------------------------------------------


def _lock_key(username: str) -> str:
    return username.strip().lower()[:MAX_FIELD]


def _sign_in_user(username: str) -> Callable[[sqlite3.Connection], dict | None]:
    def read(conn: sqlite3.Connection) -> dict | None:
        row = conn.execute(
            "SELECT name, role, unit, lang, password_hash, coalesce(disabled, 0) FROM users WHERE name = ?",
            (username,),
        ).fetchone()
        if row is None:
            return None
        return {
            "name": row[0],
            "role": row[1],
            "unit": row[2],
            "lang": row[3],
            "password_hash": row[4],
            "disabled": bool(row[5]),
        }

    return read


async def _reserve_attempt(state: State, key: str, now: datetime) -> int | None:
    """Count this sign-in against the name before its password is checked (None: the name is locked).

    Reserved in the write transaction, so however many guesses arrive at once, at most
    `lockout_attempts` of them per window are ever checked."""
    settings = state.settings
    window = timedelta(minutes=settings.lockout_minutes)
    return await state.store.write(
        lambda conn: attempts.reserve(conn, attempts.SIGN_IN, key, now, window, settings.lockout_attempts)
    )


def _login_page(
    request: Request, *, error: str | None = None, username: str = "", next_path: str = HOME_PATH, status: int = 200
) -> Response:
    return layout.render(
        request,
        "login.html",
        {"error": error, "username": username, "next": next_path, "page_title_msg": "Sign in"},
        status=status,
    )


@get(LOGIN_PATH, include_in_schema=False)
async def login_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await session_principal(request) is not None:
        return Redirect(next_path, status_code=303)
    return _login_page(request, next_path=next_path)


@post(LOGIN_PATH, include_in_schema=False)
async def login(request: Request, state: State) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()[:MAX_FIELD]
    password = str(form.get("password") or "")[:1024]
    next_path = safe_next(str(form.get("next") or ""))
    settings = state.settings
    _ = layout.translator(request)
    now = _now()
    key = _lock_key(username)
    attempt = await _reserve_attempt(state, key, now)
    if attempt is None:
        # Locked before anything is looked up: the same answer whether or not the name exists.
        return _login_page(
            request,
            username=username,
            next_path=next_path,
            status=429,
            error=_("Too many failed sign-ins for this user name. Try again in %(minutes)d minutes.")
            % {"minutes": round(settings.lockout_minutes)},
        )
    user = await state.store.read(_sign_in_user(username))
    hashed = user["password_hash"] if user and not user["disabled"] else None
    ok = bool(username and password) and await asyncio.to_thread(verify_password, hashed, password)
    if not ok:  # the reserved attempt stays, as the failure
        return _login_page(
            request,
            username=username,
            next_path=next_path,
            status=401,
            error=_("The user name or the password is wrong."),
        )
    session_id = secrets.token_urlsafe(32)
    lang = layout.choose_language(request, user_lang=user["lang"])
    expires = now + timedelta(hours=settings.session_hours)
    rehash = _hasher.check_needs_rehash(hashed) if hashed else False
    new_hash = await asyncio.to_thread(hash_password, password) if rehash else None

    old = request.cookies.get(SESSION_COOKIE)
    replaced = _digest(old) if old else None
    if replaced:
        _sessions.pop(replaced, None)

    def open_session(conn: sqlite3.Connection) -> None:
        attempts.clear(conn, attempts.SIGN_IN, key, attempt)
        if replaced:  # signing in again, perhaps as someone else: the old session ends
            conn.execute("DELETE FROM sessions WHERE id = ?", (replaced,))
        conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now.isoformat(),))
        conn.execute(
            "INSERT INTO sessions (id, user, created_at, expires_at, lang) VALUES (?, ?, ?, ?, ?)",
            (_digest(session_id), user["name"], now.isoformat(), expires.isoformat(), lang),
        )
        if new_hash:
            conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (new_hash, user["name"]))

    await state.store.write(open_session)
    return Redirect(
        next_path, status_code=303, cookies=[session_cookie(request, session_id, int(settings.session_hours * 3600))]
    )


@post("/manage/logout", include_in_schema=False)
async def logout(request: Request, state: State) -> Response:
    value = request.cookies.get(SESSION_COOKIE)
    if value:
        digest = _digest(value)
        _sessions.pop(digest, None)
        await state.store.write(lambda conn: conn.execute("DELETE FROM sessions WHERE id = ?", (digest,)))
    return Redirect(LOGIN_PATH, status_code=303, cookies=[clearing_cookie(request)])


# -- errors under /manage as pages ------------------------------------------------------------


def wants_page(request: Request) -> bool:
    """Errors under /manage are pages unless the client asked for JSON or an event stream."""
    if not request.url.path.startswith("/manage"):
        return False
    accept = request.headers.get("accept", "")
    return "application/json" not in accept and "text/event-stream" not in accept


def page_exception_handlers(base: dict) -> dict:
    """The app's JSON error handlers, with /manage pages answered as HTML and sign-in as a redirect."""
    json_feedback = base[FeedbackError]
    json_http = base[HTTPException]

    def on_feedback_error(request: Request, exc: FeedbackError) -> Response:
        if wants_page(request):
            return layout.error_page(request, exc.status_code)
        return json_feedback(request, exc)

    def on_http_error(request: Request, exc: HTTPException) -> Response:
        if wants_page(request):
            return layout.error_page(request, exc.status_code)
        return json_http(request, exc)

    def on_sign_in(request: Request, exc: SignInRequired) -> Response:
        if not wants_page(request):
            return json_feedback(request, Unauthorized("session: sign in first", "session"))
        return Redirect(f"{LOGIN_PATH}?next={quote(exc.next_path, safe='/')}", status_code=303)

    return {**base, FeedbackError: on_feedback_error, HTTPException: on_http_error, SignInRequired: on_sign_in}


ROUTES: list = [login_form, login, logout]

from feedback.web.manage import users as _users  # noqa: E402  (its pages use the helpers above)

ROUTES.extend(_users.ROUTES)
