"""The core schema, as a sqlite-utils `Migrations` set. Plugins declare their tables (`register_tables`,
created and topped up by `feedback.store.tables`) or, as before, bring their own sets."""

from __future__ import annotations

import sqlite_utils

from feedback import audit
from feedback.db import PostgresDatabase
from feedback.plugins import PluginManager, flatten
from feedback.store import Connection, dialect, dialect_postgres, dialect_sqlite, schema, tables

migrations = sqlite_utils.Migrations("feedback")

LEVELS = ("l1", "l2", "l3", "l4", "l5")


@migrations()
def m001_organisation(db: sqlite_utils.Database) -> None:
    db.table("units").create(
        {
            "code": str,
            "name": str,
            "names": str,  # JSON {lang: name}
            "parent": str,
            "lang": str,
            "tz": str,
            "path": str,  # "/ROOT/CHILD/" - a subtree is one LIKE prefix
            "created_at": str,
        },
        pk="code",
        not_null=["name", "lang", "tz", "path"],
        foreign_keys=[("parent", "units", "code")],
        if_not_exists=True,
    )
    db.table("units").create_index(["path"], if_not_exists=True)
    db.table("services").create(
        {
            "code": str,
            "name": str,
            "names": str,
            "kind": str,  # administrative | customs | other
            "agency": str,  # the root unit that publishes the procedure, if any
            "created_at": str,
        },
        pk="code",
        not_null=["name"],
        if_not_exists=True,
    )
    db.table("surveys").create(
        {"slug": str, "title": str, "created_at": str},
        pk="slug",
        not_null=["title"],
        if_not_exists=True,
    )
    db.table("survey_versions").create(
        {"slug": str, "version": int, "definition": str, "published_at": str},
        pk=("slug", "version"),
        not_null=["definition", "published_at"],
        foreign_keys=[("slug", "surveys", "slug")],
        if_not_exists=True,
    )
    # A published version is immutable: the database itself refuses changes.
    dialect_sqlite.refuse_changes(
        db, "survey_versions_immutable", "survey_versions", "UPDATE", "published survey versions are immutable"
    )
    db.table("touchpoints").create(
        {
            "token": str,
            "short_code": str,
            "name": str,
            "unit": str,
            "lang": str,
            "survey": str,
            "kind": str,  # qr | kiosk
            "counter": str,
            "service": str,
            "created_at": str,
            "retired_at": str,
        },
        pk="token",
        not_null=["name", "unit", "lang", "survey", "kind"],
        foreign_keys=[("unit", "units", "code"), ("survey", "surveys", "slug")],
        if_not_exists=True,
    )
    db.table("touchpoints").create_index(["short_code"], unique=True, if_not_exists=True)
    db.table("touchpoints").create_index(["unit"], if_not_exists=True)


@migrations()
def m002_responses(db: sqlite_utils.Database) -> None:
    db.table("responses").create(
        {
            "id": str,
            "receipt": str,
            "touchpoint": str,
            "unit": str,
            "service": str,
            "survey": str,
            "survey_version": int,
            "channel": str,
            "transaction_point": str,
            "case_ref": str,
            "counter": str,
            "officer": str,
            "lang": str,
            "answers": str,
            "client_time": str,
            "server_time": str,
            "occurred_at": str,
            "day": str,
            "level": int,
            "satisfied": int,
            "dissatisfied": int,
            "score": float,
            "indicators": str,
            "flags": str,  # JSON list; non-empty means suspect: stored, left out of rates
            "content_hash": str,
        },
        pk="id",
        not_null=[
            "receipt",
            "touchpoint",
            "unit",
            "survey",
            "survey_version",
            "channel",
            "lang",
            "answers",
            "server_time",
            "occurred_at",
            "day",
            "flags",
            "content_hash",
        ],
        if_not_exists=True,
    )
    db.table("responses").create_index(["unit", "day"], if_not_exists=True)
    db.table("responses").create_index(["touchpoint", "case_ref"], if_not_exists=True)
    db.table("responses").create_index(["receipt"], if_not_exists=True)
    # Contact for a call-back lives apart from the answers and is purged when no longer needed.
    db.table("contacts").create(
        {"response_id": str, "contact": str, "created_at": str, "purge_after": str},
        pk="response_id",
        not_null=["contact", "created_at"],
        if_not_exists=True,
    )
    # Rollups are read by unit and day range: a WITHOUT ROWID table keyed (unit, day, …) keeps each
    # unit's days together on disk, so a year of a subtree is a few contiguous range scans.
    level_columns = ", ".join(f"{level} INTEGER NOT NULL DEFAULT 0" for level in LEVELS)
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS rollups (
            unit TEXT NOT NULL, day TEXT NOT NULL, service TEXT NOT NULL, touchpoint TEXT NOT NULL,
            n INTEGER NOT NULL DEFAULT 0,          -- counted responses (suspect ones excluded)
            satisfied INTEGER NOT NULL DEFAULT 0,
            dissatisfied INTEGER NOT NULL DEFAULT 0,
            score_n INTEGER NOT NULL DEFAULT 0,
            score_sum REAL NOT NULL DEFAULT 0,
            {level_columns},
            suspect INTEGER NOT NULL DEFAULT 0,    -- stored but left out of rates
            PRIMARY KEY (unit, day, service, touchpoint)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_indicators (
            unit TEXT NOT NULL, day TEXT NOT NULL, service TEXT NOT NULL, touchpoint TEXT NOT NULL,
            indicator TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, sum REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (unit, day, service, touchpoint, indicator)
        ) WITHOUT ROWID"""
    )
    db.table("exposure").create(
        {"unit": str, "service": str, "day": str, "served": int, "offered": int, "source": str, "updated_at": str},
        pk=("unit", "service", "day"),
        not_null=["unit", "service", "day"],
        if_not_exists=True,
    )


@migrations()
def m003_access(db: sqlite_utils.Database) -> None:
    db.table("users").create(
        {"name": str, "role": str, "unit": str, "email": str, "password_hash": str, "created_at": str, "disabled": int},
        pk="name",
        not_null=["role", "created_at"],
        defaults={"disabled": 0},
        if_not_exists=True,
    )
    db.table("api_tokens").create(
        {"token_hash": str, "user": str, "role": str, "unit": str, "created_at": str, "revoked_at": str, "hint": str},
        pk="token_hash",
        not_null=["user", "role", "created_at"],
        foreign_keys=[("user", "users", "name")],
        if_not_exists=True,
    )


@migrations()
def m004_kiosks(db: sqlite_utils.Database) -> None:
    db.table("kiosks").create(
        {
            "id": str,
            "touchpoint": str,
            "name": str,
            "token_hash": str,
            "enrolled_at": str,
            "enrolled_by": str,
            "revoked_at": str,
            "last_seen": str,
            "backlog": int,
            "dead_letters": int,
            "app_version": str,
            "last_sync": str,
            "battery": float,
            "recent_presses": str,  # JSON list of the latest device press times, for the misuse filter
            "silent_since": str,  # set when a kiosk.silent event fired; cleared by the next heartbeat
        },
        pk="id",
        not_null=["touchpoint", "token_hash", "enrolled_at"],
        foreign_keys=[("touchpoint", "touchpoints", "token")],
        if_not_exists=True,
    )
    db.table("kiosks").create_index(["token_hash"], unique=True, if_not_exists=True)
    db.table("kiosk_enrollments").create(
        {
            "code_hash": str,
            "touchpoint": str,
            "created_at": str,
            "created_by": str,
            "expires_at": str,
            "used_at": str,
            "kiosk": str,
        },
        pk="code_hash",
        not_null=["touchpoint", "created_at", "expires_at"],
        if_not_exists=True,
    )
    db.table("kiosk_invitations").create(
        {
            "id": str,
            "kiosk": str,
            "case_ref": str,
            "service": str,
            "officer": str,
            "created_at": str,
            "created_by": str,
            "expires_at": str,
            "delivered_at": str,
        },
        pk="id",
        not_null=["kiosk", "case_ref", "created_at", "expires_at"],
        if_not_exists=True,
    )
    db.table("kiosk_invitations").create_index(["kiosk", "delivered_at"], if_not_exists=True)
    # Which device a kiosk response came from (the misuse filter and fleet health need it).
    if "device" not in db.table("responses").columns_dict:
        db.execute("ALTER TABLE responses ADD COLUMN device TEXT")


@migrations()
def m005_unit_day_rollups(db: sqlite_utils.Database) -> None:
    """A coarser rollup (unit × day) for the common questions: a unit's subtree by unit, day, week or
    month, with no service or touchpoint filter. About ten times fewer rows to add up."""
    level_columns = ", ".join(f"{level} INTEGER NOT NULL DEFAULT 0" for level in LEVELS)
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS rollups_unit_day (
            unit TEXT NOT NULL, day TEXT NOT NULL,
            n INTEGER NOT NULL DEFAULT 0, satisfied INTEGER NOT NULL DEFAULT 0,
            dissatisfied INTEGER NOT NULL DEFAULT 0, score_n INTEGER NOT NULL DEFAULT 0,
            score_sum REAL NOT NULL DEFAULT 0, {level_columns}, suspect INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (unit, day)
        ) WITHOUT ROWID"""
    )
    measures = ("n", "satisfied", "dissatisfied", "score_n", "score_sum", *LEVELS, "suspect")
    db.execute(
        f"INSERT OR REPLACE INTO rollups_unit_day (unit, day, {', '.join(measures)}) "
        f"SELECT unit, day, {', '.join(f'sum({m})' for m in measures)} FROM rollups GROUP BY unit, day"
    )


@migrations()
def m006_quality(db: sqlite_utils.Database) -> None:
    """Quality objectives, corrective actions (append-only events), the delivery outbox, job runs."""
    units = db.table("units").columns_dict
    for column, kind in (
        ("country", "TEXT"),
        ("owner", "TEXT"),
        ("action_days", "INTEGER"),
        ("public_results", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if column not in units:
            db.execute(f"ALTER TABLE units ADD COLUMN {column} {kind}")
    if "lang" not in db.table("users").columns_dict:
        db.execute("ALTER TABLE users ADD COLUMN lang TEXT")
    db.execute(
        """CREATE TABLE IF NOT EXISTS objectives (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            unit TEXT NOT NULL REFERENCES units(code),
            created_at TEXT NOT NULL, created_by TEXT,
            retired_from TEXT,  -- local day from which the objective no longer applies
            retired_at TEXT, retired_by TEXT
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS objectives_unit ON objectives (unit)")
    # A change is a new version from a day on; past periods keep the target that was in force.
    db.execute(
        """CREATE TABLE IF NOT EXISTS objective_versions (
            objective INTEGER NOT NULL REFERENCES objectives(id),
            version INTEGER NOT NULL,
            valid_from TEXT NOT NULL,
            title TEXT, metric TEXT NOT NULL, indicator TEXT, service TEXT,
            comparator TEXT NOT NULL, target REAL NOT NULL, period TEXT NOT NULL,
            min_n INTEGER NOT NULL, owner TEXT, method TEXT NOT NULL DEFAULT 'wilson',
            created_at TEXT NOT NULL, created_by TEXT,
            PRIMARY KEY (objective, version)
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS objective_states (
            objective INTEGER NOT NULL, period TEXT NOT NULL, status TEXT NOT NULL,
            value REAL, n INTEGER, low REAL, high REAL, signals TEXT, evaluated_at TEXT NOT NULL,
            PRIMARY KEY (objective, period)
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,               -- work_order | callback | nonconformity | manual
            source_key TEXT NOT NULL UNIQUE,  -- one action per response id / objective period
            source_type TEXT NOT NULL,        -- response | objective | manual
            response_id TEXT, objective_id INTEGER, period TEXT,
            unit TEXT NOT NULL, service TEXT, touchpoint TEXT, indicator TEXT,
            title TEXT NOT NULL, status TEXT NOT NULL, owner TEXT,
            due TEXT,                          -- local day
            opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, closed_at TEXT,
            escalated_to TEXT, escalated_at TEXT, due_soon_at TEXT, overdue_at TEXT,
            watch_from TEXT, watch_until TEXT, watch_extensions INTEGER NOT NULL DEFAULT 0,
            target REAL, baseline REAL, reopen_count INTEGER NOT NULL DEFAULT 0,
            created_by TEXT, data TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS actions_unit_status ON actions (unit, status)")
    db.execute("CREATE INDEX IF NOT EXISTS actions_status_due ON actions (status, due)")
    db.execute("CREATE INDEX IF NOT EXISTS actions_response ON actions (response_id)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS action_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            action INTEGER NOT NULL REFERENCES actions(id),
            type TEXT NOT NULL, from_status TEXT, to_status TEXT,
            actor TEXT NOT NULL, at TEXT NOT NULL, note TEXT,
            correction TEXT, root_cause TEXT, similar_cases TEXT, action_taken TEXT, result TEXT,
            explanation TEXT, due TEXT, data TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS action_events_action ON action_events (action, seq)")
    # ISO 9001 7.5: the record of each step is append-only; the database itself refuses edits.
    for verb in ("UPDATE", "DELETE"):
        for table in ("action_events", "objective_versions"):
            dialect_sqlite.refuse_changes(db, f"{table}_no_{verb.lower()}", table, verb, f"{table} is append-only")
    # Mails and webhook deliveries: written durably, then delivered (and retried) by a job.
    db.execute(
        """CREATE TABLE IF NOT EXISTS outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel TEXT NOT NULL,            -- mail | webhook | a plugin's own
            dedupe_key TEXT NOT NULL UNIQUE,  -- the same event to the same target is queued once
            event_id TEXT, event_type TEXT, target TEXT NOT NULL,
            payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL, claimed_until TEXT,
            delivered_at TEXT, failed_at TEXT, last_error TEXT, created_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (channel, delivered_at, next_attempt_at)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS job_runs (
            name TEXT PRIMARY KEY, last_started_at TEXT, last_finished_at TEXT, last_error TEXT,
            runs INTEGER NOT NULL DEFAULT 0
        )"""
    )


@migrations()
def m008_comment_search(db: sqlite_utils.Database) -> None:
    """Full-text search over comments (FTS5), and an hourly rollup for the weekday × hour heatmap.

    `comment_search` is keyed by the responses rowid. The trigram tokenizer matches any three
    characters, so Vietnamese, Russian and Chinese text (no spaces between words) are all found by
    a substring; shorter search words fall back to LIKE over the unit's responses.
    `heatmap_rollups` counts responses by unit × local day × UTC hour of occurred_at: the local hour
    and weekday follow from the unit's time zone when read, so ingest needs nothing but the row.
    """
    dialect_sqlite.create_comment_search(db)
    level_columns = ", ".join(f"{level} INTEGER NOT NULL DEFAULT 0" for level in LEVELS)
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS heatmap_rollups (
            unit TEXT NOT NULL, day TEXT NOT NULL, hour INTEGER NOT NULL,
            n INTEGER NOT NULL DEFAULT 0, satisfied INTEGER NOT NULL DEFAULT 0,
            dissatisfied INTEGER NOT NULL DEFAULT 0, score_n INTEGER NOT NULL DEFAULT 0,
            score_sum REAL NOT NULL DEFAULT 0, {level_columns}, suspect INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (unit, day, hour)
        ) WITHOUT ROWID"""
    )
    db.execute(HEATMAP_BACKFILL)


# The same sums add_to_rollups keeps, straight from the responses (suspect: any flag that is not
# merely informational).
HEATMAP_BACKFILL = """
INSERT OR REPLACE INTO heatmap_rollups (unit, day, hour, n, satisfied, dissatisfied, score_n, score_sum,
                                        l1, l2, l3, l4, l5, suspect)
SELECT unit, day, hour, count(level) FILTER (WHERE NOT bad), total(satisfied) FILTER (WHERE NOT bad),
       total(dissatisfied) FILTER (WHERE NOT bad), count(score) FILTER (WHERE NOT bad),
       total(score) FILTER (WHERE NOT bad), count(*) FILTER (WHERE level = 1 AND NOT bad),
       count(*) FILTER (WHERE level = 2 AND NOT bad), count(*) FILTER (WHERE level = 3 AND NOT bad),
       count(*) FILTER (WHERE level = 4 AND NOT bad), count(*) FILTER (WHERE level = 5 AND NOT bad),
       count(*) FILTER (WHERE bad)
FROM (SELECT unit, day, CAST(substr(occurred_at, 12, 2) AS INTEGER) AS hour, level, satisfied, dissatisfied,
             score, EXISTS (SELECT 1 FROM json_each(flags)
                            WHERE value NOT IN ('clock_skew', 'scoring_failed')) AS bad
      FROM responses)
GROUP BY unit, day, hour
"""


def all_migration_sets(plugins: PluginManager) -> list[sqlite_utils.Migrations]:
    """The core set first, then every set a plugin registers."""
    sets = [migrations]
    sets.extend(flatten(plugins.hook.register_migrations()))
    names = [m.name for m in sets]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"migration set names registered twice: {sorted(duplicates)}")
    return sets


def plugin_tables(plugins: PluginManager) -> list[tables.Table]:
    """Every table the plugins declare (`register_tables`). A declaration that fails stops the migration
    (a table the plugin counts on must not be silently missing), naming the plugin and the error."""
    before = dict(plugins.failures.counts)
    declared = flatten(plugins.hook.register_tables())
    for key, count in plugins.failures.counts.items():
        if key.endswith(".register_tables") and count > before.get(key, 0):
            plugin = key.removesuffix(".register_tables")
            raise tables.TableSpecError(f"plugin {plugin}: register_tables failed: {plugins.failures.last[key]}")
    tables.check_distinct(declared)
    for table in declared:
        if isinstance(table, tables.Table) and table.core:
            raise tables.TableSpecError(f"table {table.name!r}: `core` is for the core's own tables")
    return declared


def apply_all(db: sqlite_utils.Database | PostgresDatabase, plugins: PluginManager) -> None:
    """Bring a database up to the schema. SQLite: the core set, the plugins' sets, then the core's and
    the plugins' declared tables (created or topped up). PostgreSQL: `apply_postgres`."""
    if isinstance(db, PostgresDatabase):
        apply_postgres(db.conn, plugins)
        return
    for migration_set in all_migration_sets(plugins):
        migration_set.apply(db)
    tables.migrate(db.conn, [*schema.CORE_SCHEMA, *plugin_tables(plugins)])
    install_refusals(db.conn)
    audit.baseline(db.conn)


def install_refusals(conn: Connection) -> None:
    """The triggers that refuse changes (`schema.REFUSED_CHANGES`) a database lacks, e.g. one made before
    a table joined the list: checked at every start, created only when missing."""
    found = dialect.of(conn)
    missing = [refusal for refusal in schema.REFUSED_CHANGES if not found.has_trigger(conn, refusal[0], refusal[1])]
    if not missing:
        return
    with found.write_transaction(conn):
        for name, table, verb, message in missing:
            if not found.has_trigger(conn, name, table):
                found.refuse_changes(conn, name, table, verb, message)


def apply_postgres(conn: Connection, plugins: PluginManager) -> None:
    """A PostgreSQL database is made from the specs: the core's tables, their triggers and the comment
    search, then the plugins' tables; later columns and indexes are added the same way. Under the
    writer lock, so nodes starting together do it once."""
    sets = all_migration_sets(plugins)[1:]
    if sets:
        raise tables.TableSpecError(
            f"migration set {sets[0].name!r}: SQLite migrations cannot run on PostgreSQL;"
            " declare the plugin's tables with register_tables instead"
        )
    declared = plugin_tables(plugins)
    if tables.plan(conn, [*schema.CORE_SCHEMA, *declared]):
        _create_postgres(conn, declared)
    install_refusals(conn)
    audit.baseline(conn)


def _create_postgres(conn: Connection, declared: list[tables.Table]) -> None:
    with dialect_postgres.write_transaction(conn):
        new = not dialect_postgres.table_columns(conn, "responses")
        tables.migrate(conn, [*schema.CORE_SCHEMA, *declared])
        if new:
            for name, table, verb, message in schema.REFUSED_CHANGES:
                dialect_postgres.refuse_changes(conn, name, table, verb, message)
            dialect_postgres.create_comment_search(conn)
            dialect_postgres.create_notify_triggers(conn)


@migrations()
def m007_manage_sessions(db: sqlite_utils.Database) -> None:
    # Server-side sessions of the manager web app: the cookie holds a random id, the table only its
    # SHA-256, so a copy of the database cannot be used to sign in.
    db.execute(
        """CREATE TABLE IF NOT EXISTS sessions (
            id TEXT PRIMARY KEY,               -- sha256 of the cookie value
            user TEXT NOT NULL REFERENCES users(name),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            lang TEXT
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user)")
    db.execute("CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at)")
    # Failed sign-ins per (lower-cased) user name, for the lockout; kept in SQLite so every worker
    # sees the same count. Names that do not exist are counted the same way.
    db.execute(
        """CREATE TABLE IF NOT EXISTS login_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL,
            at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS login_attempts_user ON login_attempts (username, at)")


@migrations()
def m009_survey_drafts(db: sqlite_utils.Database) -> None:
    # Editable drafts of a survey's next version; a published version never changes, a draft may,
    # until it is published (then it is deleted) or discarded.
    db.execute(
        """CREATE TABLE IF NOT EXISTS survey_drafts (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL,
            base_version INTEGER,              -- the published version it started from; NULL = a template
            definition TEXT NOT NULL,          -- SurveyDefinition as JSON
            created_by TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS survey_drafts_slug ON survey_drafts (slug)")


@migrations()
def m010_outbox_pruned_keys(db: sqlite_utils.Database) -> None:
    # The outbox prune job deletes old delivered and given-up rows; the dedupe key of each (the
    # first 16 bytes of its SHA-256, so no address outlives the row) stays here, and the outbox
    # never queues that key again.
    db.execute("CREATE TABLE IF NOT EXISTS outbox_pruned (key BLOB PRIMARY KEY) WITHOUT ROWID")


@migrations()
def m011_api_token_ids(db: sqlite_utils.Database) -> None:
    # A public id for each API token, so a token can be listed and revoked without its hash ever
    # leaving the database.
    if "id" not in db.table("api_tokens").columns_dict:
        db.execute("ALTER TABLE api_tokens ADD COLUMN id TEXT")
    db.execute("UPDATE api_tokens SET id = 't' || lower(hex(randomblob(6))) WHERE id IS NULL")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_id ON api_tokens (id)")
    db.execute("CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens (user)")


@migrations()
def m012_kiosk_enroll_attempts(db: sqlite_utils.Database) -> None:
    # Enrollment codes tried per client (a keyed hash of its address, never the address), for the
    # limit on wrong codes; in SQLite so every worker counts the same attempts. Deleted after the window.
    db.execute(
        """CREATE TABLE IF NOT EXISTS kiosk_enroll_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            client TEXT NOT NULL,
            at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS kiosk_enroll_attempts_client ON kiosk_enroll_attempts (client, at)")


@migrations()
def m013_case_verified(db: sqlite_utils.Database) -> None:
    # Whether a response's case reference was vouched for (a signed link, the kiosk's own invitation, an
    # authenticated integration). Only a verified one makes a later rating of the same case a duplicate.
    # Responses stored before keep 0: nothing vouched for their references then.
    if "case_verified" not in db["responses"].columns_dict:
        db.execute("ALTER TABLE responses ADD COLUMN case_verified INTEGER NOT NULL DEFAULT 0")
    # Kiosk sync asks whether a tap's case came in an invitation to that very kiosk.
    db.execute("CREATE INDEX IF NOT EXISTS kiosk_invitations_case ON kiosk_invitations (kiosk, case_ref)")


@migrations()
def m014_event_log(db: sqlite_utils.Database) -> None:
    # Every event, written in the transaction that caused it and dispatched to `track_event` after:
    # a crash between the two leaves the event here, never lost. `seq` orders the events of each
    # aggregate (the thing an event is about, e.g. "action:42"); `id` is the event's stable id, so a
    # replayed write inserts nothing. A pending event may be leased to a dispatcher ('' when not).
    db.execute(
        """CREATE TABLE IF NOT EXISTS event_log (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            aggregate TEXT NOT NULL,
            created_at TEXT NOT NULL,
            data TEXT,                                -- JSON; NULL for response.stored (read from the response)
            claimed_by TEXT NOT NULL DEFAULT '',
            claimed_until TEXT NOT NULL DEFAULT '',
            dispatched_at TEXT
        )"""
    )
    # Only pending events are indexed: the dispatcher's claims and the per-aggregate order check.
    db.execute("CREATE INDEX IF NOT EXISTS event_log_pending ON event_log (aggregate, seq) WHERE dispatched_at IS NULL")


@migrations()
def m015_unit_complaint_levels(db: sqlite_utils.Database) -> None:
    # The rating levels at which one response opens a complaint action (a JSON list such as [1, 2];
    # [] for none); NULL: as the nearest unit above that sets it, else the default.
    if "complaint_levels" not in db["units"].columns_dict:
        db.execute("ALTER TABLE units ADD COLUMN complaint_levels TEXT")


@migrations()
def m016_objective_titles(db: sqlite_utils.Database) -> None:
    # An objective's title in each language it was given in (a JSON object such as {"vi": …, "en": …});
    # NULL: only the one `title`.
    if "titles" not in db["objective_versions"].columns_dict:
        db.execute("ALTER TABLE objective_versions ADD COLUMN titles TEXT")


@migrations()
def m017_case_ref_index_partial(db: sqlite_utils.Database) -> None:
    # Only responses that name a case need the (touchpoint, case_ref) entry that finds a case already
    # rated; most name none, and leaving them out spares every such insert one index update.
    db.execute("DROP INDEX IF EXISTS idx_responses_touchpoint_case_ref")
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_responses_touchpoint_case_ref ON responses (touchpoint, case_ref)"
        " WHERE case_ref IS NOT NULL"
    )
