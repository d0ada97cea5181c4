"""The settings of a unit that the quality loop reads: owner, working-day calendar, deadline, public page,
and the rating levels at which one response opens a complaint action (inherited down the tree)."""

from __future__ import annotations

from typing import Any

import holidays
import msgspec

from feedback.errors import InvalidInput, NotFound
from feedback.models import DEFAULT_COMPLAINT_LEVELS
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store

FIELDS = ("owner", "country", "action_days", "public_results", "complaint_levels")
LEVELS = range(1, 6)


def supported_countries() -> set[str]:
    return set(holidays.list_supported_countries())


def update_unit_settings(conn: Connection, code: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and store the given fields (None clears owner, country or action_days); returns the unit's."""
    if not organisation_store.unit_exists(conn, code):
        raise NotFound(f"code: no unit {code!r}", "code")
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a unit setting (one of {list(FIELDS)})", unknown[0])
    values: dict[str, Any] = {}
    if "owner" in changes:
        owner = changes["owner"]
        if owner is not None and (not isinstance(owner, str) or not user_store.exists(conn, owner)):
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
    if "complaint_levels" in changes:
        levels = complaint_levels(changes["complaint_levels"])
        values["complaint_levels"] = None if levels is None else msgspec.json.encode(levels).decode()
    if values:
        organisation_store.update_unit(conn, code, values)
    row = organisation_store.unit_columns(conn, code, FIELDS) or {}
    own = None if row.get("complaint_levels") is None else msgspec.json.decode(row["complaint_levels"])
    return {
        "code": code,
        **row,
        "public_results": bool(row.get("public_results")),
        "complaint_levels": own,
        "complaint_levels_in_force": own if own is not None else inherited_levels(conn, code),
    }


def complaint_levels(value: Any) -> list[int] | None:
    """A `complaint_levels` value checked and sorted: levels 1 to 5, each once; [] for none; None
    (null) to follow the unit above again."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise InvalidInput(
            "complaint_levels: a list of rating levels from 1 to 5, [] for none, or null", "complaint_levels"
        )
    if any(v not in LEVELS for v in value) or len(set(value)) != len(value):
        raise InvalidInput("complaint_levels: each level from 1 to 5, at most once", "complaint_levels")
    return sorted(value)


def inherited_levels(conn: Connection, code: str) -> list[int]:
    """The complaint levels a unit without its own setting follows: the nearest unit above that has one,
    else the default."""
    path = organisation_store.unit_path(conn, code) or ""
    above = list(reversed(path.strip("/").split("/")[:-1]))
    settings = organisation_store.complaint_levels_of(conn, above)
    for ancestor in above:
        if settings.get(ancestor) is not None:
            return msgspec.json.decode(settings[ancestor])
    return list(DEFAULT_COMPLAINT_LEVELS)
