"""The quality hooks (map_response, evaluate_triggers, corrective_action_assignee, register_jobs) and
the built-in rules, through a real server, a real SQLite file and the real `feedback tick`."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import date
from pathlib import Path

import httpx

from tests.conftest import auth_header, rows, run_cli, wait_for_dispatch
from tests.test_plugins import write_plugin


def add_objective(
    db: Path,
    unit: str,
    metric: str = "satisfaction",
    *,
    service: str | None = None,
    indicator: str | None = None,
    target: float = 0.9,
    owner: str | None = None,
) -> int:
    """An objective straight into the file, as the objectives API stores it."""
    conn = sqlite3.connect(db)
    with conn:
        cursor = conn.execute(
            "INSERT INTO objectives (unit, created_at, created_by) VALUES (?, '2026-01-01', 't')", (unit,)
        )
        objective = cursor.lastrowid
        conn.execute(
            "INSERT INTO objective_versions (objective, version, valid_from, metric, indicator, service, comparator,"
            " target, period, min_n, owner, created_at) VALUES (?, 1, '2020-01-01', ?, ?, ?, '>=', ?, 'month', 30,"
            " ?, '2026-01-01')",
            (objective, metric, indicator, service, target, owner),
        )
    conn.close()
    return objective


def read_events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


RECORDER = """
    import json
    from feedback import hookimpl

    @hookimpl
    def track_event(event):
        with open({log!r}, "a") as f:
            f.write(json.dumps({{"type": event.type, "id": event.id, "data": event.data}}) + "\\n")
"""


def test_hook_map_response(tmp_path: Path, org, start_server) -> None:
    log = tmp_path / "events.jsonl"
    on_a1 = add_objective(org.db, "A1")  # the counter's unit
    on_a = add_objective(org.db, "A")  # the agency above it
    other_service = add_objective(org.db, "A1", service="S2")
    add_objective(org.db, "B")  # another agency: never in force for A1's responses
    folder = write_plugin(
        tmp_path / "p",
        "mapper",
        """
        from feedback import hookimpl

        @hookimpl
        def map_response(response, objectives):
            # Only the objectives of the response's own unit.
            return [o.objective for o in objectives if o.unit == response.unit]
    """,
    )
    write_plugin(folder, "recorder", RECORDER.format(log=str(log)))
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    reply = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a1", "answers": {"overall": 4}})
    assert reply.status_code == 201
    wait_for_dispatch(org)
    stored = [e for e in read_events(log) if e["type"] == "response.stored"]
    # The built-in rule maps to A1's and A's objectives for service S1; the site plugin adds the
    # S2 objective of the same unit, and nobody maps B's.
    assert sorted(stored[0]["data"]["objectives"]) == sorted([on_a1, on_a, other_service])


def test_built_in_mapping_follows_service_and_indicator(tmp_path: Path, org, start_server) -> None:
    log = tmp_path / "events.jsonl"
    s1 = add_objective(org.db, "A1", service="S1")
    s2 = add_objective(org.db, "A1", service="S2")
    courtesy = add_objective(org.db, "A", metric="indicator_mean", indicator="staff_courtesy", target=80)
    overall = add_objective(org.db, "A", metric="indicator_mean", indicator="overall", target=80)
    rectification = add_objective(org.db, "A", metric="on_time_rectification")
    srv = start_server(
        org.db, feedback_plugins_dir=str(write_plugin(tmp_path / "p", "recorder", RECORDER.format(log=str(log))))
    )
    assert (
        httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a1", "answers": {"overall": 5}}).status_code
        == 201
    )
    wait_for_dispatch(org)
    hits = read_events(log)[0]["data"]["objectives"]
    assert s1 in hits and overall in hits
    assert s2 not in hits and courtesy not in hits and rectification not in hits


def test_hook_evaluate_triggers(tmp_path: Path, org, start_server) -> None:
    log = tmp_path / "events.jsonl"
    folder = write_plugin(
        tmp_path / "p",
        "refunds",
        """
        from feedback import hookimpl
        from feedback.models import ActionRequest

        @hookimpl
        def evaluate_triggers(response, hits):
            if response is None or "refund" not in (response.answers.get("comment") or ""):
                return None
            return ActionRequest(kind="work_order", source_key=f"response:{response.id}", unit=response.unit,
                                 title="Refund complaint", working_days=3, response_id=response.id,
                                 data={"hits": hits})
    """,
    )
    write_plugin(folder, "recorder", RECORDER.format(log=str(log)))
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 3, "comment": "refund please"}}
    for _ in range(3):  # replays open nothing more
        assert httpx.post(f"{srv.url}/api/v1/responses", json=body).status_code in (200, 201)
    assert (
        httpx.post(
            f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 3, "comment": "fine"}}
        ).status_code
        == 201
    )
    actions = rows(org, "SELECT * FROM actions")
    assert len(actions) == 1
    action = actions[0]
    assert (action["kind"], action["unit"], action["response_id"], action["title"]) == (
        "work_order",
        "A",
        body["id"],
        "Refund complaint",
    )
    # Three working days from the day it opened, on the unit's calendar.
    opened = date.fromisoformat(action["opened_at"][:10])
    assert (date.fromisoformat(action["due"]) - opened).days >= 3
    wait_for_dispatch(org)
    opened_events = [e for e in read_events(log) if e["type"] == "action.opened"]
    assert [e["id"] for e in opened_events] == [f"action.opened:{action['id']}"]


def test_haochaping_bad_review_opens_one_work_order(tmp_path: Path, org, start_server) -> None:
    conn = sqlite3.connect(org.db)
    with conn:
        conn.execute("UPDATE units SET country = 'CN', action_days = 5, owner = 'lan' WHERE code = 'A1'")
    conn.close()
    srv = start_server(org.db)
    bad = {"id": str(uuid.uuid4()), "touchpoint": "tp-a1a", "answers": {"overall": 2}, "case_ref": "450000-1"}
    for _ in range(2):
        assert httpx.post(f"{srv.url}/api/v1/responses", json=bad).status_code in (200, 201)
    good = {"touchpoint": "tp-a1a", "answers": {"overall": 4}}
    assert httpx.post(f"{srv.url}/api/v1/responses", json=good).status_code == 201
    actions = rows(org, "SELECT * FROM actions")
    assert len(actions) == 1
    action = actions[0]
    # The unit that handled the case (A1a) has no owner; the nearest unit above does.
    assert (action["kind"], action["unit"], action["owner"]) == ("work_order", "A1a", "lan")
    assert action["source_key"] == f"response:{bad['id']}" and "450000-1" in action["title"]
    assert action["title"].startswith("Đánh giá không hài lòng")  # in the unit's language
    listed = httpx.get(f"{srv.url}/api/v1/actions", params={"unit": "A"}, headers=auth_header(org.tokens["admin"]))
    assert [a["id"] for a in listed.json()] == [action["id"]]


def test_vash_kontrol_low_criterion_opens_a_call_back(tmp_path: Path, org, start_server) -> None:
    srv = start_server(org.db)
    survey = httpx.get(f"{srv.url}/api/v1/touchpoints/tp-b/survey").json()
    ratings = [q["key"] for q in survey["questions"] if q["kind"] == "rating"]
    fine = {key: 5 for key in ratings}
    low = {**fine, ratings[1]: 3}
    assert httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-b", "answers": fine}).status_code == 201
    reply = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-b", "answers": low})
    actions = rows(org, "SELECT kind, unit, response_id, title FROM actions")
    assert actions == [
        {"kind": "callback", "unit": "B", "response_id": reply.json()["id"], "title": actions[0]["title"]}
    ]
    assert actions[0]["title"].startswith("Обратный звонок")


def test_hook_corrective_action_assignee(tmp_path: Path, org, start_server) -> None:
    conn = sqlite3.connect(org.db)
    with conn:
        conn.execute("UPDATE units SET owner = 'lan' WHERE code = 'A1'")
        conn.execute("INSERT INTO users (name, role, unit, created_at) VALUES ('hotline', 'manager', 'A', 'x')")
    conn.close()
    folder = write_plugin(
        tmp_path / "p",
        "hotline",
        """
        from feedback import hookimpl

        @hookimpl
        def corrective_action_assignee(action, unit, snapshot):
            # Bad reviews of kiosks go to the hotline desk; everything else as usual.
            touchpoint = snapshot.touchpoints.get(action.touchpoint or "")
            return "hotline" if touchpoint is not None and touchpoint.kind == "kiosk" else None
    """,
    )
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    assert (
        httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a1a", "answers": {"overall": 1}}).status_code
        == 201
    )
    assert [r["owner"] for r in rows(org, "SELECT owner FROM actions")] == ["hotline"]


def test_suspect_responses_open_nothing(tmp_path: Path, org, start_server) -> None:
    srv = start_server(org.db)
    body = {"touchpoint": "tp-a1a", "answers": {"overall": 1}, "case_ref": "same-case"}
    verified = auth_header(org.tokens["admin"])  # the counter's system vouches for the case
    assert httpx.post(f"{srv.url}/api/v1/responses", json=body, headers=verified).status_code == 201
    assert httpx.post(f"{srv.url}/api/v1/responses", json=body).status_code == 201  # a second rating of the case
    flags = [r["flags"] for r in rows(org, "SELECT flags FROM responses ORDER BY server_time")]
    assert flags == ["[]", '["duplicate_case"]']
    assert len(rows(org, "SELECT id FROM actions")) == 1


def test_hook_register_jobs(tmp_path: Path, org, start_server) -> None:
    out = tmp_path / "ran.txt"
    folder = write_plugin(
        tmp_path / "p",
        "jobs",
        f"""
        from feedback import hookimpl
        from feedback.jobs import Job

        def note(context):
            with open({str(out)!r}, "a") as f:
                f.write(context.now.date().isoformat() + "\\n")

        def broken(context):
            raise RuntimeError("job broke")

        @hookimpl
        def register_jobs():
            return [Job(name="site.broken", every=3600, run=broken), Job(name="site.note", every=1, run=note)]
    """,
    )
    env = {"FEEDBACK_PLUGINS_DIR": str(folder)}
    done = run_cli("tick", "--db", str(org.db), "--now", "2026-01-05T08:00:00+07:00", env=env)
    # One failing job is reported and fails the command, and the others still ran.
    assert done.returncode == 1 and "site.broken" in done.stderr
    assert json.loads(done.stdout)["jobs"]["site.note"] is True
    assert out.read_text() == "2026-01-05\n"
    only = run_cli("tick", "--db", str(org.db), "--job", "site.note", env=env)
    assert only.returncode == 0, only.stderr
    assert list(json.loads(only.stdout)["jobs"]) == ["site.note"]
    # The server runs it by itself, every second.
    start_server(org.db, feedback_plugins_dir=str(folder))
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(out.read_text().splitlines()) < 4:
        time.sleep(0.2)
    assert len(out.read_text().splitlines()) >= 4
    runs = {r["name"]: r for r in rows(org, "SELECT * FROM job_runs")}
    assert runs["site.broken"]["last_error"].startswith("RuntimeError")
