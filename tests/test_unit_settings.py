"""PATCH /api/v1/units/{code}: the owner, calendar and deadline the corrective-action loop reads."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import holidays
import httpx
import pytest

from tests.conftest import BOTH_BACKENDS, auth_header, rows

pytestmark = BOTH_BACKENDS


def patch(server, token: str, code: str, body) -> httpx.Response:
    return httpx.patch(f"{server.url}/api/v1/units/{code}", json=body, headers=auth_header(token))


@pytest.mark.postgres_covered_elsewhere
def test_settings_drive_the_next_work_order(org, start_server) -> None:
    server = start_server(org.db)
    reply = patch(server, org.tokens["admin"], "A1a", {"owner": "lan", "country": "cn", "action_days": 5})
    assert reply.status_code == 200, reply.text
    assert {k: v for k, v in reply.json().items() if not k.startswith("retention")} == {
        "code": "A1a",
        "owner": "lan",
        "country": "CN",
        "action_days": 5,
        "public_results": False,
        "complaint_levels": None,
        "complaint_levels_in_force": [1, 2],
    }
    listed = {
        u["code"]: u for u in httpx.get(f"{server.url}/api/v1/units", headers=auth_header(org.tokens["admin"])).json()
    }
    assert (listed["A1a"]["owner"], listed["A1a"]["country"], listed["A1a"]["action_days"]) == ("lan", "CN", 5)
    assert (
        httpx.post(
            f"{server.url}/api/v1/responses", json={"touchpoint": "tp-a1a", "answers": {"overall": 1}}
        ).status_code
        == 201
    )
    [action] = rows(org, "SELECT owner, due, opened_at FROM actions")
    assert action["owner"] == "lan"
    # Five Chinese working days after the day it opened (in the unit's time zone, Asia/Ho_Chi_Minh).
    calendar = holidays.country_holidays("CN")
    opened = datetime.fromisoformat(action["opened_at"]).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    due = date.fromisoformat(action["due"])
    working = [
        d
        for d in (date.fromordinal(o) for o in range(opened.toordinal() + 1, due.toordinal() + 1))
        if calendar.is_working_day(d)
    ]
    assert len(working) == 5 and calendar.is_working_day(due)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owner": "nobody"}, "owner"),
        ({"country": "XX"}, "country"),
        ({"action_days": 0}, "action_days"),
        ({"action_days": "5"}, "action_days"),
        ({"public_results": "yes"}, "public_results"),
        ({"name": "renamed"}, "name"),
        (["owner"], "body"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_bad_settings_name_the_field(shared_org, server, body, field) -> None:
    before = rows(shared_org, "SELECT * FROM units WHERE code = 'A1'")
    reply = patch(server, shared_org.tokens["admin"], "A1", body)
    assert reply.status_code == 400 and reply.json()["field"] == field
    assert rows(shared_org, "SELECT * FROM units WHERE code = 'A1'") == before


@pytest.mark.postgres_covered_elsewhere
def test_scope_and_roles(shared_org, server) -> None:
    assert patch(server, shared_org.tokens["manager_a1"], "B", {"action_days": 3}).status_code == 403
    assert patch(server, shared_org.tokens["viewer_b"], "B", {"action_days": 3}).status_code == 403
    assert patch(server, shared_org.tokens["admin"], "NOPE", {"action_days": 3}).status_code == 404
    assert patch(server, shared_org.tokens["manager_a1"], "A1a", {"public_results": True}).status_code == 200
    assert httpx.patch(f"{server.url}/api/v1/units/A1a", json={}).status_code == 401
