"""The whole loop in plain words, on the demo organisation.

Hai Phong Customs' unit HP-KV1 had a bad fortnight at one counter. Its objective — at least 90 %
satisfied over 30 days — is breached, so a nonconformity opens for the unit's manager with a
deadline in Vietnamese working days. The manager records the cause and the action and asks for the
effectiveness review. Then the software watches the following weeks: when the ratings recover it
closes the action; when they do not, it reopens it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import httpx
import pytest

from tests.conftest import Server, auth_header, connect, new_postgres_database, run_cli
from tests.test_maintenance import copy_db

# SQLite only, to keep the suite within its time: the loop's store SQL runs on PostgreSQL in the
# two-backend modules (actions, objectives, maintenance, migrate).

UNIT = "HP-KV1"
OWNER = "hp-kv1.lead"
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
WATCH_WEEKS = 2
# The servers' secret for the commands too: a PostgreSQL database has no file beside it to keep one in.
SECRET = {"FEEDBACK_SECRET": "test-secret"}


def vn_working_days_after(start: date, count: int) -> date:
    """The `count`-th Vietnamese working day after `start`, straight from the holiday data."""
    calendar = holidays.country_holidays("VN", years=range(start.year, start.year + 2))
    day = start
    while count:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            count -= 1
    return day


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, backend: str) -> dict:
    folder = tmp_path_factory.mktemp("scenario")
    db: Path | str = folder / "demo.db"
    made = run_cli("demo", "--db", str(db), "--days", "45")
    assert made.returncode == 0, made.stderr[-2000:]
    summary = json.loads(made.stdout.strip().splitlines()[-1])
    if backend == "postgresql":  # the agency moves up: the demo's file copied into PostgreSQL
        url = new_postgres_database()
        moved = run_cli("migrate", "--from", str(db), "--to", url, env=SECRET)
        assert moved.returncode == 0, moved.stderr[-2000:]
        db = url
    token = run_cli("token", "create", "--db", str(db), "--user", OWNER, "--role", "manager", "--unit", UNIT)
    assert token.returncode == 0, token.stderr
    return {"db": db, "summary": summary, "manager": token.stdout.strip().splitlines()[-1], "folder": folder}


def serve(db: Path | str) -> Server:
    return Server(db, env={"FEEDBACK_EFFECTIVENESS_WEEKS": str(WATCH_WEEKS), "FEEDBACK_JOBS": "0"}).start()


def test_breach_opens_a_nonconformity_that_recovery_closes_and_relapse_reopens(demo: dict) -> None:
    db, admin = demo["db"], demo["summary"]["admin_token"]
    today = datetime.now(UTC).astimezone(HANOI).date()
    server = serve(db)
    try:
        # 1. The objective is breached: the bad fortnight is inside the last 30 days.
        objectives = httpx.get(
            f"{server.url}/api/v1/objectives", params={"unit": UNIT}, headers=auth_header(admin)
        ).json()
        rolling = next(o for o in objectives if o["unit"] == UNIT and o["period"] == "rolling_30")
        status = httpx.get(f"{server.url}/api/v1/objectives/{rolling['id']}/status", headers=auth_header(admin)).json()
        assert status["status"] == "breached", status
        assert status["ci95"][1] < 0.90 and status["n"] >= 30

        # 2. One nonconformity, for the unit's manager, due in 7 Vietnamese working days.
        queue = httpx.get(
            f"{server.url}/api/v1/actions",
            params={"unit": UNIT, "kind": "nonconformity"},
            headers=auth_header(demo["manager"]),
        ).json()
        assert len(queue) == 1, queue
        action = queue[0]
        assert action["owner"] == OWNER and action["status"] == "new"
        assert action["source"] == {"type": "objective", "objective": rolling["id"], "period": status["to"][:7]}
        opened = datetime.fromisoformat(action["opened_at"]).astimezone(HANOI).date()
        assert action["due"] == vn_working_days_after(opened, 7).isoformat()

        # Judging again (another tick) opens nothing new: one action per objective and period.
        again = run_cli("tick", "--db", str(db), "--job", "objectives.evaluate", env=SECRET)
        assert again.returncode == 0, again.stderr
        assert (
            len(
                httpx.get(
                    f"{server.url}/api/v1/actions",
                    params={"unit": UNIT, "kind": "nonconformity"},
                    headers=auth_header(admin),
                ).json()
            )
            == 1
        )

        # 3. The manager records cause and action, then asks for the effectiveness review.
        steps = [
            {"type": "verifying", "note": "Counter 3 reviewed with the team"},
            {
                "type": "action_planned",
                "due": (today + timedelta(days=3)).isoformat(),
                "root_cause": "One officer on leave; counter 3 ran with a trainee alone",
                "similar_cases": "Counter 1 checked: no similar drop",
                "action_taken": "Pair trainees with a senior officer; publish the checklist",
            },
            {
                "type": "implemented",
                "correction": "Trainee paired since Monday",
                "result": "Queue times back to normal",
            },
            {"type": "effectiveness_review", "note": "Watch the next weeks"},
        ]
        for step in steps:
            reply = httpx.post(
                f"{server.url}/api/v1/actions/{action['id']}/events", json=step, headers=auth_header(demo["manager"])
            )
            assert reply.status_code == 201, reply.text
        detail = httpx.get(f"{server.url}/api/v1/actions/{action['id']}", headers=auth_header(admin)).json()
        assert detail["status"] == "effectiveness_review"
        recorded = {e["to_status"]: e for e in detail["events"]}
        assert recorded["action_planned"]["root_cause"].startswith("One officer on leave")
        assert recorded["action_planned"]["actor"] == OWNER
    finally:
        server.stop()

    # Two futures from here: the ratings recover, or they do not.
    relapse_db = copy_db(db, demo["folder"] / "relapse.db")  # the WAL's pages too, unlike a file copy
    outcomes = {}
    # Recovered: every rating good, so the whole Wilson interval clears 90 % (58 of 60 would still be
    # undecided: 88.6 % to 99.1 %); relapsed: 33 of 60, the whole interval below it.
    for future, path, satisfied_share in (("recovered", db, 1.0), ("relapsed", relapse_db, 0.55)):
        server = serve(path)
        try:
            counter = demo["summary"]["bad_fortnight_touchpoint"]
            for i in range(60):  # the following weeks' ratings at the counter
                rating = 5 if i < int(60 * satisfied_share) else 2
                reply = httpx.post(
                    f"{server.url}/api/v1/responses", json={"touchpoint": counter, "answers": {"overall": rating}}
                )
                assert reply.status_code == 201
        finally:
            server.stop()
        later = datetime.now(UTC) + timedelta(weeks=WATCH_WEEKS, days=1)
        judged = run_cli(
            "tick",
            "--db",
            str(path),
            "--now",
            later.isoformat(),
            "--job",
            "actions.effectiveness",
            env={"FEEDBACK_EFFECTIVENESS_WEEKS": str(WATCH_WEEKS), **SECRET},
        )
        assert judged.returncode == 0, judged.stderr
        conn = connect(path)
        outcomes[future] = (
            conn.execute("SELECT status FROM actions WHERE id = ?", (action["id"],)).fetchone()["status"],
            [
                dict(r)
                for r in conn.execute(
                    "SELECT type, to_status, actor FROM action_events WHERE action = ? ORDER BY seq", (action["id"],)
                )
            ],
        )
        conn.close()

    # 4. Recovered: the software closes it, and says so in the record.
    status, events = outcomes["recovered"]
    assert status == "closed"
    assert events[-1]["to_status"] == "closed" and events[-1]["actor"] == "system"
    # 5. Not recovered: the software reopens it for the manager.
    status, events = outcomes["relapsed"]
    assert status == "reopened"
    assert events[-1]["to_status"] == "reopened" and events[-1]["actor"] == "system"
