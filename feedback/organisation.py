"""Units, services and touchpoints: the organisation a response is tied to.

Functions take a `sqlite3.Connection` inside the caller's transaction, so the CLI, the demo and
the web app's writer thread share one implementation.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import LANGUAGES

SHORT_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def add_unit(
    conn: sqlite3.Connection,
    code: str,
    name: str,
    *,
    parent: str | None = None,
    lang: str = "en",
    tz: str = "UTC",
    names: dict[str, str] | None = None,
) -> None:
    if lang not in LANGUAGES:
        raise InvalidInput(f"lang: must be one of {list(LANGUAGES)}", "lang")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"tz: unknown time zone {tz!r}", "tz") from None
    if "/" in code or not code:
        raise InvalidInput("code: must be non-empty and without '/'", "code")
    path = f"/{code}/"
    if parent is not None:
        row = conn.execute("SELECT path FROM units WHERE code = ?", (parent,)).fetchone()
        if row is None:
            raise NotFound(f"parent: no unit {parent!r}", "parent")
        path = f"{row[0]}{code}/"
    if conn.execute("SELECT 1 FROM units WHERE code = ?", (code,)).fetchone():
        raise Conflict(f"code: unit {code!r} exists", "code")
    conn.execute(
        "INSERT INTO units (code, name, names, parent, lang, tz, path, created_at) VALUES (?,?,?,?,?,?,?,?)",
        (code, name, msgspec.json.encode(names).decode() if names else None, parent, lang, tz, path, now_iso()),
    )


def add_service(
    conn: sqlite3.Connection,
    code: str,
    name: str,
    *,
    kind: str = "administrative",
    agency: str | None = None,
    names: dict[str, str] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO services (code, name, names, kind, agency, created_at) VALUES (?,?,?,?,?,?)",
        (code, name, msgspec.json.encode(names).decode() if names else None, kind, agency, now_iso()),
    )


def new_short_code(conn: sqlite3.Connection, prefix: str) -> str:
    """A short typeable code (e.g. HP-7K3Q) for people who cannot scan."""
    prefix = "".join(ch for ch in prefix.upper() if ch.isalnum())[:3] or "FB"
    while True:
        code = f"{prefix}-{''.join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(4))}"
        if not conn.execute("SELECT 1 FROM touchpoints WHERE short_code = ?", (code,)).fetchone():
            return code


def add_touchpoint(
    conn: sqlite3.Connection,
    unit: str,
    name: str,
    survey: str,
    *,
    kind: str = "qr",
    lang: str | None = None,
    counter: str | None = None,
    service: str | None = None,
    token: str | None = None,
) -> str:
    unit_row = conn.execute("SELECT lang FROM units WHERE code = ?", (unit,)).fetchone()
    if unit_row is None:
        raise NotFound(f"unit: no unit {unit!r}", "unit")
    if kind not in ("qr", "kiosk"):
        raise InvalidInput("kind: must be 'qr' or 'kiosk'", "kind")
    if not conn.execute("SELECT 1 FROM survey_versions WHERE slug = ?", (survey,)).fetchone():
        raise NotFound(f"survey: no published survey {survey!r}", "survey")
    token = token or secrets.token_urlsafe(9)
    conn.execute(
        "INSERT INTO touchpoints (token, short_code, name, unit, lang, survey, kind, counter, service, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        (token, new_short_code(conn, unit), name, unit, lang or unit_row[0], survey, kind, counter, service, now_iso()),
    )
    return token


def set_exposure(
    conn: sqlite3.Connection,
    unit: str,
    service: str | None,
    day: str,
    served: int,
    offered: int | None = None,
    source: str = "api",
) -> None:
    conn.execute(
        "INSERT INTO exposure (unit, service, day, served, offered, source, updated_at) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT (unit, service, day) DO UPDATE SET served = excluded.served,"
        " offered = excluded.offered, source = excluded.source, updated_at = excluded.updated_at",
        (unit, service or "", day, served, offered, source, now_iso()),
    )


def update_unit(
    conn: sqlite3.Connection,
    code: str,
    *,
    owner: str | None = None,
    action_days: int | None = None,
    country: str | None = None,
    public_results: bool = False,
) -> None:
    """Set a unit's owner, rectification deadline, calendar country and public-results switch (all four)."""
    from feedback.unit_settings import update_unit_settings

    update_unit_settings(
        conn, code, {"owner": owner, "action_days": action_days, "country": country, "public_results": public_results}
    )


def retire_touchpoint(conn: sqlite3.Connection, token: str) -> str:
    """Stop a touchpoint taking ratings; the row and its responses stay. Returns when it was retired."""
    row = conn.execute("SELECT retired_at FROM touchpoints WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise NotFound(f"token: no touchpoint {token!r}", "token")
    if row[0]:
        raise Conflict(f"token: touchpoint {token!r} was retired at {row[0]}", "token")
    retired_at = now_iso()
    conn.execute("UPDATE touchpoints SET retired_at = ? WHERE token = ?", (retired_at, token))
    return retired_at
