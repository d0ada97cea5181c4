"""Units, services and touchpoints: the organisation a response is tied to.

Functions take a connection inside the caller's transaction, so the CLI, the demo and the web
app's writer thread share one implementation; the SQL is in `feedback.store.organisation`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from feedback import audit
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import LANGUAGES
from feedback.store import Connection
from feedback.store import exposure as exposure_store
from feedback.store import organisation as organisation_store
from feedback.store import surveys as survey_store

SHORT_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def add_unit(
    conn: Connection,
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
        parent_path = organisation_store.unit_path(conn, parent)
        if parent_path is None:
            raise NotFound(f"parent: no unit {parent!r}", "parent")
        path = f"{parent_path}{code}/"
    encoded = msgspec.json.encode(names).decode() if names else None
    with audit.tracked(conn, "unit", code, "create"):
        organisation_store.insert_unit(conn, code, name, encoded, parent, lang, tz, path, now_iso())  # 409 when taken


def add_service(
    conn: Connection,
    code: str,
    name: str,
    *,
    kind: str = "administrative",
    agency: str | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """A new service (Conflict naming `code` when the code is taken)."""
    encoded = msgspec.json.encode(names).decode() if names else None
    with audit.tracked(conn, "service", code, "create"):
        organisation_store.insert_service(conn, code, name, encoded, kind, agency, now_iso())


def new_short_code(prefix: str) -> str:
    """A short typeable code (e.g. HP-7K3Q) for people who cannot scan; the table's unique index
    decides whether it is free."""
    prefix = "".join(ch for ch in prefix.upper() if ch.isalnum())[:3] or "FB"
    return f"{prefix}-{''.join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(4))}"


def add_touchpoint(
    conn: Connection,
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
    unit_lang = organisation_store.unit_lang(conn, unit)
    if unit_lang is None:
        raise NotFound(f"unit: no unit {unit!r}", "unit")
    if kind not in ("qr", "kiosk"):
        raise InvalidInput("kind: must be 'qr' or 'kiosk'", "kind")
    if not survey_store.is_published(conn, survey):
        raise NotFound(f"survey: no published survey {survey!r}", "survey")
    row = {
        "token": token or secrets.token_urlsafe(9),
        "short_code": "",
        "name": name,
        "unit": unit,
        "lang": lang or unit_lang,
        "survey": survey,
        "kind": kind,
        "counter": counter,
        "service": service,
        "created_at": now_iso(),
    }
    with audit.tracked(conn, "touchpoint", row["token"], "create"):
        while True:  # a short code someone holds already is drawn again
            row["short_code"] = new_short_code(unit)
            if organisation_store.insert_touchpoint(conn, row):
                return row["token"]


def set_exposure(
    conn: Connection,
    unit: str,
    service: str | None,
    day: str,
    served: int,
    offered: int | None = None,
    source: str = "api",
) -> None:
    exposure_store.upsert(conn, unit, service or "", day, served, offered, source, now_iso())


def update_unit(
    conn: Connection,
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


def retire_touchpoint(conn: Connection, token: str) -> str:
    """Stop a touchpoint taking ratings; the row and its responses stay. Returns when it was retired."""
    retired_at = now_iso()
    with audit.tracked(conn, "touchpoint", token, "retire"):
        retired = organisation_store.retire_touchpoint(conn, token, retired_at)
    if retired:
        return retired_at
    exists, earlier = organisation_store.touchpoint_retired_at(conn, token)
    if not exists:
        raise NotFound(f"token: no touchpoint {token!r}", "token")
    raise Conflict(f"token: touchpoint {token!r} was retired at {earlier}", "token")
