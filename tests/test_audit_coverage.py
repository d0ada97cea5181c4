"""Every change to configuration and records appends one audit entry naming who made it, through the API, the
manager app and the command line alike; an export with officer codes logs its download; a refused change
logs nothing; no entry holds a secret."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from feedback.audit_verify import verify_database
from feedback.auth import hash_token
from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, rows, run_cli
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
WEBHOOK_SECRET = "webhook-secret-do-not-log"


@dataclass
class Env:
    org: Org
    server: Server
    boss: httpx.Client  # signed in to the manager app as the admin "boss"

    def api(self, method: str, path: str, token: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = auth_header(self.org.tokens[token])
        return httpx.request(method, f"{self.server.url}{path}", headers=headers, timeout=30, **kwargs)

    def form(self, page: str, action: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.boss.post(action, data={"_csrf_token": csrf_token(self.boss, page), **(data or {})})


@pytest.fixture(scope="module")
def env(shared_org: Org) -> Iterator[Env]:
    add_user(shared_org.db, "boss", PASSWORD, "admin")
    # Webhooks to 127.0.0.1 allowed; no scheduled job, so every entry a test finds is the change it made.
    server = Server(shared_org.db, env={"FEEDBACK_WEBHOOK_ALLOW_PRIVATE": "1", "FEEDBACK_JOBS": "0"}).start()
    boss = httpx.Client(base_url=server.url, timeout=30)
    sign_in(boss, server, "boss", PASSWORD)
    try:
        yield Env(shared_org, server, boss)
    finally:
        boss.close()
        server.stop()


# -- reading the log ------------------------------------------------------------------------------------


def head(org: Org) -> int:
    return rows(org, "SELECT coalesce(max(seq), 0) AS seq FROM audit_log")[0]["seq"]


def entries_since(org: Org, seq: int) -> list[dict[str, Any]]:
    found = rows(org, "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", (seq,))
    for entry in found:
        entry["change"] = json.loads(entry["change"])
    return found


def one_entry(org: Org, seq: int) -> dict[str, Any]:
    """The one entry appended since `seq` (and that it holds no secret of the organisation)."""
    found = entries_since(org, seq)
    assert len(found) == 1, [(e["kind"], e["record_id"], e["action"]) for e in found]
    assert_no_secret(org, found[0])
    return found[0]


def assert_no_secret(org: Org, entry: dict[str, Any]) -> None:
    text = json.dumps(entry, ensure_ascii=False)
    secrets = [PASSWORD, WEBHOOK_SECRET, *org.tokens.values()]
    secrets += [hash_token(token) for token in org.tokens.values()]
    secrets += [r["password_hash"] for r in rows(org, "SELECT password_hash FROM users") if r["password_hash"]]
    for secret in secrets:
        assert secret not in text, f"a secret in entry {entry['seq']}"


def token_id(org: Org, name: str) -> str:
    return rows(org, "SELECT id FROM api_tokens WHERE token_hash = ?", (hash_token(org.tokens[name]),))[0]["id"]


def actor(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["actor_kind"], entry["actor_id"]


BOSS = ("user", "boss")


# -- units, services, touchpoints: the manager app ----------------------------------------------------------


def test_unit_service_and_touchpoint_changes_name_the_signed_in_user(env: Env) -> None:
    org = env.org
    mark = head(org)
    reply = env.form(
        "/manage/admin/units/",
        "/manage/admin/units/",
        {"code": "AU1", "name_en": "Audit unit", "parent": "A", "lang": "en", "tz": "UTC"},
    )
    assert reply.status_code == 303, reply.text[:500]
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("unit", "AU1", "create", "AU1")
    assert actor(entry) == BOSS
    assert entry["change"]["before"] is None
    assert entry["change"]["after"]["path"] == "/A/AU1/" and entry["change"]["after"]["name"] == "Audit unit"

    mark = head(org)
    reply = env.form("/manage/admin/services/", "/manage/admin/services/", {"code": "SAU", "name_en": "Audit"})
    assert reply.status_code == 303, reply.text[:500]
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("service", "SAU", "create")
    assert actor(entry) == BOSS and entry["change"]["after"]["name"] == "Audit"

    mark = head(org)
    reply = env.form(
        "/manage/admin/touchpoints/?unit=AU1",
        "/manage/admin/touchpoints/",
        {"unit": "AU1", "name": "Desk 9", "survey": "csat", "kind": "qr"},
    )
    assert reply.status_code == 303, reply.text[:500]
    entry = one_entry(org, mark)
    token = rows(org, "SELECT token FROM touchpoints WHERE unit = 'AU1'")[0]["token"]
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("touchpoint", token, "create", "AU1")
    assert actor(entry) == BOSS and entry["change"]["after"]["name"] == "Desk 9"

    mark = head(org)
    page = "/manage/admin/touchpoints/?unit=AU1"
    assert env.form(page, f"/manage/admin/touchpoints/{token}/retire").status_code == 303
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("touchpoint", token, "retire")
    assert entry["change"]["before"]["retired_at"] is None and entry["change"]["after"]["retired_at"]
    # Retiring it again is refused (409) and logs nothing.
    mark = head(org)
    assert env.form(page, f"/manage/admin/touchpoints/{token}/retire").status_code == 409
    assert entries_since(org, mark) == []


def test_unit_settings_through_the_api_name_the_token(env: Env) -> None:
    org = env.org
    mark = head(org)
    reply = env.api("PATCH", "/api/v1/units/A1", json={"action_days": 7, "country": "vn"})
    assert reply.status_code == 200, reply.text
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == (
        "unit_settings",
        "A1",
        "update",
        "A1",
    )
    assert actor(entry) == ("token", token_id(org, "admin"))
    before, after = entry["change"]["before"], entry["change"]["after"]
    assert (before["action_days"], before["country"]) == (None, None)
    assert (after["action_days"], after["country"]) == (7, "VN")
    # The same values again change nothing, and log nothing.
    mark = head(org)
    assert env.api("PATCH", "/api/v1/units/A1", json={"action_days": 7}).status_code == 200
    assert entries_since(org, mark) == []


# -- surveys -----------------------------------------------------------------------------------------------


def test_survey_drafts_and_publication(env: Env) -> None:
    org = env.org
    mark = head(org)
    reply = env.form("/manage/admin/surveys/drafts/csat", "/manage/admin/surveys/drafts/csat/edit", {})
    assert reply.status_code == 303, reply.text[:500]
    draft_id = re.search(r"/surveys/edit/(\d+)$", reply.headers["location"]).group(1)
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("survey_draft", draft_id, "create")
    assert actor(entry) == BOSS and entry["change"]["after"]["slug"] == "csat"

    mark = head(org)
    edit = f"/manage/admin/surveys/edit/{draft_id}"
    assert env.form(edit, f"{edit}/discard").status_code == 303
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("survey_draft", draft_id, "delete")
    assert entry["change"]["after"] is None and entry["change"]["before"]["slug"] == "csat"

    versions = [r["version"] for r in rows(org, "SELECT version FROM survey_versions WHERE slug = 'csat'")]
    mark = head(org)
    page = "/manage/admin/surveys/drafts/csat"
    assert env.form(page, "/manage/admin/surveys/drafts/csat/publish").status_code == 303
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("survey", "csat", "publish")
    assert actor(entry) == BOSS
    assert entry["change"]["before"]["versions"] == versions
    assert entry["change"]["after"]["versions"] == [*versions, max(versions) + 1]


# -- objectives --------------------------------------------------------------------------------------------


def test_objective_and_its_versions(env: Env) -> None:
    org = env.org
    manager = token_id(org, "manager_a1")
    mark = head(org)
    reply = env.api(
        "POST", "/api/v1/objectives", "manager_a1", json={"unit": "A1", "metric": "satisfaction", "target": 0.8}
    )
    assert reply.status_code == 201, reply.text
    oid = str(reply.json()["id"])
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("objective", oid, "create", "A1")
    assert actor(entry) == ("token", manager)
    assert [v["target"] for v in entry["change"]["after"]["versions"]] == [0.8]

    mark = head(org)
    assert env.api("PUT", f"/api/v1/objectives/{oid}", "manager_a1", json={"target": 0.9}).status_code == 200
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("objective", oid, "new_version")
    assert [v["target"] for v in entry["change"]["before"]["versions"]] == [0.8]
    assert [v["target"] for v in entry["change"]["after"]["versions"]] == [0.8, 0.9]

    mark = head(org)
    assert env.api("POST", f"/api/v1/objectives/{oid}/retire", "manager_a1", json={}).status_code == 200
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("objective", oid, "retire")
    assert entry["change"]["before"]["retired_from"] is None and entry["change"]["after"]["retired_from"]


# -- users, roles, tokens -----------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_users_roles_and_tokens(env: Env) -> None:
    org = env.org
    admin = ("token", token_id(org, "admin"))
    mark = head(org)
    reply = env.api("POST", "/api/v1/users", json={"name": "audited", "role": "viewer", "unit": "A1"})
    assert reply.status_code == 201, reply.text
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("user", "audited", "create", "A1")
    assert actor(entry) == admin and entry["change"]["after"]["role"] == "viewer"

    mark = head(org)
    reply = env.api("POST", "/api/v1/tokens", json={"user": "audited"})
    assert reply.status_code == 201, reply.text
    new_token, new_id = reply.json()["token"], reply.json()["id"]
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("token", new_id, "create")
    assert actor(entry) == admin
    stored_hash = rows(org, "SELECT token_hash FROM api_tokens WHERE id = ?", (new_id,))[0]["token_hash"]
    assert new_token not in json.dumps(entry) and stored_hash not in json.dumps(entry)

    # A new role: the user's entry, and one for its live token, which follows.
    mark = head(org)
    assert env.api("PATCH", "/api/v1/users/audited", json={"role": "manager"}).status_code == 200
    user_entry, token_entry = entries_since(org, mark)[-1], entries_since(org, mark)[0]
    assert len(entries_since(org, mark)) == 2
    assert (token_entry["kind"], token_entry["record_id"], token_entry["action"]) == ("token", new_id, "update")
    assert (token_entry["change"]["before"]["role"], token_entry["change"]["after"]["role"]) == ("viewer", "manager")
    assert (user_entry["kind"], user_entry["record_id"], user_entry["action"]) == ("user", "audited", "update")
    assert (user_entry["change"]["before"]["role"], user_entry["change"]["after"]["role"]) == ("viewer", "manager")

    # A password set in the manager app: logged as a changed digest, never the password or its hash.
    mark = head(org)
    page = "/manage/admin/users/audited"
    assert env.form(page, f"{page}/password", {"password": PASSWORD}).status_code == 303
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("user", "audited", "set_password")
    assert actor(entry) == BOSS
    before, after = entry["change"]["before"]["password_hash"], entry["change"]["after"]["password_hash"]
    assert before is None and after.startswith("sha256:")

    mark = head(org)
    assert env.api("POST", f"/api/v1/tokens/{new_id}/revoke").status_code == 200
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("token", new_id, "revoke")
    assert entry["change"]["before"]["revoked_at"] is None and entry["change"]["after"]["revoked_at"]
    mark = head(org)
    assert env.api("POST", f"/api/v1/tokens/{new_id}/revoke").status_code == 200  # a second time: nothing changes
    assert entries_since(org, mark) == []

    mark = head(org)
    assert env.api("PATCH", "/api/v1/users/audited", json={"disabled": True}).status_code == 200
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["action"], entry["change"]["after"]["disabled"]) == ("user", "update", 1)


@pytest.mark.postgres_covered_elsewhere
def test_command_line_changes_name_the_os_user(env: Env) -> None:
    org = env.org
    mark = head(org)
    done = run_cli("user", "add", "--db", str(org.db), "--user", "clerk", "--role", "viewer", "--unit", "B")
    assert done.returncode == 0, done.stderr
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("user", "clerk", "create", "B")
    assert actor(entry) == ("cli", getpass.getuser())

    mark = head(org)
    done = run_cli("token", "create", "--db", str(org.db), "--user", "clerk")
    assert done.returncode == 0, done.stderr
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["action"], entry["change"]["after"]["user"]) == ("token", "create", "clerk")
    assert actor(entry) == ("cli", getpass.getuser())
    assert done.stdout.strip() not in json.dumps(entry)


# -- webhooks, kiosks --------------------------------------------------------------------------------------


def test_webhooks_are_logged_without_their_secret(env: Env) -> None:
    org = env.org
    mark = head(org)
    body = {"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET, "events": ["action.opened"]}
    reply = env.api("POST", "/api/v1/webhooks", json=body)
    assert reply.status_code == 201, reply.text
    hook = str(reply.json()["id"])
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("webhook", hook, "create")
    assert actor(entry) == ("token", token_id(org, "admin"))
    assert entry["change"]["after"]["url"] == body["url"] and entry["change"]["after"]["secret"].startswith("sha256:")

    mark = head(org)
    assert env.api("DELETE", f"/api/v1/webhooks/{hook}").status_code == 200
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("webhook", hook, "disable")
    assert entry["change"]["before"]["disabled_at"] is None and entry["change"]["after"]["disabled_at"]


def test_kiosk_enrolment_and_revocation(env: Env) -> None:
    org = env.org
    manager = ("token", token_id(org, "manager_a1"))
    mark = head(org)
    reply = env.api("POST", "/api/v1/kiosks/enroll", "manager_a1", json={"touchpoint": "tp-a1a"})
    assert reply.status_code == 201, reply.text
    code = reply.json()["code"]
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == (
        "kiosk_enrollment",
        "tp-a1a",
        "create",
        "A1a",
    )
    assert actor(entry) == manager and code not in json.dumps(entry)

    mark = head(org)
    enrolled = httpx.post(f"{env.server.url}/api/v1/kiosk/enroll", json={"code": code, "name": "Lobby"})
    assert enrolled.status_code == 201, enrolled.text
    kiosk = enrolled.json()["kiosk"]["id"]
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("kiosk", kiosk, "enrol", "A1a")
    assert actor(entry)[0] == "system"  # the tablet itself, with no user: the code's entry names who let it in
    assert enrolled.json()["device_token"] not in json.dumps(entry)
    assert entry["change"]["after"]["touchpoint"] == "tp-a1a" and "last_seen" not in entry["change"]["after"]

    mark = head(org)
    assert env.api("POST", f"/api/v1/kiosks/{kiosk}/revoke", "manager_a1").status_code == 200
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("kiosk", kiosk, "revoke", "A1a")
    assert actor(entry) == manager


# -- corrective actions ------------------------------------------------------------------------------------


def test_each_step_of_an_action_is_one_entry(env: Env) -> None:
    org = env.org
    admin = ("token", token_id(org, "admin"))
    mark = head(org)
    reply = env.api("POST", "/api/v1/actions", json={"unit": "A1", "title": "Signage", "note": "seen at desk 2"})
    assert reply.status_code == 201, reply.text
    action = str(reply.json()["id"])
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("action", action, "open", "A1")
    assert actor(entry) == admin
    assert entry["change"]["after"]["status"] == "new" and entry["change"]["after"]["fields"] == ["note"]
    assert "seen at desk 2" not in json.dumps(entry)  # the step's text stays in its record, a digest here

    mark = head(org)
    reply = env.api("POST", f"/api/v1/actions/{action}/events", json={"type": "verifying", "note": "checking"})
    assert reply.status_code in (200, 201), reply.text
    entry = one_entry(org, mark)
    assert (entry["kind"], entry["record_id"], entry["action"]) == ("action", action, "transition")
    assert (entry["change"]["before"]["status"], entry["change"]["after"]["status"]) == ("new", "verifying")
    [step] = rows(org, "SELECT seq FROM action_events WHERE action = ? AND type = 'verifying'", (int(action),))
    assert entry["change"]["after"]["event_seq"] == step["seq"]


# -- downloads ---------------------------------------------------------------------------------------------


def test_response_exports_log_their_download_and_rate_exports_do_not(env: Env) -> None:
    org = env.org
    for name in ("responses.csv", "responses.xlsx"):
        mark = head(org)
        reply = env.api("GET", f"/api/v1/exports/{name}", params={"unit": "A", "from": "2024-01-01"})
        assert reply.status_code == 200, reply.text[:300]
        entry = one_entry(org, mark)
        assert (entry["kind"], entry["record_id"], entry["action"], entry["unit"]) == ("export", name, "download", "A")
        assert actor(entry) == ("token", token_id(org, "admin"))
        after = entry["change"]["after"]
        assert (after["export"], after["officers"], after["from"]) == (name, True, "2024-01-01")
    # A viewer's export has no officer codes; the entry says so.
    mark = head(org)
    assert env.api("GET", "/api/v1/exports/responses.csv", "viewer_b", params={"unit": "B"}).status_code == 200
    assert one_entry(org, mark)["change"]["after"]["officers"] is False
    mark = head(org)
    assert env.api("GET", "/api/v1/exports/rates.csv", params={"unit": "A"}).status_code == 200
    assert entries_since(org, mark) == []


# -- refusals ----------------------------------------------------------------------------------------------


REFUSED = [
    ("PATCH", "/api/v1/units/A1", "admin", {"json": {"action_days": 0}}, 400),
    ("PATCH", "/api/v1/units/B", "manager_a1", {"json": {"action_days": 3}}, 403),
    ("POST", "/api/v1/users", "admin", {"json": {"name": "x", "role": "overlord", "unit": "A"}}, 400),
    ("POST", "/api/v1/users", "manager_a1", {"json": {"name": "y", "role": "viewer", "unit": "A1"}}, 403),
    ("POST", "/api/v1/objectives", "viewer_b", {"json": {"unit": "B", "metric": "satisfaction", "target": 0.8}}, 403),
    ("POST", "/api/v1/objectives", "admin", {"json": {"unit": "A", "metric": "satisfaction", "target": "lots"}}, 400),
    ("POST", "/api/v1/webhooks", "manager_a1", {"json": {"url": "http://127.0.0.1:9/h", "secret": "s"}}, 403),
    ("POST", "/api/v1/kiosks/enroll", "viewer_b", {"json": {"touchpoint": "tp-b"}}, 403),
    ("POST", "/api/v1/actions", "viewer_b", {"json": {"unit": "B", "title": "t"}}, 403),
    ("GET", "/api/v1/exports/responses.csv", "admin", {"params": {"unit": "A", "level": "9"}}, 400),
    ("GET", "/api/v1/exports/responses.csv", "manager_a1", {"params": {"unit": "B"}}, 403),
]


@pytest.mark.postgres_covered_elsewhere
@pytest.mark.parametrize(("method", "path", "token", "kwargs", "status"), REFUSED)
def test_a_refused_change_logs_nothing(env: Env, method: str, path: str, token: str, kwargs: dict, status: int) -> None:
    mark = head(env.org)
    reply = env.api(method, path, token, **kwargs)
    assert reply.status_code == status, reply.text[:300]
    assert entries_since(env.org, mark) == []


def test_a_refused_form_logs_nothing(env: Env) -> None:
    mark = head(env.org)
    taken = env.form("/manage/admin/units/", "/manage/admin/units/", {"code": "A", "name_en": "dup", "lang": "en"})
    assert taken.status_code == 409
    bad = env.form("/manage/admin/units/", "/manage/admin/units/", {"code": "Z9", "name_en": "Z", "tz": "Mars/Olympus"})
    assert bad.status_code == 400
    assert entries_since(env.org, mark) == []


def test_the_records_still_match_their_last_entries(env: Env) -> None:
    """Changes through every path leave each tracked record as its last entry says, so the verifier finds
    nothing amiss: a change that bypassed the log would be named here."""
    org = env.org
    assert env.api("PATCH", "/api/v1/units/A1a", json={"owner": "lan", "public_results": True}).status_code == 200
    assert env.api("POST", "/api/v1/users", json={"name": "checked", "role": "viewer", "unit": "B"}).status_code == 201
    created = env.api("POST", "/api/v1/tokens", json={"user": "checked"})
    assert created.status_code == 201
    assert env.api("PATCH", "/api/v1/users/checked", json={"unit": "A1", "lang": "vi"}).status_code == 200
    hook = env.api("POST", "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/v", "secret": WEBHOOK_SECRET})
    assert env.api("DELETE", f"/api/v1/webhooks/{hook.json()['id']}").status_code == 200
    objective = env.api("POST", "/api/v1/objectives", json={"unit": "B", "metric": "satisfaction", "target": 0.7})
    assert env.api("PUT", f"/api/v1/objectives/{objective.json()['id']}", json={"target": 0.75}).status_code == 200
    page = "/manage/admin/units/B"
    assert env.form(page, page, {"owner": "ivan", "action_days": "5", "country": "RU"}).status_code == 303
    assert (
        run_cli("user", "add", "--db", str(org.db), "--user", "checked", "--role", "manager", "--unit", "A1").returncode
        == 0
    )
    report = verify_database(str(org.db))  # raises Mismatch naming the first record that differs from its entry
    assert report.records >= len(rows(org, "SELECT code FROM units")) + len(rows(org, "SELECT name FROM users"))
