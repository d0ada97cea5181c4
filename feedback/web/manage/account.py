"""The signed-in user's own account at /manage/account, and the second step of a sign-in.

- Two-factor sign-in (`feedback.two_factor`): set up by scanning a QR code and confirming a current
  code, which switches it on and shows ten recovery codes once; new recovery codes and switching it
  off need a current code (switching off also takes the password instead).
- The second step at /manage/login/code: after the right password of a user with TOTP on, the session
  waits (`stage` "2fa") for a current code or an unused recovery code, then a new, signed-in session
  replaces it. Wrong codes count against the user like wrong passwords (reserved before they are
  checked, `FEEDBACK_LOCKOUT_ATTEMPTS` per `FEEDBACK_LOCKOUT_MINUTES`), on a ledger key of their own.
- A user whose role must use two-factor sign-in (`FEEDBACK_REQUIRE_2FA`) and has none waits in the
  stage "enrol" after its password: every page but this one (and signing out) sends it here.
- The user's own sessions (`feedback.sessions`), each revocable; revoking this browser's signs it out.
"""

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import audit, sessions, two_factor
from feedback.errors import Unauthorized
from feedback.passwords import verify_password
from feedback.store import Connection
from feedback.store import users as user_store
from feedback.web.access import authenticator
from feedback.web.manage import layout
from feedback.web.manage.auth import (
    ACCOUNT_PATH,
    CODE_PATH,
    LOGIN_PATH,
    MAX_FIELD,
    SignInRequired,
    clearing_cookie,
    current_session,
    forget_sessions,
    safe_next,
    session_cookie,
    session_digest,
    session_principal,
    sign_in_key,
    start_session,
)
from feedback.web.security import Principal

# The ledger key of a user's second-step guesses: apart from its passwords' (a right password must not
# wipe wrong codes); a name typed at sign-in counts under its own prefix (`sign_in_key`), never here.
CODE_KEY_PREFIX = "2fa/"
NOTICES = {
    "disabled": "Two-factor sign-in is off.",
    "revoked": "The session was signed out.",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _code_key(name: str) -> str:
    return CODE_KEY_PREFIX + name.strip().lower()[:MAX_FIELD]


def _password_key(name: str) -> str:
    return sign_in_key(name)  # the sign-in form's key: one count for every password


async def account_user(request: Request, state: State) -> Principal:
    """The signed-in user, or one that must set two-factor sign-in up before anything else (stage
    "enrol"); anyone else signs in first."""
    principal = await session_principal(request)
    if principal is not None:
        return principal
    row = await current_session(request)
    if row is None or row["stage"] != two_factor.ENROL_STAGE:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    principal = Principal(row["user"], row["role"], row["unit"])
    request.scope["fb_user"] = principal  # type: ignore[typeddict-unknown-key]
    request.scope["fb_session_lang"] = row["lang"]  # type: ignore[typeddict-unknown-key]
    return principal


ACCOUNT = authenticator(account_user)


async def _session(request: Request) -> dict[str, Any]:
    """The session `account_user` accepted (read once per request), or a sign-in when it is gone."""
    row = await current_session(request)
    if row is None:
        raise SignInRequired(ACCOUNT_PATH)
    return row


DEPENDENCIES = {"principal": ACCOUNT}


# -- proving a code --------------------------------------------------------------------------------


class Proof(NamedTuple):
    """A code that matched: a TOTP code's time step, or the recovery code list and the hash it matched."""

    step: int | None = None
    stored: str | None = None
    matched: str | None = None


async def _reserve(state: State, key: str, now: datetime) -> int | None:
    """Count a guess before it is checked (None: too many wrong ones lately), as sign-in does."""
    settings = state.settings
    window = timedelta(minutes=settings.lockout_minutes)
    return await state.store.write(
        lambda conn: user_store.reserve_attempt(conn, user_store.SIGN_IN, key, now, window, settings.lockout_attempts)
    )


async def _proof(state: State, name: str, typed: str, now: datetime, *, recovery: bool) -> Proof | None:
    """The proof a typed code gives for a user with TOTP on (a recovery code only when `recovery`)."""
    row = await state.store.read(lambda conn: user_store.two_factor(conn, name))
    if row is None or not row["totp_secret"]:
        return None
    code = two_factor.clean_code(typed)
    if two_factor.is_totp_code(code):
        secret = two_factor.unseal(row["totp_secret"], state.settings.secret)
        step = two_factor.code_step(secret, code, now)
        return None if step is None else Proof(step=step)
    if not recovery:
        return None
    matched = await asyncio.to_thread(two_factor.matching_recovery_code, row["recovery_codes"], code)
    return None if matched is None else Proof(stored=row["recovery_codes"], matched=matched)


class CodeRefused(Unauthorized):
    """The code matched but was taken meanwhile: a replayed TOTP code or a spent recovery code."""

    def __init__(self) -> None:
        super().__init__("code: this code was used already", "code")


def _spend(conn: Connection, name: str, proof: Proof) -> None:
    """Take the proof's code for good (in the caller's transaction); CodeRefused when it was taken."""
    if proof.step is not None:
        spent = two_factor.take_step(conn, name, proof.step)
    else:
        spent = two_factor.spend_recovery_code(conn, name, proof.stored or "[]", proof.matched or "")
    if not spent:
        raise CodeRefused()


def _code_errors(request: Request) -> dict[str, str]:
    _ = layout.translator(request)
    return {
        "wrong": _("The code is wrong."),
        "used": _("This code was used already. Wait for the next code and enter it."),
        "locked": _("Too many wrong codes. Try again in %(minutes)d minutes."),
    }


def _actor(row: dict[str, Any]) -> audit.Actor:
    return audit.Actor("user", row["user"], row["unit"])


# -- the second step of a sign-in ----------------------------------------------------------------------


def _code_page(request: Request, next_path: str, *, error: str | None = None, status: int = 200) -> Response:
    return layout.render(request, "login_code.html", {"error": error, "next": next_path}, status=status)


async def _waiting_for_code(request: Request) -> dict[str, Any] | None:
    row = await current_session(request)
    return row if row is not None and row["stage"] == two_factor.CODE_STAGE else None


@get(CODE_PATH, include_in_schema=False)
async def code_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await _waiting_for_code(request) is None:
        return Redirect(f"{LOGIN_PATH}?next={quote(next_path, safe='/')}", status_code=303)
    return _code_page(request, next_path)


@post(CODE_PATH, include_in_schema=False)
async def code_submit(request: Request, state: State) -> Response:
    form = await request.form()
    next_path = safe_next(str(form.get("next") or ""))
    row = await _waiting_for_code(request)
    if row is None:  # expired or revoked meanwhile: from the top
        return Redirect(f"{LOGIN_PATH}?next={quote(next_path, safe='/')}", status_code=303)
    errors = _code_errors(request)
    name, now = row["user"], _now()
    key = _code_key(name)
    attempt = await _reserve(state, key, now)
    if attempt is None:
        error = errors["locked"] % {"minutes": round(state.settings.lockout_minutes)}
        return _code_page(request, next_path, error=error, status=429)
    proof = await _proof(state, name, str(form.get("code") or ""), now, recovery=True)
    if proof is None:  # the reserved attempt stays, as the failure
        return _code_page(request, next_path, error=errors["wrong"], status=401)

    def finish(conn: Connection) -> None:
        if user_store.session(conn, row["digest"]) is None:
            raise Unauthorized("session: signed out meanwhile", "session")
        _spend(conn, name, proof)
        user_store.clear_attempts(conn, user_store.SIGN_IN, key, attempt)

    user = await state.store.read(lambda conn: user_store.sign_in_record(conn, name))
    try:
        with audit.acting_as(_actor(row)):
            return await start_session(
                request, state, user or {"name": name, "lang": None}, next_path, method="totp", also=finish
            )
    except CodeRefused:
        return _code_page(request, next_path, error=errors["used"], status=401)
    except Unauthorized:
        return Redirect(f"{LOGIN_PATH}?next={quote(next_path, safe='/')}", status_code=303)


# -- the account page ------------------------------------------------------------------------------------


async def _account_page(
    request: Request,
    state: State,
    principal: Principal,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    row = await _session(request)
    name = principal.user

    def read(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
        pending = user_store.totp_pending(conn, row["digest"])
        return two_factor.status(conn, name), sessions.list_of(conn, name), pending

    factor, own, pending = await state.store.read(read)
    setup = None
    secret = None if factor["enabled"] else two_factor.unseal(pending, state.settings.secret)
    if secret is not None:
        uri = two_factor.provisioning_uri(secret, name)
        setup = {"qr": await asyncio.to_thread(two_factor.qr_data_uri, uri), "secret": two_factor.grouped(secret)}
    enrolling = row["stage"] == two_factor.ENROL_STAGE
    done = request.query_params.get("done")
    context = {
        "enrolling": enrolling,
        "next": safe_next(request.query_params.get("next")),
        **factor,
        "setup": setup,
        "sessions": own,
        "current_sid": row["sid"],
        "revoke_base": ACCOUNT_PATH + "/sessions",
        "required": two_factor.required(state.settings.require_2fa, principal.role),
        "error": error,
        "notice": NOTICES.get(done or ""),
    }
    if enrolling:
        context["nav"] = []  # nothing else opens until two-factor sign-in is set up
    return layout.render(request, "account.html", context, status=status)


def _back(next_path: str | None = None, done: str | None = None, anchor: str = "") -> Redirect:
    params = [f"next={quote(next_path, safe='/')}" if next_path else "", f"done={done}" if done else ""]
    query = "&".join(p for p in params if p)
    return Redirect(f"{ACCOUNT_PATH}{'?' + query if query else ''}{anchor}", status_code=303)


@get(ACCOUNT_PATH, dependencies=DEPENDENCIES, include_in_schema=False)
async def account_page(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    return await _account_page(request, state, principal)


@post(ACCOUNT_PATH + "/2fa/setup", dependencies=DEPENDENCIES, include_in_schema=False)
async def setup_start(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """A new secret to scan, kept (encrypted) on this session until a code confirms it."""
    form = await request.form()
    row = await _session(request)
    sealed = two_factor.seal(two_factor.new_secret(), state.settings.secret)

    def start(conn: Connection) -> None:
        if not two_factor.status(conn, principal.user)["enabled"]:  # on already: nothing to set up
            user_store.set_totp_pending(conn, row["digest"], sealed)

    await state.store.write(start)
    return _back(str(form.get("next") or "") or None, anchor="#two-factor")


def _codes_page(request: Request, codes: list[str], next_path: str) -> Response:
    """The recovery codes, on the answer to the POST that made them: never stored, never shown again."""
    return layout.render(request, "account_codes.html", {"codes": codes, "next": next_path})


@post(ACCOUNT_PATH + "/2fa/confirm", dependencies=DEPENDENCIES, include_in_schema=False)
async def setup_confirm(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """A current code from the app switches TOTP on; the recovery codes are shown on this answer only.
    A session that waited for this (stage "enrol") is replaced by a signed-in one."""
    form = await request.form()
    row = await _session(request)
    next_path = safe_next(str(form.get("next") or ""))
    settings, now = state.settings, _now()
    pending = await state.store.read(lambda conn: user_store.totp_pending(conn, row["digest"]))
    secret = two_factor.unseal(pending, settings.secret)
    step = two_factor.code_step(secret, two_factor.clean_code(str(form.get("code") or "")), now)
    if secret is None or step is None:
        _ = layout.translator(request)
        return await _account_page(request, state, principal, error=_("The code is wrong."), status=400)
    codes = two_factor.new_recovery_codes()
    hashed = await asyncio.to_thread(two_factor.hash_recovery_codes, codes)
    sealed = pending or ""
    enrolling = row["stage"] == two_factor.ENROL_STAGE
    fresh = secrets.token_urlsafe(32)
    agent = await asyncio.to_thread(sessions.agent_summary, request.headers.get("user-agent"))

    def enable(conn: Connection) -> bool:
        # The session this request read may have been signed out (or have run out) since: checked again
        # in the write, so a revoked session neither switches TOTP on nor becomes a signed-in one.
        still = user_store.session(conn, row["digest"])
        if still is None or still["stage"] != row["stage"] or still["expires_at"] <= now.isoformat():
            raise Unauthorized("session: signed out meanwhile", "session")
        if not two_factor.enable(conn, principal.user, sealed, step, hashed, now):
            return False  # switched on meanwhile (another tab)
        user_store.set_totp_pending(conn, row["digest"], None)
        if enrolling:
            user_store.end_session(conn, row["digest"])
            until = now + timedelta(hours=settings.session_hours)
            sid = sessions.new_sid()
            user_store.open_session(
                conn,
                session_digest(fresh),
                principal.user,
                now.isoformat(),
                until.isoformat(),
                row["lang"],
                sid=sid,
                user_agent=agent,
            )
            # A sign-in like any other (see `start_session`): the code just set up was its second step.
            after = {"user": principal.user, "method": "totp"}
            audit.record(conn, "session", sid, "sign_in", after=after, unit=row["unit"])
        return True

    try:
        with audit.acting_as(_actor(row)):
            enabled = await state.store.write(enable)
    except Unauthorized:
        return Redirect(f"{LOGIN_PATH}?next={quote(next_path, safe='/')}", status_code=303)
    if not enabled:
        return _back(next_path if enrolling else None, anchor="#two-factor")
    response = _codes_page(request, codes, next_path if enrolling else ACCOUNT_PATH)
    if enrolling:
        response.set_cookie(session_cookie(request, fresh, int(settings.session_hours * 3600)))
    return response


async def _checked(
    request: Request, state: State, principal: Principal, form: Any, *, password: bool
) -> tuple[Proof | None, str | None, int]:
    """A current code (or, with `password`, the user's password) from the form, counted like sign-ins:
    (the code's proof or None for the password, None, 200), or (None, the error to show, its status)."""
    errors = _code_errors(request)
    now = _now()
    typed_password = str(form.get("password") or "")[:1024] if password else ""
    key = _password_key(principal.user) if typed_password else _code_key(principal.user)
    attempt = await _reserve(state, key, now)
    if attempt is None:
        return None, errors["locked"] % {"minutes": round(state.settings.lockout_minutes)}, 429
    if typed_password:
        record = await state.store.read(lambda conn: user_store.sign_in_record(conn, principal.user))
        hashed = record["password_hash"] if record else None
        if not await asyncio.to_thread(verify_password, hashed, typed_password):
            _ = layout.translator(request)
            return None, _("The password is wrong."), 401
        await state.store.write(lambda conn: user_store.clear_attempts(conn, user_store.SIGN_IN, key, attempt))
        return None, None, 200
    proof = await _proof(state, principal.user, str(form.get("code") or ""), now, recovery=False)
    if proof is None:
        return None, errors["wrong"], 401

    def spend(conn: Connection) -> None:
        _spend(conn, principal.user, proof)
        user_store.clear_attempts(conn, user_store.SIGN_IN, key, attempt)

    try:
        await state.store.write(spend)
    except CodeRefused:
        return None, errors["used"], 401
    return proof, None, 200


@post(ACCOUNT_PATH + "/2fa/disable", dependencies=DEPENDENCIES, include_in_schema=False)
async def disable(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """Switch TOTP off with a current code or the password."""
    form = await request.form()
    _proof_found, error, status = await _checked(request, state, principal, form, password=True)
    if error is not None:
        return await _account_page(request, state, principal, error=error, status=status)
    await state.store.write(lambda conn: two_factor.disable(conn, principal.user))
    return _back(done="disabled", anchor="#two-factor")


@post(ACCOUNT_PATH + "/2fa/recovery-codes", dependencies=DEPENDENCIES, include_in_schema=False)
async def renew_codes(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """Ten new recovery codes for a current code; the old ones stop working."""
    form = await request.form()
    _proof_found, error, status = await _checked(request, state, principal, form, password=False)
    if error is not None:
        return await _account_page(request, state, principal, error=error, status=status)
    codes = two_factor.new_recovery_codes()
    hashed = await asyncio.to_thread(two_factor.hash_recovery_codes, codes)

    def renew(conn: Connection) -> bool:
        found = user_store.two_factor(conn, principal.user)
        if found is None or not found["totp_secret"]:
            return False
        return two_factor.renew_recovery_codes(conn, principal.user, found["recovery_codes"], hashed)

    if not await state.store.write(renew):
        return _back(anchor="#two-factor")
    return _codes_page(request, codes, ACCOUNT_PATH)


@post(ACCOUNT_PATH + "/sessions/{sid:str}/revoke", dependencies=DEPENDENCIES, include_in_schema=False)
async def revoke_session(
    request: Request, state: State, principal: NamedDependency[Principal], sid: FromPath[str]
) -> Response:
    """Sign one of the user's own sessions out; this browser's own is signed out with it."""
    row = await _session(request)
    await state.store.write(lambda conn: sessions.revoke_own(conn, principal.user, sid[:MAX_FIELD]))
    forget_sessions(state.store, principal.user)
    if sid == row["sid"]:
        return Redirect(LOGIN_PATH, status_code=303, cookies=[clearing_cookie(request)])
    return _back(done="revoked", anchor="#sessions")


ROUTES: list = [code_form, code_submit, account_page, setup_start, setup_confirm, disable, renew_codes, revoke_session]
