"""Job runs: when each periodic job last started and finished, so one run per interval is claimed
across every server process."""

from __future__ import annotations

from typing import Any

from feedback.store import Connection, all_rows


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
    """Record the end of a run, and when the job last succeeded or last failed (`error` set)."""
    outcome = "last_success_at" if error is None else "last_failure_at"
    conn.execute(
        f"UPDATE job_runs SET last_finished_at = ?, last_error = ?, {outcome} = ? WHERE name = ?",
        (finished_at, error, finished_at, name),
    )


def outcomes(conn: Connection) -> list[dict[str, Any]]:
    """Every job that has run: name, last_success_at, last_failure_at (None when it never did)."""
    return all_rows(conn, "SELECT name, last_success_at, last_failure_at FROM job_runs ORDER BY name")
