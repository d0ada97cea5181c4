"""On a parent installation, a child installation's units (`<child>:<code>`) are reported: each report the
child sends overwrites them, so nothing here may rename them, change their settings, hang units, services or
touchpoints from them. Every write path that takes a unit code asks `refuse_reported` first; objectives on
them stay allowed (they are judged on the reported figures)."""

from __future__ import annotations

from feedback.errors import Conflict
from feedback.store import Connection
from feedback.store import federation as federation_store
from feedback.store.responses import REPORTED_MARK


def is_reported(unit: str | None) -> bool:
    """Whether `unit` is a child installation's unit (no unit made here has the mark in its code)."""
    return unit is not None and REPORTED_MARK in unit


def refuse_reported(conn: Connection, unit: str | None, field: str) -> None:
    """Raise Conflict (409) naming `field` when `unit` is a child installation's unit."""
    if not is_reported(unit):
        return
    child = str(unit).partition(REPORTED_MARK)[0]
    found = federation_store.get_child(conn, child, removed=True)
    name = f"{found['name']} ({child})" if found else child
    raise Conflict(f"{field}: {unit} is reported by child installation {name}; change it there", field)
