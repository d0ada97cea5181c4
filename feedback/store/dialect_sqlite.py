"""The SQLite forms: connection PRAGMAs, the FTS5 comment search, triggers, rowid paging and the
set-based rollup rebuild (JSON flags, FILTER, temporary tables). Everything else in the store is SQL
that SQLite and PostgreSQL both accept; `dialect_postgres` holds the same functions for PostgreSQL
and `dialect.of(conn)` picks one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from feedback.models import INFORMATIONAL_FLAGS
from feedback.store import Connection, all_rows, scalar, where_equal
from feedback.store.responses import BROWSE_COLUMNS, FILTER_COLUMNS, ROLLUP_MEASURES


def applied_migrations(conn: Connection) -> int:
    """How many schema migrations sqlite-utils has recorded in this database."""
    return int(scalar(conn, "SELECT count(*) FROM _sqlite_migrations", (), 0))


def response_page(
    conn: Connection,
    unit: str,
    day_from: str,
    day_to: str,
    after: tuple[str, int],
    limit: int,
    *,
    equal: dict[str, Any] | None = None,
    flagged_only: bool = False,
) -> list[dict[str, Any]]:
    """The next `limit` responses of one unit after `after` = (day, rowid), in (day, rowid) order, each
    with its `_rowid` (the key of the next page).

    SQLite-only: the (unit, day) index carries the rowid, so each page is one short range scan with no
    sort. Another database keys the pages by (day, id) with an index on (unit, day, id)."""
    where, params = where_equal(equal, FILTER_COLUMNS)
    if flagged_only:
        where += " AND flags NOT IN ('', '[]')"
    return all_rows(
        conn,
        "SELECT rowid AS _rowid, * FROM responses WHERE unit = ? AND day BETWEEN ? AND ?"
        f" AND (day > ? OR (day = ? AND rowid > ?)){where} ORDER BY day, rowid LIMIT ?",
        (unit, day_from, day_to, after[0], after[0], after[1], *params, limit),
    )


def browse_responses(
    conn: Connection,
    unit: str,
    day_from: str,
    day_to: str,
    limit: int,
    *,
    equal: dict[str, Any] | None = None,
    flagged: bool | None = None,
    comment_match: str | None = None,
    comment_like: Sequence[str] = (),
    before: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """One unit's responses newest first (day, server_time, id), at most `limit`, before the key `before`.

    `comment_match` is an FTS5 query on the trigram index of comments (SQLite-only: the index is an
    FTS5 table keyed by the responses' rowid); `comment_like` are words too short for trigrams, each
    matched with LIKE (already escaped with backslash)."""
    where, params = where_equal(equal, FILTER_COLUMNS)
    if flagged is not None:
        where += " AND flags != '[]'" if flagged else " AND flags = '[]'"
    if comment_match:
        where += " AND rowid IN (SELECT rowid FROM comment_search WHERE comment_search MATCH ?)"
        params.append(comment_match)
    for pattern in comment_like:
        where += " AND answers LIKE ? ESCAPE '\\'"
        params.append(pattern)
    if before is not None:
        where += " AND (day, server_time, id) < (?, ?, ?)"
        params.extend(before)
    return all_rows(
        conn,
        f"SELECT {BROWSE_COLUMNS} FROM responses WHERE unit = ? AND day BETWEEN ? AND ?{where}"
        " ORDER BY day DESC, server_time DESC, id DESC LIMIT ?",
        (unit, day_from, day_to, *params, limit),
    )


# -- connections -------------------------------------------------------------------------------------


def configure_writer(conn: Connection) -> None:
    """The write connection: WAL (switched on outside a transaction), every COMMIT durable (FULL),
    foreign keys enforced, and a long wait for the write lock another process holds."""
    conn.execute("PRAGMA journal_mode=WAL")
    configure_admin(conn)


def configure_admin(conn: Connection) -> None:
    """A connection of the CLI, migrations or the demo (WAL is already on, or switched on by sqlite-utils)."""
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")


def configure_reader(conn: Connection) -> None:
    """A read-only connection: wait for a checkpoint rather than fail."""
    conn.execute("PRAGMA busy_timeout=30000")


# -- triggers and full-text search (created by the migrations) ---------------------------------------


class Executes(Protocol):
    """A connection, or the sqlite-utils Database a migration gets (which commits what it runs alone)."""

    def execute(self, sql: str, /) -> Any: ...


def refuse_changes(conn: Executes, name: str, table: str, verb: str, message: str) -> None:
    """A trigger `name` that makes the database itself refuse `verb` (UPDATE or DELETE) on a table:
    append-only and immutable records (ISO 9001 7.5)."""
    conn.execute(
        f"""CREATE TRIGGER IF NOT EXISTS {name} BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{message}'); END"""
    )


def begin_snapshot(conn: Connection) -> None:
    """A read transaction that sees one state of the file throughout (WAL: until it ends)."""
    if not conn.in_transaction:
        conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot is taken at the first read


def has_trigger(conn: Connection, name: str, table: str) -> bool:
    return bool(scalar(conn, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)))


# Free text in the answers: the "comment" key, and any other string that is not an option key (option
# keys are identifiers; typed text has spaces, capitals or letters outside a-z).
COMMENT_TEXT_SQL = """(SELECT group_concat(value, char(10)) FROM json_each({answers})
    WHERE type = 'text' AND (key = 'comment' OR value GLOB '*[^a-z0-9_]*'))"""


def create_comment_search(conn: Executes) -> None:
    """FTS5 over comments, keyed by the responses' rowid and kept by triggers; filled from what is stored.

    The trigram tokenizer matches any three characters, so Vietnamese, Russian and Chinese text (no
    spaces between words) are all found by a substring."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS comment_search USING fts5(body, tokenize = 'trigram')")
    text = COMMENT_TEXT_SQL.format(answers="new.answers")
    conn.execute(
        f"""CREATE TRIGGER IF NOT EXISTS responses_comment_search AFTER INSERT ON responses
        WHEN new.answers GLOB '*"*":"*' AND {text} IS NOT NULL
        BEGIN INSERT INTO comment_search (rowid, body) VALUES (new.rowid, {text}); END"""
    )
    conn.execute(
        """CREATE TRIGGER IF NOT EXISTS responses_comment_search_delete AFTER DELETE ON responses
        BEGIN DELETE FROM comment_search WHERE rowid = old.rowid; END"""
    )
    conn.execute(
        f"INSERT INTO comment_search (rowid, body) SELECT rowid, {COMMENT_TEXT_SQL.format(answers='answers')}"
        f' FROM responses WHERE answers GLOB \'*"*":"*\' AND {COMMENT_TEXT_SQL.format(answers="answers")}'
        " IS NOT NULL AND rowid NOT IN (SELECT rowid FROM comment_search)"
    )


# -- rebuilding the rollups (`feedback rebuild-rollups`): set-based SQL over JSON flags ---------------
# The same rules as ingest: a response with any flag that is not merely informational is suspect
# (counted in `suspect` only, never in the indicators); an upheld appeal moves a response out of the
# rates, and its indicator rows stay behind with nothing in them.

# The flag `actions._take_out_of_kpis` adds when an appeal is upheld.
APPEAL_UPHELD = "appeal_upheld"
FIRST_DAY, LAST_DAY = "0000-00-00", "9999-99-99"


def _any_flag_but(allowed: list[str]) -> str:
    """SQL: true when `flags` holds a flag outside `allowed` (the common empty list costs no JSON parse)."""
    names = ", ".join(f"'{name}'" for name in sorted(allowed))
    return (
        f"(CASE WHEN flags = '[]' THEN 0 ELSE EXISTS (SELECT 1 FROM json_each(flags) WHERE value NOT IN ({names})) END)"
    )


SUSPECT_NOW = _any_flag_but(list(INFORMATIONAL_FLAGS))
SUSPECT_WHEN_STORED = _any_flag_but([*INFORMATIONAL_FLAGS, APPEAL_UPHELD])
APPEALED = f"(flags != '[]' AND EXISTS (SELECT 1 FROM json_each(flags) WHERE value = '{APPEAL_UPHELD}'))"

# One row per unit × day × service × touchpoint × UTC hour: the finest grain any rollup needs.
_MEASURE_COLUMNS = ", ".join(m + (" REAL" if m == "score_sum" else " INTEGER") for m in ROLLUP_MEASURES)
CREATE_CELLS = f"""CREATE TEMP TABLE rebuild_cells (
    unit TEXT, day TEXT, service TEXT, touchpoint TEXT, hour INTEGER, responses INTEGER,
    {_MEASURE_COLUMNS})"""
CREATE_INDICATOR_CELLS = """CREATE TEMP TABLE rebuild_indicators (
    unit TEXT, day TEXT, service TEXT, touchpoint TEXT, indicator TEXT, n INTEGER, sum REAL)"""

_COUNTED = "NOT suspect"
STAGE_CELLS = f"""
INSERT INTO temp.rebuild_cells
SELECT unit, day, service, touchpoint, hour, count(*),
       count(level) FILTER (WHERE {_COUNTED}),
       coalesce(sum(satisfied) FILTER (WHERE {_COUNTED}), 0),
       coalesce(sum(dissatisfied) FILTER (WHERE {_COUNTED}), 0),
       count(score) FILTER (WHERE {_COUNTED}),
       total(score) FILTER (WHERE {_COUNTED}),
       {", ".join(f"count(*) FILTER (WHERE level = {i} AND {_COUNTED})" for i in range(1, 6))},
       count(*) FILTER (WHERE suspect)
FROM (SELECT unit, day, coalesce(service, '') AS service, touchpoint,
             CAST(substr(occurred_at, 12, 2) AS INTEGER) AS hour,  -- ingest: int(occurred_at[11:13])
             level, satisfied, dissatisfied, score, {SUSPECT_NOW} AS suspect
      FROM {{source}} WHERE {{where}})
GROUP BY unit, day, service, touchpoint, hour
"""
STAGE_INDICATORS = f"""
INSERT INTO temp.rebuild_indicators
SELECT r.unit, r.day, r.service, r.touchpoint, j.key,
       count(*) FILTER (WHERE NOT r.appealed), total(j.value) FILTER (WHERE NOT r.appealed)
FROM (SELECT unit, day, coalesce(service, '') AS service, touchpoint, indicators, {APPEALED} AS appealed
      FROM {{source}}
      WHERE ({{where}}) AND indicators IS NOT NULL AND indicators != '{{{{}}}}' AND NOT {SUSPECT_WHEN_STORED}) AS r,
     json_each(r.indicators) AS j
GROUP BY r.unit, r.day, r.service, r.touchpoint, j.key
"""


def _fill(table: str, keys: tuple[str, ...]) -> str:
    measures = ", ".join(ROLLUP_MEASURES)
    sums = ", ".join(f"sum({m})" for m in ROLLUP_MEASURES)
    key = ", ".join(keys)
    return f"INSERT INTO {table} ({key}, {measures}) SELECT {key}, {sums} FROM temp.rebuild_cells GROUP BY {key}"


FILL = {
    "rollups": _fill("rollups", ("unit", "day", "service", "touchpoint")),
    "rollups_unit_day": _fill("rollups_unit_day", ("unit", "day")),
    "heatmap_rollups": _fill("heatmap_rollups", ("unit", "day", "hour")),
    "rollup_indicators": """INSERT INTO rollup_indicators (unit, day, service, touchpoint, indicator, n, sum)
        SELECT unit, day, service, touchpoint, indicator, sum(n), sum(sum) FROM temp.rebuild_indicators
        GROUP BY unit, day, service, touchpoint, indicator""",
}
# Every unit that has responses, one index seek each (the index on responses (unit, day)).
UNITS_WITH_RESPONSES = """
WITH RECURSIVE u(unit) AS (
    SELECT min(unit) FROM responses
    UNION ALL SELECT (SELECT min(unit) FROM responses WHERE unit > u.unit) FROM u WHERE u.unit IS NOT NULL)
SELECT unit FROM u WHERE unit IS NOT NULL
"""


def rebuild_begin(conn: Connection) -> None:
    """Fresh temporary tables for the staged sums."""
    conn.execute("DROP TABLE IF EXISTS temp.rebuild_cells")
    conn.execute("DROP TABLE IF EXISTS temp.rebuild_indicators")
    conn.execute(CREATE_CELLS)
    conn.execute(CREATE_INDICATOR_CELLS)


def rebuild_chunks(conn: Connection, date_from: str | None, date_to: str | None, rows: int) -> list[dict[str, Any]]:
    """The table to read, the WHERE clause and its parameters, for each slice of the responses: rowid
    ranges of `rows` for the whole history, each unit's index range for a period."""
    if date_from is None and date_to is None:
        low, high = conn.execute("SELECT min(rowid), max(rowid) FROM responses").fetchone()
        if low is None:
            return []
        # NOT INDEXED: a rowid range only; left free, the planner may walk the whole (unit, day)
        # index for the GROUP BY order, once per chunk.
        return [
            {
                "source": "responses NOT INDEXED",
                "where": "rowid BETWEEN ? AND ?",
                "params": (start, min(start + rows - 1, high)),
            }
            for start in range(low, high + 1, rows)
        ]
    bounds = (date_from or FIRST_DAY, date_to or LAST_DAY)
    return [
        {"source": "responses", "where": "unit = ? AND day BETWEEN ? AND ?", "params": (unit, *bounds)}
        for (unit,) in conn.execute(UNITS_WITH_RESPONSES).fetchall()
    ]


def rebuild_stage(conn: Connection, chunk: dict[str, Any], staged: int) -> tuple[int, int, int]:
    """Sum one chunk into the temporary tables; returns (the last staged cell, responses read, of which
    suspect) for the cells after `staged`."""
    conn.execute(STAGE_CELLS.format(source=chunk["source"], where=chunk["where"]), chunk["params"])
    conn.execute(STAGE_INDICATORS.format(source=chunk["source"], where=chunk["where"]), chunk["params"])
    last, responses, suspect = conn.execute(
        "SELECT max(rowid), coalesce(sum(responses), 0), coalesce(sum(suspect), 0) FROM temp.rebuild_cells"
        " WHERE rowid > ?",
        (staged,),
    ).fetchone()
    return last or staged, responses, suspect


def rebuild_fill(conn: Connection, table: str) -> int:
    """Fill one rollup table from the staged sums; returns its rows."""
    return conn.execute(FILL[table]).rowcount


def rebuild_end(conn: Connection) -> None:
    conn.execute("DROP TABLE temp.rebuild_cells")
    conn.execute("DROP TABLE temp.rebuild_indicators")


def large_cache(conn: Connection) -> None:
    """64 MiB of page cache for a long set-based job on this connection."""
    conn.execute("PRAGMA cache_size = -65536")


# -- plugin tables (feedback.store.tables) ------------------------------------------------------------


def table_columns(conn: Connection, table: str) -> list[str]:
    """The column names of a table, in order; [] when there is no such table."""
    return [row["name"] for row in all_rows(conn, "SELECT name FROM pragma_table_info(?)", (table,))]


def index_names(conn: Connection, table: str) -> set[str]:
    """The names of a table's indexes (the automatic ones of its keys too)."""
    return {row["name"] for row in all_rows(conn, "SELECT name FROM pragma_index_list(?)", (table,))}


def begin_write(conn: Connection) -> None:
    """Open a write transaction holding the file's write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")


@contextmanager
def write_transaction(conn: Connection) -> Iterator[None]:
    """A transaction that holds the write lock from its first statement (so what it read stays true
    until it commits); inside a transaction already, the block simply joins it."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- erasure (feedback.erasure) ------------------------------------------------------------------------


def overwrite_deleted(conn: Connection) -> None:
    """From now on this connection overwrites what it deletes or replaces with zeros (`secure_delete`,
    already the default of Debian's build), so erased data does not linger in the file's free pages."""
    conn.execute("PRAGMA secure_delete = ON")


def forget_comments(conn: Connection, response_ids: Sequence[str]) -> None:
    """Take these responses out of the comment search: their text was erased."""
    if not response_ids:
        return
    conn.execute(
        "DELETE FROM comment_search WHERE rowid IN"
        f" (SELECT rowid FROM responses WHERE id IN ({', '.join('?' for _ in response_ids)}))",
        tuple(response_ids),
    )


def index_comments(conn: Connection, response_id: str) -> None:
    """Put a response's comments into the search again, as stored now (its answers were replaced: a
    keyed form's second entry taken; `forget_comments` took the old text out first)."""
    text = COMMENT_TEXT_SQL.format(answers="answers")
    conn.execute(
        f"INSERT INTO comment_search (rowid, body) SELECT rowid, {text} FROM responses"
        f" WHERE id = ? AND {text} IS NOT NULL",
        (response_id,),
    )
