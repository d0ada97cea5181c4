"""The JSON API of users and API tokens, for an admin's bearer token, scoped by feedback.user_admin.

An admin with a unit lists and changes only the users of its subtree and their tokens; any other user
or token answers 404, as if it did not exist. Passwords are not set here: the manager app's user page
sets them. A revocation or a change of a user takes effect at once in the server process that made it,
and within `TOKEN_CACHE_SECONDS` (30 s) in the others, which cache token look-ups that long.
"""

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, Struct, UnsetType

from feedback import sessions, user_admin
from feedback.catalog import Snapshot
from feedback.store import Connection
from feedback.web.access import TOKEN, requires
from feedback.web.manage.auth import forget_sessions
from feedback.web.security import Principal, forget_tokens

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\s/\\]+$")]
Code = Annotated[str, Meta(min_length=1, max_length=64)]
Email = Annotated[str, Meta(min_length=3, max_length=200, pattern=r"^[^\s@]+@[^\s@]+$")]
Role = Literal["admin", "manager", "viewer", "auditor"]
Lang = Literal["vi", "ru", "zh", "en"]
NO_STORE = {"cache-control": "no-store"}


class NewUser(Struct, kw_only=True, forbid_unknown_fields=True):
    """A user to create; it signs in once an admin sets its password on the manager app's user page."""

    name: Name
    role: Role
    unit: Code | None = None
    email: Email | None = None
    lang: Lang | None = None


class UserChange(Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields to change; a field left out stays as it is (`unit: null` means no unit, for admins)."""

    role: Role | UnsetType = UNSET
    unit: Code | None | UnsetType = UNSET
    email: Email | None | UnsetType = UNSET
    lang: Lang | None | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET


class UserOut(Struct, kw_only=True):
    name: str
    role: str
    unit: str | None
    email: str | None
    lang: str | None
    disabled: bool
    has_password: bool
    created_at: str


class TokenRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """The user the token is for; the token takes that user's role and unit."""

    user: Name


class TokenOut(Struct, kw_only=True):
    """A token as listed: its id and last four characters, never the token or its hash."""

    id: str
    hint: str
    user: str
    role: str
    unit: str | None
    created_at: str
    revoked_at: str | None


class NewToken(TokenOut, kw_only=True):
    """A token just created: `token` is shown this once and never again."""

    token: str


class SessionOut(Struct, kw_only=True):
    """A manager-app session as listed: its public id, never the cookie or its digest. `signed_in` is false
    while it still owes the second step of its sign-in."""

    id: str
    user: str
    created_at: str
    last_seen_at: str | None
    expires_at: str
    user_agent: str | None
    signed_in: bool


def _session_out(row: dict) -> SessionOut:
    return SessionOut(
        id=row["sid"],
        user=row["user"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        user_agent=row["user_agent"],
        signed_in=row["stage"] is None,
    )


def _user_out(row: dict) -> UserOut:
    return msgspec.convert(row, UserOut, strict=False)


def _token_out(row: dict) -> TokenOut:
    return msgspec.convert({k: v for k, v in row.items() if k != "token"}, TokenOut)


class UsersController(Controller):
    path = "/api/v1/users"
    tags = ["users"]
    dependencies = {"principal": TOKEN}
    guards = [requires(user_admin.require_admin)]

    @get(summary="Users the admin token administers (its unit's subtree; every user for an admin without a unit)")
    async def list_users(
        self, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> list[UserOut]:
        rows = await state.store.read(lambda conn: user_admin.list_users(conn, principal, snapshot))
        return [_user_out(row) for row in rows]

    @post(summary="Create a user in the admin's subtree (with at most the admin's role)")
    async def create_user(
        self,
        data: JSONBody[NewUser],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[UserOut]:
        row = await state.store.write(
            lambda conn: user_admin.create_user(
                conn, principal, snapshot, data.name, data.role, data.unit, email=data.email, lang=data.lang
            )
        )
        state.catalog.invalidate()
        return Response(_user_out(row), status_code=201)

    @patch("/{name:str}", summary="Change a user's role, unit, e-mail, language or whether it is disabled")
    async def change_user(
        self,
        name: FromPath[str],
        data: JSONBody[UserChange],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> UserOut:
        row = await state.store.write(
            lambda conn: user_admin.change_user(
                conn,
                principal,
                snapshot,
                name,
                role=data.role,
                unit=data.unit,
                email=data.email,
                lang=data.lang,
                disabled=data.disabled,
            )
        )
        state.catalog.invalidate()
        forget_sessions(state.store, name)
        forget_tokens(state.store, user=name)
        return _user_out(row)


class TokensController(Controller):
    path = "/api/v1/tokens"
    tags = ["users"]
    dependencies = {"principal": TOKEN}
    guards = [requires(user_admin.require_admin)]

    @get(summary="API tokens of the users the admin token administers (never the token or its hash)")
    async def list_tokens(
        self,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        user: FromQuery[str | None] = None,
    ) -> list[TokenOut]:
        rows = await state.store.read(lambda conn: user_admin.list_tokens(conn, principal, snapshot, user))
        return [_token_out(row) for row in rows]

    @post(summary="A new token for a user the admin administers, with that user's role and unit; shown once")
    async def create_token(
        self,
        data: JSONBody[TokenRequest],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[NewToken]:
        row = await state.store.write(lambda conn: user_admin.create_token(conn, principal, snapshot, data.user))
        return Response(msgspec.convert(row, NewToken), status_code=201, headers=NO_STORE)

    @post("/{token_id:str}/revoke", status_code=200, summary="Revoke a token (a second revocation changes nothing)")
    async def revoke_token(
        self,
        token_id: FromPath[str],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> TokenOut:

        def revoke(conn: Connection) -> tuple[dict, str]:
            return user_admin.revoke_token(conn, principal, snapshot, token_id)

        row, digest = await state.store.write(revoke)
        forget_tokens(state.store, digest=digest)
        return _token_out(row)


class UserSessionsController(Controller):
    path = "/api/v1/users/{name:str}/sessions"
    tags = ["users"]
    dependencies = {"principal": TOKEN}
    guards = [requires(user_admin.require_admin)]

    @get(summary="A user's manager-app sessions, newest first (a user the admin does not administer: 404)")
    async def list_sessions(
        self,
        name: FromPath[str],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> list[SessionOut]:
        rows = await state.store.read(lambda conn: sessions.list_for_admin(conn, principal, snapshot, name))
        return [_session_out(row) for row in rows]

    @delete(
        "/{session_id:str}",
        status_code=204,
        summary="Sign a session out: it stops working at once, on every node (logged)",
    )
    async def revoke_session(
        self,
        name: FromPath[str],
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> None:
        await state.store.write(lambda conn: sessions.revoke_for_admin(conn, principal, snapshot, name, session_id))
        forget_sessions(state.store, name)


USER_CONTROLLERS = [UsersController, TokensController, UserSessionsController]
