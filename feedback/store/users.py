"""Users, API tokens, manager sessions and the guess ledgers (sign-in and enrollment attempts).

Token and session ids are stored only as SHA-256 digests; callers hash before they call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar, unique

USER_COLUMNS = (
    "name, role, unit, email, lang, coalesce(disabled, 0) AS disabled, created_at,"
    " password_hash IS NOT NULL AS has_password"
)
TOKEN_COLUMNS = 'id, hint, "user", role, unit, created_at, revoked_at'


# -- users -------------------------------------------------------------------------------------------


def _user(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "disabled": bool(row["disabled"]), "has_password": bool(row["has_password"])}


def find(conn: Connection, name: str) -> dict[str, Any] | None:
    """A user's row without the password hash (`has_password` says whether it has one), or None."""
    found = first_row(conn, f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,))
    return _user(found) if found else None


def listing(conn: Connection) -> list[dict[str, Any]]:
    """Every user (without password hashes), by name."""
    return [_user(row) for row in all_rows(conn, f"SELECT {USER_COLUMNS} FROM users ORDER BY name")]


def enabled_names(conn: Connection) -> list[str]:
    """The names of the users who may sign in, by name (the choices for a unit's owner)."""
    rows = all_rows(conn, "SELECT name FROM users WHERE coalesce(disabled, 0) = 0 ORDER BY name")
    return [row["name"] for row in rows]


def insert(
    conn: Connection,
    name: str,
    role: str,
    unit: str | None,
    created_at: str,
    *,
    email: str | None = None,
    lang: str | None = None,
    password_hash: str | None = None,
) -> None:
    """A new user; Conflict naming `name` when the name is taken (the primary key decides, so two
    admins creating the same name at once cannot both succeed)."""
    with unique(conn, f"name: {name!r} exists already", "name"):
        conn.execute(
            "INSERT INTO users (name, role, unit, email, lang, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, role, unit, email, lang, password_hash, created_at),
        )


def upsert(conn: Connection, name: str, role: str, unit: str | None, email: str | None, created_at: str) -> None:
    """Create a user or set its role and unit (and e-mail when given)."""
    conn.execute(
        "INSERT INTO users (name, role, unit, email, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET role = excluded.role, unit = excluded.unit,"
        " email = coalesce(excluded.email, users.email)",
        (name, role, unit, email, created_at),
    )


def set_lang(conn: Connection, name: str, lang: str | None) -> None:
    conn.execute("UPDATE users SET lang = ? WHERE name = ?", (lang, name))


def set_email(conn: Connection, name: str, email: str | None) -> None:
    conn.execute("UPDATE users SET email = ? WHERE name = ?", (email, name))


def set_disabled(conn: Connection, name: str, disabled: bool) -> None:
    """Disable (and sign out everywhere) or enable a user."""
    conn.execute("UPDATE users SET disabled = ? WHERE name = ?", (1 if disabled else 0, name))
    if disabled:
        end_sessions_of(conn, name)


def set_password_hash(conn: Connection, name: str, password_hash: str, *, sign_out: bool = True) -> None:
    """A new password hash; a new password ends every session of the user (a rehash of the same one
    at sign-in does not: pass `sign_out=False`)."""
    conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))
    if sign_out:
        end_sessions_of(conn, name)


_SIGN_IN_COLUMNS = "name, role, unit, lang, password_hash, oidc_subject, coalesce(disabled, 0) AS disabled"


def sign_in_record(conn: Connection, name: str) -> dict[str, Any] | None:
    """What a sign-in checks: name, role, unit, lang, password_hash, oidc_subject and disabled, or None."""
    found = first_row(conn, f"SELECT {_SIGN_IN_COLUMNS} FROM users WHERE name = ?", (name,))
    return {**found, "disabled": bool(found["disabled"])} if found else None


def sign_in_record_by_subject(conn: Connection, subject: str) -> dict[str, Any] | None:
    """What a sign-in checks (as `sign_in_record`) of the user bound to this OpenID subject, or None."""
    found = first_row(conn, f"SELECT {_SIGN_IN_COLUMNS} FROM users WHERE oidc_subject = ?", (subject,))
    return {**found, "disabled": bool(found["disabled"])} if found else None


def sign_in_records_by_email(conn: Connection, email: str) -> list[dict[str, Any]]:
    """What a sign-in checks (as `sign_in_record`) of every user with this e-mail address, in any case."""
    found = all_rows(
        conn,
        f"SELECT {_SIGN_IN_COLUMNS} FROM users WHERE lower(email) = lower(?) ORDER BY name",
        (email,),
    )
    return [{**row, "disabled": bool(row["disabled"])} for row in found]


def bind_subject(conn: Connection, name: str, subject: str) -> None:
    """Bind the user to an OpenID provider's person ("<iss> <sub>")."""
    conn.execute("UPDATE users SET oidc_subject = ? WHERE name = ?", (subject, name))


# -- API tokens --------------------------------------------------------------------------------------


def token_principal(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    """user, role, unit and id of a live token whose user is enabled, or None."""
    return first_row(
        conn,
        'SELECT t."user", t.role, t.unit, t.id FROM api_tokens t JOIN users u ON u.name = t."user"'
        " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND coalesce(u.disabled, 0) = 0",
        (token_hash,),
    )


def insert_token(conn: Connection, record: dict[str, Any], token_hash: str) -> None:
    """Store a token record (id, hint, user, role, unit, created_at) under the token's hash."""
    conn.execute(
        'INSERT INTO api_tokens (id, token_hash, "user", role, unit, created_at, hint) VALUES (?, ?, ?, ?, ?, ?, ?)',
        (
            record["id"],
            token_hash,
            record["user"],
            record["role"],
            record["unit"],
            record["created_at"],
            record["hint"],
        ),
    )


def retarget_tokens(conn: Connection, user: str, role: str, unit: str | None) -> None:
    """A user's live tokens take its new role and unit (a demoted or moved user keeps no old rights)."""
    conn.execute('UPDATE api_tokens SET role = ?, unit = ? WHERE "user" = ? AND revoked_at IS NULL', (role, unit, user))


def tokens(conn: Connection, user: str | None = None) -> list[dict[str, Any]]:
    """Token records (never the hash), newest first; only `user`'s when given."""
    where, params = ('WHERE "user" = ?', (user,)) if user is not None else ("", ())
    return all_rows(conn, f"SELECT {TOKEN_COLUMNS} FROM api_tokens {where} ORDER BY created_at DESC, id", params)


def find_token(conn: Connection, token_id: str) -> dict[str, Any] | None:
    return first_row(conn, f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,))


def revoke_token(conn: Connection, token_id: str, at: str) -> str | None:
    """Revoke a token (a second revocation keeps the first time); returns its hash, or None when unknown."""
    conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, token_id))
    return scalar(conn, "SELECT token_hash FROM api_tokens WHERE id = ?", (token_id,))


# -- manager sessions --------------------------------------------------------------------------------
# A session is listed and revoked by its public id `sid`; sessions opened before there was one are
# named after the start of their digest, which is no secret either (the cookie is its preimage).
SESSION_SID = "coalesce(sid, 'old-' || substr(id, 1, 16))"
SESSION_COLUMNS = f'{SESSION_SID} AS sid, "user", created_at, last_seen_at, expires_at, user_agent, stage'


def session(conn: Connection, digest: str) -> dict[str, Any] | None:
    """A session with its user's role, unit and state: user, sid, expires_at, last_seen_at, stage, lang,
    role, unit, disabled."""
    return first_row(
        conn,
        "SELECT s.\"user\", coalesce(s.sid, 'old-' || substr(s.id, 1, 16)) AS sid, s.expires_at,"
        " s.last_seen_at, s.stage, s.lang, u.role, u.unit, coalesce(u.disabled, 0) AS disabled"
        ' FROM sessions s JOIN users u ON u.name = s."user" WHERE s.id = ?',
        (digest,),
    )


def open_session(
    conn: Connection,
    digest: str,
    user: str,
    created_at: str,
    expires_at: str,
    lang: str | None,
    *,
    sid: str | None = None,
    user_agent: str | None = None,
    stage: str | None = None,
) -> None:
    """A new session (`stage`: the sign-in step still owed, None when signed in); sessions that expired
    by now are swept away at the same time."""
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (created_at,))
    conn.execute(
        'INSERT INTO sessions (id, "user", created_at, expires_at, lang, sid, last_seen_at, user_agent, stage)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (digest, user, created_at, expires_at, lang, sid, created_at, user_agent, stage),
    )


def end_session(conn: Connection, digest: str) -> None:
    conn.execute("DELETE FROM sessions WHERE id = ?", (digest,))


def end_sessions_of(conn: Connection, user: str) -> None:
    conn.execute('DELETE FROM sessions WHERE "user" = ?', (user,))


def sessions_of(conn: Connection, user: str, now: str) -> list[dict[str, Any]]:
    """A user's sessions that have not expired (never the cookie or its digest), newest first:
    sid, user, created_at, last_seen_at, expires_at, user_agent, stage."""
    return all_rows(
        conn,
        f'SELECT {SESSION_COLUMNS} FROM sessions WHERE "user" = ? AND expires_at >= ? ORDER BY created_at DESC, sid',
        (user, now),
    )


def end_session_by_sid(conn: Connection, user: str, sid: str) -> dict[str, Any] | None:
    """End one of `user`'s sessions by its public id; returns what it was (as `sessions_of` lists it), or
    None when the user has no such session."""
    found = first_row(
        conn, f'SELECT {SESSION_COLUMNS}, id FROM sessions WHERE "user" = ? AND {SESSION_SID} = ?', (user, sid)
    )
    if found is None:
        return None
    conn.execute("DELETE FROM sessions WHERE id = ?", (found.pop("id"),))
    return found


def touch_session(conn: Connection, digest: str, at: str) -> None:
    """Note that the session was just used."""
    conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (at, digest))


def set_totp_pending(conn: Connection, digest: str, encrypted: str | None) -> None:
    """The (encrypted) TOTP secret this session is setting up, or None to drop it."""
    conn.execute("UPDATE sessions SET totp_pending = ? WHERE id = ?", (encrypted, digest))


def totp_pending(conn: Connection, digest: str) -> str | None:
    """The encrypted TOTP secret this session is setting up, or None."""
    return scalar(conn, "SELECT totp_pending FROM sessions WHERE id = ?", (digest,))


# -- two-factor sign-in ------------------------------------------------------------------------------


def two_factor(conn: Connection, name: str) -> dict[str, Any] | None:
    """A user's second factor: name, role, unit, password_hash, totp_secret (encrypted), totp_enabled_at,
    recovery_codes (a JSON list of hashes) and last_totp_step; None when there is no such user."""
    return first_row(
        conn,
        "SELECT name, role, unit, password_hash, totp_secret, totp_enabled_at, recovery_codes, last_totp_step"
        " FROM users WHERE name = ?",
        (name,),
    )


def enable_totp(conn: Connection, name: str, secret: str, enabled_at: str, recovery_codes: str, step: int) -> None:
    """Switch TOTP on with an encrypted secret and hashed recovery codes; `step`, the code just used to
    confirm it, counts as taken."""
    conn.execute(
        "UPDATE users SET totp_secret = ?, totp_enabled_at = ?, recovery_codes = ?, last_totp_step = ? WHERE name = ?",
        (secret, enabled_at, recovery_codes, step, name),
    )


def disable_totp(conn: Connection, name: str) -> None:
    """Switch TOTP off: the secret and the recovery codes are gone."""
    conn.execute(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, recovery_codes = NULL, last_totp_step = NULL"
        " WHERE name = ?",
        (name,),
    )


def take_totp_step(conn: Connection, name: str, step: int) -> bool:
    """Take the time step of an accepted code: False when it or a later one was taken already (a replay),
    one compare-and-set, so of two requests with the same code one wins."""
    cursor = conn.execute(
        "UPDATE users SET last_totp_step = ? WHERE name = ? AND totp_secret IS NOT NULL"
        " AND coalesce(last_totp_step, -1) < ?",
        (step, name, step),
    )
    return cursor.rowcount == 1


def swap_recovery_codes(conn: Connection, name: str, expected: str | None, codes: str) -> bool:
    """Replace the user's recovery code hashes with `codes` if they are still `expected` (compare-and-set:
    of two requests spending the same code, one wins)."""
    cursor = conn.execute(
        "UPDATE users SET recovery_codes = ? WHERE name = ? AND totp_secret IS NOT NULL AND recovery_codes = ?",
        (codes, name, expected),
    )
    return cursor.rowcount == 1


# -- guess ledgers -----------------------------------------------------------------------------------
# An attempt is reserved before it is checked. `reserve` is one INSERT … SELECT that counts the key's
# attempts within the window and inserts a row only below the limit, inside the writer's transaction
# (SQLite lets one writer at a time in, across processes), so no two requests can both see room for
# the last attempt. A refused reservation means the guess is never checked. A failed check leaves its
# row as the failure; a success takes rows away again.


@dataclass(frozen=True)
class Ledger:
    """A table of attempts: `id INTEGER PRIMARY KEY`, the key column and `at` (ISO time, UTC). Rows
    older than `keep` (or than the window, when longer) are deleted as new attempts come in."""

    table: str
    key_column: str
    keep: timedelta = timedelta(0)


SIGN_IN = Ledger("login_attempts", "username", keep=timedelta(days=1))
# Keyed hashes of client addresses: kept no longer than they count.
KIOSK_ENROLL = Ledger("kiosk_enroll_attempts", "client")


def reserve_attempt(
    conn: Connection, ledger: Ledger, key: str, now: datetime, window: timedelta, limit: int
) -> int | None:
    """Record an attempt for `key` unless `limit` attempts already lie within `window` before `now`.

    Returns the attempt's id, or None when the key is at its limit (nothing is recorded then).
    A `limit` of 0 or less records every attempt and refuses none.
    """
    table, column = ledger.table, ledger.key_column
    conn.execute(f"DELETE FROM {table} WHERE at < ?", ((now - max(window, ledger.keep)).isoformat(),))
    return scalar(
        conn,
        f"INSERT INTO {table} ({column}, at) SELECT ?, ?"
        f" WHERE ? <= 0 OR (SELECT count(*) FROM {table} WHERE {column} = ? AND at > ?) < ? RETURNING id",
        (key, now.isoformat(), limit, key, (now - window).isoformat(), limit),
    )


def release_attempt(conn: Connection, ledger: Ledger, attempt: int) -> None:
    """Take back one reserved attempt (it succeeded, so it is no failure)."""
    conn.execute(f"DELETE FROM {ledger.table} WHERE id = ?", (attempt,))


def clear_attempts(conn: Connection, ledger: Ledger, key: str, through: int) -> None:
    """Forget the key's attempts up to and including `through` (a success wipes the failures before it;
    guesses reserved after it, perhaps still being checked, stay counted)."""
    conn.execute(f"DELETE FROM {ledger.table} WHERE {ledger.key_column} = ? AND id <= ?", (key, through))


def exists(conn: Connection, name: str, *, enabled: bool = False) -> bool:
    """Whether a user of this name exists (and, with `enabled`, may sign in)."""
    sql = "SELECT 1 FROM users WHERE name = ?" + (" AND coalesce(disabled, 0) = 0" if enabled else "")
    return scalar(conn, sql, (name,)) is not None


def mail_recipients(conn: Connection, names: Sequence[str]) -> list[dict[str, Any]]:
    """The enabled users among `names` who have an e-mail address: name, email, lang and their unit's lang."""
    if not names:
        return []
    return all_rows(
        conn,
        "SELECT u.name, u.email, u.lang, coalesce(unit.lang, '') AS unit_lang FROM users u"
        " LEFT JOIN units unit ON unit.code = u.unit"
        f" WHERE u.name IN ({marks(names)}) AND coalesce(u.disabled, 0) = 0 AND u.email IS NOT NULL AND u.email != ''",
        names,
    )


def enabled_users(conn: Connection) -> list[dict[str, Any]]:
    """name, role, unit, email and lang of every user who may sign in."""
    return all_rows(conn, "SELECT name, role, unit, email, lang FROM users WHERE coalesce(disabled, 0) = 0")


def insert_if_absent(conn: Connection, name: str, role: str, unit: str | None, created_at: str) -> bool:
    """Create a user unless the name is taken (one statement); True when this call created it."""
    cursor = conn.execute(
        "INSERT INTO users (name, role, unit, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        (name, role, unit, created_at),
    )
    return cursor.rowcount == 1
