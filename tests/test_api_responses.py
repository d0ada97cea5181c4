"""POST /api/v1/responses through a real server and a real SQLite file."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, rows

pytestmark = BOTH_BACKENDS


def stored(org: Org, response_id: str) -> dict | None:
    found = rows(org, "SELECT * FROM responses WHERE id = ?", (response_id,))
    return found[0] if found else None


def count(org: Org, sql: str, params: tuple = ()) -> int:
    return next(iter(rows(org, sql, params)[0].values()))


def post(server: Server, body) -> httpx.Response:
    if isinstance(body, dict):
        return httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=10)
    return httpx.post(
        f"{server.url}/api/v1/responses", content=body, timeout=10, headers={"content-type": "application/json"}
    )


@pytest.mark.postgres_covered_elsewhere
def test_acknowledged_response_is_on_disk_with_its_context(server: Server, shared_org: Org) -> None:
    rid = str(uuid.uuid4())
    reply = post(
        server,
        {
            "id": rid,
            "touchpoint": "tp-a1",
            "answers": {"overall": 2, "reasons": ["waiting_time"], "comment": "<b>slow</b>"},
            "case_ref": "000.00.17.H33-1",
            "officer": "NV07",
            "transaction_point": "completion",
            "channel": "qr",
            "lang": "vi",
        },
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["id"] == rid and len(body["receipt"]) == 9
    row = stored(shared_org, rid)
    assert row is not None
    assert (row["unit"], row["service"], row["counter"], row["officer"]) == ("A1", "S1", "1", "NV07")
    assert (row["survey"], row["survey_version"], row["channel"], row["lang"]) == ("csat", 1, "qr", "vi")
    assert row["case_ref"] == "000.00.17.H33-1" and row["transaction_point"] == "completion"
    assert row["level"] == 2 and row["dissatisfied"] == 1 and row["satisfied"] == 0
    assert row["receipt"] == body["receipt"]


def test_replayed_response_is_not_stored_twice(server: Server, shared_org: Org) -> None:
    body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 5}}
    first = post(server, body)
    again = post(server, body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert count(shared_org, "SELECT count(*) FROM responses WHERE id = ?", (body["id"],)) == 1


def test_same_id_with_different_content_is_a_conflict(server: Server, shared_org: Org) -> None:
    rid = str(uuid.uuid4())
    assert post(server, {"id": rid, "touchpoint": "tp-a", "answers": {"overall": 5}}).status_code == 201
    reply = post(server, {"id": rid, "touchpoint": "tp-a", "answers": {"overall": 1}})
    assert reply.status_code == 409
    assert reply.json()["field"] == "id"
    assert stored(shared_org, rid)["level"] == 5


def test_response_without_id_gets_a_time_ordered_one(server: Server) -> None:
    first = post(server, {"touchpoint": "tp-a", "answers": {"overall": 4}}).json()["id"]
    second = post(server, {"touchpoint": "tp-a", "answers": {"overall": 4}}).json()["id"]
    assert uuid.UUID(first).version == 7
    assert first < second


def test_unknown_touchpoint_is_404(server: Server) -> None:
    reply = post(server, {"touchpoint": "nope", "answers": {"overall": 5}})
    assert reply.status_code == 404
    assert reply.json()["field"] == "touchpoint"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"touchpoint": "tp-a", "answers": {"overall": 6}}, "answers.overall"),
        ({"touchpoint": "tp-a", "answers": {"overall": 0}}, "answers.overall"),
        ({"touchpoint": "tp-a", "answers": {"overall": True}}, "answers.overall"),
        ({"touchpoint": "tp-a", "answers": {"overall": "5"}}, "answers.overall"),
        ({"touchpoint": "tp-a", "answers": {"overall": [1]}}, "answers.overall"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3, "reasons": ["teleport"]}}, "answers.reasons"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3, "reasons": "waiting_time"}}, "answers.reasons"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3, "reasons": [{"a": 1}]}}, "answers.reasons"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3, "comment": "x" * 1201}}, "answers.comment"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3, "comment": 7}}, "answers.comment"),
        ({"touchpoint": "tp-a", "answers": {"nosuch": 3}}, "answers.nosuch"),
        ({"touchpoint": "tp-a", "answers": {"comment": "no rating"}}, "answers.overall"),
        ({"touchpoint": "tp-a", "answers": {}}, "answers.overall"),
        ({"touchpoint": "tp-a"}, "answers"),
        ({"answers": {"overall": 3}}, "touchpoint"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "id": "not-a-uuid"}, "id"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "lang": "fr"}, "lang"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "channel": "fax"}, "channel"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "transaction_point": "lunch"}, "transaction_point"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "submitted_at": "yesterday"}, "submitted_at"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "submitted_at": "2026-01-01T10:00:00"}, "submitted_at"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "service": "S404"}, "service"),
        ({"touchpoint": "tp-a", "answers": {"overall": 3}, "colour": "red"}, "colour"),
        ({"touchpoint": "tp-b", "answers": {"service_time": 5}}, "answers.waiting_time"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_invalid_answers_are_400_naming_the_field(server: Server, shared_org: Org, body: dict, field: str) -> None:
    before = count(shared_org, "SELECT count(*) FROM responses")
    reply = post(server, body)
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["field"] == field
    assert field in error["detail"]
    assert count(shared_org, "SELECT count(*) FROM responses") == before


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"", b'{"touchpoint": "tp-a", "answers": {"overall": 5}'])
def test_malformed_body_is_400_naming_the_body(server: Server, raw: bytes) -> None:
    reply = post(server, raw)
    assert reply.status_code == 400
    assert reply.json()["field"] == "body"


def test_body_over_64_kib_is_413(server: Server, shared_org: Org) -> None:
    before = count(shared_org, "SELECT count(*) FROM responses")
    big = b'{"touchpoint": "tp-a", "answers": {"overall": 5, "comment": "' + b"x" * 66_000 + b'"}}'
    assert post(server, big).status_code == 413
    assert count(shared_org, "SELECT count(*) FROM responses") == before


def test_contact_is_stored_apart_from_the_answers(server: Server, shared_org: Org) -> None:
    rid = str(uuid.uuid4())
    reply = post(server, {"id": rid, "touchpoint": "tp-a", "answers": {"overall": 1, "contact": "+84 912 345 678"}})
    assert reply.status_code == 201
    assert "912" not in stored(shared_org, rid)["answers"]
    assert (
        count(
            shared_org, "SELECT count(*) FROM contacts WHERE response_id = ? AND contact = ?", (rid, "+84 912 345 678")
        )
        == 1
    )


def test_second_rating_of_a_case_is_stored_flagged_and_not_counted(server: Server, shared_org: Org) -> None:
    case = f"CASE-{uuid.uuid4().hex[:8]}"
    # The counter's system vouches for the case with its token: a later rating of it is a duplicate.
    first = httpx.post(
        f"{server.url}/api/v1/responses",
        headers=auth_header(shared_org.tokens["admin"]),
        json={"touchpoint": "tp-a1a", "answers": {"overall": 5}, "case_ref": case},
    )
    second = post(server, {"touchpoint": "tp-a1a", "answers": {"overall": 1}, "case_ref": case})
    assert first.status_code == second.status_code == 201
    assert stored(shared_org, first.json()["id"])["flags"] == "[]"
    assert stored(shared_org, second.json()["id"])["flags"] == '["duplicate_case"]'


def test_client_time_far_in_the_future_is_flagged_and_server_time_used(server: Server, shared_org: Org) -> None:
    reply = post(server, {"touchpoint": "tp-a", "answers": {"overall": 4}, "submitted_at": "2099-01-01T00:00:00Z"})
    row = stored(shared_org, reply.json()["id"])
    assert row["flags"] == '["clock_skew"]'
    assert row["client_time"].startswith("2099-01-01")
    assert row["occurred_at"][:4] != "2099"


@pytest.mark.postgres_covered_elsewhere
def test_rate_limit_answers_429_on_public_posts_only(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_rate_limit="5")
    codes = [post(srv, {"touchpoint": "tp-a", "answers": {"overall": 5}}).status_code for _ in range(7)]
    assert codes[:5] == [201] * 5
    assert codes[5:] == [429, 429]
    # Reads and health checks are not throttled.
    assert httpx.get(f"{srv.url}/healthz").status_code == 200
    assert httpx.get(f"{srv.url}/api/v1/touchpoints/tp-a/survey").status_code == 200
    assert count(org, "SELECT count(*) FROM responses") == 5
