"""Admin pages for users and their API tokens at /manage/admin/users.

Only admins may open them, and each admin only for the users it administers (feedback.user_admin holds
the rule: an admin with a unit sees and changes only users of its subtree; any other user answers 404).
Every change is a POST form with the CSRF token, answered with a 303 back to a page (post/redirect/get);
invalid input re-renders the form with a message and 400, a change the admin may not make with 403.
A new API token is shown once, on the page that answers the POST that made it.
"""

import asyncio
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import sessions, two_factor, user_admin
from feedback.catalog import Snapshot
from feedback.errors import Conflict, FeedbackError, Forbidden, NotFound
from feedback.models import LANGUAGES, ROLES
from feedback.passwords import check_password, hash_password
from feedback.store import Connection
from feedback.web.access import requires
from feedback.web.api import fresh_snapshot
from feedback.web.manage import layout
from feedback.web.manage.auth import MAX_FIELD, SESSION, forget_sessions
from feedback.web.security import Principal, forget_tokens

BASE = "/manage/admin/users"
DEPENDENCIES = {"user": SESSION}
# Only admins open these pages (each only for the users it administers, which feedback.user_admin checks).
GUARDS = [requires(user_admin.require_admin)]

# Short keys in ?done= after a change, shown as a notice.
NOTICES = {
    "created": "The user was created.",
    "saved": "The changes were saved.",
    "disabled": "The user was disabled and signed out.",
    "enabled": "The user was enabled.",
    "password": "The password was changed; the user was signed out everywhere.",
    "revoked": "The token was revoked. Programs using it are refused within 30 seconds.",
    "session_revoked": "The session was signed out.",
    "2fa_reset": "Two-factor sign-in is off for this user. They can set it up again at their next sign-in.",
}
# Which message to show for an input error or a refusal.
FIELD_ERRORS = {
    "user": "Enter a user name without spaces or slashes.",
    "role": "Choose a role.",
    "unit": "Choose a unit: every role but administrator needs one.",
    "password": "The password needs at least 8 characters.",
    "lang": "Choose a language.",
    "email": "Enter a valid e-mail address.",
    "exists": "A user with this name exists already.",
    "self": "You cannot change your own role or unit or disable yourself; another administrator must.",
    "role_denied": "You may not give this role.",
    "unit_denied": "Choose a unit inside your own unit: you administer only the users there.",
    "token_disabled": "A disabled user cannot get a token. Enable the user first.",
}


def _field(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()[:MAX_FIELD]


def _unit_choices(snapshot: Snapshot, actor: Principal, unit_name: Any) -> list[tuple[str, str]]:
    """The units the admin may give: its own subtree (every unit for an admin without one)."""
    ordered = sorted(snapshot.units.values(), key=lambda u: u.path)
    return [
        (u.code, "\u2003" * (u.path.strip("/").count("/")) + unit_name(u.code))
        for u in ordered
        if actor.unit is None or snapshot.in_subtree(u.code, actor.unit)
    ]


def _choices(request: Request, snapshot: Snapshot, actor: Principal) -> dict[str, Any]:
    context = layout.base_context(request)
    roles = [r for r in ROLES if user_admin.ROLE_RANK[r] <= user_admin.ROLE_RANK.get(actor.role, 0)]
    return {
        "units": _unit_choices(snapshot, actor, context["unit_name"]),
        "roles": roles,
        "lang_codes": LANGUAGES,
        "may_give_no_unit": actor.unit is None,
    }


def _message_key(error: FeedbackError, actor: Principal, name: str | None) -> str:
    if isinstance(error, Forbidden):
        if name == actor.user:
            return "self"
        return "role_denied" if error.field == "role" else "unit_denied"
    if isinstance(error, Conflict):
        return "token_disabled" if error.field == "user" else "exists"
    if error.field == "name":
        return "user"
    return error.field if error.field in FIELD_ERRORS else "user"


def _refusal(request: Request, error: FeedbackError, actor: Principal, name: str | None) -> tuple[str, int]:
    """The page message and status for an error that re-renders a form (a hidden user stays a 404)."""
    if isinstance(error, NotFound) and error.field in ("user", "id"):
        raise error
    _ = layout.translator(request)
    return _(FIELD_ERRORS[_message_key(error, actor, name)]), 403 if isinstance(error, Forbidden) else 400


async def _list_page(
    request: Request,
    state: State,
    actor: Principal,
    *,
    error: str | None = None,
    form: dict | None = None,
    status: int = 200,
) -> Response:
    snapshot = await fresh_snapshot(state)
    users = await state.store.read(lambda conn: user_admin.list_users(conn, actor, snapshot))
    done = request.query_params.get("done")
    return layout.render(
        request,
        "users.html",
        {
            "users": users,
            "error": error,
            "form": form or {},
            "notice": NOTICES.get(done or ""),
            **_choices(request, snapshot, actor),
        },
        status=status,
    )


async def _user_page(
    request: Request,
    state: State,
    actor: Principal,
    name: str,
    *,
    error: str | None = None,
    status: int = 200,
    new_token: dict | None = None,
) -> Response:
    snapshot = await fresh_snapshot(state)

    def read(conn: Connection) -> tuple[dict, list[dict], list[dict], dict]:
        target = user_admin.visible_user(conn, actor, name, snapshot)
        tokens = user_admin.list_tokens(conn, actor, snapshot, name)
        return target, tokens, sessions.list_of(conn, name), two_factor.status(conn, name)

    target, tokens, user_sessions, factor = await state.store.read(read)
    done = request.query_params.get("done") if new_token is None else None
    return layout.render(
        request,
        "auth_user.html",
        {
            "target": target,
            "tokens": tokens,
            "sessions": user_sessions,
            "current_sid": None,
            "revoke_base": f"{BASE}/{quote(name, safe='')}/sessions",
            "two_factor": factor,
            "new_token": new_token,
            "error": error,
            "notice": NOTICES.get(done or ""),
            **_choices(request, snapshot, actor),
        },
        status=status,
    )


def _forget(state: State, name: str) -> None:
    """This app's caches of the user, so the change holds at once here (other processes: soon)."""
    state.catalog.invalidate()
    forget_sessions(state.store, name)
    forget_tokens(state.store, user=name)


@get(BASE, dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def users_list(request: Request, state: State, user: NamedDependency[Principal]) -> Response:
    return await _list_page(request, state, user)


@post(BASE, dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_create(request: Request, state: State, user: NamedDependency[Principal]) -> Response:
    form = await request.form()
    values = {k: _field(form, k) for k in ("name", "role", "unit", "email", "lang")}
    password = str(form.get("password") or "")
    snapshot = await fresh_snapshot(state)
    try:
        check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        await state.store.write(
            lambda conn: user_admin.create_user(
                conn,
                user,
                snapshot,
                values["name"],
                values["role"],
                values["unit"] or None,
                email=values["email"] or None,
                lang=values["lang"] or None,
                password_hash=hashed,
            )
        )
    except FeedbackError as error:
        message, status = _refusal(request, error, user, None)
        return await _list_page(request, state, user, error=message, form=values, status=status)
    state.catalog.invalidate()
    return Redirect(f"{BASE}?done=created", status_code=303)


@get(BASE + "/{name:str}", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_detail(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    return await _user_page(request, state, user, name)


async def _change(request: Request, state: State, actor: Principal, name: str, done: str, **changes: Any) -> Response:
    snapshot = await fresh_snapshot(state)
    try:
        await state.store.write(lambda conn: user_admin.change_user(conn, actor, snapshot, name, **changes))
    except FeedbackError as error:
        message, status = _refusal(request, error, actor, name)
        return await _user_page(request, state, actor, name, error=message, status=status)
    _forget(state, name)
    return Redirect(f"{BASE}/{quote(name, safe='')}?done={done}", status_code=303)


@post(BASE + "/{name:str}", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_update(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    form = await request.form()
    return await _change(
        request,
        state,
        user,
        name,
        "saved",
        role=_field(form, "role"),
        unit=_field(form, "unit") or None,
        email=_field(form, "email") or None,
        lang=_field(form, "lang") or None,
    )


@post(BASE + "/{name:str}/disable", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_disable(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    return await _change(request, state, user, name, "disabled", disabled=True)


@post(BASE + "/{name:str}/enable", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_enable(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    return await _change(request, state, user, name, "enabled", disabled=False)


@post(BASE + "/{name:str}/password", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_password(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    snapshot = await fresh_snapshot(state)
    # The user must be the admin's before anything is hashed or said about the password.
    await state.store.read(lambda conn: user_admin.visible_user(conn, user, name, snapshot))
    form = await request.form()
    password = str(form.get("password") or "")
    try:
        check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        await state.store.write(lambda conn: user_admin.set_password(conn, user, snapshot, name, hashed))
    except FeedbackError as error:
        message, status = _refusal(request, error, user, name)
        return await _user_page(request, state, user, name, error=message, status=status)
    _forget(state, name)
    return Redirect(f"{BASE}/{quote(name, safe='')}?done=password", status_code=303)


@post(BASE + "/{name:str}/tokens", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_token_create(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    """The new token is on this answer only: it is never stored, so no later page can show it."""
    snapshot = await fresh_snapshot(state)
    try:
        created = await state.store.write(lambda conn: user_admin.create_token(conn, user, snapshot, name))
    except FeedbackError as error:
        message, status = _refusal(request, error, user, name)
        return await _user_page(request, state, user, name, error=message, status=status)
    return await _user_page(request, state, user, name, new_token=created)


@post(
    BASE + "/{name:str}/tokens/{token_id:str}/revoke", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False
)
async def user_token_revoke(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str], token_id: FromPath[str]
) -> Response:
    snapshot = await fresh_snapshot(state)

    def revoke(conn: Connection) -> str:
        user_admin.visible_user(conn, user, name, snapshot)
        token = next((t for t in user_admin.list_tokens(conn, user, snapshot, name) if t["id"] == token_id), None)
        if token is None:  # another user's token is not revoked through this user's page
            raise NotFound(f"id: no token {token_id!r}", "id")
        return user_admin.revoke_token(conn, user, snapshot, token_id)[1]

    forget_tokens(state.store, digest=await state.store.write(revoke))
    return Redirect(f"{BASE}/{quote(name, safe='')}?done=revoked", status_code=303)


@post(BASE + "/{name:str}/sessions/{sid:str}/revoke", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_session_revoke(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str], sid: FromPath[str]
) -> Response:
    """Sign one of the user's sessions out (it stops working at once, on every node)."""
    snapshot = await fresh_snapshot(state)
    await state.store.write(lambda conn: sessions.revoke_for_admin(conn, user, snapshot, name, sid[:MAX_FIELD]))
    forget_sessions(state.store, name)
    return Redirect(f"{BASE}/{quote(name, safe='')}?done=session_revoked", status_code=303)


@post(BASE + "/{name:str}/2fa/reset", dependencies=DEPENDENCIES, guards=GUARDS, include_in_schema=False)
async def user_two_factor_reset(
    request: Request, state: State, user: NamedDependency[Principal], name: FromPath[str]
) -> Response:
    """Switch two-factor sign-in off for a user who lost its phone and its recovery codes."""
    snapshot = await fresh_snapshot(state)
    await state.store.write(lambda conn: two_factor.reset_by_admin(conn, user, snapshot, name))
    return Redirect(f"{BASE}/{quote(name, safe='')}?done=2fa_reset", status_code=303)


ROUTES: list = [
    user_session_revoke,
    user_two_factor_reset,
    users_list,
    user_create,
    user_detail,
    user_update,
    user_disable,
    user_enable,
    user_password,
    user_token_create,
    user_token_revoke,
]
