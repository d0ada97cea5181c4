"""What other nodes wrote, as it commits: PostgreSQL's LISTEN/NOTIFY for the app's caches and waiters.

Triggers (dialect_postgres.create_notify_triggers) send `NOTIFY feedback, '<topic>'` from the
transaction that changes the catalog ("catalog"), an action ("actions") or a kiosk's invitations
("invitation:<kiosk id>"); PostgreSQL delivers it only if that transaction commits, once per distinct
payload. One thread per app holds a connection that listens and hands each payload to the callbacks
subscribed to its topic (they run on this thread: they must be quick and thread-safe, e.g.
`loop.call_soon_threadsafe`). When the connection drops, every subscriber is called once it is back
(with the payload "*"), since whatever was sent meanwhile is lost; SQLite stores have no listener and
rely on their periodic checks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

log = logging.getLogger("feedback.db")
CHANNEL = "feedback"


class Listener:
    def __init__(self, url: str) -> None:
        self.url = url
        self._subscribers: dict[str, list[Callable[[str], None]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feedback-listen", daemon=True)
        self.connected = threading.Event()

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """Call `callback(payload)` for each notification whose topic (the payload up to ':') is `topic`."""
        with self._lock:
            self._subscribers.setdefault(topic, []).append(callback)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _deliver(self, payload: str) -> None:
        topic = payload.partition(":")[0]
        with self._lock:
            callbacks = list(self._subscribers.get(topic, ())) if topic != "*" else self._everyone()
        for callback in callbacks:
            try:
                callback(payload)
            except Exception:  # noqa: BLE001 - one bad subscriber must not end the listening
                log.exception("notification callback failed")

    def _everyone(self) -> list[Callable[[str], None]]:
        return [callback for callbacks in self._subscribers.values() for callback in callbacks]

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, application_name="feedback-listen") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self.connected.is_set():
                        self._deliver("*")  # back after a drop: what was sent meanwhile is lost
                    self.connected.set()
                    delay = 0.5
                    while not self._stop.is_set():
                        # A short wait: `stop` (every command's and server's exit) waits for it to end.
                        for notice in conn.notifies(timeout=0.1, stop_after=100):
                            self._deliver(notice.payload)
            except psycopg.Error as error:
                if self._stop.is_set():
                    return
                log.warning("listening for other nodes' changes failed (%s); retrying in %.1f s", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
