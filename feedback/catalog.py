"""An in-memory view of the slowly changing tables: units, services, touchpoints, survey versions.

Ingest and the public pages consult it on every request, so it must never touch SQLite on the hot
path. It reloads (on a reader thread) when a write in this process marks it stale, and at most
every `ttl` seconds otherwise, so a change made by another process shows up soon too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from feedback.i18n import name_in
from feedback.models import DEFAULT_COMPLAINT_LEVELS, ObjectiveVersion, SurveyVersion, Touchpoint, Unit, User
from feedback.plugins import PluginManager
from feedback.store import Connection
from feedback.store import objectives as objective_store
from feedback.store import organisation as organisation_store
from feedback.store import surveys as survey_store
from feedback.store import users as user_store
from feedback.surveys import decode_definition
from feedback.unit_settings import retention_as_set, retention_in_force


@dataclass
class Snapshot:
    units: dict[str, Unit] = field(default_factory=dict)
    services: dict[str, dict] = field(default_factory=dict)
    touchpoints: dict[str, Touchpoint] = field(default_factory=dict)
    short_codes: dict[str, str] = field(default_factory=dict)  # short code -> token
    # token -> when it was retired (aware UTC): `token in retired` asks whether it still takes ratings.
    retired: dict[str, datetime] = field(default_factory=dict)
    # slug -> the version in force (the highest published), and every version by (slug, version)
    current: dict[str, SurveyVersion] = field(default_factory=dict)
    versions: dict[tuple[str, int], SurveyVersion] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    # unit -> every version of every objective of that unit, oldest first
    objective_versions: dict[str, list[ObjectiveVersion]] = field(default_factory=dict)

    def ancestors(self, code: str) -> list[str]:
        """The unit and every unit above it, nearest first."""
        return list(reversed(self.units[code].path.strip("/").split("/")))

    def objectives_in_force(self, unit: str, day: str, with_ancestors: bool = True) -> list[ObjectiveVersion]:
        """The version of each objective in force on a local day, for a unit (and the units above it)."""
        codes = self.ancestors(unit) if with_ancestors else [unit]
        found: dict[int, ObjectiveVersion] = {}
        for code in codes:
            for version in self.objective_versions.get(code, ()):
                if version.valid_from <= day and (version.retired_from is None or day < version.retired_from):
                    found[version.objective] = version  # later versions replace earlier ones
        return list(found.values())

    def subtree(self, code: str) -> list[str]:
        prefix = self.units[code].path
        return [c for c, u in self.units.items() if u.path.startswith(prefix)]

    def in_subtree(self, code: str, root: str) -> bool:
        unit, top = self.units.get(code), self.units.get(root)
        return bool(unit and top and unit.path.startswith(top.path))

    def service_offered_at(self, code: str, unit: str) -> bool:
        """A service without an agency is everyone's; an agency's service belongs to its whole tree, so the
        units above and below the agency may offer it, and no other unit."""
        agency = (self.services.get(code) or {}).get("agency")
        return not agency or self.in_subtree(agency, unit) or self.in_subtree(unit, agency)

    def complaint_levels(self, code: str) -> tuple[tuple[int, ...], str | None]:
        """The levels at which one response at a unit opens a complaint action, and the unit that set
        them: the unit's own setting, else the nearest unit above that has one, else the default (None)."""
        for ancestor in self.ancestors(code):
            levels = self.units[ancestor].complaint_levels
            if levels is not None:
                return levels, ancestor
        return DEFAULT_COMPLAINT_LEVELS, None

    def retention(self, code: str) -> dict[str, dict[str, Any]]:
        """Per kind of personal data, the days a unit keeps it and where that comes from (`{"days",
        "from"}`: the nearest unit up the tree that sets it, else "default")."""
        ancestors = self.ancestors(code)
        return retention_in_force(ancestors, {c: self.units[c].retention for c in ancestors})

    def touchpoint(self, token_or_code: str) -> Touchpoint | None:
        token = self.short_codes.get(token_or_code.upper(), token_or_code)
        return self.touchpoints.get(token)

    def unit_name(self, code: str | None, lang: str) -> str:
        """A unit's name for a reader of `lang` (reader's language, English, the unit's own); an unknown
        unit as its code."""
        unit = self.units.get(code) if code else None
        if unit is None:
            return code or ""
        return name_in(unit.names, lang, unit.lang, unit.name)

    def service_name(self, code: str | None, lang: str) -> str:
        """A service's name for a reader of `lang` (reader's language, English, then its agency's own
        language, whose name it was created with); an unknown service as its code."""
        service = self.services.get(code) if code else None
        if service is None:
            return code or ""
        agency = self.units.get(service.get("agency") or "")
        names = decode_names(service.get("names"))
        return name_in(names, lang, agency.lang if agency else None, service.get("name") or code)


def decode_names(names: str | bytes | dict[str, str] | None) -> dict[str, str]:
    """A `names` column (JSON text, or already decoded) as a dict; unreadable text as no names."""
    if isinstance(names, dict):
        return names
    if not names:
        return {}
    try:
        decoded = msgspec.json.decode(names)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def retired_moment(text: str) -> datetime:
    """`touchpoints.retired_at` as an aware UTC datetime. A stamp without an offset is read as UTC (every stamp
    is written in UTC); one that cannot be read counts as retired from the start, so nothing new slips in."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def decode_levels(text: str | None) -> tuple[int, ...] | None:
    """`units.complaint_levels` (a JSON list, or NULL for "as the unit above") as a tuple."""
    return None if text is None else tuple(msgspec.json.decode(text, type=list[int]))


def load_snapshot(conn: Connection, plugins: PluginManager | None = None) -> Snapshot:
    snap = Snapshot()
    for row in organisation_store.all_units(conn):
        snap.units[row["code"]] = Unit(
            code=row["code"],
            name=row["name"],
            names=msgspec.json.decode(row["names"]) if row["names"] else None,
            parent=row["parent"],
            lang=row["lang"],
            tz=row["tz"],
            path=row["path"],
            country=row["country"],
            owner=row["owner"],
            action_days=row["action_days"],
            public_results=bool(row["public_results"]),
            complaint_levels=decode_levels(row["complaint_levels"]),
            retention=retention_as_set(row["retention"]),
        )
    for row in user_store.enabled_users(conn):
        snap.users[row["name"]] = User(**row)
    for data in objective_store.versions(conn):
        data.pop("created_at", None)
        data.pop("created_by", None)
        version = msgspec.convert(data, ObjectiveVersion, strict=False)
        snap.objective_versions.setdefault(version.unit, []).append(version)
    for row in organisation_store.all_services(conn):
        snap.services[row["code"]] = row
    for row in organisation_store.all_touchpoints(conn):
        snap.touchpoints[row["token"]] = Touchpoint(
            token=row["token"],
            name=row["name"],
            unit=row["unit"],
            lang=row["lang"],
            survey=row["survey"],
            kind=row["kind"],
            counter=row["counter"],
            service=row["service"],
            short_code=row["short_code"],
        )
        if row["short_code"]:
            snap.short_codes[row["short_code"].upper()] = row["token"]
        if row["retired_at"]:
            snap.retired[row["token"]] = retired_moment(row["retired_at"])
    for row in survey_store.all_versions(conn):
        version = SurveyVersion(
            slug=row["slug"],
            version=row["version"],
            definition=decode_definition(row["definition"], plugins),
            published_at=row["published_at"],
        )
        snap.versions[(row["slug"], row["version"])] = version
        snap.current[row["slug"]] = version
    return snap


class Catalog:
    def __init__(self, ttl: float = 5.0, plugins: PluginManager | None = None) -> None:
        self.ttl = ttl
        self._invalidations = 0
        self.plugins = plugins  # whose question kinds the survey versions are decoded with
        self._snapshot = Snapshot()
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self.reloading = False
        self._snapshot_from = 0  # the invalidation count when the snapshot held began loading

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def needs_reload(self) -> bool:
        """Whether this caller must reload before it reads the catalog.

        Merely old (past the TTL): only one request pays for a reload, the rest go on with what is held.
        Invalidated since the snapshot held began loading: every caller reloads for itself, since it may
        be the one whose change it was, and its next request must see it (another request's reload,
        still under way, would leave it reading the old snapshot meanwhile)."""
        current = self._snapshot_from == self._invalidations and self._loaded_at
        if current and (self.reloading or time.monotonic() - self._loaded_at <= self.ttl):
            return False
        self.reloading = True
        return True

    def reload(self, conn: Connection) -> Snapshot:
        invalidations = self._invalidations
        try:
            snapshot = load_snapshot(conn, self.plugins)
            with self._lock:
                if invalidations >= self._snapshot_from:  # an older load finishing last never wins
                    self._snapshot, self._snapshot_from = snapshot, invalidations
                    # Invalidated while loading: what was read may predate the change, so stay stale.
                    self._loaded_at = time.monotonic() if invalidations == self._invalidations else 0.0
        finally:
            self.reloading = False
        return self._snapshot

    def invalidate(self) -> None:
        """Reload before the next use (thread-safe: a listener thread calls it for other nodes' changes)."""
        self._invalidations += 1
        self._loaded_at = 0.0
