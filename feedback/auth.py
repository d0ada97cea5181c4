"""Users and API tokens. Tokens are stored as SHA-256 hashes; only the holder sees the token."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from datetime import UTC, datetime

from feedback.errors import InvalidInput, NotFound
from feedback.models import ROLES

TOKEN_PREFIX = "fbk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_user(conn: sqlite3.Connection, name: str, role: str, unit: str | None, email: str | None = None) -> None:
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


def create_token(conn: sqlite3.Connection, user: str, role: str, unit: str | None) -> str:
    """Create the user if needed and return a new API token (shown once, stored hashed)."""
    ensure_user(conn, user, role, unit)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_tokens (token_hash, user, role, unit, created_at, hint) VALUES (?, ?, ?, ?, ?, ?)",
        (hash_token(token), user, role, unit, datetime.now(UTC).isoformat(), token[-4:]),
    )
    return token
