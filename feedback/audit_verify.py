"""`feedback audit verify`: recompute the audit log's chain, every seal of the responses, and compare each
tracked record's stored state with its last logged state. Reads only, in one snapshot of the database;
streams the log and reads the responses one unit-day at a time, so ten million of them fit.

The first thing that does not match is reported: an entry (its seq), a day (unit/day) or a record
(kind/id). A record present but never logged counts, and so does one logged but gone without a "delete"
entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from feedback import audit, audit_seals
from feedback.store import Connection, dialect
from feedback.store import audit as audit_store


class Mismatch(Exception):
    """What does not match: `what` names the entry, day or record, `detail` says how."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail


@dataclass
class Report:
    entries: int = 0
    head: dict[str, Any] | None = None
    seals: int = 0
    days: int = 0
    records: int = 0
    latest: dict[tuple[str, str], tuple[int, str, Any]] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        head = f"head seq {self.head['seq']} hash {self.head['hash']}" if self.head else "the log is empty"
        return (
            f"audit log verified: {self.entries} entries ({head}), {self.seals} seals over {self.days} unit-days,"
            f" {self.records} records as last logged"
        )


def verify(conn: Connection, anchors: dict[int, str] | None = None) -> Report:
    """Check everything (raises Mismatch at the first difference); returns what was checked. `anchors`:
    {seq: hash} kept elsewhere (a printed review pack, a digest mail), which the chain must still hold."""
    if not audit_store.has_audit_log(conn):
        raise Mismatch("audit_log", "the database has no audit log (run any feedback command on it once)")
    report = Report()
    with _snapshot(conn):
        check_chain(conn, report, anchors or {})
        check_seals(conn, report)
        check_records(conn, report)
    return report


@contextmanager
def _snapshot(conn: Connection) -> Iterator[None]:
    """One read transaction for the whole check, so a server writing meanwhile cannot make it see half
    a change."""
    dialect.of(conn).begin_snapshot(conn)
    try:
        yield
    finally:
        conn.rollback()


# -- the chain ----------------------------------------------------------------------------------------


def check_chain(conn: Connection, report: Report, anchors: dict[int, str]) -> None:
    """Each entry's hash over its content, each prev_hash the previous entry's hash, seq without gaps, and
    the anchors' entries with the hashes kept elsewhere."""
    previous = audit.GENESIS
    expected_seq = 1
    tracked = set(audit.TRACKED_KINDS)
    for entry in audit_store.stream(conn):
        where = f"entry seq {entry['seq']}"
        if entry["seq"] != expected_seq:
            raise Mismatch(f"entry seq {expected_seq}", f"missing (the next entry is seq {entry['seq']})")
        if entry["prev_hash"] != previous:
            raise Mismatch(where, "prev_hash is not the previous entry's hash")
        if audit.entry_hash(entry) != entry["hash"]:
            raise Mismatch(where, "its content does not match its hash")
        if entry["seq"] in anchors and anchors[entry["seq"]] != entry["hash"]:
            raise Mismatch(where, "its hash is not the one kept elsewhere (--anchor)")
        try:
            change = msgspec.json.decode(entry["change"])
        except msgspec.DecodeError:
            raise Mismatch(where, "its change is not JSON") from None
        if entry["kind"] in tracked:
            key = (audit.record_kind(entry["kind"]), entry["record_id"])
            report.latest[key] = (entry["seq"], entry["action"], change.get("after"))
        previous = entry["hash"]
        expected_seq += 1
        report.entries += 1
        report.head = {"seq": entry["seq"], "hash": entry["hash"], "at": entry["at"]}
    beyond = sorted(seq for seq in anchors if seq >= expected_seq)
    if beyond:
        raise Mismatch(f"entry seq {beyond[0]}", f"missing: the log ends at seq {expected_seq - 1} (--anchor)")


# -- the seals ----------------------------------------------------------------------------------------------


def check_seals(conn: Connection, report: Report) -> None:
    for unit in audit_store.sealed_units(conn):
        check_unit(conn, unit, report)


def _is_deleted(state: dict[str, Any] | None) -> bool:
    return not state or not state.get("digest")


def check_unit(conn: Connection, unit: str, report: Report) -> None:
    """Every sealed day of one unit, against the rows stored now and the logged changes since."""
    days = audit_seals.sealed_days(audit_store.entries_of_unit(conn, unit, "seal"))
    changes: dict[str, list[tuple[int, dict | None, dict | None]]] = {}
    for entry in audit_store.entries_of_unit(conn, unit, "response"):
        change = msgspec.json.decode(entry["change"])
        changes.setdefault(entry["record_id"], []).append((entry["seq"], change["before"], change["after"]))
    changed_by_day: dict[str, set[str]] = {}
    for response_id, steps in changes.items():
        for _seq, before, after in steps:
            for state in (before, after):
                if state and state.get("day"):
                    changed_by_day.setdefault(state["day"], set()).add(response_id)
    for day, entries in sorted(days.items()):
        check_day(conn, unit, day, entries, changes, changed_by_day.get(day, set()))
        report.days += 1
        report.seals += sum(1 for entry in entries if entry["action"] == "seal")


def check_day(
    conn: Connection,
    unit: str,
    day: str,
    entries: list[dict[str, Any]],
    changes: dict[str, list[tuple[int, dict | None, dict | None]]],
    changed: set[str],
) -> None:
    where = f"day {unit}/{day}"
    # Each response's state now: (server_time, content digest, flags); None when deleted.
    now: dict[str, tuple[str, str, str] | None] = {
        row["id"]: (row["server_time"], audit.response_digest(row), row["flags"])
        for row in audit_store.day_rows(conn, unit, day)
    }
    purged_at = max((entry["seq"] for entry in entries if entry["action"] == "purge"), default=0)
    for response_id in changed:
        seq, _before, last = changes[response_id][-1]
        # A purge of the day after its last change deleted it with the rest of the day.
        # A change may move a response to another day (a keyed form's date corrected): here it is gone.
        gone = _is_deleted(last) or seq < purged_at or last.get("day", day) != day
        logged = None if gone else (last["server_time"], last["digest"], last["flags"])
        if now.get(response_id) != logged:
            raise Mismatch(where, f"response {response_id} differs from its last logged change")
    for entry in entries:
        if entry["action"] != "seal":
            continue
        after = msgspec.json.decode(entry["change"])["after"]
        members = _as_sealed(now, changes, changed, entry["seq"], after["since"], after["through"], day)
        if entry["seq"] < purged_at:
            if any(now.get(response_id) is not None for response_id, _d, _f in members):
                raise Mismatch(
                    where, f"responses the purge of the day removed are there again (seal seq {entry['seq']})"
                )
            continue
        if len(members) != after["count"] or audit_seals.seal_digest(members) != after["digest"]:
            raise Mismatch(where, f"the stored responses do not match seal seq {entry['seq']}")


def _as_sealed(
    now: dict[str, tuple[str, str, str] | None],
    changes: dict[str, list[tuple[int, dict | None, dict | None]]],
    changed: set[str],
    seal_seq: int,
    since: str,
    through: str,
    day: str,
) -> list[tuple[str, str, str]]:
    """The responses as the seal saw them: the stored state, or, for one changed through a logged step
    after the seal, the state before the first such step (if it was of this day then); only those that
    arrived in [since, through)."""
    members = []
    for response_id in sorted(set(now) | changed):
        state = now.get(response_id)
        if response_id in changed:
            later = [before for seq, before, _after in changes[response_id] if seq > seal_seq]
            if later:
                before = later[0]
                elsewhere = _is_deleted(before) or before.get("day", day) != day
                state = None if elsewhere else (before["server_time"], before["digest"], before["flags"])
        if state is not None and since <= state[0] < through:
            members.append((response_id, state[1], state[2]))
    return members


# -- the records ----------------------------------------------------------------------------------------------


def check_records(conn: Connection, report: Report) -> None:
    """Each tracked record's stored state is its last logged after-state; every stored record is logged,
    and every logged one that is gone was logged as deleted."""
    for kind in audit.TRACKED_KINDS:
        if kind in audit.SAME_RECORD:
            continue
        if kind not in audit_store.RECORD_TABLES and not audit_store.has_table(conn, kind):
            continue
        stored = audit_store.record_ids(conn, kind)
        logged = {record_id for (k, record_id) in report.latest if k == kind}
        for record_id in sorted(set(stored) | logged):
            where = f"record {kind}/{record_id}"
            found = report.latest.get((kind, record_id))
            state = audit.state_of(conn, kind, record_id)
            if found is None:
                raise Mismatch(where, "stored but never logged")
            seq, _action, after = found
            if state is None and after is not None:
                raise Mismatch(where, f"gone without a logged deletion (last logged: seq {seq})")
            if state != after:
                raise Mismatch(where, f"the stored state differs from the last logged state (seq {seq})")
            report.records += 1


def verify_database(database: str, anchors: dict[int, str] | None = None) -> Report:
    """`verify` over an SQLite file (opened read-only) or a `postgresql://` database."""
    from feedback.db import connect_reader
    from feedback.store.dialect import is_postgres_url

    if is_postgres_url(database):
        from feedback.store import pg

        conn: Any = pg.Connection.open(database, application_name="feedback-audit-verify")
    else:
        conn = connect_reader(database)
    try:
        return verify(conn, anchors)
    finally:
        conn.close()
