"""Who administers which users and API tokens: the one scope rule, and the changes that keep to it.

The rule, for every page, API route and other way of changing people, roles or tokens:
- Only admins administer users and tokens; other roles administer nobody (Forbidden).
- An admin without a unit administers everyone.
- An admin with a unit administers only users whose unit lies in its own subtree, and gives at most
  its own role there: it may make admins, managers, auditors and viewers of units in its subtree,
  never a user without a unit and never one outside the subtree.
- A user an admin may not administer does not exist for it: listing leaves it out and every action
  on it is NotFound, so not even its existence leaks.
- Nobody changes their own role or unit or disables themselves; another admin must.

A token has its user's role and unit, so the same rule decides who lists, creates and revokes it.
Each function checks inside the caller's transaction, against the rows as they are then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from msgspec import UNSET, UnsetType

from feedback import audit, auth
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, InvalidInput, NotFound
from feedback.models import LANGUAGES, ROLES
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store

# Higher administers lower or equal; auditors and viewers only read, so they rank alike.
ROLE_RANK = {"admin": 3, "manager": 2, "auditor": 1, "viewer": 1}
ADMIN_ROLES = ("admin",)
MAX_FIELD = 200


class Actor(Protocol):
    """Who is acting: a signed-in user or an API token (feedback.web.security.Principal)."""

    @property
    def user(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def unit(self) -> str | None: ...


def may_manage(actor: Actor, target_unit: str | None, target_role: str, snapshot: Snapshot) -> bool:
    """Whether `actor` may administer a user (or token) with this role and unit: the whole rule."""
    if actor.role not in ADMIN_ROLES:
        return False
    if ROLE_RANK.get(target_role, max(ROLE_RANK.values()) + 1) > ROLE_RANK[actor.role]:
        return False
    if actor.unit is None:
        return True
    return target_unit is not None and snapshot.in_subtree(target_unit, actor.unit)


def require_admin(actor: Actor) -> None:
    if actor.role not in ADMIN_ROLES:
        raise Forbidden(f"role: {actor.role!r} may not administer users or tokens", "role")


def require_grant(actor: Actor, role: str, unit: str | None, snapshot: Snapshot) -> None:
    """Forbidden, naming the field, unless `actor` may give `role` in `unit`."""
    require_admin(actor)
    if may_manage(actor, unit, role, snapshot):
        return
    if ROLE_RANK.get(role, 0) > ROLE_RANK[actor.role]:
        raise Forbidden(f"role: {actor.role!r} may not give the role {role!r}", "role")
    if unit is None:
        raise Forbidden("unit: only an administrator without a unit manages users without one", "unit")
    raise Forbidden(f"unit: {unit!r} is outside your unit {actor.unit!r}", "unit")


def visible_user(conn: Connection, actor: Actor, name: str, snapshot: Snapshot) -> dict[str, Any]:
    """The user `actor` may administer, else NotFound whether or not it exists."""
    require_admin(actor)
    found = auth.find_user(conn, name)
    if found is None or not may_manage(actor, found["unit"], found["role"], snapshot):
        raise NotFound(f"user: no user {name!r}", "user")
    return found


def list_users(conn: Connection, actor: Actor, snapshot: Snapshot) -> list[dict[str, Any]]:
    require_admin(actor)
    return [u for u in auth.list_users(conn) if may_manage(actor, u["unit"], u["role"], snapshot)]


# -- input ------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_FIELD or any(ch.isspace() or ch in "/\\" for ch in name):
        raise InvalidInput("name: a name without spaces or slashes, at most 200 characters", "name")
    return name


def check_fields(
    conn: Connection, role: str, unit: str | None, lang: str | None = None, email: str | None = None
) -> None:
    """400 naming the field for a bad role, unit, language or e-mail."""
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {list(ROLES)}", "role")
    if unit is not None and not organisation_store.unit_exists(conn, unit):
        raise InvalidInput(f"unit: no unit {unit!r}", "unit")
    if role not in ADMIN_ROLES and unit is None:
        raise InvalidInput("unit: every role but admin needs a unit", "unit")
    if lang is not None and lang not in LANGUAGES:
        raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
    if email is not None and ("@" not in email or len(email) > MAX_FIELD or any(ch.isspace() for ch in email)):
        raise InvalidInput("email: not an e-mail address", "email")


# -- changes ----------------------------------------------------------------------------------


def create_user(
    conn: Connection,
    actor: Actor,
    snapshot: Snapshot,
    name: str,
    role: str,
    unit: str | None,
    *,
    email: str | None = None,
    lang: str | None = None,
    password_hash: str | None = None,
) -> dict[str, Any]:
    """A new user (400 bad input, 403 a role or unit the actor may not give, 409 the name is taken:
    the table's key decides, so of two admins creating the same name at once one gets the 409)."""
    require_admin(actor)
    name = check_name(name)
    check_fields(conn, role, unit, lang, email)
    require_grant(actor, role, unit, snapshot)
    created_at = datetime.now(UTC).isoformat()
    with audit.tracked(conn, "user", name, "create"):
        user_store.insert(conn, name, role, unit, created_at, email=email, lang=lang, password_hash=password_hash)
    return auth.find_user(conn, name) or {}


def change_user(
    conn: Connection,
    actor: Actor,
    snapshot: Snapshot,
    name: str,
    *,
    role: str | UnsetType = UNSET,
    unit: str | None | UnsetType = UNSET,
    email: str | None | UnsetType = UNSET,
    lang: str | None | UnsetType = UNSET,
    disabled: bool | UnsetType = UNSET,
) -> dict[str, Any]:
    """Change what is given (UNSET: keep). Both the user as it is and as it would be must be the actor's to
    administer: moving a user out of the subtree, or one from outside into it, is refused."""
    current = visible_user(conn, actor, name, snapshot)
    new_role = current["role"] if isinstance(role, UnsetType) else role
    new_unit = current["unit"] if isinstance(unit, UnsetType) else unit
    check_fields(
        conn,
        new_role,
        new_unit,
        None if isinstance(lang, UnsetType) else lang,
        None if isinstance(email, UnsetType) else email,
    )
    if name == actor.user:
        if new_role != current["role"]:
            raise Forbidden("role: you cannot change your own role; another administrator must", "role")
        if new_unit != current["unit"]:
            raise Forbidden("unit: you cannot change your own unit; another administrator must", "unit")
        if disabled is True:
            raise Forbidden("disabled: you cannot disable yourself", "disabled")
    require_grant(actor, new_role, new_unit, snapshot)
    with audit.tracked(conn, "user", name, "update"):  # one entry for the whole change
        if (new_role, new_unit) != (current["role"], current["unit"]):
            auth.upsert_user(conn, name, new_role, new_unit)  # its live tokens follow
        if not isinstance(email, UnsetType):
            user_store.set_email(conn, name, email)
        if not isinstance(lang, UnsetType):
            user_store.set_lang(conn, name, lang)
        if not isinstance(disabled, UnsetType):
            user_store.set_disabled(conn, name, disabled)  # disabling signs the user out everywhere
    return auth.find_user(conn, name) or {}


def set_password(conn: Connection, actor: Actor, snapshot: Snapshot, name: str, password_hash: str) -> None:
    """A new password (hashed beforehand: hashing is slow) ends every session of the user."""
    visible_user(conn, actor, name, snapshot)
    with audit.tracked(conn, "user", name, "set_password"):  # the entry holds a digest of the hash, never the hash
        user_store.set_password_hash(conn, name, password_hash)


# -- tokens -----------------------------------------------------------------------------------


def _token_visible(actor: Actor, token: dict[str, Any], owner: dict[str, Any] | None, snapshot: Snapshot) -> bool:
    # Both the token's own scope and its user's: an older token may predate a change of its user.
    return (
        owner is not None
        and may_manage(actor, owner["unit"], owner["role"], snapshot)
        and may_manage(actor, token["unit"], token["role"], snapshot)
    )


def list_tokens(conn: Connection, actor: Actor, snapshot: Snapshot, user: str | None = None) -> list[dict[str, Any]]:
    """Token records (never the hash) of the users `actor` administers; only `user`'s when given."""
    require_admin(actor)
    owners = {u["name"]: u for u in auth.list_users(conn)}
    return [t for t in auth.list_tokens(conn, user) if _token_visible(actor, t, owners.get(t["user"]), snapshot)]


def create_token(conn: Connection, actor: Actor, snapshot: Snapshot, user: str) -> dict[str, Any]:
    """A new token with the user's role and unit; the record carries the token itself, shown once."""
    visible_user(conn, actor, user, snapshot)
    return auth.issue_token(conn, user)


def revoke_token(conn: Connection, actor: Actor, snapshot: Snapshot, token_id: str) -> tuple[dict[str, Any], str]:
    """Revoke a token the actor may see (NotFound otherwise); returns its record and its hash (for caches)."""
    require_admin(actor)
    token = auth.find_token(conn, token_id)
    if token is None or not _token_visible(actor, token, auth.find_user(conn, token["user"]), snapshot):
        raise NotFound(f"id: no token {token_id!r}", "id")
    digest = auth.revoke_token(conn, token_id) or ""
    return auth.find_token(conn, token_id) or token, digest
