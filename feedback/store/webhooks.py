"""Webhook registrations (the `webhooks` table of the built-in webhooks plugin) and their deliveries
as the outbox records them."""

from __future__ import annotations

from typing import Any

from feedback.store import Connection, all_rows, first_row, scalar
from feedback.store.dialect import Executes

COLUMNS = "id, url, events, created_at, created_by, disabled_at"


def create_table(conn: Executes) -> None:
    """The plugin's one table (its first migration)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS webhooks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT NOT NULL DEFAULT '["*"]',  -- JSON list of event types, "*" for all
            created_by TEXT, created_at TEXT NOT NULL,
            disabled_at TEXT                      -- disabled, never deleted: deliveries keep their record
        )"""
    )


def active(conn: Connection) -> list[dict[str, Any]]:
    """id and events (JSON list) of every webhook that is not disabled."""
    return all_rows(conn, "SELECT id, events FROM webhooks WHERE disabled_at IS NULL ORDER BY id")


def get(conn: Connection, webhook_id: int) -> dict[str, Any] | None:
    """A webhook without its secret, or None."""
    return first_row(conn, f"SELECT {COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,))


def listing(conn: Connection) -> list[dict[str, Any]]:
    """Every webhook, disabled ones too, without secrets."""
    return all_rows(conn, f"SELECT {COLUMNS} FROM webhooks ORDER BY id")


def insert(conn: Connection, url: str, secret: str, events: str, created_by: str | None, created_at: str) -> int:
    """Register a webhook (`events` a JSON list); returns its id."""
    return int(
        scalar(
            conn,
            "INSERT INTO webhooks (url, secret, events, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
            (url, secret, events, created_by, created_at),
        )
    )


def disable(conn: Connection, webhook_id: int, at: str) -> None:
    """Disable a webhook (a second call keeps the first time); it is never deleted."""
    conn.execute("UPDATE webhooks SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL", (at, webhook_id))


def deliveries(conn: Connection, channel: str, webhook_id: int, limit: int) -> list[dict[str, Any]]:
    """The newest outbox rows addressed to a webhook, newest first."""
    return all_rows(
        conn,
        "SELECT id, event_id, event_type, attempts, last_error, created_at, next_attempt_at, delivered_at,"
        " failed_at FROM outbox WHERE channel = ? AND target = ? ORDER BY id DESC LIMIT ?",
        (channel, str(webhook_id), limit),
    )


def target(conn: Connection, webhook_id: int) -> dict[str, Any] | None:
    """url, secret and disabled_at of a webhook (what a delivery needs), or None."""
    return first_row(conn, "SELECT url, secret, disabled_at FROM webhooks WHERE id = ?", (webhook_id,))
