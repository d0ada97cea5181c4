"""The audit log's SQL: appending an entry, reading the head, paging and streaming entries, and the stored
state of a tracked record (`state_row`), which the domain module turns into what is logged and verified.

Entries are only ever inserted: both backends refuse UPDATE and DELETE on `audit_log` with a trigger
(`feedback.store.schema.REFUSED_CHANGES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from feedback.store import Connection, all_rows, dialect, first_row, scalar

#: The columns of an entry, in table order (`hash` last: it covers all the others).
COLUMNS = (
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "actor_unit",
    "kind",
    "record_id",
    "unit",
    "action",
    "change",
    "prev_hash",
    "hash",
)
_SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM audit_log"

#: Each tracked kind's table and key column: what `state_row` reads.
RECORD_TABLES: dict[str, tuple[str, str]] = {
    "unit": ("units", "code"),
    "service": ("services", "code"),
    "survey": ("surveys", "slug"),
    "touchpoint": ("touchpoints", "token"),
    "objective": ("objectives", "id"),
    "user": ("users", "name"),
    "token": ("api_tokens", "id"),
    "kiosk": ("kiosks", "id"),
}


def hold_write_lock(conn: Connection) -> None:
    """Make sure the caller's write transaction holds the write lock before the newest hash is read, so
    no other writer appends between that read and this insert. The server's writer and `with conn:` on
    PostgreSQL already hold it; the CLI's SQLite connection opens its transaction at the first write, so
    it is opened here (its `with conn:` still commits it, with the change the entry records)."""
    if conn.in_transaction:
        return
    if dialect.backend(conn) == "sqlite" and conn.isolation_level is not None:
        conn.execute("BEGIN IMMEDIATE")
        return
    raise RuntimeError("an audit entry is appended inside the write transaction of the change it records")


def head(conn: Connection) -> dict[str, Any] | None:
    """The newest entry's seq, hash and time, or None for an empty log."""
    return first_row(conn, "SELECT seq, hash, at FROM audit_log ORDER BY seq DESC LIMIT 1")


def insert(conn: Connection, entry: dict[str, Any]) -> None:
    """Append one entry (every column given, `seq` and `hash` included)."""
    conn.execute(_INSERT, tuple(entry[column] for column in COLUMNS))


_INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


def insert_many(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Append entries in order, in one statement's round trip."""
    if entries:
        conn.executemany(_INSERT, [tuple(entry[column] for column in COLUMNS) for entry in entries])


def stream(conn: Connection, after: int = 0, chunk: int = 5000) -> Iterator[dict[str, Any]]:
    """Every entry after seq `after`, in order, read in chunks (never the whole log at once)."""
    while True:
        rows = all_rows(conn, f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (after, chunk))
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1]["seq"]


def page(
    conn: Connection,
    *,
    units: list[str] | None,
    date_from: str | None,
    date_to: str | None,
    kind: str | None,
    actor: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entries newest first, filtered: `units` (None: any; entries without a unit are the
    installation's and shown only then), `at` within [date_from, date_to) as ISO text, kind, actor (the
    actor's id, or "kind:id"), and seq below `before` (the cursor)."""
    where, params = [], []
    if units is not None:
        if not units:
            return []
        where.append(f"unit IN ({', '.join('?' for _ in units)})")
        params.extend(units)
    if date_from:
        where.append("at >= ?")
        params.append(date_from)
    if date_to:
        where.append("at < ?")
        params.append(date_to)
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if actor:
        actor_kind, sep, actor_id = actor.partition(":")
        if sep:
            where.append("actor_kind = ? AND actor_id = ?")
            params.extend([actor_kind, actor_id])
        else:
            where.append("actor_id = ?")
            params.append(actor)
    if before is not None:
        where.append("seq < ?")
        params.append(before)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return all_rows(conn, f"{_SELECT}{clause} ORDER BY seq DESC LIMIT ?", (*params, limit))


def has_entries_besides(conn: Connection, action: str) -> bool:
    """Whether the log holds an entry whose action is not `action`."""
    return scalar(conn, "SELECT 1 FROM audit_log WHERE action <> ? LIMIT 1", (action,)) is not None


def logged_records(conn: Connection, kind: str) -> set[str]:
    """The record ids of `kind` that have at least one entry."""
    return {
        row["record_id"] for row in all_rows(conn, "SELECT DISTINCT record_id FROM audit_log WHERE kind = ?", (kind,))
    }


def record_ids(conn: Connection, kind: str) -> list[str]:
    """Every stored record id of a tracked kind, as text (the log keeps ids as text)."""
    table, key = RECORD_TABLES[kind] if kind in RECORD_TABLES else _OTHER_TABLES[kind]
    return [str(row["k"]) for row in all_rows(conn, f'SELECT "{key}" AS k FROM {table} ORDER BY "{key}"')]


#: Kinds whose key is an integer (the log keeps every id as text).
_INTEGER_KEYS = frozenset({"objective", "webhook"})


def state_row(conn: Connection, kind: str, record_id: str) -> dict[str, Any] | None:
    """The stored row of a tracked record (every column), or None when there is none."""
    table, key = RECORD_TABLES[kind] if kind in RECORD_TABLES else _OTHER_TABLES[kind]
    value: Any = int(record_id) if kind in _INTEGER_KEYS and str(record_id).isdecimal() else record_id
    row = first_row(conn, f'SELECT * FROM {table} WHERE "{key}" = ?', (value,))
    if row is None:
        return None
    if kind == "objective":
        row["versions"] = all_rows(
            conn, "SELECT * FROM objective_versions WHERE objective = ? ORDER BY version", (value,)
        )
    elif kind == "survey":
        row["versions"] = [
            r["version"]
            for r in all_rows(conn, "SELECT version FROM survey_versions WHERE slug = ? ORDER BY version", (record_id,))
        ]
    return row


#: Tracked kinds whose table may belong to a plugin or a later part of the schema: looked up only when
#: the table exists (`has_table`).
_OTHER_TABLES: dict[str, tuple[str, str]] = {
    "webhook": ("webhooks", "id"),
    "unit_settings": ("unit_settings", "unit"),
}


def has_table(conn: Connection, kind: str) -> bool:
    """Whether the table of a tracked kind exists in this database."""
    table = (RECORD_TABLES.get(kind) or _OTHER_TABLES[kind])[0]
    return bool(dialect.of(conn).table_columns(conn, table))


def response_row(conn: Connection, response_id: str) -> dict[str, Any] | None:
    """A stored response's whole row, or None."""
    return first_row(conn, "SELECT * FROM responses WHERE id = ?", (response_id,))


def touchpoint_unit(conn: Connection, token: str) -> str | None:
    return scalar(conn, "SELECT unit FROM touchpoints WHERE token = ?", (token,))


# -- seals and verification ----------------------------------------------------------------------------


def unit_zones(conn: Connection) -> list[dict[str, Any]]:
    """Every unit's code and time zone (which decides when its days close)."""
    return all_rows(conn, "SELECT code, tz FROM units ORDER BY code")


def day_counts(conn: Connection, unit: str, before_day: str) -> dict[str, int]:
    """{day: responses stored} for a unit's days before `before_day`: read from the (unit, day) index
    alone, so this costs ingest nothing and reads no row."""
    found = all_rows(
        conn,
        "SELECT day, count(*) AS n FROM responses WHERE unit = ? AND day < ? GROUP BY day",
        (unit, before_day),
    )
    return {row["day"]: int(row["n"]) for row in found}


def entries_of_unit(conn: Connection, unit: str, kind: str) -> list[dict[str, Any]]:
    """A unit's entries of one kind (seals, response changes), oldest first (the (unit, kind, seq) index)."""
    return all_rows(conn, f"{_SELECT} WHERE unit = ? AND kind = ? ORDER BY seq", (unit, kind))


def sealed_units(conn: Connection) -> list[str]:
    """The units that have at least one seal or response change."""
    found = all_rows(
        conn, "SELECT DISTINCT unit FROM audit_log WHERE kind IN ('seal', 'response') AND unit IS NOT NULL"
    )
    return sorted(row["unit"] for row in found)


def day_rows(conn: Connection, unit: str, day: str) -> list[dict[str, Any]]:
    """A unit-day's stored responses (whole rows), one day at a time through the (unit, day) index."""
    return all_rows(conn, "SELECT * FROM responses WHERE unit = ? AND day = ?", (unit, day))


def seal_entries(conn: Connection, record_id: str) -> list[dict[str, Any]]:
    """The seal and purge entries of one unit-day ("UNIT/YYYY-MM-DD"), oldest first."""
    return all_rows(conn, f"{_SELECT} WHERE kind = 'seal' AND record_id = ? ORDER BY seq", (record_id,))


def has_audit_log(conn: Connection) -> bool:
    return bool(dialect.of(conn).table_columns(conn, "audit_log"))
