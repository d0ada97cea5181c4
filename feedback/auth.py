"""Users and API tokens. Tokens are stored as SHA-256 hashes; only the holder sees the token."""

from __future__ import annotations

import hashlib
import secrets
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from feedback import audit
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import LANGUAGES, ROLES
from feedback.passwords import check_password, hash_password
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store

TOKEN_PREFIX = "fbk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_user(conn: Connection, name: str, role: str, unit: str | None, email: str | None = None) -> None:
    """Create a user or set its role and unit (and e-mail when given), with its audit entry."""
    with audit.tracked(conn, "user", name, user_change(conn, name)):
        upsert_user(conn, name, role, unit, email)


def user_change(conn: Connection, name: str) -> str:
    """The audit action of a write to a user: "create" when there is none yet, else "update"."""
    return "update" if user_store.exists(conn, name) else "create"


def upsert_user(conn: Connection, name: str, role: str, unit: str | None, email: str | None = None) -> None:
    """`ensure_user` without the user's own audit entry, for callers that log the whole change.

    An API token carries its user's role and unit, so the user's live tokens follow a change: a demoted
    or moved user keeps no token with the old rights (each token so changed is logged)."""
    _check_role_and_unit(conn, role, unit)
    user_store.upsert(conn, name, role, unit, email, datetime.now(UTC).isoformat())
    live = [t["id"] for t in user_store.tokens(conn, name) if t["revoked_at"] is None]
    with ExitStack() as stack:
        for token_id in live:
            stack.enter_context(audit.tracked(conn, "token", token_id, "update"))
        user_store.retarget_tokens(conn, name, role, unit)


def _check_role_and_unit(conn: Connection, role: str, unit: str | None) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {list(ROLES)}", "role")
    if unit is not None and not organisation_store.unit_exists(conn, unit):
        raise NotFound(f"unit: no unit {unit!r}", "unit")


MAX_NAME = 200


def save_user(
    conn: Connection,
    name: str,
    role: str,
    unit: str | None,
    *,
    password: str | None = None,
    email: str | None = None,
    lang: str | None = None,
    password_hash: str | None = None,
) -> None:
    """Create or update a user (role, unit, e-mail, language; the password when given): `feedback user add`.

    Every role but admin is scoped to a unit subtree, so it needs a unit. On the writer thread pass
    `password_hash` (from `feedback.passwords.hash_password`, computed beforehand) instead of
    `password`: hashing is slow. A new password ends every session of the user.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ch.isspace() or ch in "/\\" for ch in name):
        raise InvalidInput("user: a name without spaces or slashes, at most 200 characters", "user")
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {list(ROLES)}", "role")
    if role != "admin" and not unit:
        raise InvalidInput("unit: every role but admin needs a unit", "unit")
    if lang is not None and lang not in LANGUAGES:
        raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
    if password is not None:
        check_password(password)
        password_hash = hash_password(password)
    with audit.tracked(conn, "user", name, user_change(conn, name)):
        upsert_user(conn, name, role, unit or None, email or None)
        if lang is not None:
            user_store.set_lang(conn, name, lang)
        if password_hash is not None:
            user_store.set_password_hash(conn, name, password_hash)


def rehash_password(conn: Connection, name: str, password_hash: str) -> None:
    """The same password hashed with today's parameters at sign-in: no reason to sign out, but the stored
    hash changes, so the change is logged like any other."""
    with audit.tracked(conn, "user", name, "rehash_password"):
        user_store.set_password_hash(conn, name, password_hash, sign_out=False)


def find_user(conn: Connection, name: str) -> dict[str, Any] | None:
    """A user's row (without the password hash), or None."""
    return user_store.find(conn, name)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    return user_store.listing(conn)


def issue_token(conn: Connection, user: str) -> dict[str, Any]:
    """A new API token for an existing, enabled user, with that user's role and unit.

    Returns the token record with the token itself under "token": shown once, only its hash is kept."""
    found = find_user(conn, user)
    if found is None:
        raise NotFound(f"user: no user {user!r}", "user")
    if found["disabled"]:
        raise Conflict(f"user: {user!r} is disabled; enable the user first", "user")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = {
        "id": "t" + secrets.token_hex(6),
        "hint": token[-4:],
        "user": user,
        "role": found["role"],
        "unit": found["unit"],
        "created_at": datetime.now(UTC).isoformat(),
        "revoked_at": None,
    }
    with audit.tracked(conn, "token", record["id"], "create"):
        user_store.insert_token(conn, record, hash_token(token))
    return {**record, "token": token}


def create_token(conn: Connection, user: str, role: str, unit: str | None) -> str:
    """Return a new API token (shown once, stored hashed), creating the user with `role` and `unit` if needed.

    An existing user is never changed: `role` and `unit` must be its own (Conflict naming the field)."""
    found = find_user(conn, user)
    if found is None:
        _check_role_and_unit(conn, role, unit)
        with audit.tracked(conn, "user", user, "create"):
            created = user_store.insert_if_absent(conn, user, role, unit, datetime.now(UTC).isoformat())
        if created:
            return issue_token(conn, user)["token"]
        found = find_user(conn, user) or {}  # created meanwhile: judged like any existing user
    if found["role"] != role:
        raise Conflict(f"role: {user!r} is {found['role']!r}; a token takes its user's role", "role")
    elif found["unit"] != unit:
        raise Conflict(f"unit: {user!r} belongs to {found['unit']!r}; a token takes its user's unit", "unit")
    return issue_token(conn, user)["token"]


def list_tokens(conn: Connection, user: str | None = None) -> list[dict[str, Any]]:
    """Token records (never the hash), newest first; only `user`'s when given."""
    return user_store.tokens(conn, user)


def find_token(conn: Connection, token_id: str) -> dict[str, Any] | None:
    return user_store.find_token(conn, token_id)


def revoke_token(conn: Connection, token_id: str) -> str | None:
    """Revoke a token (a second revocation keeps the first time, and logs nothing); returns its hash, for
    dropping caches."""
    with audit.tracked(conn, "token", token_id, "revoke"):
        return user_store.revoke_token(conn, token_id, datetime.now(UTC).isoformat())
