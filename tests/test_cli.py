"""The command line as an operator uses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.conftest import make_org, run_cli


def test_init_creates_and_migrates_idempotently(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    first = run_cli("init", "--db", str(db))
    assert first.returncode == 0, first.stderr
    assert run_cli("init", "--db", str(db)).returncode == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "units",
        "services",
        "touchpoints",
        "surveys",
        "survey_versions",
        "responses",
        "rollups",
        "rollup_indicators",
        "exposure",
        "users",
        "api_tokens",
        "contacts",
    } <= tables


def test_token_create_prints_the_token_alone_on_the_last_line(tmp_path: Path, start_server) -> None:
    org = make_org(tmp_path / "f.db")
    result = run_cli("token", "create", "--db", str(org.db), "--user", "hoa", "--role", "viewer", "--unit", "A1")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("fbk_") and " " not in token
    conn = sqlite3.connect(org.db)
    stored = conn.execute("SELECT token_hash FROM api_tokens WHERE user = 'hoa'").fetchone()[0]
    assert token not in stored  # stored hashed
    srv = start_server(org.db)
    units = httpx.get(f"{srv.url}/api/v1/units", headers={"Authorization": f"Bearer {token}"}).json()
    assert [u["code"] for u in units] == ["A1", "A1a"]


def test_token_create_for_an_unknown_unit_fails_clearly(tmp_path: Path) -> None:
    org = make_org(tmp_path / "f.db")
    result = run_cli("token", "create", "--db", str(org.db), "--user", "x", "--unit", "NOPE")
    assert result.returncode != 0
    assert "unit" in result.stderr and "NOPE" in result.stderr


def test_published_survey_versions_are_immutable(tmp_path: Path) -> None:
    org = make_org(tmp_path / "f.db")
    conn = sqlite3.connect(org.db)
    try:
        conn.execute("UPDATE survey_versions SET definition = '{}' WHERE slug = 'csat'")
    except sqlite3.DatabaseError as error:
        assert "immutable" in str(error)
    else:
        raise AssertionError("a published version was changed")
