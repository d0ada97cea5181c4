"""Reads of the public contract: health, OpenAPI, survey, units, touchpoints, satisfaction, auth."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest

from feedback.rates import wilson
from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header

pytestmark = BOTH_BACKENDS


def get(server: Server, path: str, token: str | None = None, **params) -> httpx.Response:
    headers = auth_header(token) if token else {}
    return httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=10)


def submit(server: Server, touchpoint: str, **answers) -> None:
    body = {"touchpoint": touchpoint, "answers": answers}
    assert httpx.post(f"{server.url}/api/v1/responses", json=body).status_code == 201


@pytest.mark.postgres_covered_elsewhere
def test_health_and_openapi(server: Server) -> None:
    health = get(server, "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    spec = get(server, "/schema/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/api/v1/responses",
        "/api/v1/satisfaction",
        "/api/v1/units",
        "/api/v1/touchpoints",
        "/api/v1/touchpoints/{token}/survey",
        "/healthz",
    ):
        assert path in paths


@pytest.mark.postgres_covered_elsewhere
def test_security_headers_on_every_response(server: Server) -> None:
    for reply in (get(server, "/healthz"), get(server, "/api/v1/units")):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]


def test_survey_of_a_touchpoint_is_public_and_complete(server: Server) -> None:
    reply = get(server, "/api/v1/touchpoints/tp-a1a/survey")
    assert reply.status_code == 200
    survey = reply.json()
    assert (survey["slug"], survey["version"]) == ("haochaping", 1)
    assert set(survey["languages"]) == {"vi", "ru", "zh", "en"}
    overall = next(q for q in survey["questions"] if q["key"] == "overall")
    assert overall["kind"] == "rating" and overall["scale"] == 5 and overall["required"] is True
    assert set(overall["text"]) == {"vi", "ru", "zh", "en"}
    kinds = {q["kind"] for q in survey["questions"]}
    assert {"rating", "choice", "text", "contact"} <= kinds
    for question in survey["questions"]:
        if question["kind"] == "choice":
            assert isinstance(question["multiple"], bool)
            assert all({"key", "text"} <= set(option) for option in question["options"])
    assert get(server, "/api/v1/touchpoints/nope/survey").status_code == 404


def test_units_and_touchpoints_need_a_token(server: Server) -> None:
    for path in ("/api/v1/units", "/api/v1/touchpoints", "/api/v1/satisfaction"):
        reply = get(server, path)
        assert reply.status_code == 401
        assert reply.json()["field"] == "authorization"
        assert get(server, path, "fbk_wrong").status_code == 401


def test_units_list_is_scoped_to_the_token_subtree(server: Server, shared_org: Org) -> None:
    everything = get(server, "/api/v1/units", shared_org.tokens["admin"]).json()
    assert [u["code"] for u in everything] == ["A", "A1", "A1a", "B"]
    a1 = next(u for u in everything if u["code"] == "A1")
    assert a1 == {
        "code": "A1",
        "name": "Đơn vị A1",
        "parent": "A",
        "lang": "vi",
        "tz": "Asia/Ho_Chi_Minh",
        "names": {"vi": "Đơn vị A1", "en": "Unit A1"},
        "country": None,
        "owner": None,
        "action_days": None,
        "public_results": False,
        "complaint_levels": None,
        "complaint_levels_in_force": [1, 2],
        "retention": None,
        "retention_in_force": {
            "comments_days": {"days": 365, "from": "default"},
            "contacts_days": {"days": 90, "from": "default"},
            "case_refs_days": {"days": 365, "from": "default"},
            "officers_days": {"days": 730, "from": "default"},
            "responses_days": {"days": None, "from": "default"},
        },
    }
    scoped = get(server, "/api/v1/units", shared_org.tokens["manager_a1"]).json()
    assert [u["code"] for u in scoped] == ["A1", "A1a"]


def test_touchpoints_list(server: Server, shared_org: Org) -> None:
    items = get(server, "/api/v1/touchpoints", shared_org.tokens["viewer_b"]).json()
    assert len(items) == 1
    item = items[0]
    assert {k: item[k] for k in ("token", "name", "unit", "lang", "survey", "kind")} == {
        "token": "tp-b",
        "name": "Окно 2",
        "unit": "B",
        "lang": "ru",
        "survey": "vash_kontrol",
        "kind": "qr",
    }
    every = get(server, "/api/v1/touchpoints", shared_org.tokens["admin"]).json()
    kiosk = next(t for t in every if t["token"] == "tp-a1a")
    assert kiosk["kind"] == "kiosk" and kiosk["unit"] == "A1a"
    assert next(t for t in every if t["token"] == "tp-a1")["counter"] == "1"


def test_token_outside_the_subtree_is_403(server: Server, shared_org: Org) -> None:
    reply = get(server, "/api/v1/satisfaction", shared_org.tokens["manager_a1"], unit="A")
    assert reply.status_code == 403
    assert reply.json()["field"] == "unit"
    assert get(server, "/api/v1/satisfaction", shared_org.tokens["viewer_b"], unit="A1").status_code == 403
    assert get(server, "/api/v1/satisfaction", shared_org.tokens["manager_a1"], unit="A1a").status_code == 200


def test_satisfaction_counts_the_subtree_with_wilson_intervals(server: Server, shared_org: Org) -> None:
    token = shared_org.tokens["admin"]
    for level in (5, 5, 4, 2, 1):
        submit(server, "tp-a1", overall=level)
    for level in (5, 3):
        submit(server, "tp-a1a", overall=level)
    submit(server, "tp-b", service_time=5, waiting_time=4, staff_courtesy=5, premises=4, information=4)
    today = date.today()
    params = {
        "unit": "A",
        "from": (today - timedelta(days=1)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
    }
    by_unit = get(server, "/api/v1/satisfaction", token, by="unit", **params).json()
    rows = {row["key"]: row for row in by_unit["rows"]}
    # A1a rolls up into A1: both are below A's direct child A1.
    assert set(rows) <= {"A", "A1"}
    assert rows["A1"]["n"] >= 7
    total = by_unit["total"]
    assert total["n"] == sum(row["n"] for row in by_unit["rows"])
    assert total["satisfied"] == sum(row["satisfied"] for row in by_unit["rows"])
    assert total["rate"] == pytest.approx(total["satisfied"] / total["n"])
    assert total["ci95"] == pytest.approx(list(wilson(total["satisfied"], total["n"])))
    assert total["sufficient"] is False  # under the minimum n of 30
    b = get(server, "/api/v1/satisfaction", token, unit="B", by="day", **{k: params[k] for k in ("from", "to")}).json()
    assert b["total"]["n"] == 1 and b["total"]["satisfied"] == 1


@pytest.mark.parametrize("by", ["unit", "service", "touchpoint", "day", "week", "month"])
def test_satisfaction_rows_add_up_to_the_total_for_every_grouping(server: Server, shared_org: Org, by: str) -> None:
    submit(server, "tp-a1", overall=4)
    reply = get(server, "/api/v1/satisfaction", shared_org.tokens["admin"], unit="A", by=by)
    assert reply.status_code == 200
    body = reply.json()
    assert {"unit", "from", "to", "by", "rows", "total"} <= set(body)
    assert body["by"] == by
    assert sum(r["n"] for r in body["rows"]) == body["total"]["n"] > 0
    for row in body["rows"]:
        assert set(row) >= {"key", "n", "satisfied", "rate", "ci95", "sufficient"}
        low, high = row["ci95"]
        assert 0 <= low <= row["rate"] <= high <= 1
    keys = [r["key"] for r in body["rows"]]
    if by == "week":
        assert all(k[4:6] == "-W" for k in keys)
    if by == "month":
        assert all(len(k) == 7 for k in keys)


def test_empty_period_has_null_rate_and_interval(server: Server, shared_org: Org) -> None:
    body = get(
        server,
        "/api/v1/satisfaction",
        shared_org.tokens["admin"],
        unit="B",
        **{"from": "2001-01-01", "to": "2001-01-31"},
    ).json()
    assert body["rows"] == []
    assert body["total"]["n"] == 0 and body["total"]["rate"] is None and body["total"]["ci95"] is None
    assert body["total"]["sufficient"] is False


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"unit": "A", "from": "2026-13-01"}, 400, "from"),
        ({"unit": "A", "to": "tomorrow"}, 400, "to"),
        ({"unit": "A", "from": "2026-02-01", "to": "2026-01-01"}, 400, "from"),
        ({"unit": "A", "by": "year"}, 400, "by"),
        ({"unit": "ZZ"}, 404, "unit"),
        ({}, 400, "unit"),
    ],
)
def test_bad_satisfaction_queries_name_the_field(server: Server, shared_org: Org, params, status, field) -> None:
    reply = get(server, "/api/v1/satisfaction", shared_org.tokens["admin"], **params)
    assert reply.status_code == status, reply.text
    assert reply.json()["field"] == field


def test_flagged_responses_are_left_out_of_n_but_shown_as_suspect(server: Server, shared_org: Org) -> None:
    token = shared_org.tokens["admin"]
    before = get(server, "/api/v1/satisfaction", token, unit="A1a").json()["total"]
    body = {"touchpoint": "tp-a1a", "answers": {"overall": 1}, "case_ref": "DUP-1"}
    httpx.post(f"{server.url}/api/v1/responses", json=body, headers=auth_header(token))  # a verified case
    httpx.post(f"{server.url}/api/v1/responses", json=body)  # same case again: flagged
    after = get(server, "/api/v1/satisfaction", token, unit="A1a").json()["total"]
    assert after["n"] == before["n"] + 1
    assert after["suspect"] == before["suspect"] + 1
    assert after["raw_n"] == after["n"] + after["suspect"]


def test_every_grouping_agrees_on_the_total(server: Server, shared_org: Org) -> None:
    """by=unit/day/week/month read the unit × day rollup, by=service/touchpoint the detailed one."""
    submit(server, "tp-a1", overall=1)
    totals = {
        by: get(server, "/api/v1/satisfaction", shared_org.tokens["admin"], unit="A", by=by).json()["total"]
        for by in ("unit", "service", "touchpoint", "day", "week", "month")
    }
    assert len({(t["n"], t["satisfied"], t["dissatisfied"], t["suspect"]) for t in totals.values()}) == 1
