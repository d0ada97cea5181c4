"""A retired touchpoint takes no new ratings through the JSON API or a kiosk, yet keeps every rating
given while it was live: offline taps, answers timed before the retirement, and retries of both.

Touchpoints are retired the way an operator does it: through the /manage admin form of the running server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Org, Server, auth_header, enrollment_code, make_org, rows
from tests.manage_helpers import retire_touchpoint


def retire(server: Server, org: Org, token: str, unit: str) -> str:
    """Retire a touchpoint through the admin form; returns its stored retired_at."""
    return retire_touchpoint(server, org.db, token, unit)


def post(server: Server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=10)


def stored_ids(org: Org, touchpoint: str) -> set[str]:
    return {r["id"] for r in rows(org, "SELECT id FROM responses WHERE touchpoint = ?", (touchpoint,))}


@dataclass
class RetiredApiTouchpoint:
    """tp-a after retirement, with what it took while live."""

    org: Org
    server: Server
    retired_at: str
    before: datetime  # a moment while it was live
    timed: dict  # a body with submitted_at, stored while live
    timed_reply: dict
    untimed: dict  # a body without submitted_at (timed by the server's arrival), stored while live
    untimed_reply: dict


@pytest.fixture(scope="module")
def retired_a(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("retired") / "feedback.db")
    server = Server(org.db).start()
    try:
        before = datetime.now(UTC) - timedelta(seconds=30)
        timed = {
            "id": str(uuid.uuid4()),
            "touchpoint": "tp-a",
            "answers": {"overall": 4},
            "submitted_at": before.isoformat(),
        }
        untimed = {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 2}}
        timed_reply, untimed_reply = post(server, timed), post(server, untimed)
        assert (timed_reply.status_code, untimed_reply.status_code) == (201, 201)
        retired_at = retire(server, org, "tp-a", "A")
        yield RetiredApiTouchpoint(
            org, server, retired_at, before, timed, timed_reply.json(), untimed, untimed_reply.json()
        )
    finally:
        server.stop()


def test_new_rating_after_retirement_is_gone_and_nothing_is_stored(retired_a: RetiredApiTouchpoint) -> None:
    known = stored_ids(retired_a.org, "tp-a")
    n_before = rows(retired_a.org, "SELECT sum(n) + sum(suspect) AS n FROM rollups WHERE touchpoint = 'tp-a'")[0]["n"]
    now = datetime.now(UTC).isoformat()
    bodies = [
        {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 5}},
        {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 5}, "submitted_at": now},
        {"touchpoint": "tp-a", "answers": {"overall": 1}},
    ]
    for body in bodies:
        reply = post(retired_a.server, body)
        assert reply.status_code == 410, reply.text
        assert reply.json() == {
            "status_code": 410,
            "field": "touchpoint",
            "detail": f"touchpoint: 'tp-a' was retired at {retired_a.retired_at}",
        }
    assert stored_ids(retired_a.org, "tp-a") == known
    assert (
        rows(retired_a.org, "SELECT sum(n) + sum(suspect) AS n FROM rollups WHERE touchpoint = 'tp-a'")[0]["n"]
        == n_before
    )


def test_rating_given_before_retirement_is_still_stored(retired_a: RetiredApiTouchpoint) -> None:
    given = retired_a.before + timedelta(seconds=5)
    body = {
        "id": str(uuid.uuid4()),
        "touchpoint": "tp-a",
        "answers": {"overall": 5},
        "submitted_at": given.isoformat().replace("+00:00", "Z"),
    }
    reply = post(retired_a.server, body)
    assert reply.status_code == 201, reply.text
    row = rows(
        retired_a.org, "SELECT touchpoint, level, occurred_at, flags FROM responses WHERE id = ?", (body["id"],)
    )[0]
    assert (row["touchpoint"], row["level"], row["flags"]) == ("tp-a", 5, "[]")
    assert datetime.fromisoformat(row["occurred_at"]) == given


def test_replay_of_a_stored_rating_after_retirement_answers_the_stored_body(retired_a: RetiredApiTouchpoint) -> None:
    # Timed by the client before the retirement, and timed only by its first arrival: both are retries.
    for body, first in ((retired_a.timed, retired_a.timed_reply), (retired_a.untimed, retired_a.untimed_reply)):
        again = post(retired_a.server, body)
        assert again.status_code == 200, again.text
        assert again.json() == first
        assert rows(retired_a.org, "SELECT count(*) AS n FROM responses WHERE id = ?", (body["id"],))[0]["n"] == 1
    # The same id with other content is not a retry: the touchpoint takes nothing new.
    other = post(retired_a.server, {**retired_a.untimed, "answers": {"overall": 5}})
    assert other.status_code == 410 and other.json()["field"] == "touchpoint"


def test_survey_of_a_retired_touchpoint_is_gone(retired_a: RetiredApiTouchpoint) -> None:
    short_code = rows(retired_a.org, "SELECT short_code FROM touchpoints WHERE token = 'tp-a'")[0]["short_code"]
    for name in ("tp-a", short_code):
        reply = httpx.get(f"{retired_a.server.url}/api/v1/touchpoints/{name}/survey")
        assert reply.status_code == 410, name
        assert reply.json() == {
            "status_code": 410,
            "field": "token",
            "detail": f"token: touchpoint 'tp-a' was retired at {retired_a.retired_at}",
        }
    assert httpx.get(f"{retired_a.server.url}/api/v1/touchpoints/tp-a1/survey").status_code == 200
    # Still listed for managers, marked retired.
    listed = httpx.get(f"{retired_a.server.url}/api/v1/touchpoints", headers=auth_header(retired_a.org.tokens["admin"]))
    assert {t["token"]: t["retired"] for t in listed.json()} == {
        "tp-a": True,
        "tp-a1": False,
        "tp-a1a": False,
        "tp-b": False,
    }


def kiosk_device(server: Server, org: Org, touchpoint: str) -> str:
    reply = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": enrollment_code(org, touchpoint)})
    assert reply.status_code == 201, reply.text
    return reply.json()["device_token"]


def sync(server: Server, device: str, items: list[dict]) -> list[dict]:
    reply = httpx.post(
        f"{server.url}/api/v1/kiosk/sync", json={"items": items}, headers=auth_header(device), timeout=30
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["results"]


def tap(when: datetime, level: int = 5) -> dict:
    return {"id": str(uuid.uuid4()), "answers": {"overall": level}, "submitted_at": when.isoformat()}


def test_kiosk_sync_keeps_taps_from_before_retirement_and_rejects_later_ones(start_server, org: Org) -> None:
    server = start_server(org.db, feedback_kiosk_min_interval="0")
    device = kiosk_device(server, org, "tp-a1a")
    # Synced while live: one tap with a believable clock, one whose clock is distrusted (timed on arrival).
    live = tap(datetime.now(UTC) - timedelta(minutes=3))
    skewed = tap(datetime.now(UTC) - timedelta(days=40), level=2)
    first = sync(server, device, [live, skewed])
    assert [r["status"] for r in first] == ["stored", "stored"]
    offline = tap(datetime.now(UTC) - timedelta(minutes=2), level=4)  # queued while the network was down
    retired_at = retire(server, org, "tp-a1a", "A1a")
    late = tap(datetime.now(UTC), level=1)

    results = sync(server, device, [offline, late])
    assert results[0]["status"] == "stored" and results[0]["id"] == offline["id"]
    assert results[1] == {
        "id": late["id"],
        "status": "rejected",
        "field": "touchpoint",
        "reason": f"touchpoint: 'tp-a1a' was retired at {retired_at}",
    }
    assert stored_ids(org, "tp-a1a") == {live["id"], skewed["id"], offline["id"]}

    # A retried batch: what was stored is a duplicate with its receipt, whatever its clock said.
    again = sync(server, device, [live, skewed, offline, late])
    assert [r["status"] for r in again] == ["duplicate", "duplicate", "duplicate", "rejected"]
    assert [r["receipt"] for r in again[:2]] == [r["receipt"] for r in first]
    assert again[2]["receipt"] == results[0]["receipt"]
    assert again[3]["field"] == "touchpoint"
    assert stored_ids(org, "tp-a1a") == {live["id"], skewed["id"], offline["id"]}
