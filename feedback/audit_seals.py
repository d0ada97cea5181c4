"""Daily seals of the responses: once a unit's local day has closed, a "seal" entry in the audit log holds
a digest over that day's stored responses, so ten million ratings are tamper-evident without a hash per
insert (ingest does nothing more than before).

A seal of unit U, day D covers the responses of U/D that arrived (`server_time`) in [`since`, `through`):
`since` is the previous seal's `through` (empty for the first), so a response that arrives days or weeks
late (a kiosk offline, a paper form keyed later) is covered by a later seal of the same day and never
changes what an earlier seal covered. `through` stays a few minutes behind the clock, so a response
being written while the seal is made is left for the next one. The digest is SHA-256 over each covered
response's (id, SHA-256 of its content columns, flags), in id order. A later change to a sealed response
goes through a logged step ("response" entries: an upheld appeal, an erasure), which the verifier
(`feedback.audit_verify`) replays backwards to the state the seal saw; a retention run that deletes a
whole unit-day logs a "purge" of it (`audit.day_purged`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from feedback import audit
from feedback.jobs import Job, JobContext
from feedback.store import Connection
from feedback.store import audit as audit_store

#: How far `through` stays behind the clock: a response is stamped (`server_time`) before it waits for the
#: writer, so one stamped just before a seal may commit just after it; it is sealed next time instead.
SEAL_MARGIN = timedelta(minutes=10)
JOB_NAME = "audit.seal"


def seal_digest(items: Iterable[tuple[str, str, str]]) -> str:
    """SHA-256 over (response id, content digest, flags) of each response, in the order given (id order)."""
    hasher = hashlib.sha256()
    for item in items:
        hasher.update(audit.canonical(list(item)))
        hasher.update(b"\n")
    return hasher.hexdigest()


def rows_digest(rows: list[dict[str, Any]]) -> str:
    # Sorted here, by code point: a PostgreSQL collation may order the ids otherwise.
    ordered = sorted(rows, key=lambda row: row["id"])
    return seal_digest((row["id"], audit.response_digest(row), row["flags"]) for row in ordered)


def _after(entry: dict[str, Any]) -> dict[str, Any]:
    return msgspec.json.decode(entry["change"])["after"] or {}


def day_of(entry: dict[str, Any]) -> str:
    """The day of a seal entry's record id ("UNIT/YYYY-MM-DD")."""
    return entry["record_id"].rpartition("/")[2]


def sealed_days(seals: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A unit's seal and purge entries by day, oldest first."""
    days: dict[str, list[dict[str, Any]]] = {}
    for entry in seals:
        days.setdefault(day_of(entry), []).append(entry)
    return days


def next_since(entries: list[dict[str, Any]]) -> str:
    """Where the next seal of a day starts: the newest seal's or purge's `through` ("" for none)."""
    return str(_after(entries[-1])["through"]) if entries else ""


def live_sealed(entries: list[dict[str, Any]]) -> int:
    """How many responses of the day the seals since its last purge cover."""
    count = 0
    for entry in entries:
        count = 0 if entry["action"] == "purge" else count + int(_after(entry)["count"])
    return count


def days_to_seal(conn: Connection, unit: str, closed_before: str) -> list[str]:
    """The closed days of a unit whose stored responses no longer number what its seals since the last
    purge cover: a response arrived (late, or since the last run), or one was deleted. Read from the
    (unit, day) index alone; `seal_day` then seals whatever arrived since the day's last seal, if anything."""
    counts = audit_store.day_counts(conn, unit, closed_before)
    if not counts:
        return []
    by_day = sealed_days(audit_store.entries_of_unit(conn, unit, "seal"))
    return sorted(day for day, stored in counts.items() if stored != live_sealed(by_day.get(day, [])))


def seal_day(conn: Connection, unit: str, day: str, through: str) -> int | None:
    """In a write transaction: seal what arrived for U/D since its last seal, up to `through` (the rows
    are read in the same transaction, so nothing changes between reading and sealing). Returns the
    entry's seq, or None when nothing new is there."""
    record_id = f"{unit}/{day}"
    since = next_since(audit_store.seal_entries(conn, record_id))
    if since >= through:
        return None
    # Compared here, as the verifier compares them (a PostgreSQL collation may order text otherwise).
    rows = [row for row in audit_store.day_rows(conn, unit, day) if since <= row["server_time"] < through]
    if not rows:
        return None
    after = {"count": len(rows), "digest": rows_digest(rows), "since": since, "through": through}
    return audit.record(conn, "seal", record_id, "seal", None, after, unit)


def through_for(now: datetime) -> str:
    """The end of what a run seals: `SEAL_MARGIN` before the run's time, and never after the clock (a
    run with `--now` in the future seals what has arrived, not what will)."""
    return min(now - SEAL_MARGIN, datetime.now(UTC)).astimezone(UTC).isoformat()


async def run_seals(context: JobContext) -> dict[str, int]:
    """Seal every closed unit-day that has unsealed responses. One write per unit-day, so the writer
    serves other requests between them even when a large history is sealed for the first time."""
    store = context.store
    through = through_for(context.now)
    units = await store.read(audit_store.unit_zones)
    sealed = 0
    for unit in units:
        today = context.now.astimezone(ZoneInfo(unit["tz"])).date().isoformat()
        days = await store.read(lambda conn, code=unit["code"], before=today: days_to_seal(conn, code, before))
        for day in days:
            seq = await store.write(lambda conn, code=unit["code"], d=day: seal_day(conn, code, d, through))
            sealed += seq is not None
    return {"sealed": sealed}


def jobs() -> list[Job]:
    return [Job(JOB_NAME, every=86400, run=run_seals)]
