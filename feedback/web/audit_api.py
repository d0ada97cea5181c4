"""The audit log over HTTP: `GET /api/v1/audit` (admin and auditor, their unit's subtree) and
`GET /api/v1/audit/head` (the newest hash, which a copy held elsewhere anchors)."""

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from msgspec import Struct

from feedback import audit
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput, NotFound
from feedback.web.access import TOKEN, requires_role, requires_unit
from feedback.web.schemas import success
from feedback.web.security import Principal

#: Who may read the log: it names who changed what, so the roles that oversee (never a viewer).
READERS = ("admin", "auditor")
DEFAULT_LIMIT = 100
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")


class AuditActor(Struct, kw_only=True):
    kind: str
    id: str
    unit: str | None


class AuditChange(Struct, kw_only=True):
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditEntry(Struct, kw_only=True):
    seq: int
    at: str
    actor: AuditActor
    kind: str
    record_id: str
    unit: str | None
    action: str
    change: AuditChange
    prev_hash: str
    hash: str


class AuditPage(Struct, kw_only=True):
    items: list[AuditEntry]
    next_cursor: str | None


class AuditHead(Struct, kw_only=True):
    seq: int
    hash: str
    at: str | None


def parse_moment(value: str | None, field: str, *, end: bool = False) -> str | None:
    """A `from`/`to` bound as the log's ISO UTC text: a day (YYYY-MM-DD, UTC, `to` inclusive) or an
    RFC 3339 time."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError(value)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: a bound past the first or last day a date can hold
        raise InvalidInput(f"{field}: a day (YYYY-MM-DD) or an RFC 3339 time with its offset", field) from None
    return moment.isoformat(timespec="microseconds")


def parse_query(
    kind: str | None, actor: str | None, limit: str | None, cursor: str | None
) -> tuple[str | None, str | None, int, int | None]:
    if kind and not _KIND.match(kind):
        raise InvalidInput("kind: a record kind such as unit, user, token, seal", "kind")
    if actor is not None and len(actor) > 200:
        raise InvalidInput("actor: at most 200 characters", "actor")
    try:
        size = DEFAULT_LIMIT if limit in (None, "") else int(limit)
    except ValueError:
        size = 0
    if not 1 <= size <= audit.MAX_PAGE:
        raise InvalidInput(f"limit: a whole number from 1 to {audit.MAX_PAGE}", "limit")
    after = None
    if cursor:
        if not cursor.isdecimal() or len(cursor) > 18:
            raise InvalidInput("cursor: the next_cursor of the page before", "cursor")
        after = int(cursor)
    return kind or None, actor or None, size, after


def visible_units(principal: Principal, snapshot: Snapshot, unit: str | None) -> list[str] | None:
    """The units whose entries the caller sees (None: every entry, the installation's own too): a
    unit-less caller sees all, others their unit's subtree; `unit` narrows it to that subtree."""
    if unit:
        if unit not in snapshot.units:
            raise NotFound(f"unit: no unit {unit!r}", "unit")
        principal.require_unit(unit, snapshot)
        return snapshot.subtree(unit)
    if principal.unit is None:
        return None
    return snapshot.subtree(principal.unit)


async def read_page(
    state: State,
    principal: Principal,
    snapshot: Snapshot,
    *,
    unit: str | None,
    date_from: str | None,
    date_to: str | None,
    kind: str | None,
    actor: str | None,
    limit: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of the log as `GET /api/v1/audit` and the manager page show it (400 naming a bad field)."""
    start = parse_moment(date_from, "from")
    end = parse_moment(date_to, "to", end=True)
    kind, actor, size, after = parse_query(kind, actor, limit, cursor)
    units = visible_units(principal, snapshot, unit)
    return await state.store.read(
        lambda conn: audit.list_entries(
            conn, units=units, date_from=start, date_to=end, kind=kind, actor=actor, cursor=after, limit=size
        )
    )


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]
    dependencies = {"principal": TOKEN}

    @get(
        guards=[requires_role(*READERS), requires_unit()],
        summary="Audit log entries, newest first (admin, auditor; their unit's subtree)",
        description=(
            "`from`/`to`: a UTC day (YYYY-MM-DD, both inclusive) or an RFC 3339 time; `kind`: a record kind;"
            " `actor`: an actor's id or `kind:id`; `limit` (1-500, default 100) and `cursor` (the"
            " `next_cursor` of the page before) page through the log."
        ),
        responses=success(AuditPage),
    )
    async def list_entries(
        self,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        date_from: Annotated[str | None, QueryParameter(name="from")] = None,
        date_to: Annotated[str | None, QueryParameter(name="to")] = None,
        kind: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        unit: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        return await read_page(
            state,
            principal,
            snapshot,
            unit=unit,
            date_from=date_from,
            date_to=date_to,
            kind=kind,
            actor=actor,
            limit=limit,
            cursor=cursor,
        )

    @get(
        "/head",
        summary="The newest audit log entry's seq, hash and time (any token): print it, keep it elsewhere",
        responses=success(AuditHead),
    )
    async def head(self, principal: NamedDependency[Principal], state: State) -> dict[str, Any]:
        return await state.store.read(audit.head_json)


AUDIT_CONTROLLERS: list = [AuditController]
