"""Sign-in, server-side sessions, roles and unit scope for the manager web app.

Passwords are argon2id hashes. A session is a random id in the `fb_session` cookie; SQLite keeps
only its SHA-256 (table `sessions`), so every worker sees the same sessions and a copy of the
database cannot be used to sign in. Sign-ins are counted per user name in SQLite
(`login_attempts`), each reserved before its password is checked; after `settings.lockout_attempts`
failures within `settings.lockout_minutes` the name is locked for that long, whether or not such a
user exists, and however many guesses arrive at once.

Page handlers take the signed-in user with the `SESSION` dependency (guards on the route see the same user):

    @get("/manage/things", dependencies={"principal": SESSION}, guards=[requires_role("admin")])
    async def things(request: Request, principal: NamedDependency[Principal]) -> Response: ...

Not signed in → 303 to /manage/login?next=<path>. Errors raised under /manage (Forbidden, NotFound,
a missing CSRF token…) leave as an HTML page in the user's language unless the client asked for JSON.
"""

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.exceptions import HTTPException
from litestar.response import Redirect

from feedback import audit, directory_login, sessions, two_factor
from feedback.auth import rehash_password
from feedback.db import Store
from feedback.errors import FeedbackError, StorageUnavailable, Unauthorized
from feedback.passwords import hash_password, needs_rehash, verify_password
from feedback.store import Connection
from feedback.store import users as user_store
from feedback.web.access import authenticator
from feedback.web.manage import layout
from feedback.web.security import Principal, current_principal

SESSION_COOKIE = "fb_session"
CSRF_COOKIE = layout.CSRF_COOKIE
CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrftoken"
LOGIN_PATH = "/manage/login"
HOME_PATH = "/manage/"
# The second step of a sign-in (a TOTP or recovery code) and the page that sets two-factor sign-in up.
CODE_PATH = "/manage/login/code"
ACCOUNT_PATH = "/manage/account"
# Sign-ins by a password that a second factor follows (an identity provider asks for its own).
SECOND_FACTOR_METHODS = ("password", "ldap")
WRITER_ROLES = ("admin", "manager")
# Per-officer figures: everyone but viewers.
OFFICER_ROLES = ("admin", "manager", "auditor")
# Sessions are read from the database on every request; the look-ups are kept this long per worker
# only to name the user in the header of a page no route answered (a 404).
SESSION_CACHE_SECONDS = 5.0
# A session's last use is written at most this often.
TOUCH_SECONDS = 60.0
MAX_FIELD = 200


# -- sessions -----------------------------------------------------------------------------------


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def session_digest(session_id: str) -> str:
    """What the database keeps of a session's cookie value (its SHA-256)."""
    return _digest(session_id)


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
SessionCache = dict[str, tuple[tuple[str, str, str | None, str | None] | None, float]]


def _sessions(store: Store) -> SessionCache:
    """This app's cached session look-ups."""
    return store.local("sessions", dict)


async def current_session(request: Request) -> dict[str, Any] | None:
    """This request's session as stored now, signed in or still owing a step (`stage`), with its
    `digest`; None without a cookie, or for one that is unknown, revoked, expired or whose user is
    disabled. Read from the database on every request (on a reader thread), so a session revoked or
    ended anywhere, on any node, stops working at once; its last use is written once a minute."""
    if "fb_session_row" in request.scope:
        return request.scope["fb_session_row"]  # type: ignore[typeddict-item]
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > 200:
        return None
    digest = _digest(value)
    state = request.app.state
    row = await state.store.read(lambda conn: user_store.session(conn, digest))
    now = _now()
    if row is not None and row["disabled"]:
        user = row["user"]
        await state.store.write(lambda conn: user_store.end_sessions_of(conn, user))
        row = None
    elif row is not None and row["expires_at"] <= now.isoformat():
        row = None
    if row is not None:
        row = {**row, "digest": digest}
        await _touch(state, row, now)
    request.scope["fb_session_row"] = row  # type: ignore[typeddict-unknown-key]
    return row


async def _touch(state: State, row: dict[str, Any], now: datetime) -> None:
    """Note the session's use when the last note is older than TOUCH_SECONDS (not a write per page)."""
    seen = row["last_seen_at"]
    if seen and seen > (now - timedelta(seconds=TOUCH_SECONDS)).isoformat():
        return
    digest = row["digest"]
    try:
        await state.store.write(lambda conn: user_store.touch_session(conn, digest, now.isoformat()))
    except StorageUnavailable:  # a full disk: the page can still be read
        return


async def session_principal(request: Request) -> Principal | None:
    """The signed-in user of this request, or None (also while the session still owes a sign-in step)."""
    cached_user = request.scope.get("fb_user")  # type: ignore[typeddict-item]
    if cached_user is not None:
        return cached_user
    row = await current_session(request)
    if row is None or row["stage"] is not None:
        return None
    found = (row["user"], row["role"], row["unit"], row["lang"])
    sessions = _sessions(request.app.state.store)
    if len(sessions) > 10_000:
        sessions.clear()
    sessions[row["digest"]] = (found, time.monotonic() + SESSION_CACHE_SECONDS)
    principal = Principal(found[0], found[1], found[2])
    request.scope["fb_user"] = principal  # type: ignore[typeddict-unknown-key]
    request.scope["fb_session_lang"] = found[3]  # type: ignore[typeddict-unknown-key]
    return principal


async def still_signed_in(request: Request) -> bool:
    """Whether this request's session is signed in now, read again from the database: for an answer
    that outlives the check made when it began (an event stream), so a revoked session gets no more."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > 200:
        return False
    digest = _digest(value)
    row = await request.app.state.store.read(lambda conn: user_store.session(conn, digest))
    return row is not None and row["stage"] is None and not row["disabled"] and row["expires_at"] > _now().isoformat()


def forget_sessions(store: Store, user: str) -> None:
    """Drop this app's cached sessions of a user (after disabling it or changing its password)."""
    sessions = _sessions(store)
    for digest, (found, _until) in list(sessions.items()):
        if found is not None and found[0] == user:
            sessions.pop(digest, None)


def cached_principal(request: Request) -> Principal | None:
    """The signed-in user from this worker's session cache only (for code that may not await)."""
    value = request.cookies.get(SESSION_COOKIE)
    entry = _sessions(request.app.state.store).get(_digest(value)) if value and len(value) <= 200 else None
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


# The principal dependencies of the manager app's pages and of the exports and reports.
SESSION = authenticator(current_user)
TOKEN_OR_SESSION = authenticator(api_principal)


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


#: The prefix of a name's sign-in ledger key (the password form, the directory, the provider): a key space
#: of its own, so no name typed into the form reaches another kind of key, such as a user's count of wrong
#: second-step codes ("2fa/NAME").
SIGN_IN_KEY_PREFIX = "sign_in/"


def sign_in_key(username: str) -> str:
    """The ledger key that counts the sign-ins of a name, whatever the name holds."""
    return SIGN_IN_KEY_PREFIX + username.strip().lower()[:MAX_FIELD]


async def _reserve_attempt(state: State, key: str, now: datetime) -> int | None:
    """Count this sign-in against the name before its password is checked (None: the name is locked).

    Reserved in the write transaction, so however many guesses arrive at once, at most
    `lockout_attempts` of them per window are ever checked."""
    settings = state.settings
    window = timedelta(minutes=settings.lockout_minutes)
    return await state.store.write(
        lambda conn: user_store.reserve_attempt(conn, user_store.SIGN_IN, key, now, window, settings.lockout_attempts)
    )


def _login_page(
    request: Request, *, error: str | None = None, username: str = "", next_path: str = HOME_PATH, status: int = 200
) -> Response:
    return layout.render(
        request,
        "login.html",
        {
            "error": error,
            "username": username,
            "next": next_path,
            "page_title_msg": "Sign in",
            "identity_provider": directory_login.provider_name(request.app.state.settings),
        },
        status=status,
    )


@get(LOGIN_PATH, include_in_schema=False)
async def login_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await session_principal(request) is not None:
        return Redirect(next_path, status_code=303)
    waiting = await current_session(request)
    if waiting is not None:  # the password was right; a second step is still owed
        return Redirect(step_path(waiting["stage"], next_path), status_code=303)
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
    key = sign_in_key(username)
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
    user = await state.store.read(lambda conn: user_store.sign_in_record(conn, username))
    if directory_login.uses_directory(settings, user):  # no local password here: the directory's
        return await _directory_sign_in(request, state, username, password, next_path, key, attempt)
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
    new_hash = await asyncio.to_thread(hash_password, password) if needs_rehash(hashed) else None

    def after_password(conn: Connection) -> None:
        user_store.clear_attempts(conn, user_store.SIGN_IN, key, attempt)
        if new_hash:  # the same password, hashed with today's parameters: no reason to sign out
            rehash_password(conn, user["name"], new_hash)

    return await start_session(request, state, user, next_path, method="password", also=after_password)


async def _directory_sign_in(
    request: Request, state: State, username: str, password: str, next_path: str, key: str, attempt: int
) -> Response:
    """The password form's check against the LDAP directory (a refusal leaves the reserved attempt)."""
    try:
        account = await directory_login.directory_sign_in(state.store, state.settings, username, password)
    except directory_login.Refusal as refusal:
        _ = layout.translator(request)
        error = _(refusal.message) % refusal.values if refusal.values else _(refusal.message)
        return _login_page(request, username=username, next_path=next_path, status=refusal.status, error=error)
    if account.changed:
        state.catalog.invalidate()

    def clear(conn: Connection) -> None:
        user_store.clear_attempts(conn, user_store.SIGN_IN, key, attempt)

    return await start_session(request, state, account.as_user(), next_path, method="ldap", also=clear)


async def start_session(
    request: Request,
    state: State,
    user: Mapping[str, Any],
    next_path: str,
    *,
    method: str,
    also: Callable[[Connection], None] | None = None,
) -> Response:
    """Sign `user` (its `name` and `lang`) in: a new session, the browser's old one ended, and a 303 to
    `next_path` carrying the cookie. Every way of signing in (`method`: password, ldap, oidc) ends here
    once it has established who the user is; `also` runs in the same write transaction."""
    settings = state.settings
    now = _now()
    session_id = secrets.token_urlsafe(32)
    lang = layout.choose_language(request, user_lang=user["lang"])
    expires = now + timedelta(hours=settings.session_hours)
    old = request.cookies.get(SESSION_COOKIE)
    replaced = _digest(old) if old else None
    if replaced:
        _sessions(state.store).pop(replaced, None)

    agent = await asyncio.to_thread(sessions.agent_summary, request.headers.get("user-agent"))

    def open_session(conn: Connection) -> str | None:
        if also is not None:
            also(conn)
        if replaced:  # signing in again, perhaps as someone else: the old session ends
            user_store.end_session(conn, replaced)
        # A password (local or the directory's) may still owe a second factor: the session waits for it.
        owed = method in SECOND_FACTOR_METHODS
        stage = two_factor.stage_after_password(conn, user["name"], settings.require_2fa) if owed else None
        until = expires if stage is None else now + two_factor.step_time(stage)
        sid = sessions.new_sid()
        user_store.open_session(
            conn,
            _digest(session_id),
            user["name"],
            now.isoformat(),
            until.isoformat(),
            lang,
            sid=sid,
            user_agent=agent,
            stage=stage,
        )
        # Who signed in, and how (the session by its public id; never the cookie or its digest), and
        # the step still owed when a second factor follows.
        with audit.acting_as(audit.Actor("user", user["name"], user.get("unit"))):
            after = {"user": user["name"], "method": method, **({"pending": stage} if stage else {})}
            audit.record(conn, "session", sid, "sign_in", after=after, unit=user.get("unit"))
        return stage

    stage = await state.store.write(open_session)
    return Redirect(
        next_path if stage is None else step_path(stage, next_path),
        status_code=303,
        cookies=[session_cookie(request, session_id, int(settings.session_hours * 3600))],
    )


def step_path(stage: str, next_path: str) -> str:
    """Where a session that still owes `stage` goes: the code form, or setting two-factor sign-in up."""
    base = CODE_PATH if stage == two_factor.CODE_STAGE else ACCOUNT_PATH
    return f"{base}?next={quote(next_path, safe='/')}"


@post("/manage/logout", include_in_schema=False)
async def logout(request: Request, state: State) -> Response:
    value = request.cookies.get(SESSION_COOKIE)
    if value:
        digest = _digest(value)
        _sessions(state.store).pop(digest, None)
        await state.store.write(lambda conn: user_store.end_session(conn, digest))
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

    def error_page(request: Request, status: int) -> Response:
        if request.scope.get("fb_user") is None:  # type: ignore[typeddict-item]
            # No route ran (a 404): the header still shows who is signed in, from the session cache.
            cached_principal(request)
        return layout.error_page(request, status)

    def on_feedback_error(request: Request, exc: FeedbackError) -> Response:
        if wants_page(request):
            return error_page(request, exc.status_code)
        return json_feedback(request, exc)

    def on_http_error(request: Request, exc: HTTPException) -> Response:
        if wants_page(request):
            return error_page(request, exc.status_code)
        return json_http(request, exc)

    def on_sign_in(request: Request, exc: SignInRequired) -> Response:
        if not wants_page(request):
            return json_feedback(request, Unauthorized("session: sign in first", "session"))
        return Redirect(f"{LOGIN_PATH}?next={quote(exc.next_path, safe='/')}", status_code=303)

    return {**base, FeedbackError: on_feedback_error, HTTPException: on_http_error, SignInRequired: on_sign_in}


ROUTES: list = [login_form, login, logout]
