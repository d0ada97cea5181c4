"""The PostgreSQL forms of what `dialect_sqlite` does: the schema from the specs with triggers in
PL/pgSQL, the comment search on `pg_trgm`, keyset paging by (day, id), the set-based rollup rebuild
over `jsonb`, schema introspection, and write transactions that take the cluster-wide writer lock.

The writer lock: every write transaction of every node takes one transaction-scoped advisory lock
first, so writes stay serialised across nodes exactly as the single writer thread serialises them on
one (checks such as the duplicate case, the login count or an action's transition read what they
then write, and nobody writes in between). Each node still commits many requests per transaction,
so the lock is taken once per group commit, not once per request.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from feedback.models import INFORMATIONAL_FLAGS
from feedback.store import Connection, all_rows, scalar, where_equal
from feedback.store.responses import BROWSE_COLUMNS, FILTER_COLUMNS, ROLLUP_MEASURES

#: The advisory lock key every write transaction takes (any constant; "feedback" in ASCII).
WRITER_LOCK = 0x66656564626B


BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"


def take_writer_lock(conn: Connection) -> None:
    """Inside a transaction: wait for, then hold until COMMIT/ROLLBACK, the cluster-wide writer lock."""
    conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))


def begin_write(conn: Connection) -> None:
    """Open a write transaction holding the cluster-wide writer lock (one round trip for both: the
    writer does this once per group commit)."""
    conn.execute_script(BEGIN_LOCKED)


@contextmanager
def write_transaction(conn: Connection) -> Iterator[None]:
    """A transaction holding the writer lock from its start (inside one already, the block joins it)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        take_writer_lock(conn)
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def applied_migrations(conn: Connection) -> int:
    """PostgreSQL databases are created from the specs, not from a migration history: the number of
    core tables present stands in for it."""
    return int(scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"))


# -- schema ------------------------------------------------------------------------------------------


def table_columns(conn: Connection, table: str) -> list[str]:
    rows = all_rows(
        conn,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [row["column_name"] for row in rows]


def index_names(conn: Connection, table: str) -> set[str]:
    rows = all_rows(
        conn, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?", (table,)
    )
    return {row["indexname"] for row in rows}


_REFUSE_FUNCTION = """CREATE OR REPLACE FUNCTION feedback_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', MESSAGE = TG_ARGV[0];
END $$"""


def refuse_changes(conn: Connection, name: str, table: str, verb: str, message: str) -> None:
    """A trigger `name` that makes the database itself refuse `verb` (UPDATE or DELETE) on a table."""
    conn.execute(_REFUSE_FUNCTION)
    text = message.replace("'", "''")
    conn.execute(
        f"CREATE OR REPLACE TRIGGER {name} BEFORE {verb} ON {table} FOR EACH ROW"
        f" EXECUTE FUNCTION feedback_refuse_change('{text}')"
    )


def begin_snapshot(conn: Connection) -> None:
    """A read-only transaction that sees one state of the database throughout."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


def has_trigger(conn: Connection, name: str, table: str) -> bool:
    return bool(
        scalar(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = ? AND tgrelid = ?::regclass", (name, table))
    )


# Free text in the answers: the "comment" key, and any other string that is not an option key (the
# same rule as dialect_sqlite.COMMENT_TEXT_SQL).
_COMMENT_FUNCTION = r"""CREATE OR REPLACE FUNCTION feedback_comment_text(answers TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(value, E'\n') FROM jsonb_each_text(answers::jsonb) AS a(key, value)
    WHERE jsonb_typeof(answers::jsonb -> key) = 'string' AND (key = 'comment' OR value ~ '[^a-z0-9_]')
$$"""
_COMMENT_TRIGGER = """CREATE OR REPLACE FUNCTION feedback_index_comment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE body TEXT;
BEGIN
    IF position('":"' IN NEW.answers) > 0 THEN
        body := feedback_comment_text(NEW.answers);
        IF body IS NOT NULL THEN
            INSERT INTO comment_search (response_id, body) VALUES (NEW.id, body) ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END $$"""


def create_comment_search(conn: Connection) -> None:
    """Comments of the responses in a table of their own with a trigram index (pg_trgm), kept by a
    trigger: `ILIKE '%word%'` then finds any substring in any script, as FTS5's trigram index does."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS comment_search ("
        " response_id TEXT PRIMARY KEY REFERENCES responses (id) ON DELETE CASCADE, body TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS comment_search_body ON comment_search USING gin (body gin_trgm_ops)")
    conn.execute(_COMMENT_FUNCTION)
    conn.execute(_COMMENT_TRIGGER)
    conn.execute(
        "CREATE OR REPLACE TRIGGER responses_comment_search AFTER INSERT ON responses FOR EACH ROW"
        " EXECUTE FUNCTION feedback_index_comment()"
    )


def fill_comment_search(conn: Connection) -> None:
    """Index the comments of responses copied in without the trigger (`feedback migrate`)."""
    conn.execute(
        "INSERT INTO comment_search (response_id, body)"
        " SELECT id, feedback_comment_text(answers) FROM responses"
        " WHERE position('\":\"' IN answers) > 0 AND feedback_comment_text(answers) IS NOT NULL"
        " ON CONFLICT DO NOTHING"
    )


# -- notifications to other nodes (feedback.store.pg_listen) ---------------------------------------------

#: The tables whose changes make every node reload its catalog snapshot (`feedback.catalog`).
CATALOG_TABLES = (
    "units",
    "services",
    "touchpoints",
    "surveys",
    "survey_versions",
    "objectives",
    "objective_versions",
    "users",
)
_NOTIFY_FUNCTION = """CREATE OR REPLACE FUNCTION feedback_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_ARGV[0] = 'invitation' THEN
        PERFORM pg_notify('feedback', 'invitation:' || NEW.kiosk);
    ELSE
        PERFORM pg_notify('feedback', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$"""


def create_notify_triggers(conn: Connection) -> None:
    """Triggers that tell listening nodes what changed, when (and only if) the change commits."""
    conn.execute(_NOTIFY_FUNCTION)
    for table in CATALOG_TABLES:
        conn.execute(
            f"CREATE OR REPLACE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION feedback_notify('catalog')"
        )
    conn.execute(
        "CREATE OR REPLACE TRIGGER actions_notify AFTER INSERT OR UPDATE ON actions"
        " FOR EACH STATEMENT EXECUTE FUNCTION feedback_notify('actions')"
    )
    conn.execute(
        "CREATE OR REPLACE TRIGGER kiosk_invitations_notify AFTER INSERT ON kiosk_invitations"
        " FOR EACH ROW EXECUTE FUNCTION feedback_notify('invitation')"
    )


# -- connections ---------------------------------------------------------------------------------------


def configure_writer(conn: Connection) -> None:
    """Every COMMIT waits for the WAL flush (the server's default; set here so a cluster tuned for
    bulk loads cannot make an acknowledged response volatile)."""
    conn.execute("SET synchronous_commit = on")


def configure_reader(conn: Connection) -> None:
    """Readers never block writers and see each statement's latest committed state (READ COMMITTED)."""


def large_cache(conn: Connection) -> None:
    """More memory for the sorts of a long set-based job on this connection."""
    conn.execute("SET work_mem = '256MB'")


def other_feedback_sessions(conn: Connection) -> int:
    """Sessions of other feedback processes (servers of any node, commands) on this database, by the
    application_name each connection gives. None means every lease in the event log and outbox belongs
    to a process that is gone: what the file lock tells on SQLite. A killed process's sessions end as
    soon as the kernel closes its sockets."""
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND application_name LIKE 'feedback%'",
        )
    )


# -- reading responses -----------------------------------------------------------------------------------


def response_page(
    conn: Connection,
    unit: str,
    day_from: str,
    day_to: str,
    after: tuple[str, Any],
    limit: int,
    *,
    equal: dict[str, Any] | None = None,
    flagged_only: bool = False,
) -> list[dict[str, Any]]:
    """The next `limit` responses of one unit after `after` = (day, id), in (day, id) order, each with
    its `_rowid` (here the id: the key of the next page). The first page passes a number (0)."""
    where, params = where_equal(equal, FILTER_COLUMNS)
    if flagged_only:
        where += " AND flags NOT IN ('', '[]')"
    after_id = after[1] if isinstance(after[1], str) else ""
    return all_rows(
        conn,
        "SELECT id AS _rowid, * FROM responses WHERE unit = ? AND day BETWEEN ? AND ?"
        f" AND (day, id) > (?, ?){where} ORDER BY day, id LIMIT ?",
        (unit, day_from, day_to, after[0], after_id, *params, limit),
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
    """One unit's responses newest first, as `dialect_sqlite.browse_responses`; `comment_match` (the
    FTS5 query of quoted words) becomes one trigram-indexed ILIKE per word."""
    where, params = where_equal(equal, FILTER_COLUMNS)
    if flagged is not None:
        where += " AND flags != '[]'" if flagged else " AND flags = '[]'"
    for word in _quoted_words(comment_match or ""):
        where += " AND id IN (SELECT response_id FROM comment_search WHERE body ILIKE ? ESCAPE '\\')"
        params.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    for pattern in comment_like:
        where += " AND answers ILIKE ? ESCAPE '\\'"
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


def _quoted_words(query: str) -> list[str]:
    """The words of an FTS5 query made of double-quoted words ("a" "b""c")."""
    words, i = [], 0
    while (start := query.find('"', i)) != -1:
        end = start + 1
        while True:
            end = query.find('"', end)
            if end == -1 or query[end + 1 : end + 2] != '"':
                break
            end += 2
        words.append(query[start + 1 : end if end != -1 else len(query)].replace('""', '"'))
        if end == -1:
            break
        i = end + 1
    return words


# -- rebuilding the rollups: the same rules as dialect_sqlite, over jsonb ---------------------------------

APPEAL_UPHELD = "appeal_upheld"
FIRST_DAY, LAST_DAY = "0000-00-00", "9999-99-99"


def _any_flag_but(allowed: list[str]) -> str:
    names = ", ".join(f"'{name}'" for name in sorted(allowed))
    return (
        "(CASE WHEN flags = '[]' OR flags = '' THEN FALSE ELSE EXISTS"
        f" (SELECT 1 FROM jsonb_array_elements_text(flags::jsonb) AS f(value) WHERE value NOT IN ({names})) END)"
    )


SUSPECT_NOW = _any_flag_but(list(INFORMATIONAL_FLAGS))
SUSPECT_WHEN_STORED = _any_flag_but([*INFORMATIONAL_FLAGS, APPEAL_UPHELD])
APPEALED = (
    "(flags NOT IN ('', '[]') AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(flags::jsonb) AS f(value)"
    f" WHERE value = '{APPEAL_UPHELD}'))"
)
_MEASURE_COLUMNS = ", ".join(m + (" DOUBLE PRECISION" if m == "score_sum" else " BIGINT") for m in ROLLUP_MEASURES)
_COUNTED = "NOT suspect"
STAGE_CELLS = f"""
INSERT INTO rebuild_cells (unit, day, service, touchpoint, hour, responses, {", ".join(ROLLUP_MEASURES)})
SELECT unit, day, service, touchpoint, hour, count(*),
       count(level) FILTER (WHERE {_COUNTED}),
       coalesce(sum(satisfied) FILTER (WHERE {_COUNTED}), 0),
       coalesce(sum(dissatisfied) FILTER (WHERE {_COUNTED}), 0),
       count(score) FILTER (WHERE {_COUNTED}),
       coalesce(sum(score) FILTER (WHERE {_COUNTED}), 0),
       {", ".join(f"count(*) FILTER (WHERE level = {i} AND {_COUNTED})" for i in range(1, 6))},
       count(*) FILTER (WHERE suspect)
FROM (SELECT unit, day, coalesce(service, '') AS service, touchpoint,
             CAST(substr(occurred_at, 12, 2) AS INTEGER) AS hour,
             level, satisfied, dissatisfied, score, {SUSPECT_NOW} AS suspect
      FROM responses WHERE {{where}}) AS r
GROUP BY unit, day, service, touchpoint, hour
"""
STAGE_INDICATORS = f"""
INSERT INTO rebuild_indicators
SELECT r.unit, r.day, r.service, r.touchpoint, j.key,
       count(*) FILTER (WHERE NOT r.appealed), coalesce(sum(j.value::double precision) FILTER (WHERE NOT r.appealed), 0)
FROM (SELECT unit, day, coalesce(service, '') AS service, touchpoint, indicators, {APPEALED} AS appealed
      FROM responses
      WHERE ({{where}}) AND indicators IS NOT NULL AND indicators != '{{{{}}}}' AND NOT {SUSPECT_WHEN_STORED}) AS r,
     jsonb_each_text(r.indicators::jsonb) AS j(key, value)
GROUP BY r.unit, r.day, r.service, r.touchpoint, j.key
"""


def _fill(table: str, keys: tuple[str, ...]) -> str:
    measures = ", ".join(ROLLUP_MEASURES)
    sums = ", ".join(f"sum({m})" for m in ROLLUP_MEASURES)
    key = ", ".join(keys)
    return f"INSERT INTO {table} ({key}, {measures}) SELECT {key}, {sums} FROM rebuild_cells GROUP BY {key}"


FILL = {
    "rollups": _fill("rollups", ("unit", "day", "service", "touchpoint")),
    "rollups_unit_day": _fill("rollups_unit_day", ("unit", "day")),
    "heatmap_rollups": _fill("heatmap_rollups", ("unit", "day", "hour")),
    "rollup_indicators": """INSERT INTO rollup_indicators (unit, day, service, touchpoint, indicator, n, sum)
        SELECT unit, day, service, touchpoint, indicator, sum(n), sum(sum) FROM rebuild_indicators
        GROUP BY unit, day, service, touchpoint, indicator""",
}


def rebuild_begin(conn: Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS rebuild_cells")
    conn.execute("DROP TABLE IF EXISTS rebuild_indicators")
    conn.execute(
        "CREATE TEMP TABLE rebuild_cells (cell BIGINT GENERATED ALWAYS AS IDENTITY, unit TEXT, day TEXT,"
        f" service TEXT, touchpoint TEXT, hour INTEGER, responses BIGINT, {_MEASURE_COLUMNS})"
    )
    conn.execute(
        "CREATE TEMP TABLE rebuild_indicators (unit TEXT, day TEXT, service TEXT, touchpoint TEXT,"
        " indicator TEXT, n BIGINT, sum DOUBLE PRECISION)"
    )


def rebuild_chunks(conn: Connection, date_from: str | None, date_to: str | None, rows: int) -> list[dict[str, Any]]:
    """Each unit's index range (for the whole history too: PostgreSQL has no rowid to slice by)."""
    bounds = (date_from or FIRST_DAY, date_to or LAST_DAY)
    return [
        {"where": "unit = ? AND day BETWEEN ? AND ?", "params": (row["unit"], *bounds)}
        for row in all_rows(conn, "SELECT DISTINCT unit FROM responses ORDER BY unit")
    ]


def rebuild_stage(conn: Connection, chunk: dict[str, Any], staged: int) -> tuple[int, int, int]:
    conn.execute(STAGE_CELLS.format(where=chunk["where"]), chunk["params"])
    conn.execute(STAGE_INDICATORS.format(where=chunk["where"]), chunk["params"])
    last, responses, suspect = conn.execute(
        "SELECT max(cell), coalesce(sum(responses), 0), coalesce(sum(suspect), 0) FROM rebuild_cells WHERE cell > ?",
        (staged,),
    ).fetchone()
    return last or staged, responses, suspect


def rebuild_fill(conn: Connection, table: str) -> int:
    return conn.execute(FILL[table]).rowcount


def rebuild_end(conn: Connection) -> None:
    conn.execute("DROP TABLE rebuild_cells")
    conn.execute("DROP TABLE rebuild_indicators")


# -- erasure (feedback.erasure) ------------------------------------------------------------------------


def overwrite_deleted(conn: Connection) -> None:
    """Nothing to switch on: old row versions stay until VACUUM (autovacuum) reclaims them."""


def forget_comments(conn: Connection, response_ids: Sequence[str]) -> None:
    """Take these responses out of the comment search: their text was erased (VACUUM, which autovacuum
    runs, then reclaims the old row versions)."""
    if not response_ids:
        return
    conn.execute(
        f"DELETE FROM comment_search WHERE response_id IN ({', '.join('?' for _ in response_ids)})",
        tuple(response_ids),
    )


def index_comments(conn: Connection, response_id: str) -> None:
    """Put a response's comments into the search again, as stored now (its answers were replaced: a
    keyed form's second entry taken; `forget_comments` took the old text out first)."""
    conn.execute(
        "INSERT INTO comment_search (response_id, body) SELECT id, feedback_comment_text(answers) FROM responses"
        " WHERE id = ? AND feedback_comment_text(answers) IS NOT NULL ON CONFLICT DO NOTHING",
        (response_id,),
    )
