"""The audit log: who changed which record, when, and how, in a hash chain the database refuses to edit.

Every change to configuration and records appends an entry in the write transaction of the change
(`record`, or `tracked` around the change). Each entry carries the SHA-256 of its own content and of the
previous entry's hash, so an entry edited, removed or inserted afterwards breaks the chain; both backends
refuse UPDATE and DELETE on `audit_log` outright. The actor comes from the context (`acting_as`): the web
app sets it from the signed-in principal for every request, the CLI and jobs set their own, and
`Store.write` runs each write job in its caller's context, so code inside a write sees who asked for it.

`feedback audit verify` (`feedback.audit_verify`) recomputes the chain and the daily seals of the
responses (`feedback.audit_seals`), and compares each tracked record's stored state (`state_of`) with its
last logged state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from feedback.db import deferred
from feedback.store import Connection, dialect
from feedback.store import audit as audit_store

ActorKind = Literal["user", "token", "job", "citizen", "system", "cli"]
#: The first entry's prev_hash.
GENESIS = "0" * 64


class Actor(msgspec.Struct, frozen=True):
    """Who an entry says made the change: a signed-in user, an API token (its id), a job (its name), a
    citizen (a digest of the receipt: `citizen`), the command line (the OS user) or the system itself."""

    kind: ActorKind
    id: str
    unit: str | None = None


SYSTEM = Actor("system", "feedback")


def citizen(receipt: str) -> Actor:
    """A citizen acting on their receipt page (`receipt` as stored), named by a digest of the receipt: the
    log is kept for good, so it holds no receipt that would tie it to its responses; the same receipt
    always gives the same name, so whoever holds it can still find its entries."""
    return Actor("citizen", "receipt:" + hashlib.sha256(receipt.encode()).hexdigest()[:16])


class ActorSlot:
    """A request's actor, filled in once the caller is authenticated. The web app puts one slot in each
    request's context before anything runs; whichever task authenticates the caller (a guard, a
    dependency resolved in a task group of its own) fills the same slot, so the handler and the write
    jobs it queues all see the actor."""

    __slots__ = ("actor",)

    def __init__(self) -> None:
        self.actor: Actor | None = None


_CURRENT: ContextVar[Actor | ActorSlot | None] = ContextVar("feedback_audit_actor", default=None)


def current_actor() -> Actor:
    """The actor of the running context; the system when nobody is set."""
    found = _CURRENT.get()
    if isinstance(found, ActorSlot):
        found = found.actor
    return found or SYSTEM


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Within the block, entries name `actor`."""
    token = _CURRENT.set(actor)
    try:
        yield actor
    finally:
        _CURRENT.reset(token)


def new_slot() -> Token[Actor | ActorSlot | None]:
    """Put an empty actor slot into the current context (the start of a request); `end_slot` with the
    token it returns at the request's end."""
    return _CURRENT.set(ActorSlot())


def end_slot(token: Token[Actor | ActorSlot | None]) -> None:
    _CURRENT.reset(token)


def identify(actor: Actor) -> None:
    """The caller is now known: fill the request's slot (or, without one, set the actor outright)."""
    found = _CURRENT.get()
    if isinstance(found, ActorSlot):
        found.actor = actor
    else:
        _CURRENT.set(actor)


# -- entries ---------------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def canonical(value: Any) -> bytes:
    """The one encoding every hash of the log is computed over: JSON with sorted keys."""
    return msgspec.json.encode(value, order="sorted")


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 over every field of an entry but `hash` itself (prev_hash included)."""
    return hashlib.sha256(canonical({k: entry[k] for k in audit_store.COLUMNS if k != "hash"})).hexdigest()


def record(
    conn: Connection,
    kind: str,
    record_id: str | int,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    unit: str | None = None,
    *,
    at: str | None = None,
) -> int:
    """Append one entry in the calling write transaction, naming the context's actor; returns its seq.
    `before` and `after` must leave out secrets and erased values."""
    audit_store.hold_write_lock(conn)
    actor = current_actor()
    chain = deferred("audit_chain", _Chain)
    head = audit_store.head(conn) if chain is None else chain.newest(conn)
    entry: dict[str, Any] = {
        "seq": head["seq"] + 1 if head else 1,
        "at": at or now_iso(),
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_unit": actor.unit,
        "kind": kind,
        "record_id": str(record_id),
        "unit": unit,
        "action": action,
        "change": canonical({"before": before, "after": after}).decode(),
        "prev_hash": head["hash"] if head else GENESIS,
    }
    entry["hash"] = entry_hash(entry)
    if chain is None:
        audit_store.insert(conn, entry)
    else:
        chain.append(entry)
    return entry["seq"]


class _Chain:
    """The entries a server's group commit appends: the newest hash read once, the entries written
    together just before the commit (the writer's `deferred`), instead of a read and an insert each."""

    __slots__ = ("entries", "head")

    def __init__(self) -> None:
        self.head: dict[str, Any] | None = None
        self.entries: list[dict[str, Any]] = []

    def newest(self, conn: Connection) -> dict[str, Any] | None:
        if self.head is None:
            self.head = audit_store.head(conn)
        return self.head

    def append(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.head = entry

    def flush(self, conn: Connection) -> None:
        audit_store.insert_many(conn, self.entries)


def head(conn: Connection) -> dict[str, Any] | None:
    """{"seq", "hash", "at"} of the newest entry, or None while the log is empty."""
    return audit_store.head(conn)


# -- tracked records ---------------------------------------------------------------------------------

#: The kinds whose stored state the verifier compares with their last logged state.
TRACKED_KINDS = (
    "unit",
    "service",
    "survey",
    "touchpoint",
    "objective",
    "user",
    "token",
    "webhook",
    "kiosk",
    "unit_settings",
)
#: Kinds that are a view of another kind's record: a unit's settings are columns of the unit, so both
#: kinds' entries describe one stored row (the verifier takes the newest of either).
SAME_RECORD = {"unit_settings": "unit"}

#: Columns that hold a secret: logged as the SHA-256 of the value, so a change still shows and the
#: secret never enters the log (the log is readable by auditors; a hash of a random secret tells nothing).
SECRET_COLUMNS = frozenset(
    {"password_hash", "token_hash", "secret", "totp_secret", "recovery_codes", "code_hash", "client_secret"}
)
#: Columns that change on every use without anyone deciding anything, so they are neither logged nor
#: compared: a kiosk's heartbeat (last_seen, battery, backlog, dead letters, app version, last sync, the
#: recent presses it reports, since when it is silent), and any `last_…` column (last used, last sign-in,
#: the last TOTP step accepted).
VOLATILE_COLUMNS = frozenset(
    {
        "last_seen",
        "backlog",
        "dead_letters",
        "app_version",
        "last_sync",
        "battery",
        "recent_presses",
        "silent_since",
        "last_used_at",
        "use_count",
        "failed_attempts",
    }
)


def _loggable(name: str) -> bool:
    return name not in VOLATILE_COLUMNS and not name.startswith("last_")


def _digest_secret(value: Any) -> Any:
    if value is None:
        return None
    text = value if isinstance(value, str) else canonical(value).decode()
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in row.items():
        if not _loggable(name):
            continue
        if name in SECRET_COLUMNS or name.endswith("_secret"):
            value = _digest_secret(value)
        elif isinstance(value, bool):
            value = int(value)  # a PostgreSQL boolean reads as 0/1 on SQLite: one form for both
        elif isinstance(value, list):
            value = [_clean(item) if isinstance(item, dict) else item for item in value]
        state[name] = value
    return state


def record_kind(kind: str) -> str:
    """The kind whose stored row an entry of `kind` describes."""
    return SAME_RECORD.get(kind, kind)


def state_of(conn: Connection, kind: str, record_id: str | int) -> dict[str, Any] | None:
    """A tracked record's stored state as the log keeps it: the row's columns minus volatile ones, secrets
    as their SHA-256 (None: no such record). What `tracked` logs and the verifier compares."""
    kind = record_kind(kind)
    if kind not in audit_store.RECORD_TABLES and not audit_store.has_table(conn, kind):
        return None
    row = audit_store.state_row(conn, kind, str(record_id))
    return None if row is None else _clean(row)


def _unit_of(conn: Connection, kind: str, record_id: str, state: dict[str, Any] | None) -> str | None:
    """The unit a record belongs to (whose subtree's admins and auditors see its entries)."""
    if record_kind(kind) == "unit":
        return record_id
    if state is None:
        return None
    if kind == "kiosk" and state.get("touchpoint"):
        return audit_store.touchpoint_unit(conn, state["touchpoint"])
    return state.get("unit") or state.get("agency")


class Tracking:
    """What `tracked` yields: set `record_id` inside the block when the record's id is made there."""

    __slots__ = ("record_id", "unit", "before", "after")

    def __init__(self, record_id: str | None, unit: str | None) -> None:
        self.record_id = record_id
        self.unit = unit
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None


@contextmanager
def tracked(
    conn: Connection, kind: str, record_id: str | int | None, action: str, unit: str | None = None
) -> Iterator[Tracking]:
    """Log the change the block makes to one tracked record: its state before and after (`state_of`).
    Nothing is logged when the block raises, or when the record's state did not change."""
    tracking = Tracking(None if record_id is None else str(record_id), unit)
    if tracking.record_id is not None:
        tracking.before = state_of(conn, kind, tracking.record_id)
    yield tracking
    if tracking.record_id is None:
        raise ValueError("tracked: the block never said which record it changed (set record_id)")
    tracking.after = state_of(conn, kind, tracking.record_id)
    if tracking.after == tracking.before:
        return
    found_unit = tracking.unit or _unit_of(conn, kind, tracking.record_id, tracking.after or tracking.before)
    record(conn, kind, tracking.record_id, action, tracking.before, tracking.after, found_unit)


# -- responses -------------------------------------------------------------------------------------------

#: Columns of a response row that are not its content: the flags, which the seal digests on their own.
_NOT_CONTENT = frozenset({"flags"})
#: Columns added to `responses` after seals began, digested only where they hold a value: a row sealed
#: before a column existed digests as it did then.
_LATER_COLUMNS = frozenset({"entered_by"})


def response_digest(row: dict[str, Any]) -> str:
    """SHA-256 over a stored response row's content columns (all but the flags)."""
    content = {k: v for k, v in row.items() if k not in _NOT_CONTENT and (v is not None or k not in _LATER_COLUMNS)}
    return hashlib.sha256(canonical(content)).hexdigest()


def response_state(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a "response" entry logs of a row: its content digest and flags, never the content, and the day
    and arrival time that place it under a seal."""
    if row is None:
        return None
    return {"digest": response_digest(row), "flags": row["flags"], "day": row["day"], "server_time": row["server_time"]}


def response_changed(
    conn: Connection,
    response_id: str,
    action: str,
    before_row: dict[str, Any] | None,
    after_row: dict[str, Any] | None,
    *,
    extra: dict[str, Any] | None = None,
) -> int:
    """Log a change to a stored response (an upheld appeal, an erasure) in the transaction that made it:
    the row's digest and flags before and after, so the seals of its day still verify. Pass the rows as
    `response_row` reads them (after_row None: the response was deleted); `extra` adds facts without
    content (which fields were erased, a reason code), kept under the after-state's "note"."""
    before = response_state(before_row)
    after = response_state(after_row)
    if extra:
        after = {**(after or {}), "note": extra}
    unit = (after_row or before_row or {}).get("unit")
    return record(conn, "response", response_id, action, before, after, unit)


def day_purged(conn: Connection, unit: str, day: str, count: int) -> int:
    """Log that every response of one unit-day was deleted (retention), in the transaction that deleted
    them: the day's earlier seals then expect nothing, and a response arriving later is sealed anew."""
    return record(conn, "seal", f"{unit}/{day}", "purge", None, {"count": count, "through": now_iso()}, unit)


def response_row(conn: Connection, response_id: str) -> dict[str, Any] | None:
    """A stored response's whole row (what `response_changed` and the seals digest), or None."""
    return audit_store.response_row(conn, response_id)


# -- baseline ----------------------------------------------------------------------------------------------


def unlogged_records(conn: Connection) -> list[tuple[str, str]]:
    """(kind, record id) of every stored tracked record that has no entry yet."""
    missing: list[tuple[str, str]] = []
    for kind in TRACKED_KINDS:
        if kind in SAME_RECORD or not (kind in audit_store.RECORD_TABLES or audit_store.has_table(conn, kind)):
            continue
        logged = audit_store.logged_records(conn, kind)
        missing.extend((kind, record_id) for record_id in audit_store.record_ids(conn, kind) if record_id not in logged)
    return missing


def _log_is_live(conn: Connection) -> bool:
    """Whether anything but baseline entries was logged: from then on every record is made through the log."""
    return audit_store.has_entries_besides(conn, "baseline")


def baseline(conn: Connection) -> int:
    """Give every stored tracked record without an entry one "baseline" entry (actor: the system), so the
    verifier holds from now on for a database made before the log. Only while the log holds nothing but
    baseline entries (the first start of such a database): afterwards a record without an entry was made
    behind the log's back and stays unlogged, for the verifier to name. One pass; writes only when
    something is missing. Returns how many were added."""
    if _log_is_live(conn) or not unlogged_records(conn):
        return 0
    added = 0
    with dialect.of(conn).write_transaction(conn), acting_as(SYSTEM):
        if _log_is_live(conn):  # again, under the write lock (another node may have logged meanwhile)
            return 0
        for kind, record_id in unlogged_records(conn):
            state = state_of(conn, kind, record_id)
            record(conn, kind, record_id, "baseline", None, state, _unit_of(conn, kind, record_id, state))
            added += 1
    return added


# -- reading the log -------------------------------------------------------------------------------------

#: The most entries one page of the log holds.
MAX_PAGE = 500


def entry_json(row: dict[str, Any]) -> dict[str, Any]:
    """An entry as the API and the page show it: the change decoded, the actor as one object."""
    return {
        "seq": row["seq"],
        "at": row["at"],
        "actor": {"kind": row["actor_kind"], "id": row["actor_id"], "unit": row["actor_unit"]},
        "kind": row["kind"],
        "record_id": row["record_id"],
        "unit": row["unit"],
        "action": row["action"],
        "change": msgspec.json.decode(row["change"]),
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


def list_entries(
    conn: Connection,
    *,
    units: list[str] | None,
    date_from: str | None = None,
    date_to: str | None = None,
    kind: str | None = None,
    actor: str | None = None,
    cursor: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """One page of entries, newest first: {"items", "next_cursor"} (None on the last page). `units`: the
    units whose entries may be shown (None: all, the installation's own too); `date_from`/`date_to`:
    ISO times, from inclusive, to exclusive; `actor`: an actor's id, or "kind:id"; `cursor`: the
    `next_cursor` of the page before."""
    rows = audit_store.page(
        conn,
        units=units,
        date_from=date_from,
        date_to=date_to,
        kind=kind,
        actor=actor,
        before=cursor,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [entry_json(row) for row in rows], "next_cursor": str(rows[-1]["seq"]) if more else None}


def head_json(conn: Connection) -> dict[str, Any]:
    """{"seq", "hash", "at"} of the newest entry; seq 0 and the genesis hash while the log is empty."""
    found = audit_store.head(conn)
    return found if found is not None else {"seq": 0, "hash": GENESIS, "at": None}
