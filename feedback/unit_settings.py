"""The settings of a unit that the quality loop reads: owner, working-day calendar, deadline, public page."""

from __future__ import annotations

import sqlite3
from typing import Any

import holidays

from feedback.errors import InvalidInput, NotFound

FIELDS = ("owner", "country", "action_days", "public_results")


def supported_countries() -> set[str]:
    return set(holidays.list_supported_countries())


def update_unit_settings(conn: sqlite3.Connection, code: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and store the given fields (None clears owner, country or action_days); returns the unit's."""
    if not conn.execute("SELECT 1 FROM units WHERE code = ?", (code,)).fetchone():
        raise NotFound(f"code: no unit {code!r}", "code")
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a unit setting (one of {list(FIELDS)})", unknown[0])
    values: dict[str, Any] = {}
    if "owner" in changes:
        owner = changes["owner"]
        if owner is not None and (
            not isinstance(owner, str) or not conn.execute("SELECT 1 FROM users WHERE name = ?", (owner,)).fetchone()
        ):
            raise InvalidInput(f"owner: no user {owner!r}", "owner")
        values["owner"] = owner
    if "country" in changes:
        country = changes["country"]
        if country is not None:
            if not isinstance(country, str) or country.upper() not in supported_countries():
                raise InvalidInput("country: an ISO 3166 code with a holiday calendar (e.g. VN, CN, RU)", "country")
            country = country.upper()
        values["country"] = country
    if "action_days" in changes:
        days = changes["action_days"]
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365):
            raise InvalidInput("action_days: a whole number of working days from 1 to 365", "action_days")
        values["action_days"] = days
    if "public_results" in changes:
        if not isinstance(changes["public_results"], bool):
            raise InvalidInput("public_results: true or false", "public_results")
        values["public_results"] = int(changes["public_results"])
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        conn.execute(f"UPDATE units SET {assignments} WHERE code = ?", (*values.values(), code))
    row = conn.execute(f"SELECT {', '.join(FIELDS)} FROM units WHERE code = ?", (code,)).fetchone()
    return {"code": code, **{field: row[i] for i, field in enumerate(FIELDS)}, "public_results": bool(row[3])}
