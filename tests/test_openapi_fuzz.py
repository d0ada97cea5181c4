"""The whole OpenAPI document against a real server on 127.0.0.1 and a real SQLite file.

Three things are proved: every success response under /api/v1 documents its body with properties
(no free-form objects); a valid call of every operation answers as documented, key for key; and
schemathesis' generated requests (valid and invalid, with ids that exist mixed in) never get a 5xx
and never an answer that contradicts the document.

While the server runs, webhook targets may only ever be a closed loopback port: the server allows
private targets (to register one and check the answer) and every generated `url` is replaced by it.
Jobs are off, so nothing else leaves the machine either.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from feedback import federation, federation_child
from feedback.db import open_database
from tests.conftest import Org, Server, auth_header, make_org, rows
from tests.manage_helpers import add_user, sign_in
from tests.test_maintenance import VASH_KEYS

# A closed port on loopback: a delivery to it is refused at once, and nothing else is ever targeted.
HOOK_URL = "http://127.0.0.1:9/hook"
# The SMS gateway is the same closed port: an invitation's SMS is refused there and waits for a retry.
SMS_URL = "http://127.0.0.1:9/sms"
SMS_SECRET = "gateway-secret"
PROBE_USER = "fuzz-target"
TOO_BIG = str(2**63)
JSON_TYPES = ("application/json",)
CHECKS = [content_type_conformance, response_schema_conformance]
# The command line beside this interpreter (a venv need not be activated), else the one on PATH.
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@dataclass
class World:
    org: Org
    server: Server
    device: str = ""
    ids: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, **params: Any) -> Any:
        headers = auth_header(token or self.org.tokens["admin"])
        reply = httpx.request(
            method, f"{self.server.url}{path}", json=body, params=params or None, headers=headers, timeout=30
        )
        assert reply.status_code < 300, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json()


def populate(world: World) -> None:
    """One of everything the API can show: responses, an objective, an action, exposure, an enrolled
    kiosk with an invitation (and a spare code), a webhook with its (refused) deliveries, a spare user
    and its token."""
    today = date.today().isoformat()
    for touchpoint, level in (("tp-a", 5), ("tp-a1", 2), ("tp-a1a", 1), ("tp-b", 4)):
        answers = {key: level for key in VASH_KEYS} if touchpoint == "tp-b" else {"overall": level}
        httpx.post(
            f"{world.server.url}/api/v1/responses",
            json={"touchpoint": touchpoint, "answers": answers, "case_ref": f"C-{touchpoint}"},
            timeout=30,
        )
    # A response whose personal data a manager erases.
    erasable = {"touchpoint": "tp-a1", "answers": {"overall": 4, "comment": "Please forget this"}}
    world.ids["response"] = world.call("POST", "/api/v1/responses", erasable)["id"]
    world.ids["objective"] = world.call(
        "POST",
        "/api/v1/objectives",
        {"unit": "A", "metric": "satisfaction", "target": 0.8, "period": "month", "min_n": 1},
    )["id"]
    action = world.call("POST", "/api/v1/actions", {"unit": "A1", "title": "Queue at counter 1"})
    world.ids["action"] = action["id"]
    # A «Ваш контроль» criterion below 4 opens a call-back, whose attempts are recorded on its action.
    world.call("POST", "/api/v1/responses", {"touchpoint": "tp-b", "answers": {key: 3 for key in VASH_KEYS}})
    world.ids["callback"] = world.call("GET", "/api/v1/actions", unit="B", kind="callback")[0]["id"]
    world.call("POST", "/api/v1/exposure", {"unit": "A1", "service": "S1", "day": today, "served": 40})
    # A hotline call's sheet, to load and to key in.
    sheet = world.call("POST", "/api/v1/touchpoints/tp-a1/call-sheets", {"lang": "vi"})
    world.ids["call_sheet"], world.ids["call_day"] = sheet["serial"], sheet["today"]
    code = world.call("POST", "/api/v1/kiosks/enroll", {"touchpoint": "tp-a1a"})["code"]
    enrolled = httpx.post(f"{world.server.url}/api/v1/kiosk/enroll", json={"code": code}, timeout=30).json()
    world.device, world.ids["kiosk"] = enrolled["device_token"], enrolled["kiosk"]["id"]
    world.call("POST", f"/api/v1/kiosks/{world.ids['kiosk']}/invite", {"case_ref": "K-1"})
    world.ids["code"] = world.call("POST", "/api/v1/kiosks/enroll", {"touchpoint": "tp-a1a"})["code"]
    world.ids["webhook"] = world.call("POST", "/api/v1/webhooks", {"url": HOOK_URL, "secret": "s3cret"})["id"]
    world.call("POST", "/api/v1/users", {"name": PROBE_USER, "role": "viewer", "unit": "B"})
    world.ids["token"] = world.call("POST", "/api/v1/tokens", {"user": PROBE_USER})["id"]
    # A manager-app session of that user, to list and revoke.
    add_user(world.org.db, PROBE_USER, "correct horse 1", "viewer", "B")
    with httpx.Client(base_url=world.server.url, timeout=30) as browser:
        sign_in(browser, world.server, PROBE_USER, "correct horse 1")
    world.ids["session"] = world.call("GET", f"/api/v1/users/{PROBE_USER}/sessions")[0]["id"]
    # A child installation paired with this one (its key kept here, to sign a report), and a spare code.
    world.ids["child_key"] = federation.new_private_key()
    joined = {"code": pairing_code(world), "public_key": federation.public_key_text(world.ids["child_key"])}
    reply = httpx.post(f"{world.server.url}/api/v1/federation/join", json={**joined, "name": "Child", "units": ["X"]})
    world.ids["child"] = reply.json()["child"]
    world.ids["pairing_code"] = pairing_code(world, "B")  # a child reports under A already


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("openapi") / "feedback.db")
    server = Server(
        org.db,
        env={
            "FEEDBACK_JOBS": "0",
            "FEEDBACK_WEBHOOK_ALLOW_PRIVATE": "1",
            "FEEDBACK_KIOSK_MIN_INTERVAL": "0",
            "FEEDBACK_SMS_URL": SMS_URL,
            "FEEDBACK_SMS_SECRET": SMS_SECRET,
        },
    ).start()
    world = World(org, server)
    populate(world)
    yield world
    server.stop()


def document(world: World) -> dict[str, Any]:
    reply = httpx.get(f"{world.server.url}/schema/openapi.json", timeout=30)
    assert reply.status_code == 200
    return reply.json()


def success_schemas(doc: dict[str, Any]):
    """(method, path, status, media type, schema) of every documented 2xx body."""
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    for media_type, content in response.get("content", {}).items():
                        yield method.upper(), path, status, media_type, content.get("schema", {})


def free_form(schema: dict[str, Any]) -> bool:
    """An object (or a list of them) whose keys the document does not name."""
    if "$ref" in schema:
        return False
    if schema.get("type") == "array":
        return free_form(schema.get("items", {}))
    variants = schema.get("oneOf", []) + schema.get("anyOf", [])
    if variants:
        return any(free_form(variant) for variant in variants)
    return schema.get("type") in ("object", None) and not schema.get("properties")


def test_no_success_response_under_the_api_is_free_form(world: World) -> None:
    doc = document(world)
    found = [
        (m, p, s, mt)
        for m, p, s, mt, schema in success_schemas(doc)
        if p.startswith("/api/v1") and mt.startswith(JSON_TYPES) and free_form(schema)
    ]
    assert found == []
    # Files keep their own media types.
    binary = {(m, p): mt for m, p, _, mt, _ in success_schemas(doc) if not mt.startswith(JSON_TYPES)}
    assert binary[("GET", "/api/v1/exports/responses.csv")].startswith("text/csv")
    assert binary[("GET", "/api/v1/exports/rates.xlsx")].endswith("spreadsheetml.sheet")
    assert binary[("GET", "/api/v1/reports/management-review.pdf")] == "application/pdf"
    assert binary[("GET", "/api/v1/touchpoints/{token}/qr.png")] == "image/png"
    assert binary[("GET", "/api/v1/touchpoints/{token}/qr.svg")] == "image/svg+xml"
    # The public ingest route documents its body for both answers: stored (201) and replayed (200).
    ingest = doc["paths"]["/api/v1/responses"]["post"]["responses"]
    for status in ("200", "201"):
        assert ingest[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Receipt"}
    assert set(doc["components"]["schemas"]["Receipt"]["required"]) == {"id", "receipt"}


def strict(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with `additionalProperties: false` on every schema a success body refers to, so a
    key the server sends but the document does not name fails the conformance check."""
    doc = copy.deepcopy(doc)
    components = doc["components"]["schemas"]
    seen: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in seen:
                name = ref.rsplit("/", 1)[1]
                seen.add(name)
                visit(components[name])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for *_, schema in success_schemas(doc):
        visit(schema)
    for name in seen:
        if "properties" in components[name]:
            components[name]["additionalProperties"] = False
    return doc


def load(world: World, config: dict[str, Any] | None = None) -> schemathesis.BaseSchema:
    settings = {"base-url": world.server.url, "request-timeout": 30, **(config or {})}
    return schemathesis.openapi.from_dict(strict(document(world)), config=schemathesis.Config.from_dict(settings))


def valid_calls(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """A call of every operation that should succeed: (method, path template, Case arguments)."""
    ids, today = world.ids, date.today().isoformat()
    device = {"headers": auth_header(world.device)}
    unit_a = {"query": {"unit": "A"}}
    tap = {"id": str(uuid.uuid4()), "answers": {"overall": 5}, "submitted_at": f"{today}T08:00:00+00:00"}
    return [
        ("GET", "/healthz", {}),
        ("POST", "/api/v1/responses", {"body": {"touchpoint": "tp-a", "answers": {"overall": 4}}}),
        ("GET", "/api/v1/touchpoints", {}),
        ("GET", "/api/v1/touchpoints/{token}/survey", {"path_parameters": {"token": "tp-a1a"}}),
        (
            "POST",
            "/api/v1/touchpoints/{token}/case-links",
            {"path_parameters": {"token": "tp-a1"}, "body": {"case_ref": "H33-1"}},
        ),
        ("GET", "/api/v1/touchpoints/{token}/qr.svg", {"path_parameters": {"token": "tp-a"}}),
        ("GET", "/api/v1/touchpoints/{token}/qr.png", {"path_parameters": {"token": "tp-a"}}),
        ("GET", "/api/v1/touchpoints/{token}/poster.pdf", {"path_parameters": {"token": "tp-a"}}),
        ("GET", "/api/v1/units", {}),
        (
            "PATCH",
            "/api/v1/units/{code}",
            {"path_parameters": {"code": "A1"}, "body": {"country": "VN", "action_days": 7, "public_results": True}},
        ),
        ("GET", "/api/v1/units/{code}/posters.pdf", {"path_parameters": {"code": "A1"}}),
        ("GET", "/api/v1/satisfaction", {"query": {"unit": "A", "by": "service"}}),
        ("POST", "/api/v1/kiosk/enroll", {"body": {"code": ids["code"], "name": "Tablet 2"}}),
        ("GET", "/api/v1/kiosk/config", device),
        ("POST", "/api/v1/kiosk/heartbeat", {**device, "body": {"queue": 1, "battery": 0.5}}),
        ("GET", "/api/v1/kiosk/invitation", {**device, "query": {"wait": 0}}),
        ("POST", "/api/v1/kiosk/sync", {**device, "body": {"items": [tap, {**tap, "answers": {}}]}}),
        ("GET", "/api/v1/kiosks", {}),
        ("POST", "/api/v1/kiosks/enroll", {"body": {"touchpoint": "tp-a1a"}}),
        (
            "POST",
            "/api/v1/kiosks/{kiosk_id}/invite",
            {"path_parameters": {"kiosk_id": ids["kiosk"]}, "body": {"case_ref": "K-2", "service": "S1"}},
        ),
        ("GET", "/api/v1/objectives", unit_a),
        (
            "POST",
            "/api/v1/objectives",
            {"body": {"unit": "A1", "metric": "mean_score", "target": 70, "period": "quarter", "comparator": ">="}},
        ),
        ("GET", "/api/v1/objectives/{objective_id}", {"path_parameters": {"objective_id": ids["objective"]}}),
        (
            "PUT",
            "/api/v1/objectives/{objective_id}",
            {"path_parameters": {"objective_id": ids["objective"]}, "body": {"target": 0.85}},
        ),
        ("GET", "/api/v1/objectives/{objective_id}/status", {"path_parameters": {"objective_id": ids["objective"]}}),
        ("GET", "/api/v1/control-chart", unit_a),
        ("GET", "/api/v1/exposure", unit_a),
        (
            "POST",
            "/api/v1/exposure",
            {"body": [{"unit": "A", "service": "S2", "day": today, "served": 12, "offered": 9}]},
        ),
        ("GET", "/api/v1/actions", unit_a),
        ("POST", "/api/v1/actions", {"body": {"unit": "A", "title": "Signage", "working_days": 5}}),
        ("GET", "/api/v1/actions/{action_id}", {"path_parameters": {"action_id": ids["action"]}}),
        (
            "POST",
            "/api/v1/actions/{action_id}/events",
            {"path_parameters": {"action_id": ids["action"]}, "body": {"type": "verifying", "note": "seen"}},
        ),
        (
            "POST",
            "/api/v1/actions/{action_id}/callbacks",
            {
                "path_parameters": {"action_id": ids["callback"]},
                "body": {"via": "phone", "outcome": "not_reached", "note": "no answer"},
            },
        ),
        ("GET", "/api/v1/kpis", unit_a),
        ("GET", "/api/v1/exports/responses.csv", unit_a),
        ("GET", "/api/v1/exports/responses.xlsx", unit_a),
        ("GET", "/api/v1/exports/rates.csv", unit_a),
        ("GET", "/api/v1/exports/rates.xlsx", unit_a),
        ("GET", "/api/v1/exports/a11.csv", unit_a),
        ("GET", "/api/v1/reports/management-review.pdf", unit_a),
        ("GET", "/api/v1/users", {}),
        ("POST", "/api/v1/users", {"body": {"name": "extra", "role": "viewer", "unit": "A1"}}),
        ("PATCH", "/api/v1/users/{name}", {"path_parameters": {"name": "extra"}, "body": {"lang": "vi"}}),
        ("GET", "/api/v1/tokens", {}),
        ("POST", "/api/v1/tokens", {"body": {"user": "extra"}}),
        ("POST", "/api/v1/tokens/{token_id}/revoke", {"path_parameters": {"token_id": ids["token"]}}),
        ("GET", "/api/v1/users/{name}/sessions", {"path_parameters": {"name": PROBE_USER}}),
        (
            "DELETE",
            "/api/v1/users/{name}/sessions/{session_id}",
            {"path_parameters": {"name": PROBE_USER, "session_id": ids["session"]}},
        ),
        ("GET", "/api/v1/webhooks", {}),
        ("POST", "/api/v1/webhooks", {"body": {"url": HOOK_URL, "secret": "x", "events": ["action.opened"]}}),
        ("GET", "/api/v1/webhooks/{webhook_id}/deliveries", {"path_parameters": {"webhook_id": ids["webhook"]}}),
        (
            "POST",
            "/api/v1/objectives/{objective_id}/retire",
            {"path_parameters": {"objective_id": ids["objective"]}, "body": {}},
        ),
        ("DELETE", "/api/v1/webhooks/{webhook_id}", {"path_parameters": {"webhook_id": ids["webhook"]}}),
        ("POST", "/api/v1/kiosks/{kiosk_id}/revoke", {"path_parameters": {"kiosk_id": ids["kiosk"]}}),
        (
            "POST",
            "/api/v1/responses/{response_id}/erasure",
            {"path_parameters": {"response_id": ids["response"]}, "body": {"reason": "asked by phone"}},
        ),
        ("GET", "/api/v1/audit", {"query": {"kind": "unit", "limit": "5"}}),
        (
            "POST",
            "/api/v1/touchpoints/{token}/call-sheets",
            {"path_parameters": {"token": "tp-a1"}, "body": {"lang": "en"}},
        ),
        ("GET", "/api/v1/paper-forms/{serial}", {"path_parameters": {"serial": ids["call_sheet"]}}),
        (
            "POST",
            "/api/v1/paper-entries",
            {
                "body": {
                    "serial": ids["call_sheet"],
                    "answers": {"overall": 4},
                    "occurred_on": ids["call_day"],
                    "channel": "hotline",
                }
            },
        ),
        ("GET", "/api/v1/audit/head", {}),
        ("GET", "/api/v1/touchpoints/{token}/paper-forms.pdf", {"path_parameters": {"token": "tp-a1"}}),
        ("GET", "/api/v1/paper-scans", {"query": {"status": "all"}}),
        ("POST", "/api/v1/invitations", {"body": {"touchpoint": "tp-a1", "phone": "+84900000001", "case_ref": "H-9"}}),
        ("POST", "/api/v1/sms/inbound", signed_message({"id": "gw-1", "from": "+84900000001", "text": "4"})),
        (
            "POST",
            "/api/v1/cases",
            {"body": {"items": [{"ref": "FZ-1", "unit": "A1", "service": "S1", "received": today, "due": today}]}},
        ),
        ("GET", "/api/v1/cases/timeliness", {"query": {"unit": "A", "by": "service"}}),
        ("GET", "/api/v1/exports/timeliness.csv", unit_a),
        ("GET", "/api/v1/exports/timeliness.xlsx", unit_a),
        ("GET", "/api/v1/indicators", {}),
        (
            "POST",
            "/api/v1/indicators",
            {
                "body": {
                    "key": "replies_on_time",
                    "names": {"vi": "Trả lời đúng hạn", "ru": "Ответы в срок", "zh": "按时答复率", "en": "Replies"},
                    "direction": "higher",
                }
            },
        ),
        (
            "POST",
            "/api/v1/indicators/{key}/values",
            {
                "path_parameters": {"key": "error_rate"},
                "body": {"unit": "A1", "period": "2025-Q1", "numerator": 3, "denominator": 10000},
            },
        ),
        ("GET", "/api/v1/indicators/{key}/values", {"path_parameters": {"key": "error_rate"}, **unit_a}),
        (
            "POST",
            "/api/v1/federation/join",
            {
                "body": {
                    "code": ids["pairing_code"],
                    "public_key": federation.public_key_text(ids["child_key"]),
                    "name": "Child 2",
                    "units": ["Y"],
                }
            },
        ),
        ("POST", "/api/v1/federation/reports", signed_report(world)),
        ("GET", "/api/v1/federation/children", {}),
    ]


def pairing_code(world: World, unit: str = "A") -> str:
    """A one-time code for a child installation under `unit`, as `feedback federation invite` makes it."""
    database = open_database(str(world.org.db))
    try:
        with database.conn:
            return federation.create_invite(database.conn, unit)[0]
    finally:
        database.close()


def signed_report(world: World) -> dict[str, Any]:
    """Case arguments for a child installation's report of one day: the body as bytes, signed by the child."""
    unit = {"code": "X", "name": "Post X", "parent": None, "lang": "en", "tz": "UTC"}
    rollup = {"unit": "X", "service": None, "n": 2, "satisfied": 1, "dissatisfied": 1, "score_n": 2, "score_sum": 125.0}
    content = {
        "version": federation.REPORT_VERSION,
        "child": world.ids["child"],
        "day": "2025-01-01",
        "units": [unit],
        "rollups": [{**rollup, "l1": 1, "l2": 0, "l3": 0, "l4": 0, "l5": 1, "suspect": 0}],
        "objectives": [],
        "actions": [{"unit": "X", "opened": 1, "closed": 0, "closed_on_time": 0, "overdue_open": 0}],
    }
    body, signature, _ = federation_child.signed_body(content, world.ids["child_key"], "2025-01-02T00:00:00+00:00")
    return {
        "body": body,
        "headers": {federation.CHILD_HEADER: world.ids["child"], federation.SIGNATURE_HEADER: signature},
    }


def signed_message(message: dict[str, Any]) -> dict[str, Any]:
    """Case arguments for a message of the SMS gateway: the body as bytes, exactly as signed."""
    raw = json.dumps(message).encode()
    signature = "sha256=" + hmac.new(SMS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return {"body": raw, "headers": {"X-Feedback-Signature": signature}}


def test_a_valid_call_of_every_operation_answers_as_documented(world: World) -> None:
    schema = load(world)
    called: set[tuple[str, str]] = set()
    for method, path, arguments in valid_calls(world):
        headers = {**auth_header(world.org.tokens["admin"]), **arguments.pop("headers", {})}
        if "body" in arguments:  # some routes read their JSON themselves and document no request body
            arguments["media_type"] = "application/json"
        reply = schema[path][method].Case(**arguments).call_and_validate(headers=headers, checks=CHECKS)
        assert 200 <= reply.status_code < 300, f"{method} {path}: {reply.status_code} {reply.text[:300]}"
        called.add((method, path))
    documented = {(m, p) for m, p, *_ in success_schemas(document(world)) if p.startswith(("/api/", "/healthz"))}
    assert documented - called == set(), "every documented operation has a valid call above"


# -- generated requests ------------------------------------------------------------------------------


def fuzz_config(world: World) -> dict[str, Any]:
    """Bounded generation over every operation; ids that exist are offered half the time beside
    generated ones, the device token on the kiosk's own routes, and no long poll."""
    ids = world.ids
    dictionaries = {
        "tokens": ["tp-a", "tp-a1", "tp-a1a", "tp-b"],
        "units": ["A", "A1", "A1a", "B"],
        "services": ["S1", "S2"],
        # Beside the real ids, one past SQLite's 64-bit integers (a string: TOML integers stop there too).
        "objectives": [ids["objective"], TOO_BIG],
        "actions": [ids["action"], TOO_BIG],
        "webhooks": [ids["webhook"], TOO_BIG],
        "kiosks": [ids["kiosk"]],
        "users": [PROBE_USER],
        "token_ids": [ids["token"]],
        "days": [date.today().isoformat(), "2024-01-01"],
        "indicators": ["error_rate", "plan_completion"],
    }
    binding = {
        "path.token": "tokens",
        "touchpoint": "tokens",
        "path.code": "units",
        "unit": "units",
        "service": "services",
        "objective_id": "objectives",
        "action_id": "actions",
        "webhook_id": "webhooks",
        "kiosk_id": "kiosks",
        "path.name": "users",
        "token_id": "token_ids",
        "query.from": "days",
        "query.to": "days",
        "query.at": "days",
        "path.key": "indicators",
    }
    return {
        "headers": auth_header(world.org.tokens["admin"]),
        "dictionaries": {name: {"values": values} for name, values in dictionaries.items()},
        "parameters": {
            **{key: {"dictionary": name, "probability": 0.5} for key, name in binding.items()},
            # Where a webhook could point: only ever the closed loopback port.
            "body.url": HOOK_URL,
        },
        "generation": {"max-examples": 10, "mode": "all", "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
        },
        "operations": [
            {
                "include-path-regex": "^/api/v1/kiosk/(config|sync|heartbeat|invitation)$",
                "headers": auth_header(world.device),
            },
            # The long poll answers at once when told to wait 0 s (it waits up to 60 s otherwise).
            {"include-path": "/api/v1/kiosk/invitation", "parameters": {"query.wait": 0}},
        ],
    }


def toml(config: dict[str, Any]) -> str:
    """The config as TOML: one `key = value` line each, tables inline (JSON strings are TOML strings)."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(x) for x in item) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in item.items()) + "}"

    return "\n".join(f"{json.dumps(key)} = {value(item)}" for key, item in config.items()) + "\n"


def test_generated_requests_never_get_a_server_error_or_an_undocumented_answer(world: World, tmp_path) -> None:
    """schemathesis' own command line over the strict document, as CI would run it."""
    (tmp_path / "openapi.json").write_text(json.dumps(strict(document(world))))
    (tmp_path / "schemathesis.toml").write_text(toml(fuzz_config(world)))
    started = time.monotonic()
    run = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            "schemathesis.toml",
            "run",
            "openapi.json",
            "--url",
            world.server.url,
            "--report",
            "json",
            "--report-json-path",
            "report.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(f"schemathesis ran for {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-5000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["complete"] and report["operations"]["tested"] == report["operations"]["total"] > 40
    assert report["test_cases"]["generated"] > 600 and report["failures"] == []


def test_the_generated_run_only_ever_targeted_loopback(world: World) -> None:
    assert {row["url"] for row in rows(world.org, "SELECT url FROM webhooks")} == {HOOK_URL}
