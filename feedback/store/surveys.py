"""Surveys: published versions (immutable) and drafts being edited in the manager app."""

from __future__ import annotations

from typing import Any

from feedback.store import Connection, all_rows, first_row, scalar, unique


def is_published(conn: Connection, slug: str) -> bool:
    """Whether a survey has at least one published version."""
    return scalar(conn, "SELECT 1 FROM survey_versions WHERE slug = ? LIMIT 1", (slug,)) is not None


def published_slugs(conn: Connection) -> set[str]:
    """The surveys that have at least one published version."""
    return {row["slug"] for row in all_rows(conn, "SELECT DISTINCT slug FROM survey_versions")}


# -- drafts ------------------------------------------------------------------------------------------


def insert_draft(
    conn: Connection, slug: str, base_version: int | None, definition: str, created_by: str | None, at: str
) -> int:
    """Store a new draft (its definition as JSON); returns its id."""
    return int(
        scalar(
            conn,
            "INSERT INTO survey_drafts (slug, base_version, definition, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (slug, base_version, definition, created_by, at, at),
        )
    )


def update_draft(conn: Connection, draft_id: int, definition: str, at: str) -> None:
    conn.execute("UPDATE survey_drafts SET definition = ?, updated_at = ? WHERE id = ?", (definition, at, draft_id))


def delete_draft(conn: Connection, draft_id: int) -> bool:
    """Remove a draft; False when it was gone already (published or discarded by someone else)."""
    return scalar(conn, "DELETE FROM survey_drafts WHERE id = ? RETURNING id", (draft_id,)) is not None


def draft(conn: Connection, draft_id: int) -> dict[str, Any] | None:
    return first_row(conn, "SELECT * FROM survey_drafts WHERE id = ?", (draft_id,))


def drafts(conn: Connection, slug: str | None = None) -> list[dict[str, Any]]:
    """Open drafts (of one survey when `slug` is given), oldest first."""
    sql = "SELECT id, slug, base_version, definition, created_by, updated_at FROM survey_drafts"
    return all_rows(conn, sql + (" WHERE slug = ?" if slug else "") + " ORDER BY id", (slug,) if slug else ())


# -- published versions ------------------------------------------------------------------------------


def upsert_survey(conn: Connection, slug: str, title: str, at: str) -> None:
    """Create a survey or set its title (JSON of the titles by language)."""
    conn.execute(
        "INSERT INTO surveys (slug, title, created_at) VALUES (?, ?, ?) ON CONFLICT (slug) DO UPDATE"
        " SET title = excluded.title",
        (slug, title, at),
    )


def insert_next_version(conn: Connection, slug: str, definition: str, at: str) -> int:
    """Store `definition` as the survey's next version, numbered in the same statement; returns it.
    Two publications racing for one number: the key refuses the second (Conflict naming `survey`)."""
    with unique(conn, f"survey: another version of {slug!r} was published at the same moment; publish again", "survey"):
        return int(
            scalar(
                conn,
                "INSERT INTO survey_versions (slug, version, definition, published_at)"
                " SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM survey_versions WHERE slug = ? RETURNING version",
                (slug, definition, at, slug),
            )
        )


def all_versions(conn: Connection) -> list[dict[str, Any]]:
    """Every published version (slug, version, definition JSON, published_at), by slug and version."""
    return all_rows(conn, "SELECT slug, version, definition, published_at FROM survey_versions ORDER BY slug, version")
