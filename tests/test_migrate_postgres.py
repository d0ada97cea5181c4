"""`feedback migrate --from FILE --to postgresql://…`: an SQLite installation moves to PostgreSQL and
the API answers as before (rates, actions, objectives, exports, comment search)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, connect, new_postgres_database, run_cli
from tests.manage_helpers import sign_in

pytestmark = pytest.mark.backends("postgresql")


def answers(server: Server, token: str, admin_password: str) -> dict[str, object]:
    """What the API and the manager pages say about the demo installation."""
    headers = {"Authorization": f"Bearer {token}"}
    today = date.today()
    period = {"from": (today - timedelta(days=60)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    found: dict[str, object] = {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        units = client.get("/api/v1/units").json()
        found["units"] = units
        for unit in ("HP", "KG", "GX"):
            for by in ("unit", "day", "service"):
                found[f"satisfaction {unit} {by}"] = client.get(
                    "/api/v1/satisfaction", params={"unit": unit, "by": by, **period}
                ).json()
            found[f"actions {unit}"] = client.get("/api/v1/actions", params={"unit": unit, "limit": 500}).json()
            found[f"kpis {unit}"] = client.get("/api/v1/kpis", params={"unit": unit, **period}).json()
            csv = client.get("/api/v1/exports/responses.csv", params={"unit": unit, **period})
            assert csv.status_code == 200
            found[f"csv {unit}"] = sorted(csv.text.splitlines())  # pages by (day, key): same rows, same day order
        objectives = client.get("/api/v1/objectives").json()
        found["objectives"] = objectives
        for objective in objectives[:5]:
            found[f"objective {objective['id']}"] = client.get(f"/api/v1/objectives/{objective['id']}/status").json()
        listed = found["actions HP"]
        first_action = listed[0]["id"] if listed else None  # type: ignore[index]
        if first_action:
            found["action events"] = client.get(f"/api/v1/actions/{first_action}/events").json()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client, server, "admin", admin_password)
        for word in ("HƯỚNG DẪN", "hẹn", "kiosk", "lỗi"):
            html = client.get("/manage/units/HP/responses", params={"q": word, **period}).text
            found[f"search {word}"] = re.findall(r'<td class="dash-comment">(.*?)</td>', html, re.S)
    return found


def test_an_sqlite_installation_moves_to_postgresql_and_answers_as_before(tmp_path: Path, backend: str) -> None:
    source = tmp_path / "demo.db"
    built = run_cli("demo", "--db", str(source), "--days", "20")
    assert built.returncode == 0, built.stderr
    demo = json.loads(built.stdout)
    admin_password = next(user["password"] for user in demo["sign_in"] if user["user"] == "admin")
    before = Server(source).start()
    try:
        expected = answers(before, demo["admin_token"], admin_password)
    finally:
        before.stop()
    # Which words HP's latest comments hold depends on the day the demo is built: a capitalised word with
    # marks, and at least one other, must find something for the comparison below to mean anything.
    others = [expected[f"search {word}"] for word in ("hẹn", "kiosk", "lỗi")]
    assert expected["search HƯỚNG DẪN"] and any(others), "the demo has comments to search"
    assert len(expected["csv HP"]) > 100 and expected["actions HP"], "the period holds the demo's history"  # type: ignore[arg-type]

    target = new_postgres_database()
    moved = run_cli("migrate", "--from", str(source), "--to", target)
    assert moved.returncode == 0, moved.stderr
    summary = json.loads(moved.stdout)
    conn = connect(source)
    try:
        for table, copied in summary["tables"].items():
            assert copied == conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0], table
    finally:
        conn.close()
    assert summary["tables"]["responses"] > 1000 and summary["tables"]["actions"] > 0

    after = Server(target).start()
    try:
        assert answers(after, demo["admin_token"], admin_password) == expected
        # The sequences moved past the copied keys: a new action takes a new id.
        created = httpx.post(
            f"{after.url}/api/v1/actions",
            json={"unit": "HP", "title": "Signage", "owner": "admin"},
            headers={"Authorization": f"Bearer {demo['admin_token']}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        assert created.json()["id"] > max(item["id"] for item in expected["actions HP"])  # type: ignore[attr-defined]
    finally:
        after.stop()

    again = run_cli("migrate", "--from", str(source), "--to", target)
    assert again.returncode == 1 and "already has tables" in again.stderr


def test_migrate_names_the_bad_argument(tmp_path: Path, backend: str) -> None:
    missing = run_cli("migrate", "--from", str(tmp_path / "none.db"), "--to", "postgresql://x@/y")
    assert missing.returncode == 2 and "--from" in missing.stderr
    not_a_url = run_cli("migrate", "--from", str(tmp_path / "none.db"), "--to", str(tmp_path / "other.db"))
    assert not_a_url.returncode == 2 and "--to" in not_a_url.stderr
