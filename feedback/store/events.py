"""The event log and the outbox that mail and webhooks deliver from.

`event_log`: every event, written in the transaction that caused it, once per id (a replay inserts
nothing), dispatched to `track_event` at least once. A pending event carries a dispatcher's lease
(`claimed_by`, `claimed_until`; '' when nobody holds it). `outbox`: one row per delivery, unique per
`dedupe_key` (the event id and the target), claimed with a lease while it is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar

# -- the event log ---------------------------------------------------------------------------------

INSERT_EVENT = (
    "INSERT INTO event_log (id, type, aggregate, created_at, data, claimed_by, claimed_until)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
EVENT_COLUMNS = "seq, id, type, aggregate, created_at, data"


def insert_event(conn: Connection, row: tuple[str, str, str, str, str | None, str, str]) -> int | None:
    """Insert one (id, type, aggregate, created_at, data, claimed_by, claimed_until) row; its seq, or
    None when the id is in the log already."""
    found = first_row(conn, INSERT_EVENT + " RETURNING seq", row)
    return found["seq"] if found is not None else None


def add_event(conn: Connection, row: tuple[str, str, str, str, str | None, str, str]) -> None:
    """`insert_event` for a caller that does not need the seq: one statement, nothing read back (a bulk
    loader writing outside a server, such as the demo, writes one per response)."""
    conn.execute(INSERT_EVENT, row)


INSERT_DISPATCHED_EVENT = (
    "INSERT INTO event_log (id, type, aggregate, created_at, data, claimed_by, claimed_until, dispatched_at)"
    " VALUES (?, ?, ?, ?, ?, '', '', ?) ON CONFLICT (id) DO NOTHING"
)


def insert_dispatched_events(conn: Connection, rows: Sequence[tuple[str, str, str, str, str | None, str]]) -> None:
    """Insert (id, type, aggregate, created_at, data, dispatched_at) rows already marked dispatched (events
    no plugin wants when they are written), all in one call; an id already in the log is
    left alone."""
    if rows:
        conn.executemany(INSERT_DISPATCHED_EVENT, rows)  # one prepared statement, pipelined on PostgreSQL


def insert_events(
    conn: Connection, rows: Sequence[tuple[str, str, str, str, str | None, str, str]]
) -> list[tuple[str, int]]:
    """Insert (id, type, aggregate, created_at, data, claimed_by, claimed_until) rows in one statement;
    returns (id, seq) of the rows actually inserted, in order (an id already in the log is left alone)."""
    if not rows:
        return []
    if len(rows) == 1:
        seq = insert_event(conn, rows[0])
        return [(rows[0][0], seq)] if seq is not None else []
    # A few statements for the lot; RETURNING gives the seq of each row inserted (none for an id already
    # there). Chunks keep each statement under every backend's limit on parameters.
    inserted: dict[str, int] = {}
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        sql = INSERT_EVENT.replace("VALUES (?, ?, ?, ?, ?, ?, ?)", f"VALUES {values}") + " RETURNING id, seq"
        inserted.update(conn.execute(sql, [value for row in chunk for value in row]).fetchall())
    return [(row[0], inserted[row[0]]) for row in rows if row[0] in inserted]


def has_pending_of_others(conn: Connection, aggregate: str, holder: str) -> bool:
    """Whether an event of `aggregate` waits for dispatch that `holder` does not hold."""
    return (
        scalar(
            conn,
            "SELECT 1 FROM event_log WHERE aggregate = ? AND dispatched_at IS NULL AND claimed_by != ? LIMIT 1",
            (aggregate, holder),
        )
        is not None
    )


CLAIMABLE = "dispatched_at IS NULL AND claimed_until <= :now"


def has_claimable(conn: Connection, now: str) -> bool:
    """Whether any pending event is free to claim (nobody holds it, or its lease ended)."""
    return scalar(conn, f"SELECT 1 FROM event_log WHERE {CLAIMABLE} LIMIT 1", {"now": now}) is not None


def pending_count(conn: Connection) -> int:
    """How many events wait for dispatch (read from the partial index of pending events)."""
    return scalar(conn, "SELECT count(*) FROM event_log WHERE dispatched_at IS NULL") or 0


def oldest_pending(conn: Connection) -> str | None:
    """When the oldest event not yet dispatched was written (its `created_at`); None when none waits.
    Reads the pending events only (the partial index holds just those)."""
    return scalar(conn, "SELECT min(created_at) FROM event_log WHERE dispatched_at IS NULL")


def claim_events(conn: Connection, holder: str, now: str, until: str, limit: int) -> list[dict[str, Any]]:
    """Lease up to `limit` pending events to `holder`, oldest first, in one atomic statement. An event
    whose aggregate has an earlier pending event leased to someone is left for later, so each
    aggregate's events reach `track_event` in order. Returns them in log order."""
    found = all_rows(
        conn,
        f"""UPDATE event_log SET claimed_by = :holder, claimed_until = :until
            WHERE seq IN (
                SELECT e.seq FROM event_log e
                WHERE e.{CLAIMABLE}
                  AND NOT EXISTS (SELECT 1 FROM event_log p WHERE p.aggregate = e.aggregate AND p.seq < e.seq
                                  AND p.dispatched_at IS NULL AND p.claimed_until > :now)
                ORDER BY e.seq LIMIT :limit)
            RETURNING {EVENT_COLUMNS}""",
        {"holder": holder, "now": now, "until": until, "limit": limit},
    )
    return sorted(found, key=lambda row: row["seq"])


def mark_dispatched(conn: Connection, seqs: Sequence[int], at: str) -> None:
    """Record that these events were handed to `track_event` (their leases end with it)."""
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        conn.execute(
            "UPDATE event_log SET dispatched_at = ?, claimed_by = '', claimed_until = ''"
            f" WHERE seq IN ({marks(chunk)})",
            (at, *chunk),
        )


def mark_all_dispatched(conn: Connection, at: str) -> int:
    """Take every pending event as dispatched (history loaded by `feedback demo` is not news)."""
    return conn.execute(
        "UPDATE event_log SET dispatched_at = ?, claimed_by = '', claimed_until = '' WHERE dispatched_at IS NULL",
        (at,),
    ).rowcount


def release_leases(conn: Connection) -> tuple[int, int]:
    """End every lease on pending events and outbox rows (their holders are known to be gone: no
    server or command has the database open). Returns (events, outbox rows) released."""
    events = conn.execute(
        "UPDATE event_log SET claimed_by = '', claimed_until = '' WHERE dispatched_at IS NULL AND claimed_until != ''"
    ).rowcount
    rows = conn.execute(
        f"UPDATE outbox SET claimed_until = NULL WHERE {PENDING} AND claimed_until IS NOT NULL"
    ).rowcount
    return events, rows


def get_event(conn: Connection, event_id: str) -> dict[str, Any] | None:
    return first_row(
        conn, f"SELECT {EVENT_COLUMNS}, claimed_until, dispatched_at FROM event_log WHERE id = ?", (event_id,)
    )


def stored_responses(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The `responses` rows of these ids (what a compact `response.stored` event is rebuilt from)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in all_rows(conn, f"SELECT * FROM responses WHERE id IN ({marks(chunk)})", chunk):
            found[row["id"]] = row
    return found


def prunable_events(conn: Connection, after_seq: int, before: str, limit: int) -> tuple[list[int], int | None]:
    """(seqs of the dispatched events older than `before` among the next `limit` after `after_seq`,
    the last seq looked at, or None when the scan should stop). Events are dispatched in about log
    order, so the first window with nothing old enough ends the scan."""
    window = conn.execute(
        "SELECT seq, dispatched_at FROM event_log WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
    ).fetchall()
    old = [seq for seq, at in window if at is not None and at < before]
    return old, window[-1][0] if old and len(window) == limit else None


def delete_events(conn: Connection, seqs: Sequence[int], before: str) -> int:
    """Delete these events if they are still dispatched and old (a pending event is never deleted)."""
    if not seqs:
        return 0
    return conn.execute(
        f"DELETE FROM event_log WHERE seq IN ({marks(seqs)}) AND dispatched_at IS NOT NULL AND dispatched_at < ?",
        (*seqs, before),
    ).rowcount


# -- the outbox ------------------------------------------------------------------------------------

PENDING = "delivered_at IS NULL AND failed_at IS NULL"
PRUNABLE = "(delivered_at < :delivered_before OR failed_at < :failed_before)"


def key_digest(dedupe_key: str) -> bytes:
    """What `outbox_pruned` keeps of a pruned row's key."""
    return hashlib.sha256(dedupe_key.encode()).digest()[:16]


def enqueue(
    conn: Connection,
    *,
    channel: str,
    dedupe_key: str,
    target: str,
    payload: str,
    at: str,
    event_id: str | None = None,
    event_type: str | None = None,
) -> bool:
    """Queue one delivery due at `at`; False when `dedupe_key` was queued before (nothing is queued
    twice: the key is unique, and a pruned row's key is remembered in `outbox_pruned`)."""
    return (
        conn.execute(
            "INSERT INTO outbox (channel, dedupe_key, event_id, event_type, target, payload,"
            " next_attempt_at, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM outbox_pruned WHERE key = ?) ON CONFLICT (dedupe_key) DO NOTHING",
            (channel, dedupe_key, event_id, event_type, target, payload, at, at, key_digest(dedupe_key)),
        ).rowcount
        == 1
    )


def has_key(conn: Connection, dedupe_key: str) -> bool:
    return scalar(conn, "SELECT 1 FROM outbox WHERE dedupe_key = ?", (dedupe_key,)) is not None


def has_due(conn: Connection, channel: str, at: str) -> bool:
    return (
        scalar(
            conn,
            f"SELECT 1 FROM outbox WHERE channel = ? AND {PENDING} AND next_attempt_at <= ?"
            " AND (claimed_until IS NULL OR claimed_until <= ?) LIMIT 1",
            (channel, at, at),
        )
        is not None
    )


def claim(conn: Connection, channel: str, at: str, until: str, limit: int) -> list[dict[str, Any]]:
    """Lease up to `limit` due rows of a channel until `until`; one statement, so two senders never
    take the same row. Returns them oldest first."""
    found = all_rows(
        conn,
        f"""UPDATE outbox SET claimed_until = ?
            WHERE id IN (SELECT id FROM outbox WHERE channel = ? AND {PENDING} AND next_attempt_at <= ?
                         AND (claimed_until IS NULL OR claimed_until <= ?)
                         ORDER BY next_attempt_at, id LIMIT ?)
            RETURNING *""",
        (until, channel, at, at, limit),
    )
    return sorted(found, key=lambda row: row["id"])


def record_delivered(conn: Connection, items: Iterable[tuple[int, str]]) -> None:
    """(id, when) of rows sent: delivered, one more attempt, lease released."""
    conn.executemany(
        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, claimed_until = NULL WHERE id = ?",
        [(at, row_id) for row_id, at in items],
    )


def record_failed(conn: Connection, items: Iterable[tuple[int, int, str | None, str | None, str]]) -> None:
    """(id, attempts so far, next attempt or None, given up at or None, error) of rows that failed."""
    conn.executemany(
        "UPDATE outbox SET attempts = ?, next_attempt_at = coalesce(?, next_attempt_at), failed_at = ?,"
        " claimed_until = NULL, last_error = ? WHERE id = ?",
        [(attempts, next_at, failed_at, error[:1000], row_id) for row_id, attempts, next_at, failed_at, error in items],
    )


def attempts_of(conn: Connection, row_id: int) -> int | None:
    return scalar(conn, "SELECT attempts FROM outbox WHERE id = ?", (row_id,))


def deliveries(conn: Connection, channel: str, target: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` outbox rows of a channel addressed to `target`, newest first (no payload)."""
    return all_rows(
        conn,
        "SELECT id, event_id, event_type, attempts, last_error, created_at, next_attempt_at, delivered_at,"
        " failed_at FROM outbox WHERE channel = ? AND target = ? ORDER BY id DESC LIMIT ?",
        (channel, target, limit),
    )


def forget_target(conn: Connection, row_id: int) -> None:
    """Drop a delivered row's address and payload (a call-back whose contact was purged)."""
    conn.execute("UPDATE outbox SET target = '(purged)', payload = '{}' WHERE id = ?", (row_id,))


def withdraw(conn: Connection, dedupe_keys: Sequence[str]) -> int:
    """Take back deliveries whose recipient may no longer be written to (a contact erased): rows not yet
    delivered are deleted, and every key given is kept as pruned ones are, whether a row was there or
    not (so nothing queues it later, not even a sender that read the contact just before), and rows
    already sent or given up lose their address and payload. Returns how many were still to be sent."""
    if not dedupe_keys:
        return 0
    where = f"dedupe_key IN ({', '.join('?' for _ in dedupe_keys)})"
    keys = conn.execute(
        f"DELETE FROM outbox WHERE {where} AND delivered_at IS NULL AND failed_at IS NULL RETURNING dedupe_key",
        tuple(dedupe_keys),
    ).fetchall()
    conn.executemany(
        "INSERT INTO outbox_pruned (key) VALUES (?) ON CONFLICT (key) DO NOTHING",
        [(key_digest(k),) for k in dict.fromkeys(dedupe_keys)],
    )
    conn.execute(
        f"UPDATE outbox SET target = '(purged)', payload = '{{}}' WHERE {where} AND target != '(purged)'",
        tuple(dedupe_keys),
    )
    return len(keys)


def withdraw_events(conn: Connection, event_ids: Sequence[str]) -> int:
    """Take back every delivery of these events, whatever the channel (the personal data they carry was
    erased): rows not yet sent are deleted, their keys kept as pruned ones are, and rows already sent or
    given up lose their payload. Returns how many were still to be sent."""
    if not event_ids:
        return 0
    where = f"event_id IN ({marks(event_ids)})"
    keys = conn.execute(
        f"DELETE FROM outbox WHERE {where} AND {PENDING} RETURNING dedupe_key", tuple(event_ids)
    ).fetchall()
    conn.executemany(
        "INSERT INTO outbox_pruned (key) VALUES (?) ON CONFLICT (key) DO NOTHING", [(key_digest(k),) for (k,) in keys]
    )
    conn.execute(f"UPDATE outbox SET payload = '{{}}' WHERE {where} AND payload != '{{}}'", tuple(event_ids))
    return len(keys)


def forget_stale_targets(conn: Connection, channel: str, key_prefix: str, created_before: str) -> None:
    """Drop the addresses of given-up or old rows whose key starts with `key_prefix`."""
    conn.execute(
        "UPDATE outbox SET target = '(purged)', payload = '{}' WHERE channel = ? AND dedupe_key LIKE ?"
        " AND target != '(purged)' AND (failed_at IS NOT NULL OR created_at < ?)",
        (channel, f"{key_prefix}%", created_before),
    )


def next_prunable(conn: Connection, after_id: int, cutoffs: dict[str, str], limit: int) -> tuple[int, int, int] | None:
    """(first id, last id, rows) of the next `limit` prunable outbox rows after `after_id`, or None."""
    found = conn.execute(
        f"SELECT id FROM outbox WHERE id > :after AND {PRUNABLE} ORDER BY id LIMIT :limit",
        {"after": after_id, "limit": limit, **cutoffs},
    ).fetchall()
    return (found[0][0], found[-1][0], len(found)) if found else None


def prune_range(conn: Connection, first_id: int, last_id: int, cutoffs: dict[str, str]) -> int:
    """Delete the prunable rows with ids first_id..last_id, keeping their keys; returns how many went.
    The condition is checked again here: a pending row is never deleted, whatever the range holds."""
    keys = conn.execute(
        f"DELETE FROM outbox WHERE id BETWEEN :first AND :last AND {PRUNABLE} RETURNING dedupe_key",
        {"first": first_id, "last": last_id, **cutoffs},
    ).fetchall()
    conn.executemany(
        "INSERT INTO outbox_pruned (key) VALUES (?) ON CONFLICT (key) DO NOTHING", [(key_digest(k),) for (k,) in keys]
    )
    return len(keys)


def outbox_figures(conn: Connection) -> list[dict[str, Any]]:
    """Per channel: `pending` deliveries (not delivered, not given up), the `oldest_pending` one's
    `created_at`, how many of those are `retrying` after a failed attempt, and how many were `given_up`
    (kept until pruned). One pass over the outbox."""
    return all_rows(
        conn,
        f"""SELECT channel,
                coalesce(sum(CASE WHEN {PENDING} THEN 1 ELSE 0 END), 0) AS pending,
                min(CASE WHEN {PENDING} THEN created_at END) AS oldest_pending,
                coalesce(sum(CASE WHEN {PENDING} AND attempts > 0 THEN 1 ELSE 0 END), 0) AS retrying,
                coalesce(sum(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS given_up
            FROM outbox GROUP BY channel ORDER BY channel""",
    )
