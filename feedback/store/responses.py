"""Responses and the rollups kept beside them: stored answers, contacts, daily and indicator rollups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar, where_equal
from feedback.store.errors import GuessedWrong

#: What every rollup table counts per row, in this order (the schema, upserts, sums and rebuilds use it).
ROLLUP_MEASURES = ("n", "satisfied", "dissatisfied", "score_n", "score_sum", "l1", "l2", "l3", "l4", "l5", "suspect")

# -- one response ----------------------------------------------------------------------------------


def get(conn: Connection, response_id: str) -> dict[str, Any] | None:
    """The `responses` row, or None."""
    return first_row(conn, "SELECT * FROM responses WHERE id = ?", (response_id,))


def summary(conn: Connection, response_id: str) -> dict[str, Any] | None:
    """Receipt, unit, touchpoint and time of a response (what an action's page links to), or None."""
    return first_row(conn, "SELECT receipt, unit, touchpoint, server_time FROM responses WHERE id = ?", (response_id,))


# How many responses one receipt may name: receipts are random, not unique, so two may share one.
RECEIPT_MATCHES = 5


def with_receipt(conn: Connection, receipt: str) -> list[dict[str, Any]]:
    """What the public receipt page may show of the responses with this receipt, newest first: id,
    unit, touchpoint, when it occurred and when it was received, and what was erased. Never answers,
    contact or officer."""
    return all_rows(
        conn,
        "SELECT id, unit, touchpoint, occurred_at, server_time, erased FROM responses WHERE receipt = ?"
        " ORDER BY server_time DESC, id DESC LIMIT ?",
        (receipt, RECEIPT_MATCHES),
    )


def with_receipt_in(conn: Connection, receipt: str, units: Sequence[str], columns: str) -> list[dict[str, Any]]:
    """`columns` of the responses of these units with this receipt, newest first (a staff look-up)."""
    if not units:
        return []
    return all_rows(
        conn,
        f"SELECT {columns} FROM responses WHERE receipt = ? AND unit IN ({marks(units)})"
        " ORDER BY day DESC, server_time DESC, id DESC LIMIT ?",
        (receipt, *units, RECEIPT_MATCHES),
    )


def officer_of(conn: Connection, response_id: str | None) -> str | None:
    """The officer a response rated, if it named one."""
    return scalar(conn, "SELECT officer FROM responses WHERE id = ?", (response_id,))


def set_flags(conn: Connection, response_id: str, flags: str) -> None:
    """Replace a response's flags (a JSON list); the answers themselves never change."""
    conn.execute("UPDATE responses SET flags = ? WHERE id = ?", (flags, response_id))


def contact_of(conn: Connection, response_id: str | None) -> str | None:
    """The consented contact left with a response (None when there is none, or it was purged)."""
    return scalar(conn, "SELECT contact FROM contacts WHERE response_id = ?", (response_id,))


# -- rollups ---------------------------------------------------------------------------------------

#: A unit whose figures come from a child installation's daily reports (feedback.federation) has the
#: child's id before its own code, "<child>:<code>"; no unit made here has ':' in its code.
REPORTED_MARK = ":"
_MEASURE_LIST = ", ".join(ROLLUP_MEASURES)
#: Each rollup table as read together with the children's reported aggregates (`federation_rollups`, unit ×
#: service × day, in the table's shape: no touchpoint). The rows of a unit-day are not summed here: every
#: reader of these tables sums.
_WITH_REPORTED = {
    "rollups": f"(SELECT unit, day, service, touchpoint, {_MEASURE_LIST} FROM rollups UNION ALL"
    f" SELECT unit, day, service, '' AS touchpoint, {_MEASURE_LIST} FROM federation_rollups) AS merged",
    "rollups_unit_day": f"(SELECT unit, day, {_MEASURE_LIST} FROM rollups_unit_day UNION ALL"
    f" SELECT unit, day, {_MEASURE_LIST} FROM federation_rollups) AS merged",
}


def rollup_source(table: str, units: Sequence[str]) -> str:
    """What to read `rollups` or `rollups_unit_day` from for these units: the table itself, or, when any of
    them is a reported unit, the table together with the reported aggregates. The one place where child
    installations' figures join the rollup reads (rates, objectives, control charts, the dashboard)."""
    if any(REPORTED_MARK in unit for unit in units):
        return _WITH_REPORTED[table]
    return table


def rollup_totals(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, service: str | None = None
) -> dict[str, Any]:
    """Sums over units and local days (one service's when given): n, satisfied, dissatisfied, score_n,
    score_sum; zeros when nothing was counted."""
    table = rollup_source("rollups" if service else "rollups_unit_day", units)
    found = first_row(
        conn,
        "SELECT coalesce(sum(n), 0) AS n, coalesce(sum(satisfied), 0) AS satisfied,"
        " coalesce(sum(dissatisfied), 0) AS dissatisfied, coalesce(sum(score_n), 0) AS score_n,"
        f" coalesce(sum(score_sum), 0) AS score_sum FROM {table}"
        f" WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?" + (" AND service = ?" if service else ""),
        (*units, day_from, day_to, *([service] if service else [])),
    )
    assert found is not None  # an aggregate without GROUP BY always has its row
    return found


def indicator_totals(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, indicator: str, service: str | None = None
) -> tuple[int, float]:
    """(n, sum of 0-100 values) of one indicator over units and local days (one service's when given)."""
    found = conn.execute(
        "SELECT coalesce(sum(n), 0), coalesce(sum(sum), 0) FROM rollup_indicators"
        f" WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?"
        + (" AND service = ?" if service else "")
        + " AND indicator = ?",
        (*units, day_from, day_to, *([service] if service else []), indicator),
    ).fetchone()
    return int(found[0]), float(found[1])


# -- contacts (kept apart from the answers, purged once no longer needed) ---------------------------


def delete_contact(conn: Connection, response_id: str) -> bool:
    """Purge the contact left with a response; False when there was none."""
    return conn.execute("DELETE FROM contacts WHERE response_id = ?", (response_id,)).rowcount > 0


def contact_with_response(conn: Connection, response_id: str) -> dict[str, Any] | None:
    """contact, lang, receipt and unit of a response that left a contact, or None."""
    return first_row(
        conn,
        "SELECT c.contact, r.lang, r.receipt, r.unit FROM contacts c JOIN responses r ON r.id = c.response_id"
        " WHERE c.response_id = ?",
        (response_id,),
    )


def expired_contacts(conn: Connection, cutoff: str, now: str) -> list[str]:
    """Response ids whose contact is older than `cutoff` (or past its own purge time) and whose response
    has no open corrective action."""
    return [
        row["response_id"]
        for row in all_rows(
            conn,
            "SELECT response_id FROM contacts c WHERE (c.created_at < ? OR (c.purge_after IS NOT NULL"
            " AND c.purge_after < ?)) AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.response_id = c.response_id"
            " AND a.status NOT IN ('closed', 'appeal_upheld'))",
            (cutoff, now),
        )
    ]


# -- rollups: each response counted in as it is stored -------------------------------------------------

# What a rollup row adds up, in the order add_to_rollups passes the values.


def rollup_upsert(table: str, key: tuple[str, ...]) -> str:
    """INSERT … ON CONFLICT DO UPDATE that adds one response's measures to a rollup row."""
    columns = (*key, *ROLLUP_MEASURES)
    additions = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in ROLLUP_MEASURES)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {additions}"
    )


UPSERT_ROLLUP = rollup_upsert("rollups", ("unit", "day", "service", "touchpoint"))
UPSERT_UNIT_DAY = rollup_upsert("rollups_unit_day", ("unit", "day"))
# The weekday × hour heatmap: local day and UTC hour of occurred_at (the unit's time zone turns it
# into a local hour when read).
UPSERT_HEATMAP = rollup_upsert("heatmap_rollups", ("unit", "day", "hour"))
UPSERT_INDICATOR = """
INSERT INTO rollup_indicators (unit, day, service, touchpoint, indicator, n, sum)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (unit, day, service, touchpoint, indicator) DO UPDATE SET
  n = rollup_indicators.n + excluded.n, sum = rollup_indicators.sum + excluded.sum
"""


def add_to_rollups(
    conn: Connection, row: dict[str, Any], indicators: dict[str, float], suspect: bool, sign: int = 1
) -> None:
    """Count one response into (or, with sign=-1, out of) the rollups, in the caller's transaction."""
    key = (row["unit"], row["day"], row["service"] or "", row["touchpoint"])
    measures = rollup_measures(row, suspect, sign)
    conn.execute(UPSERT_ROLLUP, (*key, *measures))
    conn.execute(UPSERT_UNIT_DAY, (row["unit"], row["day"], *measures))
    conn.execute(UPSERT_HEATMAP, (row["unit"], row["day"], int(row["occurred_at"][11:13]), *measures))
    if suspect:
        return
    for indicator, value in indicators.items():
        conn.execute(UPSERT_INDICATOR, (*key, indicator, sign, sign * value))


class RollupBatch:
    """Rollup changes summed per row, written with one upsert per row touched: what a group commit of
    many responses for a few touchpoints adds up in a handful of statements instead of several per
    response. The writer flushes it before its transaction commits (`feedback.db.deferred`)."""

    __slots__ = ("heatmap", "indicators", "rollups", "unit_day")

    def __init__(self) -> None:
        self.rollups: dict[tuple, list] = {}
        self.unit_day: dict[tuple, list] = {}
        self.heatmap: dict[tuple, list] = {}
        self.indicators: dict[tuple, list] = {}

    def add(self, row: dict[str, Any], indicators: dict[str, float], suspect: bool) -> None:
        """Count one response in, as `add_to_rollups` would."""
        key = (row["unit"], row["day"], row["service"] or "", row["touchpoint"])
        measures = rollup_measures(row, suspect, 1)
        for table, at in (
            (self.rollups, key),
            (self.unit_day, (row["unit"], row["day"])),
            (self.heatmap, (row["unit"], row["day"], int(row["occurred_at"][11:13]))),
        ):
            sums = table.get(at)
            if sums is None:
                table[at] = list(measures)
            else:
                for i, value in enumerate(measures):
                    sums[i] += value
        if suspect:
            return
        for indicator, value in indicators.items():
            sums = self.indicators.get((*key, indicator))
            if sums is None:
                self.indicators[(*key, indicator)] = [1, value]
            else:
                sums[0] += 1
                sums[1] += value

    def holds_day_between(self, day_from: str, day_to: str) -> bool:
        """Whether a response of a local day from `day_from` to `day_to` is counted here, unwritten."""
        return any(day_from <= day <= day_to for _unit, day in self.unit_day)

    def flush(self, conn: Connection) -> None:
        """Write what was added (one statement per table) and start again from nothing."""
        for sql, table in (
            (UPSERT_ROLLUP, self.rollups),
            (UPSERT_UNIT_DAY, self.unit_day),
            (UPSERT_HEATMAP, self.heatmap),
            (UPSERT_INDICATOR, self.indicators),
        ):
            if table:
                conn.executemany(sql, [(*key, *sums) for key, sums in table.items()])
                table.clear()


def rollup_measures(row: dict[str, Any], suspect: bool, sign: int) -> tuple:
    """What one response adds to a rollup row, in ROLLUP_MEASURES order (negated with sign=-1)."""
    if suspect:
        return (0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0, sign)
    level = row["level"]
    return (
        sign if level is not None else 0,
        sign * row["satisfied"],
        sign * row["dissatisfied"],
        sign if row["score"] is not None else 0,
        sign * (row["score"] or 0.0),
        *[sign if level == i else 0 for i in range(1, 6)],
        0,
    )


# -- ingest ----------------------------------------------------------------------------------------

#: The columns of `responses`, in the order `insert` writes them.
COLUMNS = (
    "id",
    "receipt",
    "touchpoint",
    "unit",
    "service",
    "survey",
    "survey_version",
    "channel",
    "transaction_point",
    "case_ref",
    "counter",
    "officer",
    "lang",
    "answers",
    "client_time",
    "server_time",
    "occurred_at",
    "day",
    "level",
    "satisfied",
    "dissatisfied",
    "score",
    "indicators",
    "flags",
    "content_hash",
    "device",
    "case_verified",
)
_INSERT = f"INSERT INTO responses ({', '.join(COLUMNS)}) VALUES ({marks(COLUMNS)}) ON CONFLICT (id) DO NOTHING"


#: Who keyed a paper form or a call sheet in (`responses.entered_by`): only keyed rows name it, so the
#: common insert leaves the column out.
_INSERT_KEYED = (
    f"INSERT INTO responses ({', '.join(COLUMNS)}, entered_by) VALUES ({marks(COLUMNS)}, ?) ON CONFLICT (id) DO NOTHING"
)


def insert(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert a response unless its id is taken (then nothing is written); True when inserted. A row
    with `entered_by` (keyed from a paper form) stores it too."""
    if "entered_by" in row:
        return conn.execute(_INSERT_KEYED, [*(row[c] for c in COLUMNS), row["entered_by"]]).rowcount == 1
    return conn.execute(_INSERT, [row[c] for c in COLUMNS]).rowcount == 1


class NewResponses:
    """Responses a group commit takes for new, inserted a few statements for all of them just before
    the commit (one INSERT per response was most of a response's cost on a database across a network).

    Only the writer's optimistic pass uses it (`feedback.db.optimistic`): if any id proves taken (a
    retry racing its original in the same group commit, or one stored before), `flush` raises
    GuessedWrong and the batch is replayed job by job, where `insert` looks at each id in turn."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append([row[c] for c in COLUMNS])

    def flush(self, conn: Connection) -> None:
        rows, self.rows = self.rows, []
        inserted = conn.executemany(_INSERT, rows).rowcount
        if inserted != len(rows):
            raise GuessedWrong(f"{len(rows) - inserted} response id(s) taken for new were stored already")


def stored_receipt(conn: Connection, response_id: str) -> dict[str, Any] | None:
    """What a replay of a stored response is answered with: receipt, content_hash, flags, level."""
    found = conn.execute(
        "SELECT receipt, content_hash, flags, level FROM responses WHERE id = ?", (response_id,)
    ).fetchone()
    return dict(zip(("receipt", "content_hash", "flags", "level"), found, strict=True)) if found else None


def existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Those of `ids` already stored."""
    if not ids:
        return set()
    return {row[0] for row in conn.execute(f"SELECT id FROM responses WHERE id IN ({marks(ids)})", tuple(ids))}


def case_claimed(conn: Connection, touchpoint: str, case_ref: str, response_id: str) -> bool:
    """Whether another response already rated this case at this touchpoint under a verified reference.

    Only a verified reference claims a case: an unverified one (anyone can type a case number) is kept
    and counted, but never makes another rating a duplicate, so nobody can pre-empt a citizen's rating.
    A later rating of a case already claimed is a duplicate whether verified or not: after the real
    rating, an unverified one is a second rating or a forgery, and either way stays out of the rates.
    """
    return (
        conn.execute(
            "SELECT 1 FROM responses WHERE touchpoint = ? AND case_ref = ? AND case_verified = 1 AND id != ? LIMIT 1",
            (touchpoint, case_ref, response_id),
        ).fetchone()
        is not None
    )


def add_contact(conn: Connection, response_id: str, contact: str, created_at: str) -> None:
    """Keep a consented contact apart from the answers."""
    conn.execute(
        "INSERT INTO contacts (response_id, contact, created_at) VALUES (?, ?, ?)", (response_id, contact, created_at)
    )


def daily_rollups(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, service: str | None = None
) -> list[dict[str, Any]]:
    """Per local day: n, satisfied and dissatisfied summed over units (one service's when given)."""
    table = rollup_source("rollups" if service is not None else "rollups_unit_day", units)
    return all_rows(
        conn,
        "SELECT day, coalesce(sum(n), 0) AS n, coalesce(sum(satisfied), 0) AS satisfied,"
        f" coalesce(sum(dissatisfied), 0) AS dissatisfied FROM {table}"
        f" WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?"
        + (" AND service = ?" if service is not None else "")
        + " GROUP BY day",
        (*units, day_from, day_to, *([service] if service is not None else [])),
    )


def count_matching(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, equal: dict[str, Any] | None = None
) -> int:
    """How many responses of these units and local days have the given column values (None: any)."""
    where, params = where_equal(equal, FILTER_COLUMNS)
    return int(
        scalar(
            conn,
            f"SELECT count(*) FROM responses WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?{where}",
            (*units, day_from, day_to, *params),
            0,
        )
    )


# What a unit's response list shows (both dialects select these columns).
BROWSE_COLUMNS = (
    "id, receipt, touchpoint, unit, service, channel, counter, officer, lang, answers, server_time,"
    " occurred_at, day, level, satisfied, dissatisfied, flags, case_ref, case_verified, erased"
)
ROLLUP_TABLES = ("rollups", "rollups_unit_day", "heatmap_rollups", "rollup_indicators")


def clear_rollups(conn: Connection, date_from: str | None, date_to: str | None) -> None:
    """Empty the rollup tables (only the days from `date_from` to `date_to` when either is given)."""
    for table in ROLLUP_TABLES:
        if date_from is None and date_to is None:
            conn.execute(f"DELETE FROM {table}")
        else:
            conn.execute(
                f"DELETE FROM {table} WHERE day BETWEEN ? AND ?", (date_from or "0000-00-00", date_to or "9999-99-99")
            )


FILTER_COLUMNS = frozenset({"service", "touchpoint", "level", "survey", "channel", "officer"})


# The summed rollup columns, in the order `rollup_groups` returns them.
_SUM_MEASURES = ", ".join(f"sum({name})" for name in ROLLUP_MEASURES)
_GROUPS = {
    "unit": "unit",
    "service": "service",
    "touchpoint": "touchpoint",
    "day": "day",
    "month": "substr(day, 1, 7)",
}
_ROLLUP_FILTERS = frozenset({"service", "touchpoint"})


def rollup_groups(
    conn: Connection,
    units: Sequence[str],
    day_from: str,
    day_to: str,
    group: str,
    equal: dict[str, str] | None = None,
) -> list[tuple[Any, ...]]:
    """(key, *ROLLUP_MEASURES summed) per `group` (unit, service, touchpoint, day or month) over units and
    local days, with `equal` narrowing service or touchpoint. Plain tuples: pages run this per request."""
    equal = equal or {}
    if not set(equal) <= _ROLLUP_FILTERS:
        raise ValueError(f"not a rollup filter: {sorted(set(equal) - _ROLLUP_FILTERS)}")
    sql_group = _GROUPS[group]
    # Without a service or touchpoint in the question, the coarser unit × day rollup answers it.
    table = rollup_source("rollups" if equal or group in ("service", "touchpoint") else "rollups_unit_day", units)
    where = "".join(f" AND {column} = ?" for column in equal)
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(
        f"SELECT {sql_group}, {_SUM_MEASURES} FROM {table} WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?"
        f"{where} GROUP BY {sql_group}",
        (*units, day_from, day_to, *equal.values()),
    ).fetchall()


def answered_cells(
    conn: Connection, units: Sequence[str], day_from: str, day_to: str, by_service: bool, service: str | None = None
) -> dict[tuple[str, ...], int]:
    """(unit, [service,] day) → every stored response there, suspect ones too."""
    group = "unit, service, day" if by_service else "unit, day"
    table = "rollups" if by_service else "rollups_unit_day"
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        f"SELECT {group}, sum(n + suspect) FROM {table} WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?"
        + (" AND service = ?" if service is not None else "")
        + f" GROUP BY {group}",
        (*units, day_from, day_to, *([service] if service is not None else [])),
    )
    return {tuple(row[:-1]): row[-1] or 0 for row in rows}


def unit_day_rollups(conn: Connection, units: Sequence[str], day_from: str, day_to: str) -> list[tuple[Any, ...]]:
    """(unit, day, n, satisfied) of every unit × local day rollup row in the range (plain tuples; a reported
    unit-day may have several rows, one per service)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    table = rollup_source("rollups_unit_day", units)
    return cursor.execute(
        f"SELECT unit, day, n, satisfied FROM {table} WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ?",
        (*units, day_from, day_to),
    ).fetchall()


def first_rollup_day(conn: Connection, units: Sequence[str]) -> str | None:
    """The first local day with a rollup row of any of these units (reported ones too), or None."""
    if not units:
        return None
    table = rollup_source("rollups_unit_day", units)
    return scalar(conn, f"SELECT min(day) FROM {table} WHERE unit IN ({marks(units)})", tuple(units))


def day_by_unit_service(conn: Connection, units: Sequence[str], day: str) -> list[dict[str, Any]]:
    """unit, service ('' for none) and ROLLUP_MEASURES summed over touchpoints, of one local day of these
    units (reported ones too), by unit and service: what a child installation reports of the day."""
    if not units:
        return []
    table = rollup_source("rollups", units)
    sums = ", ".join(f"coalesce(sum({m}), 0) AS {m}" for m in ROLLUP_MEASURES)
    return all_rows(
        conn,
        f"SELECT unit, service, {sums} FROM {table} WHERE unit IN ({marks(units)}) AND day = ?"
        " GROUP BY unit, service ORDER BY unit, service",
        (*units, day),
    )


def heatmap_cells(conn: Connection, units: Sequence[str], day_from: str, day_to: str) -> list[tuple[Any, ...]]:
    """(local day, UTC hour, n, satisfied) summed over units (plain tuples)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(
        "SELECT day, hour, coalesce(sum(n), 0), coalesce(sum(satisfied), 0) FROM heatmap_rollups"
        f" WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ? GROUP BY day, hour",
        (*units, day_from, day_to),
    ).fetchall()


def indicator_sums(conn: Connection, units: Sequence[str], day_from: str, day_to: str) -> list[tuple[str, int, float]]:
    """(indicator, n, sum of 0-100 values) per indicator over units and local days, by indicator."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(
        "SELECT indicator, coalesce(sum(n), 0), coalesce(sum(sum), 0) FROM rollup_indicators"
        f" WHERE unit IN ({marks(units)}) AND day BETWEEN ? AND ? GROUP BY indicator ORDER BY indicator",
        (*units, day_from, day_to),
    ).fetchall()


def count_all(conn: Connection) -> int:
    """How many responses are stored."""
    return int(scalar(conn, "SELECT count(*) FROM responses", (), 0))


# -- erasure and retention (feedback.erasure, feedback.retention) ----------------------------------------


def rows_of(conn: Connection, response_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The whole `responses` rows of these ids (those that exist), in no particular order."""
    if not response_ids:
        return []
    return all_rows(conn, f"SELECT * FROM responses WHERE id IN ({marks(response_ids)})", tuple(response_ids))


def ids_with_receipt(conn: Connection, receipt: str) -> list[str]:
    """The ids of the responses with this receipt (at most RECEIPT_MATCHES, newest first)."""
    return [row["id"] for row in with_receipt(conn, receipt)]


def set_erased(
    conn: Connection,
    response_id: str,
    answers: str,
    case_ref: str | None,
    officer: str | None,
    erased: str,
    content_hash: str,
) -> None:
    """Write what is left of a response once personal data is erased: its answers (free text replaced by
    the marker), case reference, officer code, the list of what was erased and a content hash that no
    longer comes from the submission."""
    conn.execute(
        "UPDATE responses SET answers = ?, case_ref = ?, officer = ?, erased = ?, content_hash = ? WHERE id = ?",
        (answers, case_ref, officer, erased, content_hash, response_id),
    )


#: What a keyed form's second entry replaces when a person takes it (`replace_content`).
REPLACED_COLUMNS = (
    "answers",
    "channel",
    "occurred_at",
    "day",
    "level",
    "satisfied",
    "dissatisfied",
    "score",
    "indicators",
    "content_hash",
    "entered_by",
)


def replace_content(conn: Connection, response_id: str, values: dict[str, Any], expected_hash: str) -> bool:
    """Replace the REPLACED_COLUMNS of a response, only while its content hash is still `expected_hash`
    (a compare-and-set: of two replacements planned from the same row one wins). False when it changed."""
    assignments = ", ".join(f"{column} = ?" for column in REPLACED_COLUMNS)
    return (
        conn.execute(
            f"UPDATE responses SET {assignments} WHERE id = ? AND content_hash = ?",
            (*(values[column] for column in REPLACED_COLUMNS), response_id, expected_hash),
        ).rowcount
        == 1
    )


def delete_contacts(conn: Connection, response_ids: Sequence[str]) -> set[str]:
    """Delete the contacts left with these responses; the ids that had one."""
    if not response_ids:
        return set()
    found = conn.execute(
        f"DELETE FROM contacts WHERE response_id IN ({marks(response_ids)}) RETURNING response_id", tuple(response_ids)
    ).fetchall()
    return {row[0] for row in found}


def delete_responses(conn: Connection, response_ids: Sequence[str]) -> int:
    """Delete these responses and their contacts (their comment search entries go with them); the rollups
    that counted them stay as they are. Returns how many responses went."""
    if not response_ids:
        return 0
    delete_contacts(conn, response_ids)
    return conn.execute(f"DELETE FROM responses WHERE id IN ({marks(response_ids)})", tuple(response_ids)).rowcount


#: Which responses of a unit may still hold a kind of data the retention job erases (read over a window
#: of local days; the job looks at each candidate row again before it changes anything).
RETENTION_CANDIDATES = {
    # any string answer (free text, or an option key: the job tells them apart by the survey)
    "comments_days": "answers LIKE '%\":\"%' AND (erased IS NULL OR erased NOT LIKE '%\"comment\"%')",
    "case_refs_days": "case_ref IS NOT NULL",
    "officers_days": "officer IS NOT NULL",
    "responses_days": "1 = 1",
}


def retention_candidates(
    conn: Connection, unit: str, kind: str, day_from: str, day_before: str, after: tuple[str, str], limit: int
) -> list[tuple[Any, ...]]:
    """(day, id, answers, survey, survey_version) of the next `limit` responses of a unit with local days
    in [day_from, day_before) that may hold `kind` (RETENTION_CANDIDATES), after `after` = (day, id), in
    (day, id) order (plain tuples: a first run may read a long history)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return [
        tuple(row)
        for row in cursor.execute(
            "SELECT day, id, answers, survey, survey_version FROM responses WHERE unit = ? AND day >= ? AND day < ?"
            f" AND {RETENTION_CANDIDATES[kind]} AND (day > ? OR (day = ? AND id > ?)) ORDER BY day, id LIMIT ?",
            (unit, day_from, day_before, after[0], after[0], after[1], limit),
        ).fetchall()
    ]


def contact_candidates(conn: Connection, unit: str, day_before: str, after: str, limit: int) -> list[tuple[str, str]]:
    """(day, id) of the next `limit` responses of a unit dated before `day_before` that still have a
    contact, after response id `after`, by id (contacts are few: they are purged as their actions close)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return [
        (row[0], row[1])
        for row in cursor.execute(
            "SELECT r.day, r.id FROM contacts c JOIN responses r ON r.id = c.response_id"
            " WHERE r.unit = ? AND r.day < ? AND c.response_id > ? ORDER BY c.response_id LIMIT ?",
            (unit, day_before, after, limit),
        ).fetchall()
    ]


def days_before(conn: Connection, unit: str, day_before: str) -> list[tuple[str, int]]:
    """(local day, responses) of each day of a unit before `day_before` that has responses, oldest first."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return [
        (row[0], int(row[1]))
        for row in cursor.execute(
            "SELECT day, count(*) FROM responses WHERE unit = ? AND day < ? GROUP BY day ORDER BY day",
            (unit, day_before),
        ).fetchall()
    ]


def ids_of_day(conn: Connection, unit: str, day: str) -> list[str]:
    """The ids of every response of one unit-day."""
    return [row["id"] for row in all_rows(conn, "SELECT id FROM responses WHERE unit = ? AND day = ?", (unit, day))]


def retention_mark(conn: Connection, unit: str, kind: str) -> str | None:
    """The local day before which the retention job erased `kind` from every response of the unit."""
    return scalar(conn, "SELECT through_day FROM retention_marks WHERE unit = ? AND kind = ?", (unit, kind))


def set_retention_mark(conn: Connection, unit: str, kind: str, through_day: str) -> None:
    conn.execute(
        "INSERT INTO retention_marks (unit, kind, through_day) VALUES (?, ?, ?)"
        " ON CONFLICT (unit, kind) DO UPDATE SET through_day = excluded.through_day",
        (unit, kind, through_day),
    )
