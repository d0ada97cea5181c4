"""State that belongs to one app, not to the process: its caches and hubs, keyed by the app's store.

`feedback serve` runs one app per process, but tests and programs that embed the app run several in
one process (over different databases, one after another or at once). A module-level cache would hand
one app's sessions, tokens or pages to another; a value kept here lives as long as its app's store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from feedback.db import Store

T = TypeVar("T")

_values: WeakKeyDictionary[Store, dict[str, Any]] = WeakKeyDictionary()
_lock = threading.Lock()


def app_local(store: Store, name: str, factory: Callable[[], T]) -> T:
    """The app's value called `name`, made with `factory()` on first use."""
    values = _values.get(store)
    if values is None:
        with _lock:
            values = _values.setdefault(store, {})
    value = values.get(name)
    if value is None:
        with _lock:
            value = values.setdefault(name, factory())
    return value
