"""Units, services and touchpoints: the organisation a response is tied to.

Functions take a connection inside the caller's transaction, so the CLI, the demo and the web
app's writer thread share one implementation; the SQL is in `feedback.store.organisation`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from feedback import audit
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import LANGUAGES
from feedback.reported_units import refuse_reported
from feedback.store import Connection
from feedback.store import exposure as exposure_store
from feedback.store import organisation as organisation_store
from feedback.store import surveys as survey_store

SHORT_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
#: The longest unit or service code, touchpoint token, name and counter label (the forms and the catalogue
#: import hold every value to these).
MAX_CODE = 32
MAX_TOKEN = 64
MAX_TEXT = 200
SERVICE_KINDS = ("administrative", "customs", "other")
TOUCHPOINT_KINDS = ("qr", "kiosk")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


# -- the rules every way of making or changing the organisation applies (forms, API, catalogue import) --


def check_code(code: str, field: str = "code", limit: int = MAX_CODE) -> str:
    """A code for a new unit or service (or a touchpoint's token, with `limit=MAX_TOKEN`): short, and safe
    in URLs and file names: letters, digits, '.', '-' and '_' (procedure codes such as 1.004227.000.00.00.H12
    keep their dots)."""
    if not code or len(code) > limit or not code.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InvalidInput(f"{field}: letters, digits, '.', '-' and '_', at most {limit}", field)
    return code


def check_text(value: str, field: str) -> str:
    """A name or label: at most MAX_TEXT characters."""
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{field}: at most {MAX_TEXT} characters", field)
    return value


def check_lang(lang: str, field: str = "lang") -> str:
    if lang not in LANGUAGES:
        raise InvalidInput(f"{field}: must be one of {list(LANGUAGES)}", field)
    return lang


def check_tz(tz: str, field: str = "tz") -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{field}: unknown time zone {tz!r}", field) from None
    return tz


def check_service_kind(kind: str, field: str = "kind") -> str:
    if kind not in SERVICE_KINDS:
        raise InvalidInput(f"{field}: must be administrative, customs or other", field)
    return kind


def own_name(names: Mapping[str, str], lang: str) -> str:
    """The one `name` a unit or service keeps beside its names by language: the name in its own language
    (a unit's; a service's agency's, English for a service of every agency), else the first given."""
    return names.get(lang) or next(iter(names.values()), "")


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
    check_lang(lang)
    check_tz(tz)
    if "/" in code or not code:
        raise InvalidInput("code: must be non-empty and without '/'", "code")
    path = f"/{code}/"
    refuse_reported(conn, parent, "parent")
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
    check_service_kind(kind)
    refuse_reported(conn, agency, "agency")
    encoded = msgspec.json.encode(names).decode() if names else None
    with audit.tracked(conn, "service", code, "create"):
        organisation_store.insert_service(conn, code, name, encoded, kind, agency, now_iso())


def update_unit_names(conn: Connection, code: str, names: dict[str, str], lang: str) -> None:
    """Set a unit's names by language and its own language; its one `name` follows (`own_name`). Its code,
    place in the tree and time zone never change here. Logged only when something changed."""
    check_lang(lang)
    refuse_reported(conn, code, "code")
    values = {"name": own_name(names, lang), "names": msgspec.json.encode(names).decode() if names else None}
    with audit.tracked(conn, "unit", code, "update"):
        organisation_store.update_unit(conn, code, {**values, "lang": lang})


def update_service(conn: Connection, code: str, names: dict[str, str], kind: str, lang: str) -> None:
    """Set a service's names by language and its kind; `lang` is its agency's language (English for a
    service of every agency), in which its one `name` is kept. Its agency never changes here."""
    check_service_kind(kind)
    values = {"name": own_name(names, lang), "names": msgspec.json.encode(names).decode() if names else None}
    with audit.tracked(conn, "service", code, "update"):
        organisation_store.update_service(conn, code, {**values, "kind": kind})


#: What may change on a touchpoint once it exists: not its token (printed in its QR code), unit or kind.
TOUCHPOINT_CHANGES = ("name", "lang", "survey", "counter", "service")


def update_touchpoint(conn: Connection, token: str, changes: dict[str, str | None]) -> None:
    """Set some of a touchpoint's name, language, survey, counter and service."""
    unknown = sorted(set(changes) - set(TOUCHPOINT_CHANGES))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not changed on a touchpoint", unknown[0])
    if "lang" in changes:
        check_lang(changes["lang"] or "")
    if "survey" in changes and not survey_store.is_published(conn, changes["survey"] or ""):
        raise NotFound(f"survey: no published survey {changes['survey']!r}", "survey")
    if changes:
        with audit.tracked(conn, "touchpoint", token, "update"):
            organisation_store.update_touchpoint(conn, token, changes)


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
    refuse_reported(conn, unit, "unit")
    if kind not in TOUCHPOINT_KINDS:
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
