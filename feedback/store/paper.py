"""Paper forms: the serials printed on them and the survey version each carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, first_row

FORM_COLUMNS = ("serial", "touchpoint", "unit", "survey", "survey_version", "lang", "paper", "printed_at", "printed_by")


def register_forms(conn: Connection, forms: Sequence[dict[str, Any]]) -> None:
    """Record printed forms (each a dict of FORM_COLUMNS). Serials are random: a clash is a bug and
    raises the backend's IntegrityError rather than reusing a serial."""
    conn.executemany(
        f"INSERT INTO paper_forms ({', '.join(FORM_COLUMNS)}) VALUES ({', '.join('?' for _ in FORM_COLUMNS)})",
        [tuple(form[c] for c in FORM_COLUMNS) for form in forms],
    )


def form(conn: Connection, serial: str) -> dict[str, Any] | None:
    """The printed form with this (normalised) serial, or None."""
    return first_row(conn, f"SELECT {', '.join(FORM_COLUMNS)} FROM paper_forms WHERE serial = ?", (serial,))


def forms(conn: Connection, serials: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The printed forms with these (normalised) serials, by serial (those that exist)."""
    if not serials:
        return {}
    found = conn.execute(
        f"SELECT {', '.join(FORM_COLUMNS)} FROM paper_forms WHERE serial IN ({', '.join('?' for _ in serials)})",
        tuple(serials),
    ).fetchall()
    return {row[0]: dict(zip(FORM_COLUMNS, row, strict=True)) for row in found}
