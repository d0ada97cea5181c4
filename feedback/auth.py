"""Users and API tokens. Tokens are stored as SHA-256 hashes; only the holder sees the token."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from datetime import UTC, datetime
from typing import Any

from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import ROLES

TOKEN_PREFIX = "fbk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_user(conn: sqlite3.Connection, name: str, role: str, unit: str | None, email: str | None = None) -> None:
    """Create a user or set its role and unit (and e-mail when given).

    An API token carries its user's role and unit, so the user's live tokens follow a change: a demoted
    or moved user keeps no token with the old rights."""
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {list(ROLES)}", "role")
    if unit is not None and not conn.execute("SELECT 1 FROM units WHERE code = ?", (unit,)).fetchone():
        raise NotFound(f"unit: no unit {unit!r}", "unit")
    conn.execute(
        "INSERT INTO users (name, role, unit, email, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET role = excluded.role, unit = excluded.unit,"
        " email = coalesce(excluded.email, users.email)",
        (name, role, unit, email, datetime.now(UTC).isoformat()),
    )
    conn.execute("UPDATE api_tokens SET role = ?, unit = ? WHERE user = ? AND revoked_at IS NULL", (role, unit, name))


USER_COLUMNS = (
    "name, role, unit, email, lang, coalesce(disabled, 0) AS disabled, created_at,"
    " password_hash IS NOT NULL AS has_password"
)


def find_user(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    """A user's row (without the password hash), or None."""
    found = _rows(conn, f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,))
    return _user(found[0]) if found else None


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [_user(row) for row in _rows(conn, f"SELECT {USER_COLUMNS} FROM users ORDER BY name")]


def _user(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "disabled": bool(row["disabled"]), "has_password": bool(row["has_password"])}


def issue_token(conn: sqlite3.Connection, user: str) -> dict[str, Any]:
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
    conn.execute(
        "INSERT INTO api_tokens (id, token_hash, user, role, unit, created_at, hint) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (record["id"], hash_token(token), user, record["role"], record["unit"], record["created_at"], record["hint"]),
    )
    return {**record, "token": token}


def create_token(conn: sqlite3.Connection, user: str, role: str, unit: str | None) -> str:
    """Return a new API token (shown once, stored hashed), creating the user with `role` and `unit` if needed.

    An existing user is never changed: `role` and `unit` must be its own (Conflict naming the field)."""
    found = find_user(conn, user)
    if found is None:
        ensure_user(conn, user, role, unit)
    elif found["role"] != role:
        raise Conflict(f"role: {user!r} is {found['role']!r}; a token takes its user's role", "role")
    elif found["unit"] != unit:
        raise Conflict(f"unit: {user!r} belongs to {found['unit']!r}; a token takes its user's unit", "unit")
    return issue_token(conn, user)["token"]


TOKEN_COLUMNS = "id, hint, user, role, unit, created_at, revoked_at"


def list_tokens(conn: sqlite3.Connection, user: str | None = None) -> list[dict[str, Any]]:
    """Token records (never the hash), newest first; only `user`'s when given."""
    where, params = ("WHERE user = ?", (user,)) if user is not None else ("", ())
    return _rows(conn, f"SELECT {TOKEN_COLUMNS} FROM api_tokens {where} ORDER BY created_at DESC, id", params)


def find_token(conn: sqlite3.Connection, token_id: str) -> dict[str, Any] | None:
    found = _rows(conn, f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,))
    return found[0] if found else None


def revoke_token(conn: sqlite3.Connection, token_id: str) -> str | None:
    """Revoke a token (a second revocation keeps the first time); returns its hash, for dropping caches."""
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (datetime.now(UTC).isoformat(), token_id),
    )
    row = conn.execute("SELECT token_hash FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    return row[0] if row is not None else None


def _rows(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    """Rows as dicts, whatever row factory the caller's connection has."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return [dict(row) for row in cursor.execute(sql, params)]
