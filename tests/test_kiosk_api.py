"""The kiosk server side over HTTP: enrollment, device auth, sync, misuse filter, invitations, health."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from feedback.kiosks import misuse_flags
from feedback.web import kiosk_api
from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, connect, enrollment_code, poll_until, run_cli

pytestmark = BOTH_BACKENDS


def enroll_code(org: Org, touchpoint: str = "tp-a1a") -> str:
    """A code from `feedback kiosk enroll`, the command an operator runs."""
    result = run_cli("kiosk", "enroll", "--db", str(org.db), "--touchpoint", touchpoint)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def enroll(url: str, org: Org, touchpoint: str = "tp-a1a") -> tuple[str, str]:
    reply = httpx.post(f"{url}/api/v1/kiosk/enroll", json={"code": enrollment_code(org, touchpoint)})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return body["device_token"], body["kiosk"]["id"]


def at(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=seconds)).isoformat()


def item(seconds: float, level: int = 5, **extra) -> dict:
    return {"id": str(uuid.uuid4()), "answers": {"overall": level}, "submitted_at": at(seconds), **extra}


def sync(url: str, device: str, items: list[dict]) -> list[dict]:
    reply = httpx.post(f"{url}/api/v1/kiosk/sync", json={"items": items}, headers=auth_header(device))
    assert reply.status_code == 200, reply.text
    return reply.json()["results"]


def db_rows(org: Org, sql: str, params: tuple = ()) -> list[tuple]:
    conn = connect(org.db)
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def test_enrollment_code_is_six_digits_once_only_and_binds_the_touchpoint(start_server, org: Org) -> None:
    srv = start_server(org.db)
    code = enroll_code(org)
    assert len(code) == 6 and code.isdigit()
    first = httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": code})
    assert first.status_code == 201
    assert first.json()["kiosk"]["touchpoint"] == "tp-a1a"
    assert first.json()["device_token"].startswith("fbd_")
    again = httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": code})
    assert again.status_code == 404 and again.json()["field"] == "code"
    assert httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": "12ab"}).json()["field"] == "code"
    stored = db_rows(org, "SELECT token_hash FROM kiosks")
    assert first.json()["device_token"] not in stored[0][0]  # kept hashed


@pytest.mark.postgres_covered_elsewhere
def test_enrollment_refuses_unknown_touchpoints_and_guessers(start_server, org: Org) -> None:
    result = run_cli("kiosk", "enroll", "--db", str(org.db), "--touchpoint", "nope")
    assert result.returncode != 0 and "nope" in result.stderr
    srv = start_server(org.db)
    codes = [httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": f"{n:06d}"}).status_code for n in range(11)]
    assert codes[:10] == [404] * 10 and codes[10] == 429


@pytest.mark.postgres_covered_elsewhere
def test_expired_code_is_refused(start_server, org: Org) -> None:
    code = enroll_code(org)
    conn = connect(org.db)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    conn.execute("UPDATE kiosk_enrollments SET expires_at = ?", (past,))
    conn.commit()
    conn.close()
    srv = start_server(org.db)
    assert httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": code}).status_code == 404


@pytest.mark.postgres_covered_elsewhere
def test_device_endpoints_need_a_live_device_token(start_server, org: Org) -> None:
    srv = start_server(org.db)
    device, kiosk_id = enroll(srv.url, org)
    for token in (None, org.tokens["admin"], "fbd_wrong"):
        headers = auth_header(token) if token else {}
        assert httpx.get(f"{srv.url}/api/v1/kiosk/config", headers=headers).status_code == 401
    config = httpx.get(f"{srv.url}/api/v1/kiosk/config", headers=auth_header(device)).json()
    assert config["kiosk"]["id"] == kiosk_id and config["survey"]["slug"] == "haochaping"
    assert config["settings"]["thanks_seconds"] <= 5
    revoked = httpx.post(f"{srv.url}/api/v1/kiosks/{kiosk_id}/revoke", headers=auth_header(org.tokens["admin"]))
    assert revoked.status_code == 200
    assert httpx.get(f"{srv.url}/api/v1/kiosk/config", headers=auth_header(device)).status_code == 401
    listed = httpx.get(f"{srv.url}/api/v1/kiosks", headers=auth_header(org.tokens["admin"])).json()
    assert listed[0]["revoked"] is True


def test_sync_gives_a_result_per_item_and_stores_each_once(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="0")
    device, kiosk_id = enroll(srv.url, org)
    good, low = item(0), item(10, level=1, answers=None)
    low["answers"] = {"overall": 1, "bad_reasons": ["over_time_limit"]}
    conflicting = dict(good, answers={"overall": 2})
    results = sync(
        srv.url, device, [good, low, good, conflicting, {**item(20), "id": "nope"}, {**item(30), "answers": {}}]
    )
    assert [r["status"] for r in results] == ["stored", "stored", "duplicate", "rejected", "rejected", "rejected"]
    assert results[2]["receipt"] == results[0]["receipt"]
    assert results[3]["field"] == "id" and results[4]["field"] == "id"
    assert results[5]["field"] == "answers.overall"
    assert [r["status"] for r in sync(srv.url, device, [good, low])] == ["duplicate", "duplicate"]
    rows = db_rows(org, "SELECT channel, device, touchpoint, client_time, server_time FROM responses")
    assert len(rows) == 2
    assert all(r[0] == "kiosk" and r[1] == kiosk_id and r[2] == "tp-a1a" for r in rows)
    assert all(r[3] != r[4] for r in rows)  # device time and receipt time both kept


@pytest.mark.postgres_covered_elsewhere
def test_only_the_primary_rating_is_required_on_a_kiosk(start_server, org: Org) -> None:
    srv = start_server(org.db)
    device, _ = enroll(srv.url, org, touchpoint="tp-b")  # Ваш контроль: five required criteria on the web
    first = {"id": str(uuid.uuid4()), "answers": {"service_time": 4}, "submitted_at": at(0)}
    assert sync(srv.url, device, [first])[0]["status"] == "stored"


@pytest.mark.postgres_covered_elsewhere
def test_misuse_filter_flags_fast_repeats_and_bursts_but_stores_them(start_server, org: Org) -> None:
    srv = start_server(
        org.db, feedback_kiosk_min_interval="2", feedback_kiosk_burst_count="4", feedback_kiosk_burst_window="60"
    )
    device, _ = enroll(srv.url, org)
    # Offline presses synced later are judged by device time, across batches.
    sync(srv.url, device, [item(0), item(1)])
    sync(srv.url, device, [item(10), item(20), item(200)])
    flags = [json.loads(r[0]) for r in db_rows(org, "SELECT flags FROM responses ORDER BY occurred_at")]
    assert flags == [[], ["fast_repeat"], [], ["burst"], []]
    token = org.tokens["admin"]
    total = httpx.get(
        f"{srv.url}/api/v1/satisfaction", params={"unit": "A1a", "from": "2000-01-01"}, headers=auth_header(token)
    ).json()["total"]
    assert (total["n"], total["suspect"]) == (3, 2)


@pytest.mark.postgres_covered_elsewhere
def test_min_interval_zero_turns_every_misuse_filter_off(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="0")
    device, _ = enroll(srv.url, org)
    sync(srv.url, device, [item(i * 0.1) for i in range(15)])
    assert db_rows(org, "SELECT count(*) FROM responses WHERE flags != '[]'") == [(0,)]


def test_misuse_flags_rules() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    times = [base + timedelta(seconds=s) for s in (0, 1, 5, 6.5, 100)]
    assert misuse_flags(times, [], 2, 10, 60) == [[], ["fast_repeat"], [], ["fast_repeat"], []]
    assert misuse_flags(times, [], 0, 1, 60) == [[], [], [], [], []]
    assert misuse_flags(times[:3], [], 0.5, 3, 60) == [[], [], ["burst"]]


@pytest.mark.postgres_covered_elsewhere
def test_device_clock_far_off_is_flagged(start_server, org: Org) -> None:
    srv = start_server(org.db)
    device, _ = enroll(srv.url, org)
    future = {"id": str(uuid.uuid4()), "answers": {"overall": 4}, "submitted_at": "2099-01-01T00:00:00Z"}
    ancient = {"id": str(uuid.uuid4()), "answers": {"overall": 4}, "submitted_at": "2001-01-01T00:00:00Z"}
    sync(srv.url, device, [future, ancient])
    assert db_rows(org, "SELECT flags FROM responses") == [('["clock_skew"]',), ('["clock_skew"]',)]


def test_invitation_reaches_the_waiting_kiosk_within_two_seconds(start_server, org: Org) -> None:
    srv = start_server(org.db)
    device, kiosk_id = enroll(srv.url, org)
    received: dict = {}

    def wait() -> None:
        reply = httpx.get(
            f"{srv.url}/api/v1/kiosk/invitation", params={"wait": 10}, headers=auth_header(device), timeout=15
        )
        received.update(reply.json(), at=time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    waiting = kiosk_api.invitation_events(srv.app.state.store)  # a long-poll under way registers here
    poll_until(lambda: kiosk_id in waiting, what="the kiosk's long-poll waiting")
    posted_at = time.monotonic()
    reply = httpx.post(
        f"{srv.url}/api/v1/kiosks/{kiosk_id}/invite",
        headers=auth_header(org.tokens["admin"]),
        json={"case_ref": "000.00.17.H33-1", "service": "S1", "officer": "NV7"},
    )
    assert reply.status_code == 201
    waiter.join(15)
    assert received["invitation"]["case_ref"] == "000.00.17.H33-1"
    assert received["invitation"]["officer"] == "NV7"
    assert received["at"] - posted_at < 2.0
    # Delivered once: the next poll finds nothing.
    empty = httpx.get(f"{srv.url}/api/v1/kiosk/invitation", params={"wait": 0}, headers=auth_header(device))
    assert empty.json() == {"invitation": None}


@pytest.mark.postgres_covered_elsewhere
def test_invitations_are_for_managers_of_the_kiosk_unit(start_server, org: Org) -> None:
    srv = start_server(org.db)
    _, kiosk_id = enroll(srv.url, org)
    url = f"{srv.url}/api/v1/kiosks/{kiosk_id}/invite"
    assert httpx.post(url, json={"case_ref": "X"}).status_code == 401
    assert httpx.post(url, json={"case_ref": "X"}, headers=auth_header(org.tokens["viewer_b"])).status_code == 403
    assert httpx.post(url, json={"case_ref": "X"}, headers=auth_header(org.tokens["manager_a1"])).status_code == 201
    bad = httpx.post(url, json={"case_ref": ""}, headers=auth_header(org.tokens["admin"]))
    assert bad.status_code == 400 and bad.json()["field"] == "case_ref"
    missing = httpx.post(
        f"{srv.url}/api/v1/kiosks/knope/invite", json={"case_ref": "X"}, headers=auth_header(org.tokens["admin"])
    )
    assert missing.status_code == 404


def test_manager_api_enrolls_and_lists_health(start_server, org: Org) -> None:
    srv = start_server(org.db)
    manager = auth_header(org.tokens["manager_a1"])
    code = httpx.post(f"{srv.url}/api/v1/kiosks/enroll", json={"touchpoint": "tp-a1a"}, headers=manager)
    assert code.status_code == 201 and len(code.json()["code"]) == 6
    outside = httpx.post(f"{srv.url}/api/v1/kiosks/enroll", json={"touchpoint": "tp-b"}, headers=manager)
    assert outside.status_code == 403
    device = httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": code.json()["code"]}).json()["device_token"]
    beat = httpx.post(
        f"{srv.url}/api/v1/kiosk/heartbeat",
        headers=auth_header(device),
        json={"queue": 7, "dead_letters": 1, "app_version": "1.2.3", "battery": 0.42},
    )
    assert beat.status_code == 200 and beat.json()["survey_version"] == 1
    listed = httpx.get(f"{srv.url}/api/v1/kiosks", headers=manager).json()
    assert len(listed) == 1
    assert {
        k: listed[0][k]
        for k in ("touchpoint", "backlog", "dead_letters", "app_version", "battery", "revoked", "silent")
    } == {
        "touchpoint": "tp-a1a",
        "backlog": 7,
        "dead_letters": 1,
        "app_version": "1.2.3",
        "battery": 0.42,
        "revoked": False,
        "silent": False,
    }
    assert httpx.get(f"{srv.url}/api/v1/kiosks", headers=auth_header(org.tokens["viewer_b"])).json() == []


def test_silent_kiosk_fires_one_event(tmp_path: Path, start_server, org: Org) -> None:
    log = tmp_path / "events.jsonl"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "recorder.py").write_text(
        textwrap.dedent(f"""
        import json
        from feedback import hookimpl

        @hookimpl
        def track_event(event):
            with open({str(log)!r}, "a") as f:
                f.write(json.dumps({{"type": event.type, "id": event.id, "data": event.data}}) + "\\n")
    """)
    )
    srv = start_server(org.db, feedback_kiosk_silent_after="2", feedback_plugins_dir=str(folder))
    _, kiosk_id = enroll(srv.url, org)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.2)
    time.sleep(1.5)  # a later round must not fire it again
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["type"] for e in events] == ["kiosk.silent"]
    assert events[0]["data"]["kiosk"] == kiosk_id and events[0]["data"]["unit"] == "A1a"
    listed = httpx.get(f"{srv.url}/api/v1/kiosks", headers=auth_header(org.tokens["admin"])).json()
    assert listed[0]["silent"] is True


@pytest.mark.postgres_covered_elsewhere
@pytest.mark.parametrize("body", [{"items": "x"}, {"items": [{"id": "a"}]}, {"nope": []}])
def test_malformed_sync_is_400_naming_the_field(server: Server, shared_org: Org, body: dict) -> None:
    device, _ = enroll(server.url, shared_org)
    reply = httpx.post(f"{server.url}/api/v1/kiosk/sync", json=body, headers=auth_header(device))
    assert reply.status_code == 400
    assert reply.json()["field"]


def test_kiosk_app_and_its_service_worker_ship_the_same_version() -> None:
    """The shell cache is named after the version: a changed app must ship a new cache."""
    import re

    root = Path(__file__).resolve().parent.parent / "kiosk" / "feedback_kiosk"
    app = re.search(r'APP_VERSION = "([^"]+)"', (root / "app.js").read_text()).group(1)
    worker = re.search(r'var VERSION = "([^"]+)"', (root / "sw.js").read_text()).group(1)
    assert app == worker
