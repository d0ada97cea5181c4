"""Call-backs: whether the respondent behind a corrective action was reached, and the call-back rate.

**Which actions owe a call-back** (`needs_callback`, the one rule): an action of kind `callback` (a
«Ваш контроль» call, or any plugin's), and any action opened for a response whose respondent left a
consented contact. It is decided when the action opens (`register`, in the opening's transaction), so
a contact purged later (when the action closes, or by retention) does not take the call-back away.

**Attempts.** Every attempt to reach the respondent — by phone (recorded by a person on the action),
by mail (the mail plugin, when the "what we did" mail is delivered or given up) or by SMS — is an
append-only `callback_attempts` row with `via` (phone, mail, sms) and `outcome` (reached,
not_reached, declined). The call-back's state follows: `reached` or `declined` as soon as an attempt
says so, `not_reached` once `FEEDBACK_CALLBACK_TRIES` attempts (default 3) did not reach, else
`pending`. Reached, declined and not reached are final: a later attempt is refused (409).

**The call-back rate** (`callback_rate`, `GET /api/v1/kpis`): call-backs reached / call-backs due.
A call-back falls due on the earlier of the local day it became final and the day after its due day
(the action's due day when it opened). It counts in the period holding that day, judged as it stood
at the period's end (or today, for a period still running): reached counts for, declined, not reached
and still pending past its due day count against; a pending one not yet past due is not counted yet.
The call-back of an action whose appeal was upheld is left out, as its response is. Wilson 95 %.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from feedback import audit
from feedback.db import Store, writing_store
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.events import record
from feedback.models import Event
from feedback.settings import Settings, load_settings
from feedback.store import Connection
from feedback.store import actions as action_store
from feedback.store import callbacks as callback_store
from feedback.store import responses as response_store

OUTCOMES = ("reached", "not_reached", "declined")
VIA = ("phone", "mail", "sms")
STATES = ("pending", "reached", "declined", "not_reached")
FINAL = frozenset(callback_store.FINAL)
KIND = "callback"
MAX_NOTE = 2000
DEFAULT_TRIES = 3
EVENT = "action.callback"


# -- which actions owe a call-back ---------------------------------------------------------------------------
def needs_callback(kind: str, has_contact: bool) -> bool:
    """The one rule: a call-back action, or an action whose respondent left a consented contact."""
    return kind == KIND or has_contact


def register(conn: Connection, action: dict[str, Any], at: str, *, has_contact: bool | None = None) -> bool:
    """In the write that opens `action` (a stored `actions` row): note the call-back it owes, if any.
    `has_contact`: whether its response left a consented contact, when the caller knows (None: looked
    up). True when one was registered now."""
    if has_contact is None:
        response_id = action.get("response_id")
        has_contact = bool(response_id) and response_store.contact_of(conn, response_id) is not None
    if not needs_callback(action["kind"], has_contact):
        return False
    return callback_store.register(conn, action["id"], action["unit"], action["due"], at)


# -- FEEDBACK_CALLBACK_TRIES, for writes that are handed no settings --------------------------------------------
class _Tries:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None


def configure(store: Store, settings: Settings) -> None:
    """Tell the call-backs written through `store` how many attempts make one not reached."""
    store.local("feedback.callbacks", _Tries).value = settings.callback_tries


def tries_in_force() -> int:
    """FEEDBACK_CALLBACK_TRIES of the app whose writer runs the caller (`configure`); else the environment's."""
    store = writing_store()
    configured = store.local("feedback.callbacks", _Tries) if store is not None else None
    if configured is not None and configured.value is not None:
        return configured.value
    tries = load_settings(keep_secret=False).callback_tries
    if configured is not None:
        configured.value = tries
    return tries


# -- reading --------------------------------------------------------------------------------------------------
def attempt_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "via": row["via"],
        "outcome": row["outcome"],
        "by": row["actor"],
        "at": row["at"],
        "note": row["note"],
    }


def _state_json(row: dict[str, Any], attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "state": row["state"],
        "tries": row["tries"],
        "due": row["due"],
        "settled_at": row["settled_at"],
        "attempts": [attempt_json(a) for a in attempts],
    }


def callback_of(conn: Connection, action: dict[str, Any]) -> dict[str, Any] | None:
    """The call-back an action owes, with its attempts oldest first; None when it owes none. `action` has
    at least id, kind, response_id and due. An action opened before call-backs were registered that the
    rule says owes one shows as pending (it is registered at its first attempt)."""
    found = callback_store.get(conn, action["id"])
    if found is None:
        has_contact = bool(action.get("response_id")) and response_store.contact_of(conn, action["response_id"])
        if not needs_callback(action["kind"], bool(has_contact)):
            return None
        found = {"state": "pending", "tries": 0, "due": action.get("due"), "settled_at": None}
    return _state_json(found, callback_store.attempts_of(conn, action["id"]))


# -- recording an attempt ---------------------------------------------------------------------------------------
def check_attempt(via: Any, outcome: Any, note: Any = None) -> str | None:
    """Check what a person or a channel reports (InvalidInput naming via, outcome or note); returns the
    note as it is kept (trimmed; None when blank)."""
    if via not in VIA:
        raise InvalidInput(f"via: one of {list(VIA)}", "via")
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome: one of {list(OUTCOMES)}", "outcome")
    if note is None:
        return None
    if not isinstance(note, str):
        raise InvalidInput("note: must be text", "note")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note: longer than {MAX_NOTE} characters", "note")
    return note.strip() or None


def _check(via: Any, outcome: Any, by: Any, at: Any, note: Any) -> str | None:
    note = check_attempt(via, outcome, note)
    if not isinstance(by, str) or not by.strip():
        raise InvalidInput("by: who made the attempt must be named", "by")
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise InvalidInput("at: a time with its offset", "at")
    return note


def record_attempt(
    conn: Connection,
    action_id: int,
    *,
    via: str,
    outcome: str,
    by: str,
    at: datetime,
    note: str | None = None,
) -> dict[str, Any]:
    """Record one attempt to reach the respondent of an action, in the caller's write transaction: the
    attempt, the call-back's new state, an `action.callback` event and an audit entry. Returns the
    call-back (`callback_of`) with the new attempt under "attempt".

    Raises InvalidInput (naming via, outcome, by, at or note), NotFound ("id": no such action) or
    Conflict ("id": the action owes no call-back, or its call-back is final already) before it writes
    anything, so a caller may catch these and go on with its transaction."""
    note = _check(via, outcome, by, at, note)
    action = action_store.get(conn, action_id)
    if action is None:
        raise NotFound(f"id: no corrective action {action_id}", "id")
    stamp = at.astimezone(UTC).isoformat()
    before = callback_store.get(conn, action_id)
    if before is None:
        # Opened before call-backs were registered: the rule decides now, as it would have then.
        if callback_of(conn, action) is None:
            raise Conflict(f"id: corrective action {action_id} owes no call-back", "id")
        callback_store.register(conn, action_id, action["unit"], action["due"], stamp)
        before = callback_store.get(conn, action_id)
    elif before["state"] in FINAL:
        raise Conflict(f"id: the call-back of action {action_id} is {before['state']} already", "id")
    after = callback_store.settle(conn, action_id, outcome, tries_in_force(), stamp)
    if after is None:  # another attempt made it final in between
        raise Conflict(f"id: the call-back of action {action_id} is no longer pending", "id")
    attempt = callback_store.add_attempt(
        conn,
        {"action": action_id, "via": via, "outcome": outcome, "actor": by.strip(), "at": stamp, "note": note},
    )
    found = _state_json(after, callback_store.attempts_of(conn, action_id))
    audit.record(
        conn,
        "action",
        action_id,
        "callback",
        before={"callback": before["state"], "tries": before["tries"]},
        after={
            "callback": after["state"],
            "tries": after["tries"],
            "attempt": attempt["id"],
            "via": via,
            "outcome": outcome,
            # The note may name the respondent, and the log is never erased: its digest only.
            "note_sha256": hashlib.sha256(note.encode()).hexdigest() if note else None,
        },
        unit=action["unit"],
    )
    record(conn, [callback_event(action, found, attempt_json(attempt), stamp)])
    return {**found, "attempt": attempt_json(attempt)}


def callback_event(action: dict[str, Any], callback: dict[str, Any], attempt: dict[str, Any], at: str) -> Event:
    """`action.callback`: an attempt was recorded (keyed by the attempt, so a replay logs nothing twice)."""
    data = {
        "id": action["id"],
        "kind": action["kind"],
        "unit": action["unit"],
        "title": action["title"],
        "status": action["status"],
        "owner": action["owner"],
        "response_id": action["response_id"],
        "callback": {k: v for k, v in callback.items() if k != "attempts"},
        "attempt": attempt,
    }
    return Event(type=EVENT, id=f"{EVENT}:{action['id']}:{attempt['id']}", created_at=at, data=data)


# -- the call-back rate ------------------------------------------------------------------------------------------
COUNTS = ("due", "reached", "declined", "not_reached", "overdue")


def _local_day(stamp: str, tz: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)).date()


def counts(
    conn: Connection,
    units: Iterable[str],
    tz_of: Callable[[str], str],
    start: date,
    end: date,
    now: datetime | None = None,
) -> dict[str, dict[str, int]]:
    """Per unit: the call-backs due in [start, end] (local days; see the module's docstring) and how
    they stood at the period's end: reached, declined, not_reached, overdue (pending past its due day).
    `due` is their sum, the rate's denominator; `reached` its numerator."""
    units = list(units)
    now = now or datetime.now(UTC)
    found = {unit: dict.fromkeys(COUNTS, 0) for unit in units}
    # A day of margin either side in UTC; the local days are worked out exactly below.
    low = datetime.combine(start - timedelta(days=2), datetime.min.time(), UTC).isoformat()
    high = datetime.combine(end + timedelta(days=2), datetime.min.time(), UTC).isoformat()
    rows = callback_store.for_rate(conn, units, high, low, (start - timedelta(days=1)).isoformat())
    for row in rows:
        if row["status"] == "appeal_upheld":
            continue
        tz = tz_of(row["unit"])
        settled = _local_day(row["settled_at"], tz) if row["settled_at"] else None
        late = date.fromisoformat(row["due"]) + timedelta(days=1) if row["due"] else None
        falls_due = min(d for d in (settled, late) if d is not None) if (settled or late) else None
        as_of = min(end, now.astimezone(ZoneInfo(tz)).date())
        if falls_due is None or not start <= falls_due <= as_of:
            continue
        tally = found[row["unit"]]
        tally[row["state"] if settled is not None and settled <= as_of else "overdue"] += 1
        tally["due"] += 1
    return found
