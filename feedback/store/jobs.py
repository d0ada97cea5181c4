"""Job runs: when each periodic job last started and finished, so one run per interval is claimed
across every server process."""

from __future__ import annotations

from feedback.store import Connection


def claim_run(conn: Connection, name: str, now: str, not_after: str | None) -> bool:
    """Record a start of job `name` at `now`; with `not_after`, only if its last start was no later
    than that (one atomic UPDATE, so two processes never both claim one round). True when claimed."""
    conn.execute("INSERT INTO job_runs (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,))
    if not_after is None:
        conn.execute("UPDATE job_runs SET last_started_at = ?, runs = runs + 1 WHERE name = ?", (now, name))
        return True
    cursor = conn.execute(
        "UPDATE job_runs SET last_started_at = ?, runs = runs + 1"
        " WHERE name = ? AND (last_started_at IS NULL OR last_started_at <= ?)",
        (now, name, not_after),
    )
    return cursor.rowcount == 1


def finish_run(conn: Connection, name: str, finished_at: str, error: str | None) -> None:
    conn.execute("UPDATE job_runs SET last_finished_at = ?, last_error = ? WHERE name = ?", (finished_at, error, name))
