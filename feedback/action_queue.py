"""The corrective-action queue as the manager pages read it: filtered, sorted, a page at a time, and
the board's columns with their counts and first cards.

The store reads one page (LIMIT/OFFSET) and counts in SQL, so a queue of thousands of actions costs
the same as one of fifty. Overdue is judged per unit, against that unit's local today, as
`feedback.actions.action_json` judges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgspec

from feedback.actions import action_json, local_day
from feedback.catalog import Snapshot
from feedback.plugins import PluginManager
from feedback.store import Connection
from feedback.store import actions as action_store

PAGE_SIZE = 50
BOARD_CARDS = 20  # cards per board column; the rest are a link to the filtered list away
SORTS = ("due", "opened", "updated", "unit")


class Queue(NamedTuple):
    """A queue request, checked: None (or empty) leaves a criterion out."""

    unit: str | None = None
    states: tuple[str, ...] = ()
    open_only: bool = False
    kinds: tuple[str, ...] = ()
    owner: str | None = None
    overdue: bool | None = None
    opened_from: date | None = None
    opened_to: date | None = None
    sort: str = "due"
    page: int = 1


def _units(snapshot: Snapshot, unit: str | None) -> list[str] | None:
    return snapshot.subtree(unit) if unit is not None else None


def today_groups(snapshot: Snapshot, units: Sequence[str] | None, now: datetime) -> list[tuple[str, list[str]]]:
    """(local today, the units whose today it is), for every unit the queue covers."""
    groups: dict[str, list[str]] = {}
    for code in units if units is not None else list(snapshot.units):
        unit = snapshot.units.get(code)
        if unit is not None:
            groups.setdefault(local_day(now, unit.tz).isoformat(), []).append(code)
    return sorted(groups.items())


def _instant(day: date, tz: str) -> str:
    """The UTC instant a local day starts (what `opened_at` is compared with)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC).isoformat()


def store_filter(
    snapshot: Snapshot, queue: Queue, now: datetime, *, states: Sequence[str] = ()
) -> action_store.QueueFilter:
    """The store's filter for a queue (`states` replaces the queue's own, for a board column).

    The opening days are the local days of the unit filtered on (of UTC when none)."""
    units = _units(snapshot, queue.unit)
    tz = snapshot.units[queue.unit].tz if queue.unit in snapshot.units else "UTC"
    return action_store.QueueFilter(
        units=units,
        states=tuple(states) or queue.states or None,
        open_only=queue.open_only,
        kinds=queue.kinds or None,
        owner=queue.owner,
        overdue=queue.overdue,
        overdue_before=today_groups(snapshot, units, now),
        opened_from=_instant(queue.opened_from, tz) if queue.opened_from else None,
        opened_before=_instant(queue.opened_to + timedelta(days=1), tz) if queue.opened_to else None,
    )


def _item(row: dict[str, Any], snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    item = action_json(row, snapshot, now)
    item["data"] = _decode(row.get("data"))
    return item


def _decode(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        found = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def read_page(conn: Connection, snapshot: Snapshot, queue: Queue, now: datetime) -> dict[str, Any]:
    """One page of the queue: `items` (as the API shows actions, with their `data`), `total` and
    `overdue` (of everything that matches), `page` and `pages`."""
    where = store_filter(snapshot, queue, now)
    totals = action_store.queue_totals(conn, where)
    pages = max(1, -(-totals["total"] // PAGE_SIZE))
    rows = action_store.queue_page(conn, where, queue.sort, PAGE_SIZE, (queue.page - 1) * PAGE_SIZE)
    return {
        "items": [_item(row, snapshot, now) for row in rows],
        "total": totals["total"],
        "overdue": totals["overdue"],
        "page": queue.page,
        "pages": pages,
    }


def read_board(
    conn: Connection,
    snapshot: Snapshot,
    queue: Queue,
    columns: Sequence[tuple[str, Sequence[str]]],
    now: datetime,
    cards: int = BOARD_CARDS,
) -> list[dict[str, Any]]:
    """Each column (key, its states) with `count` (every matching action in those states) and its first
    `cards` cards in the queue's order (the closed column: the latest closed first)."""
    counts = action_store.queue_counts_by_status(conn, store_filter(snapshot, queue, now))
    found = []
    for key, states in columns:
        count = sum(counts.get(state, 0) for state in states)
        rows: list[dict[str, Any]] = []
        if count:
            order = "closed" if key == "closed" else queue.sort
            rows = action_store.queue_page(conn, store_filter(snapshot, queue, now, states=states), order, cards, 0)
        found.append(
            {"key": key, "states": tuple(states), "count": count, "cards": [_item(r, snapshot, now) for r in rows]}
        )
    return found


def owners(conn: Connection, snapshot: Snapshot, unit: str | None) -> list[str]:
    """Who owns actions in a unit's subtree (everywhere when None), for the owner filter."""
    return action_store.owners_of(conn, _units(snapshot, unit))


def render_titles(
    items: Sequence[dict[str, Any]], lang: str, snapshot: Snapshot, plugins: PluginManager | None
) -> None:
    """Give each action its title in the reader's language: the plugin that opened it builds it from
    what it stored (`action_title`); otherwise, and for actions from before, the stored title stays.
    A plugin that raises counts as not answering (the plugin manager isolates each call)."""
    if plugins is None:
        return
    for item in items:
        title = plugins.hook.action_title(action=item, lang=lang, snapshot=snapshot)
        if isinstance(title, str) and title.strip():
            item["title"] = title
