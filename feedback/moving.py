"""`feedback migrate --from FILE --to postgresql://…`: an SQLite database copied into an empty PostgreSQL
one, so an agency that outgrows one box keeps every rating, action and record.

The source is brought up to the schema first (as `feedback init` would), the target is made from the
same specs, then every core and plugin table is copied in key order with COPY, with the comment
search filled in one pass afterwards instead of row by row, and each identity sequence moved past the
copied keys. The whole copy is one transaction on the target: it lands complete or not at all. Then
the rows are counted on both sides; any difference fails the command (exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from feedback.db import PostgresDatabase, open_utils
from feedback.errors import FeedbackError, InvalidInput
from feedback.migrations import apply_all, plugin_tables
from feedback.plugins import PluginManager
from feedback.store import copying, dialect_postgres, schema
from feedback.store.dialect import is_postgres_url


class TargetNotEmpty(FeedbackError):
    """The PostgreSQL database already holds data: a copy would mix two installations."""


def copy_sqlite_to_postgres(
    source: str, target: str, plugins: PluginManager, report: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """Copy `source` (an SQLite file) into `target` (an empty PostgreSQL database); returns the summary
    {"tables": {name: rows}, "seconds": …}. Raises InvalidInput for bad arguments, TargetNotEmpty,
    and RuntimeError when the counts differ after the copy."""
    if is_postgres_url(source):
        raise InvalidInput("--from: the source is an SQLite file", "from")
    if not is_postgres_url(target):
        raise InvalidInput("--to: the target is a postgresql:// URL", "to")
    started = time.monotonic()
    source_db = open_utils(source)
    target_db = PostgresDatabase(target)
    try:
        existing = copying.user_tables(target_db.conn)
        if existing:
            raise TargetNotEmpty(
                f"--to: the database already has tables ({', '.join(existing[:5])}…); use an empty one"
            )
        apply_all(source_db, plugins)
        apply_all(target_db, plugins)
        specs = [*schema.CORE_SCHEMA, *plugin_tables(plugins)]
        conn = target_db.conn
        with dialect_postgres.write_transaction(conn):
            copying.set_trigger(conn, "responses", "responses_comment_search", enabled=False)
            for table in specs:
                copied = 0
                for rows in copying.read_rows(source_db.conn, table):
                    copying.write_rows(conn, table, rows)
                    copied += len(rows)
                    if report:
                        report(table.name, copied)
                copying.move_identity_past_keys(conn, table)
            copying.set_trigger(conn, "responses", "responses_comment_search", enabled=True)
            dialect_postgres.fill_comment_search(conn)
        counts = {table.name: copying.count_rows(conn, table.name) for table in specs}
        expected = {table.name: copying.count_rows(source_db.conn, table.name) for table in specs}
    finally:
        source_db.close()
        target_db.close()
    differ = {name: (expected[name], counts[name]) for name in counts if counts[name] != expected[name]}
    if differ:
        raise RuntimeError(f"row counts differ after the copy (source, target): {differ}")
    return {"tables": counts, "seconds": round(time.monotonic() - started, 2)}
