"""The settings of a unit that the quality loop reads: owner, working-day calendar, deadline, public page,
the rating levels at which one response opens a complaint action, and how long personal data is kept
(the last two inherited down the tree)."""

from __future__ import annotations

from typing import Any

import holidays
import msgspec

from feedback import audit
from feedback.errors import InvalidInput, NotFound
from feedback.models import DEFAULT_COMPLAINT_LEVELS
from feedback.reported_units import refuse_reported
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store

FIELDS = ("owner", "country", "action_days", "public_results", "complaint_levels", "retention")
LEVELS = range(1, 6)


def supported_countries() -> set[str]:
    return set(holidays.list_supported_countries())


def update_unit_settings(conn: Connection, code: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and store the given fields (None clears owner, country or action_days); returns the unit's."""
    if not organisation_store.unit_exists(conn, code):
        raise NotFound(f"code: no unit {code!r}", "code")
    refuse_reported(conn, code, "code")
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
        values["country"] = check_country(changes["country"])
    if "action_days" in changes:
        values["action_days"] = check_action_days(changes["action_days"])
    if "public_results" in changes:
        if not isinstance(changes["public_results"], bool):
            raise InvalidInput("public_results: true or false", "public_results")
        values["public_results"] = int(changes["public_results"])
    if "complaint_levels" in changes:
        levels = complaint_levels(changes["complaint_levels"])
        values["complaint_levels"] = None if levels is None else msgspec.json.encode(levels).decode()
    if "retention" in changes:
        own_retention = retention_setting(changes["retention"], organisation_store.retention_of(conn, [code]).get(code))
        values["retention"] = None if not own_retention else msgspec.json.encode(own_retention).decode()
    if values:
        with audit.tracked(conn, "unit_settings", code, "update"):
            organisation_store.update_unit(conn, code, values)
    row = organisation_store.unit_columns(conn, code, FIELDS) or {}
    own = None if row.get("complaint_levels") is None else msgspec.json.decode(row["complaint_levels"])
    return {
        "code": code,
        **row,
        "public_results": bool(row.get("public_results")),
        "complaint_levels": own,
        "complaint_levels_in_force": own if own is not None else inherited_levels(conn, code),
        "retention": retention_as_set(row.get("retention")),
        "retention_in_force": retention_in_force_of(conn, code),
    }


def check_country(country: Any) -> str | None:
    """A calendar country as stored (upper case), or None to clear it."""
    if country is None:
        return None
    if not isinstance(country, str) or country.upper() not in supported_countries():
        raise InvalidInput("country: an ISO 3166 code with a holiday calendar (e.g. VN, CN, RU)", "country")
    return country.upper()


def check_action_days(days: Any) -> int | None:
    """Working days to rectify a bad review (1 to 365), or None to clear them."""
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365):
        raise InvalidInput("action_days: a whole number of working days from 1 to 365", "action_days")
    return days


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


# -- retention: how long a unit keeps each kind of personal data, inherited down the tree -----------------

#: The kinds of data with an end, in days: free-text comments, consented contacts, case references,
#: officer codes, and the responses themselves (their rollups stay).
RETENTION_KINDS = ("comments_days", "contacts_days", "case_refs_days", "officers_days", "responses_days")
#: What applies where no unit on the way up sets a kind (None: kept; a response without its comment,
#: contact, case reference and officer is no longer personal data).
RETENTION_DEFAULTS: dict[str, int | None] = {
    "comments_days": 365,
    "contacts_days": 90,
    "case_refs_days": 365,
    "officers_days": 730,
    "responses_days": None,
}
#: The days a unit may set, inclusive. Comments, case references and officer codes live at least a
#: month (the unit's corrective action and its appeal need them); contacts at least a week and at most
#: half a year (a call-back is made within the action's deadline); responses at least 30 days, so a
#: month's reports can always be made.
RETENTION_LIMITS: dict[str, tuple[int, int]] = {
    "comments_days": (30, 3650),
    "contacts_days": (7, 180),
    "case_refs_days": (30, 3650),
    "officers_days": (30, 3650),
    "responses_days": (30, 3650),
}


def retention_setting(value: Any, stored: str | None) -> dict[str, int]:
    """The retention a unit sets once `value` (the body's `retention`) is applied to what it `stored`:
    each kind given is set (a whole number of days within its limits) or, with null, follows the unit
    above again; kinds left out stay; `"retention": null` makes every kind follow the unit above."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"retention: an object with any of {list(RETENTION_KINDS)}, or null", "retention")
    own = retention_as_set(stored) or {}
    for kind, days in value.items():
        field = f"retention.{kind}"
        if kind not in RETENTION_KINDS:
            raise InvalidInput(f"{field}: not a kind of retention (one of {list(RETENTION_KINDS)})", field)
        if days is None:
            own.pop(kind, None)
            continue
        low, high = RETENTION_LIMITS[kind]
        if not isinstance(days, int) or isinstance(days, bool) or not low <= days <= high:
            raise InvalidInput(f"{field}: a whole number of days from {low} to {high}, or null", field)
        own[kind] = days
    return {kind: own[kind] for kind in RETENTION_KINDS if kind in own}


def retention_as_set(stored: str | None) -> dict[str, int] | None:
    """`units.retention` (JSON text, or NULL) as the kinds the unit sets itself; None when it sets none."""
    if not stored:
        return None
    return msgspec.json.decode(stored, type=dict[str, int]) or None


def retention_in_force(ancestors: list[str], own: dict[str, dict[str, int] | None]) -> dict[str, dict[str, Any]]:
    """Per kind, the days that apply to a unit and where they come from: `{"days", "from"}`, `from` being
    the nearest unit on the way up (`ancestors`, the unit first) that sets the kind, else "default"."""
    found: dict[str, dict[str, Any]] = {}
    for kind in RETENTION_KINDS:
        found[kind] = {"days": RETENTION_DEFAULTS[kind], "from": "default"}
        for code in ancestors:
            days = (own.get(code) or {}).get(kind)
            if days is not None:
                found[kind] = {"days": days, "from": code}
                break
    return found


def retention_in_force_of(conn: Connection, code: str) -> dict[str, dict[str, Any]]:
    """`retention_in_force` of a unit, read from the database (in the write that changed it)."""
    path = organisation_store.unit_path(conn, code) or ""
    ancestors = list(reversed(path.strip("/").split("/")))
    stored = organisation_store.retention_of(conn, ancestors)
    return retention_in_force(ancestors, {unit: retention_as_set(text) for unit, text in stored.items()})
