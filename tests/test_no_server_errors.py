"""No input earns a 500: deeply nested JSON, integer ids past 64 bits and keys given twice, on every
route that takes them, through a real server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from feedback.settings import load_settings
from feedback.web.app import create_app
from tests.conftest import Org, Server, auth_header, enrollment_code, make_org, rows
from tests.manage_helpers import add_user, csrf_token, sign_in

DEPTHS = (1_000, 10_000)  # 10,000 levels of objects still fit the 64 KiB a response may have
HUGE_IDS = (2**63, -(2**63) - 1, 10**30)
PASSWORD = "correct horse 1"

# Every route that reads a JSON body, with a body whose `{deep}` is replaced by deeply nested arrays
# (inside a field the route knows, so the nesting itself is what it must refuse).
BODY_ROUTES = {
    ("POST", "/api/v1/responses"): '{{"touchpoint": "tp-a", "answers": {{"overall": {deep}}}}}',
    ("PATCH", "/api/v1/units/{code}"): '{{"owner": {deep}}}',
    ("POST", "/api/v1/touchpoints/{token}/case-links"): '{{"case_ref": {deep}}}',
    ("POST", "/api/v1/kiosk/enroll"): '{{"code": {deep}}}',
    ("POST", "/api/v1/kiosk/sync"): '{{"items": [{{"id": "x", "answers": {{"a": {deep}}}, "submitted_at": "x"}}]}}',
    ("POST", "/api/v1/kiosk/heartbeat"): '{{"app_version": {deep}}}',
    ("POST", "/api/v1/kiosks/enroll"): '{{"touchpoint": {deep}}}',
    ("POST", "/api/v1/kiosks/{kiosk_id}/invite"): '{{"case_ref": {deep}}}',
    ("POST", "/api/v1/objectives"): '{{"unit": "A", "metric": {deep}}}',
    ("PUT", "/api/v1/objectives/{objective_id}"): '{{"target": {deep}}}',
    ("POST", "/api/v1/objectives/{objective_id}/retire"): '{{"from": {deep}}}',
    ("POST", "/api/v1/exposure"): '{{"unit": "A", "served": {deep}}}',
    ("POST", "/api/v1/actions"): '{{"unit": "A", "title": {deep}}}',
    ("POST", "/api/v1/actions/{action_id}/events"): '{{"type": "verifying", "note": {deep}}}',
    ("POST", "/api/v1/actions/{action_id}/callbacks"): '{{"via": "phone", "outcome": {deep}}}',
    ("POST", "/api/v1/users"): '{{"name": "n", "role": {deep}}}',
    ("PATCH", "/api/v1/users/{name}"): '{{"email": {deep}}}',
    ("POST", "/api/v1/tokens"): '{{"user": {deep}}}',
    ("POST", "/api/v1/webhooks"): '{{"url": "http://127.0.0.1:9/", "secret": "s", "events": {deep}}}',
    ("POST", "/api/v1/responses/{response_id}/erasure"): '{{"reason": {deep}}}',
    ("POST", "/api/v1/paper-entries"): '{{"serial": "ABCDE-FGHJK", "occurred_on": "2026-01-01", "answers": {deep}}}',
    ("POST", "/api/v1/touchpoints/{token}/call-sheets"): '{{"lang": {deep}}}',
    ("POST", "/api/v1/invitations"): '{{"touchpoint": "tp-a", "phone": {deep}}}',
    ("POST", "/api/v1/cases"): '{{"items": [{{"ref": "X", "unit": "A", "received": {deep}}}]}}',
    ("POST", "/api/v1/indicators"): '{{"key": "k", "names": {deep}}}',
    ("POST", "/api/v1/indicators/{key}/values"): '{{"unit": "A", "numerator": {deep}}}',
    ("POST", "/api/v1/federation/join"): '{{"code": "c", "public_key": "k", "name": "n", "units": {deep}}}',
}
# Writes whose body is read only once its signature holds (the SMS gateway's): checked signed, below.
SIGNED_BODY_ROUTES = {("POST", "/api/v1/sms/inbound")}
SMS_SECRET = "gateway-secret"
# A child installation's daily reports, read only once the child's Ed25519 signature holds: checked below.
CHILD_SIGNED_ROUTES = {("POST", "/api/v1/federation/reports")}
# Writes that take no body at all.
BODYLESS = {
    ("POST", "/api/v1/kiosks/{kiosk_id}/revoke"),
    ("POST", "/api/v1/tokens/{token_id}/revoke"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ("DELETE", "/api/v1/users/{name}/sessions/{session_id}"),
}


@dataclass
class World:
    org: Org
    server: Server
    device: str = ""
    path: dict[str, str] = field(default_factory=dict)

    def url(self, template: str) -> str:
        return self.server.url + template.format(**self.path)

    def headers(self, template: str) -> dict[str, str]:
        device_route = template.startswith("/api/v1/kiosk/") and not template.endswith("/enroll")
        return {
            **auth_header(self.device if device_route else self.org.tokens["admin"]),
            "content-type": "application/json",
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("no500") / "feedback.db")
    add_user(org.db, "boss", PASSWORD, "admin")
    server = Server(org.db, env={"FEEDBACK_JOBS": "0", "FEEDBACK_SMS_SECRET": SMS_SECRET}).start()
    world = World(org, server)
    admin = auth_header(org.tokens["admin"])
    code = enrollment_code(org)
    enrolled = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": code}).json()
    world.device = enrolled["device_token"]
    objective = httpx.post(
        f"{server.url}/api/v1/objectives",
        headers=admin,
        json={"unit": "A", "metric": "satisfaction", "target": 0.9, "period": "month"},
    ).json()
    action = httpx.post(f"{server.url}/api/v1/actions", headers=admin, json={"unit": "A", "title": "t"}).json()
    response = httpx.post(f"{server.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 4}})
    world.path = {
        "code": "A1",
        "token": "tp-a",
        "kiosk_id": enrolled["kiosk"]["id"],
        "objective_id": objective["id"],
        "action_id": action["id"],
        "name": "lan",
        "response_id": response.json()["id"],
        "key": "error_rate",
    }
    yield world
    server.stop()


def assert_names_body(reply: httpx.Response) -> None:
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["field"] == "body" and body["detail"].startswith("body: "), body


@pytest.mark.parametrize("depth", DEPTHS)
def test_deeply_nested_json_is_a_400_naming_body_on_every_json_route(world: World, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    for (method, template), body in BODY_ROUTES.items():
        reply = httpx.request(
            method, world.url(template), content=body.format(deep=deep), headers=world.headers(template), timeout=30
        )
        assert_names_body(reply)
        # Nesting of objects, and nesting as the whole body, alike.
        reply = httpx.request(
            method,
            world.url(template),
            content='{"a":' * depth + "1" + "}" * depth,
            headers=world.headers(template),
            timeout=30,
        )
        assert reply.status_code == 400, (template, reply.text)
    for template in ("/api/v1/objectives", "/api/v1/units/{code}", "/api/v1/exposure", "/api/v1/actions"):
        method = "PATCH" if "units" in template else "POST"
        assert_names_body(httpx.request(method, world.url(template), content=deep, headers=world.headers(template)))
    assert "Traceback" not in world.server.log.read_text()


def test_the_body_routes_above_are_every_write_in_the_document(world: World) -> None:
    paths = httpx.get(f"{world.server.url}/schema/openapi.json").json()["paths"]
    writes = {
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method in ("post", "put", "patch", "delete") and path.startswith("/api/v1")
    }
    assert writes == set(BODY_ROUTES) | BODYLESS | SIGNED_BODY_ROUTES | CHILD_SIGNED_ROUTES


@pytest.mark.parametrize("depth", (1_000, 5_000))  # within the 16 KiB such a body may have
def test_a_signed_body_is_held_to_the_same_rules(world: World, depth: int) -> None:
    """The gateway's messages: too deep, or a key given twice, is a 400 naming it once the signature holds."""
    for body, named in (
        ('{"id": "m", "from": "+84900000000", "text": %s}' % ("[" * depth + "]" * depth), "body"),
        ('{"id": "m", "from": "+84900000000", "text": "5", "text": "STOP"}', "text"),
    ):
        raw = body.encode()
        signature = "sha256=" + hmac.new(SMS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        for method, template in SIGNED_BODY_ROUTES:
            headers = {"content-type": "application/json", "x-feedback-signature": signature}
            reply = httpx.request(method, world.url(template), content=raw, headers=headers, timeout=30)
            assert reply.status_code == 400 and reply.json()["field"] == named, reply.text
    assert count(world.org, "SELECT count(*) AS n FROM sms_inbound") == 0


def test_a_report_signed_by_a_child_is_held_to_the_same_rules(world: World) -> None:
    """A child installation's report: too deep, or a key given twice, is a 400 naming it once the signature
    holds; nothing is stored."""
    from feedback import federation
    from feedback.db import open_database

    database = open_database(str(world.org.db))
    try:
        with database.conn:
            code, _expires = federation.create_invite(database.conn, "A")
    finally:
        database.close()
    key = federation.new_private_key()
    body = {"code": code, "public_key": federation.public_key_text(key), "name": "child", "units": ["A"]}
    child = httpx.post(f"{world.server.url}/api/v1/federation/join", json=body, timeout=30).json()["child"]
    for body, named in (
        ('{"version": 1, "units": %s}' % ("[" * 5_000 + "]" * 5_000), "body"),
        ('{"version": 1, "day": "2026-01-01", "day": "2026-01-02"}', "day"),
    ):
        raw = body.encode()
        headers = {
            "content-type": "application/json",
            federation.CHILD_HEADER: child,
            federation.SIGNATURE_HEADER: federation.sign(raw, key),
        }
        for method, template in CHILD_SIGNED_ROUTES:
            reply = httpx.request(method, world.url(template), content=raw, headers=headers, timeout=30)
            assert reply.status_code == 400 and reply.json()["field"] == named, reply.text
    assert count(world.org, "SELECT count(*) AS n FROM federation_reports") == 0


def int_routes() -> list[tuple[str, str, str]]:
    """(method, path template, parameter) of every route with an integer path parameter, from the app."""
    app = create_app(load_settings({}))
    found = []
    for route in app.routes:
        parameters = getattr(route, "path_parameters", {})
        for name, definition in parameters.items():
            if definition.type is int:
                for method in sorted(set(getattr(route, "methods", ())) - {"OPTIONS", "HEAD"}):
                    found.append((method, route.path.replace(f"{{{name}:int}}", "{id}"), name))
    return found


def test_integer_ids_past_64_bits_are_404_on_every_route(world: World) -> None:
    routes = int_routes()
    assert len(routes) >= 11 and any(path.startswith("/manage/") for _, path, _ in routes)
    client = httpx.Client(base_url=world.server.url, timeout=30)
    sign_in(client, world.server, "boss", PASSWORD)
    token = csrf_token(client, "/manage/")
    for method, template, name in routes:
        for huge in HUGE_IDS:
            path = template.format(id=huge)
            if template.startswith("/manage/"):
                # A form that stores nothing may send the browser back to its page: that page is the 404.
                reply = client.request(
                    method, path, data={"_csrf_token": token} if method == "POST" else None, follow_redirects=True
                )
                assert reply.status_code == 404, (method, path, reply.status_code)
                continue
            # Valid, but for the id.
            body = {"/events": {"type": "verifying"}, "/callbacks": {"via": "phone", "outcome": "reached"}}.get(
                template[template.rfind("/") :], {}
            )
            reply = httpx.request(
                method,
                world.server.url + path,
                headers=auth_header(world.org.tokens["admin"]),
                json=body if method in ("POST", "PUT") else None,
                timeout=30,
            )
            assert reply.status_code == 404, (method, path, reply.text)
            assert reply.json()["field"] == name and reply.json()["detail"].startswith(f"{name}: ")
    assert "Traceback" not in world.server.log.read_text()


SYNC_WITH_ID_TWICE = (
    '{"items": [{"id": "%s", "answers": {"overall": 4}, "id": "again", "submitted_at": "2024-05-01T10:00:00+07:00"}]}'
)


def count(org: Org, sql: str) -> int:
    return rows(org, sql)[0]["n"]


def test_a_key_given_twice_is_refused_naming_it(world: World) -> None:
    before = count(world.org, "SELECT count(*) AS n FROM responses")
    cases = [
        (
            "POST",
            "/api/v1/responses",
            '{"touchpoint": "tp-a", "touchpoint": "tp-b", "answers": {"overall": 5}}',
            "touchpoint",
        ),
        # The same key spelt with an escape is the same key.
        (
            "POST",
            "/api/v1/responses",
            '{"touchpoint": "tp-a", "answers": {"overall": 5}, "\\u0074ouchpoint": "tp-b"}',
            "touchpoint",
        ),
        (
            "POST",
            "/api/v1/responses",
            '{"touchpoint": "tp-a", "answers": {"overall": 1, "overall": 5}}',
            "answers.overall",
        ),
        ("POST", "/api/v1/kiosk/sync", SYNC_WITH_ID_TWICE % uuid.uuid4(), "items[0].id"),
        ("POST", "/api/v1/actions", '{"unit": "A", "title": "one", "title": "two"}', "title"),
        ("PATCH", "/api/v1/units/{code}", '{"owner": "lan", "owner": "root"}', "owner"),
        ("POST", "/api/v1/objectives", '{"unit": "A", "unit": "B", "metric": "satisfaction", "target": 0.9}', "unit"),
    ]
    for method, template, body, name in cases:
        reply = httpx.request(method, world.url(template), content=body, headers=world.headers(template))
        assert reply.status_code == 400, (template, reply.text)
        assert reply.json()["field"] == name and reply.json()["detail"].startswith(f"{name}: "), reply.json()
    # The same bodies without the repeat are taken.
    reply = httpx.post(
        world.url("/api/v1/responses"),
        content='{"touchpoint": "tp-a", "answers": {"overall": 5}}',
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 201
    assert count(world.org, "SELECT count(*) AS n FROM responses") == before + 1


def test_hand_read_bodies_refuse_values_of_the_wrong_type(world: World) -> None:
    """A unit's owner given as a list once reached SQLite (a 500)."""
    for value in ([], {}, 1.5, True):
        reply = httpx.patch(
            world.url("/api/v1/units/{code}"), json={"owner": value}, headers=auth_header(world.org.tokens["admin"])
        )
        assert reply.status_code == 400 and reply.json()["field"] == "owner", reply.text
