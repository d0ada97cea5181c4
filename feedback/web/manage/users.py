"""Admin pages for users at /manage/admin/users: list, create, change role/unit, disable, reset password.

Only admins may open them. Every change is a POST form with the CSRF token, answered with a 303
back to a page (post/redirect/get); invalid input re-renders the form with a message and 400.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.response import Redirect

from feedback.errors import Conflict, FeedbackError, InvalidInput, NotFound
from feedback.models import LANGUAGES, ROLES
from feedback.web.manage import layout
from feedback.web.manage.auth import (
    MAX_FIELD,
    check_password,
    current_user,
    forget_sessions,
    hash_password,
    require_admin,
    save_user,
    set_disabled,
)
from feedback.web.security import Principal

BASE = "/manage/admin/users"
DEPENDENCIES = {"user": Provide(current_user)}

# Short keys in ?done= after a change, shown as a notice.
NOTICES = {
    "created": "The user was created.",
    "saved": "The changes were saved.",
    "disabled": "The user was disabled and signed out.",
    "enabled": "The user was enabled.",
    "password": "The password was changed; the user was signed out everywhere.",
}
# Which message to show for an input error, by the field it names.
FIELD_ERRORS = {
    "user": "Enter a user name without spaces or slashes.",
    "role": "Choose a role.",
    "unit": "Choose a unit: every role but administrator needs one.",
    "password": "The password needs at least 8 characters.",
    "lang": "Choose a language.",
    "email": "Enter a valid e-mail address.",
    "exists": "A user with this name exists already.",
    "self": "You cannot disable yourself.",
}


def _field(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()[:MAX_FIELD]


def _load_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(
        "SELECT name, role, unit, email, lang, coalesce(disabled, 0) AS disabled, created_at,"
        " password_hash IS NOT NULL AS has_password FROM users ORDER BY name")]


def _units(request: Request, unit_name: Any) -> list[tuple[str, str]]:
    snapshot = request.app.state.catalog.snapshot
    ordered = sorted(snapshot.units.values(), key=lambda u: u.path)
    return [(u.code, "\u2003" * (u.path.strip("/").count("/")) + unit_name(u.code)) for u in ordered]


def _choices(request: Request) -> dict[str, Any]:
    context = layout.base_context(request)
    return {"units": _units(request, context["unit_name"]), "roles": ROLES, "lang_codes": LANGUAGES}


async def _list_page(request: Request, state: State, *, error: str | None = None, form: dict | None = None,
                     status: int = 200) -> Response:
    users = await state.store.read(_load_users)
    done = request.query_params.get("done")
    return layout.render(request, "users.html", {
        "users": users, "error": error, "form": form or {}, "notice": NOTICES.get(done or ""), **_choices(request),
    }, status=status)


async def _user_page(request: Request, state: State, name: str, *, error: str | None = None,
                     status: int = 200) -> Response:
    found = [u for u in await state.store.read(_load_users) if u["name"] == name]
    if not found:
        raise NotFound(f"user: no user {name!r}", "user")
    done = request.query_params.get("done")
    return layout.render(request, "auth_user.html", {
        "target": found[0], "error": error, "notice": NOTICES.get(done or ""), **_choices(request),
    }, status=status)


def _error_key(error: FeedbackError) -> str:
    if isinstance(error, Conflict):
        return "exists"
    return error.field if error.field in FIELD_ERRORS else "user"


def _email(value: str) -> str | None:
    if not value:
        return None
    if "@" not in value or any(ch.isspace() for ch in value):
        raise InvalidInput("email: not an e-mail address", "email")
    return value


def _lang(value: str) -> str | None:
    return value or None


@get(BASE, dependencies=DEPENDENCIES, include_in_schema=False)
async def users_list(request: Request, state: State, user: Principal) -> Response:
    require_admin(user)
    return await _list_page(request, state)


@post(BASE, dependencies=DEPENDENCIES, include_in_schema=False)
async def user_create(request: Request, state: State, user: Principal) -> Response:
    require_admin(user)
    form = await request.form()
    values = {k: _field(form, k) for k in ("name", "role", "unit", "email", "lang")}
    password = str(form.get("password") or "")
    try:
        email = _email(values["email"])
        check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        name = values["name"]

        def create(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"user: {name!r} exists already", "user")
            save_user(conn, name, values["role"], values["unit"] or None, email=email,
                      lang=_lang(values["lang"]), password_hash=hashed)

        await state.store.write(create)
    except FeedbackError as error:
        _ = layout.translator(request)
        return await _list_page(request, state, error=_(FIELD_ERRORS[_error_key(error)]), form=values, status=400)
    request.app.state.catalog.invalidate()
    return Redirect(f"{BASE}?done=created", status_code=303)


@get(BASE + "/{name:str}", dependencies=DEPENDENCIES, include_in_schema=False)
async def user_detail(request: Request, state: State, user: Principal, name: str) -> Response:
    require_admin(user)
    return await _user_page(request, state, name)


async def _change(request: Request, state: State, name: str, change: Any, done: str) -> Response:
    try:
        await state.store.write(change)
    except FeedbackError as error:
        if isinstance(error, NotFound) and error.field == "user":
            raise
        _ = layout.translator(request)
        return await _user_page(request, state, name, error=_(FIELD_ERRORS[_error_key(error)]), status=400)
    request.app.state.catalog.invalidate()
    forget_sessions(name)
    return Redirect(f"{BASE}/{quote(name, safe='')}?done={done}", status_code=303)


def _must_exist(conn: sqlite3.Connection, name: str) -> None:
    if not conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
        raise NotFound(f"user: no user {name!r}", "user")


@post(BASE + "/{name:str}", dependencies=DEPENDENCIES, include_in_schema=False)
async def user_update(request: Request, state: State, user: Principal, name: str) -> Response:
    require_admin(user)
    form = await request.form()
    role, unit, lang = _field(form, "role"), _field(form, "unit") or None, _lang(_field(form, "lang"))
    raw_email = _field(form, "email")

    def update(conn: sqlite3.Connection) -> None:
        _must_exist(conn, name)
        email = _email(raw_email)
        save_user(conn, name, role, unit, lang=lang)
        conn.execute("UPDATE users SET email = ?, lang = ? WHERE name = ?", (email, lang, name))

    return await _change(request, state, name, update, "saved")


@post(BASE + "/{name:str}/disable", dependencies=DEPENDENCIES, include_in_schema=False)
async def user_disable(request: Request, state: State, user: Principal, name: str) -> Response:
    require_admin(user)
    if name == user.user:
        _ = layout.translator(request)
        return await _user_page(request, state, name, error=_(FIELD_ERRORS["self"]), status=400)

    def disable(conn: sqlite3.Connection) -> None:
        _must_exist(conn, name)
        set_disabled(conn, name, True)

    return await _change(request, state, name, disable, "disabled")


@post(BASE + "/{name:str}/enable", dependencies=DEPENDENCIES, include_in_schema=False)
async def user_enable(request: Request, state: State, user: Principal, name: str) -> Response:
    require_admin(user)

    def enable(conn: sqlite3.Connection) -> None:
        _must_exist(conn, name)
        set_disabled(conn, name, False)

    return await _change(request, state, name, enable, "enabled")


@post(BASE + "/{name:str}/password", dependencies=DEPENDENCIES, include_in_schema=False)
async def user_password(request: Request, state: State, user: Principal, name: str) -> Response:
    require_admin(user)
    form = await request.form()
    password = str(form.get("password") or "")
    try:
        check_password(password)
    except FeedbackError as error:
        _ = layout.translator(request)
        return await _user_page(request, state, name, error=_(FIELD_ERRORS[_error_key(error)]), status=400)
    hashed = await asyncio.to_thread(hash_password, password)

    def reset(conn: sqlite3.Connection) -> None:
        _must_exist(conn, name)
        conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (hashed, name))
        conn.execute("DELETE FROM sessions WHERE user = ?", (name,))

    return await _change(request, state, name, reset, "password")


ROUTES: list = [users_list, user_create, user_detail, user_update, user_disable, user_enable, user_password]
