"""The organisation: units, services, touchpoints and per-unit settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback.store import Connection, all_rows, first_row, marks, scalar, unique


def unit_tz(conn: Connection, code: str) -> str | None:
    """A unit's time zone, or None for an unknown unit."""
    return scalar(conn, "SELECT tz FROM units WHERE code = ?", (code,))


def unit_exists(conn: Connection, code: str) -> bool:
    return scalar(conn, "SELECT 1 FROM units WHERE code = ?", (code,)) is not None


def first_touchpoint_per_root(conn: Connection, kind: str) -> dict[str, str]:
    """For each top-level unit (agency), the first token of its touchpoints of this kind."""
    rows = all_rows(
        conn,
        "SELECT u.path, t.token FROM touchpoints t JOIN units u ON u.code = t.unit WHERE t.kind = ? ORDER BY t.token",
        (kind,),
    )
    found: dict[str, str] = {}
    for row in rows:
        found.setdefault(row["path"].strip("/").split("/")[0], row["token"])
    return found


# -- units -------------------------------------------------------------------------------------------


def unit_path(conn: Connection, code: str) -> str | None:
    """A unit's path ("/ROOT/CHILD/"), or None for an unknown unit."""
    return scalar(conn, "SELECT path FROM units WHERE code = ?", (code,))


def unit_lang(conn: Connection, code: str) -> str | None:
    return scalar(conn, "SELECT lang FROM units WHERE code = ?", (code,))


def insert_unit(
    conn: Connection,
    code: str,
    name: str,
    names: str | None,
    parent: str | None,
    lang: str,
    tz: str,
    path: str,
    created_at: str,
) -> None:
    """A new unit; Conflict naming `code` when the code is taken (the primary key decides)."""
    with unique(conn, f"code: unit {code!r} exists", "code"):
        conn.execute(
            "INSERT INTO units (code, name, names, parent, lang, tz, path, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (code, name, names, parent, lang, tz, path, created_at),
        )


def update_unit(conn: Connection, code: str, values: dict[str, Any]) -> None:
    """Set columns of a unit: its settings (owner, country, action_days, public_results, complaint_levels,
    retention) or its names (name, names, lang)."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(f"UPDATE units SET {assignments} WHERE code = ?", (*values.values(), code))


def complaint_levels_of(conn: Connection, codes: Sequence[str]) -> dict[str, str | None]:
    """code → `complaint_levels` (JSON text, or None when the unit follows the one above) of these units."""
    if not codes:
        return {}
    found = all_rows(conn, f"SELECT code, complaint_levels FROM units WHERE code IN ({marks(codes)})", codes)
    return {row["code"]: row["complaint_levels"] for row in found}


def retention_of(conn: Connection, codes: Sequence[str]) -> dict[str, str | None]:
    """code → `retention` (JSON text of the kinds the unit sets, or None) of these units."""
    if not codes:
        return {}
    found = all_rows(conn, f"SELECT code, retention FROM units WHERE code IN ({marks(codes)})", codes)
    return {row["code"]: row["retention"] for row in found}


def unit_columns(conn: Connection, code: str, columns: Sequence[str]) -> dict[str, Any] | None:
    """These columns of a unit, or None for an unknown unit."""
    return first_row(conn, f"SELECT {', '.join(columns)} FROM units WHERE code = ?", (code,))


# -- services ----------------------------------------------------------------------------------------


def service_exists(conn: Connection, code: str) -> bool:
    return scalar(conn, "SELECT 1 FROM services WHERE code = ?", (code,)) is not None


def insert_service(
    conn: Connection, code: str, name: str, names: str | None, kind: str, agency: str | None, created_at: str
) -> None:
    """A new service; Conflict naming `code` when the code is taken (the primary key decides)."""
    with unique(conn, f"code: service {code!r} exists", "code"):
        conn.execute(
            "INSERT INTO services (code, name, names, kind, agency, created_at) VALUES (?,?,?,?,?,?)",
            (code, name, names, kind, agency, created_at),
        )


def update_service(conn: Connection, code: str, values: dict[str, Any]) -> None:
    """Set columns of a service (name, names, kind)."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(f"UPDATE services SET {assignments} WHERE code = ?", (*values.values(), code))


# -- touchpoints -------------------------------------------------------------------------------------


def update_touchpoint(conn: Connection, token: str, values: dict[str, Any]) -> None:
    """Set columns of a touchpoint (name, lang, survey, counter, service)."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(f"UPDATE touchpoints SET {assignments} WHERE token = ?", (*values.values(), token))


def insert_touchpoint(conn: Connection, row: dict[str, Any]) -> bool:
    """A new touchpoint (token, short_code, name, unit, lang, survey, kind, counter, service, created_at).

    False when its short code is taken (draw another); Conflict naming `token` when the token is."""
    columns = list(row)
    with unique(conn, f"token: touchpoint {row['token']!r} exists", "token"):
        cursor = conn.execute(
            f"INSERT INTO touchpoints ({', '.join(columns)}) VALUES ({marks(columns)})"
            " ON CONFLICT (short_code) DO NOTHING",
            [row[c] for c in columns],
        )
    return cursor.rowcount == 1


def retire_touchpoint(conn: Connection, token: str, at: str) -> bool:
    """Retire a live touchpoint in one statement; False when it is unknown or retired already."""
    cursor = conn.execute("UPDATE touchpoints SET retired_at = ? WHERE token = ? AND retired_at IS NULL", (at, token))
    return cursor.rowcount == 1


def touchpoint_retired_at(conn: Connection, token: str) -> tuple[bool, str | None]:
    """(whether the touchpoint exists, when it was retired)."""
    found = first_row(conn, "SELECT retired_at FROM touchpoints WHERE token = ?", (token,))
    return (found is not None, found["retired_at"] if found else None)


def touchpoint_stamps(conn: Connection) -> dict[str, dict[str, Any]]:
    """token → {token, retired_at, created_at} of every touchpoint."""
    return {row["token"]: row for row in all_rows(conn, "SELECT token, retired_at, created_at FROM touchpoints")}


def units_named(conn: Connection, codes: Sequence[str]) -> list[dict[str, Any]]:
    """code, name, names (JSON) and lang of these units."""
    if not codes:
        return []
    return all_rows(conn, f"SELECT code, name, names, lang FROM units WHERE code IN ({marks(codes)})", codes)


def unit_owner(conn: Connection, code: str) -> str | None:
    """The user who owns a unit (its manager), if any."""
    return scalar(conn, "SELECT owner FROM units WHERE code = ?", (code,))


# -- the whole organisation, for the catalog snapshot ------------------------------------------------


def all_units(conn: Connection) -> list[dict[str, Any]]:
    return all_rows(
        conn,
        "SELECT code, name, names, parent, lang, tz, path, country, owner, action_days, public_results,"
        " complaint_levels, retention FROM units",
    )


def all_services(conn: Connection) -> list[dict[str, Any]]:
    return all_rows(conn, "SELECT code, name, names, kind, agency FROM services")


def all_touchpoints(conn: Connection) -> list[dict[str, Any]]:
    return all_rows(
        conn, "SELECT token, short_code, name, unit, lang, survey, kind, counter, service, retired_at FROM touchpoints"
    )


def counts(conn: Connection) -> dict[str, int]:
    """How many units and touchpoints there are."""
    return {
        "units": int(scalar(conn, "SELECT count(*) FROM units", (), 0)),
        "touchpoints": int(scalar(conn, "SELECT count(*) FROM touchpoints", (), 0)),
    }
