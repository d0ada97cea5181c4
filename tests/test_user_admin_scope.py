"""Who administers which users and API tokens: a role × unit × action matrix through the manager pages and
the JSON API of one real server over one real SQLite file, and `feedback token create` on the command line.

The organisation is A → A1 → A1a and B. An admin with a unit administers only users of its subtree and never
a user without a unit; what it may not administer answers 404 (a name's existence does not leak); other
roles administer nobody (403); nobody changes their own role or unit or disables themselves. Every refused
request leaves the users and api_tokens tables exactly as they were.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from feedback.passwords import hash_password
from feedback.store import Connection
from tests.conftest import (
    ARTIFACTS,
    AXE,
    BOTH_BACKENDS,
    Org,
    Server,
    auth_header,
    axe_violations,
    connect,
    rows,
    run_cli,
    save_screenshot,
)
from tests.manage_helpers import csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
PAGES = "/manage/admin/users"

# The actors and the targets: name -> (role, unit).
ACTORS = {
    "root0": ("admin", None),
    "adm_a": ("admin", "A"),
    "adm_a1": ("admin", "A1"),
    "mgr_a1": ("manager", "A1"),
    "view_b": ("viewer", "B"),
}
TARGETS = {
    "unitless_admin": ("admin", None),
    "admin_a": ("admin", "A"),
    "manager_a1": ("manager", "A1"),
    "user_a1a": ("viewer", "A1a"),
    "user_b": ("viewer", "B"),
    "self": None,  # the actor itself (a fresh copy of it per case, so one case cannot spoil another)
}
# The units each actor's unit covers, written out rather than computed.
SUBTREE = {None: {None, "A", "A1", "A1a", "B"}, "A": {"A", "A1", "A1a"}, "A1": {"A1", "A1a"}, "B": {"B"}}
# Role changes (role, unit) and unit changes per target: inside, out of and into the subtree, to no unit.
NEW_ROLE = {
    "unitless_admin": ("manager", "A"),
    "admin_a": ("manager", "A"),
    "manager_a1": ("admin", "A1"),
    "user_a1a": ("manager", "A1a"),
    "user_b": ("manager", "B"),
}
NEW_UNIT = {"unitless_admin": "A1", "admin_a": None, "manager_a1": "A1a", "user_a1a": "B", "user_b": "A1a"}
SELF_ROLE = {
    "root0": ("manager", "A"),
    "adm_a": ("manager", "A"),
    "adm_a1": ("viewer", "A1"),
    "mgr_a1": ("admin", "A1"),
    "view_b": ("admin", None),
}  # demotions and self-promotions
SELF_UNIT = {"root0": "A", "adm_a": "B", "adm_a1": "A", "mgr_a1": "A", "view_b": "A"}  # upward or outside
# On PostgreSQL the matrix runs for these actors: the unit-less admin (every change allowed) and an admin of
# a subtree (allowed, 403 and 404 alike); the other actors run the same queries, only judged otherwise.
POSTGRES_ACTORS = ("root0", "adm_a1")
ACTIONS = ("see", "create", "edit_role", "edit_unit", "disable", "enable", "password", "token_create", "token_revoke")
OK = 200


def same_page(one: str, other: str) -> bool:
    """Two pages alike but for their CSRF tokens."""
    csrf = re.compile(r'name="_csrf_token" value="[^"]*"')
    return csrf.sub("", one) == csrf.sub("", other)


def administers(actor: str, unit: str | None) -> bool:
    role, own = ACTORS[actor]
    return role == "admin" and unit in SUBTREE[own]


def expected(actor: str, target: str, action: str) -> int:
    """OK, 403 or 404: the rule, stated independently of the code under test."""
    if ACTORS[actor][0] != "admin":
        return 403
    if target == "self":
        return 403 if action in ("edit_role", "edit_unit", "disable") else OK
    role, unit = TARGETS[target]
    if action == "create":
        return OK if administers(actor, unit) else 403
    if not administers(actor, unit):
        return 404
    if action == "edit_role":
        return OK if administers(actor, NEW_ROLE[target][1]) else 403
    if action == "edit_unit":
        return OK if administers(actor, NEW_UNIT[target]) else 403
    return OK


def cases() -> Iterator[tuple[str, str, str, str]]:
    for channel in ("page", "api"):
        for actor in ACTORS:
            for target in TARGETS:
                for action in ACTIONS:
                    if channel == "api" and action == "password":
                        continue  # passwords are set on the page only
                    if target == "self" and action in ("create", "enable"):
                        continue  # creating "self" is creating with one's own role and unit; self is enabled
                    yield channel, actor, target, action


# -- fixtures -----------------------------------------------------------------------------------------


class World:
    """The server, the database, a password hash to give users quickly, and signed-in clients per actor."""

    def __init__(self, org: Org, server: Server) -> None:
        self.org, self.server = org, server
        self.hash = hash_password(PASSWORD)
        self.tokens: dict[str, str] = {}
        self.clients: dict[str, tuple[httpx.Client, str]] = {}

    def connect(self) -> Connection:
        return connect(self.org.db)

    def add_user(self, name: str, role: str, unit: str | None, *, disabled: bool = False) -> str:
        """A user with the test password and one API token; returns the token's id."""
        now = datetime.now(UTC).isoformat()
        token = f"fbk_test_{name}"
        token_id = "t" + hashlib.sha256(name.encode()).hexdigest()[:12]
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO users (name, role, unit, password_hash, created_at, disabled) VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, unit, self.hash, now, int(disabled)),
            )
            conn.execute(
                'INSERT INTO api_tokens (id, token_hash, "user", role, unit, created_at, hint)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, hashlib.sha256(token.encode()).hexdigest(), name, role, unit, now, token[-4:]),
            )
        conn.close()
        self.tokens[name] = token
        return token_id

    def page_client(self, name: str) -> tuple[httpx.Client, str]:
        """A signed-in client and the CSRF token of its forms (kept for the module)."""
        if name not in self.clients:
            client = httpx.Client(base_url=self.server.url, timeout=30)
            sign_in(client, self.server, name, PASSWORD)
            self.clients[name] = (client, csrf_token(client, "/manage/"))
        return self.clients[name]

    def dump(self) -> tuple[list[dict], list[dict]]:
        with self.connect() as conn:
            users = [dict(r) for r in conn.execute("SELECT * FROM users ORDER BY name")]
            tokens = [dict(r) for r in conn.execute("SELECT * FROM api_tokens ORDER BY token_hash")]
        conn.close()
        return users, tokens

    def user(self, name: str) -> dict | None:
        found = rows(self.org, "SELECT * FROM users WHERE name = ?", (name,))
        return found[0] if found else None


@pytest.fixture(scope="module")
def world(shared_org: Org) -> Iterator[World]:
    org = shared_org
    server = Server(org.db).start()
    world = World(org, server)
    for name, (role, unit) in ACTORS.items():
        world.add_user(name, role, unit)
    yield world
    for client, _token in world.clients.values():
        client.close()
    server.stop()


# -- the matrix ----------------------------------------------------------------------------------------


def page_call(world: World, actor: str, action: str, name: str, token_id: str, new: dict) -> list[httpx.Response]:
    client, csrf = world.page_client(actor)
    path = f"{PAGES}/{name}"
    if action == "see":
        return [client.get(path)]
    if action == "create":
        return [
            client.post(
                PAGES,
                data={
                    "_csrf_token": csrf,
                    "name": name,
                    "password": PASSWORD,
                    "role": new["role"],
                    "unit": new["unit"] or "",
                    "email": "",
                    "lang": "",
                },
            )
        ]
    if action in ("edit_role", "edit_unit"):
        return [
            client.post(
                path,
                data={"_csrf_token": csrf, "role": new["role"], "unit": new["unit"] or "", "email": "", "lang": ""},
            )
        ]
    if action in ("disable", "enable"):
        return [client.post(f"{path}/{action}", data={"_csrf_token": csrf})]
    if action == "password":
        return [client.post(f"{path}/password", data={"_csrf_token": csrf, "password": "a new pass phrase"})]
    if action == "token_create":
        return [client.post(f"{path}/tokens", data={"_csrf_token": csrf})]
    return [client.post(f"{path}/tokens/{token_id}/revoke", data={"_csrf_token": csrf})]


def api_call(world: World, actor: str, action: str, name: str, token_id: str, new: dict) -> list[httpx.Response]:
    url, bearer = world.server.url, auth_header(world.tokens[actor])
    if action == "see":
        return [httpx.get(f"{url}/api/v1/users", headers=bearer), httpx.get(f"{url}/api/v1/tokens", headers=bearer)]
    if action == "create":
        return [httpx.post(f"{url}/api/v1/users", headers=bearer, json={"name": name, **new})]
    if action == "edit_role":
        return [httpx.patch(f"{url}/api/v1/users/{name}", headers=bearer, json=new)]
    if action == "edit_unit":
        return [httpx.patch(f"{url}/api/v1/users/{name}", headers=bearer, json={"unit": new["unit"]})]
    if action in ("disable", "enable"):
        body = {"disabled": action == "disable"}
        return [httpx.patch(f"{url}/api/v1/users/{name}", headers=bearer, json=body)]
    if action == "token_create":
        return [httpx.post(f"{url}/api/v1/tokens", headers=bearer, json={"user": name})]
    return [httpx.post(f"{url}/api/v1/tokens/{token_id}/revoke", headers=bearer)]


def arrange(world: World, channel: str, actor: str, target: str, action: str) -> tuple[str, str, str, dict]:
    """Fresh users for one case: returns (acting user, target name, target's token id, the change asked)."""
    case = f"{channel}-{actor}-{target}-{action}"
    if target == "self":
        role, unit = ACTORS[actor]
        acting = name = case  # a copy of the actor, acting on itself
        token_id = world.add_user(acting, role, unit)
        new = {
            "edit_role": dict(zip(("role", "unit"), SELF_ROLE[actor], strict=True)),
            "edit_unit": {"role": role, "unit": SELF_UNIT[actor]},
        }.get(action, {"role": role, "unit": unit})
        return acting, name, token_id, new
    role, unit = TARGETS[target]
    new = {"role": role, "unit": unit}
    if action == "create":
        return actor, case, "", new
    token_id = world.add_user(case, role, unit, disabled=action == "enable")
    if action == "edit_role":
        new = dict(zip(("role", "unit"), NEW_ROLE[target], strict=True))
    elif action == "edit_unit":
        new = {"role": role, "unit": NEW_UNIT[target]}
    return actor, case, token_id, new


def assert_done(
    world: World, channel: str, action: str, name: str, token_id: str, new: dict, replies: list[httpx.Response]
) -> None:
    """The allowed change happened (and only then is the reply checked for what it shows)."""
    user = world.user(name)
    if action == "see":
        if channel == "page":
            assert f"<h1>{name}</h1>" in replies[0].text and f'data-token="{token_id}"' in replies[0].text
        else:
            assert name in [u["name"] for u in replies[0].json()]
            assert token_id in [t["id"] for t in replies[1].json()]
            assert all("token_hash" not in t and "token" not in t for t in replies[1].json())
    elif action == "create":
        assert user is not None and (user["role"], user["unit"]) == (new["role"], new["unit"])
    elif action in ("edit_role", "edit_unit"):
        assert (user["role"], user["unit"]) == (new["role"], new["unit"])
        # The user's token follows its new role and unit.
        [token] = rows(world.org, "SELECT role, unit FROM api_tokens WHERE id = ?", (token_id,))
        assert (token["role"], token["unit"]) == (new["role"], new["unit"])
    elif action in ("disable", "enable"):
        assert user["disabled"] == (action == "disable")
    elif action == "password":
        assert user["password_hash"] != world.hash
    elif action == "token_create":
        if channel == "api":
            shown = replies[0].json()
            assert replies[0].headers["cache-control"] == "no-store"
            assert (shown["user"], shown["role"], shown["unit"]) == (name, user["role"], user["unit"])
            token = shown["token"]
        else:
            token = replies[0].text.split('id="new-token-value">', 1)[1].split("<", 1)[0]
        stored = rows(
            world.org,
            'SELECT "user", role, unit FROM api_tokens WHERE token_hash = ?',
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
        assert stored == [{"user": name, "role": user["role"], "unit": user["unit"]}]
    elif action == "token_revoke":
        assert rows(world.org, "SELECT revoked_at FROM api_tokens WHERE id = ?", (token_id,))[0]["revoked_at"]


@pytest.mark.parametrize(("channel", "actor", "target", "action"), list(cases()))
def test_user_and_token_administration_keeps_to_the_unit(
    world: World, channel: str, actor: str, target: str, action: str
) -> None:
    if world.org.backend == "postgresql" and actor not in POSTGRES_ACTORS:
        pytest.skip("the same queries as the actors run on PostgreSQL: the rule is judged on SQLite")
    acting, name, token_id, new = arrange(world, channel, actor, target, action)
    want = expected(actor, target, action)
    call = page_call if channel == "page" else api_call
    before = world.dump()
    replies = call(world, acting, action, name, token_id, new)
    codes = [reply.status_code for reply in replies]
    if want == OK:
        assert all(code in (200, 201, 303) for code in codes), (codes, replies[0].text[:300])
        if channel == "page" and action == "see":
            listed = world.page_client(acting)[0].get(PAGES)
            assert listed.status_code == 200 and f'data-user="{name}"' in listed.text
        assert_done(world, channel, action, name, token_id, new, replies)
        return
    if action == "see" and channel == "api" and want == 404:
        # The API lists: the hidden user and its token are simply not there.
        assert codes == [200, 200]
        assert name not in [u["name"] for u in replies[0].json()]
        assert token_id not in [t["id"] for t in replies[1].json()]
        return
    assert codes == [want] * len(codes), (codes, replies[0].text[:300])
    if channel == "api":
        assert all(reply.json()["status_code"] == want and reply.json()["field"] for reply in replies)
    assert world.dump() == before  # nothing at all changed
    if action == "see" and channel == "page":
        listed = world.page_client(acting)[0].get(PAGES)
        assert f'data-user="{name}"' not in listed.text
        if want == 403:
            assert listed.status_code == 403
        else:  # listed without the hidden user, whose page is the page of a user that does not exist
            assert listed.status_code == 200 and 'id="users"' in listed.text
            missing = world.page_client(acting)[0].get(f"{PAGES}/no-such-user")
            assert missing.status_code == 404
            assert same_page(missing.text.replace("no-such-user", name), replies[0].text)


# -- tokens take effect, errors name the field -------------------------------------------------------


def test_a_revoked_or_changed_token_is_refused_at_once(world: World) -> None:
    url, root = world.server.url, auth_header(world.tokens["root0"])
    token_id = world.add_user("ops-bot", "admin", "A")
    bot = auth_header(world.tokens["ops-bot"])
    assert httpx.get(f"{url}/api/v1/users", headers=bot).status_code == 200  # now cached for 30 s
    # Demoted: the same token is a manager's at once, and manages nobody.
    demoted = httpx.patch(f"{url}/api/v1/users/ops-bot", headers=root, json={"role": "manager"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "manager"
    assert httpx.get(f"{url}/api/v1/users", headers=bot).status_code == 403
    # Moved to B: the token reads B and no longer A.
    assert httpx.patch(f"{url}/api/v1/users/ops-bot", headers=root, json={"unit": "B"}).status_code == 200
    assert httpx.get(f"{url}/api/v1/satisfaction?unit=B", headers=bot).status_code == 200
    assert httpx.get(f"{url}/api/v1/satisfaction?unit=A", headers=bot).status_code == 403
    # Revoked: refused on the next request, and the record says when.
    revoked = httpx.post(f"{url}/api/v1/tokens/{token_id}/revoke", headers=root)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] and revoked.json()["id"] == token_id
    assert httpx.get(f"{url}/api/v1/units", headers=bot).status_code == 401
    again = httpx.post(f"{url}/api/v1/tokens/{token_id}/revoke", headers=root)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_a_token_made_on_the_page_works_and_its_revocation_holds_at_once(world: World) -> None:
    world.add_user("kiosk-ops", "manager", "A1")
    client, csrf = world.page_client("adm_a")
    made = client.post(f"{PAGES}/kiosk-ops/tokens", data={"_csrf_token": csrf})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = made.text.split('id="new-token-value">', 1)[1].split("<", 1)[0]
    bearer = auth_header(token)
    assert [u["code"] for u in httpx.get(f"{world.server.url}/api/v1/units", headers=bearer).json()] == ["A1", "A1a"]
    # Shown once: the user's page afterwards lists it by its last four characters only.
    page = client.get(f"{PAGES}/kiosk-ops")
    assert token not in page.text and token[-4:] in page.text
    [token_id] = [
        r["id"]
        for r in rows(world.org, "SELECT id, token_hash FROM api_tokens WHERE \"user\" = 'kiosk-ops'")
        if r["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    ]
    # Not through another user's page, even one the admin administers.
    assert client.post(f"{PAGES}/adm_a1/tokens/{token_id}/revoke", data={"_csrf_token": csrf}).status_code == 404
    done = client.post(f"{PAGES}/kiosk-ops/tokens/{token_id}/revoke", data={"_csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=revoked")
    assert httpx.get(f"{world.server.url}/api/v1/units", headers=bearer).status_code == 401


def test_api_errors_name_the_field(world: World) -> None:
    url, adm_a = world.server.url, auth_header(world.tokens["adm_a"])
    world.add_user("gone-user", "viewer", "A1", disabled=True)

    def field(reply: httpx.Response) -> tuple[int, str]:
        body = reply.json()
        assert body["detail"].startswith(body["field"]), body
        return reply.status_code, body["field"]

    post = lambda body: httpx.post(f"{url}/api/v1/users", headers=adm_a, json=body)  # noqa: E731
    assert field(post({"name": "x1", "role": "boss", "unit": "A1"})) == (400, "role")
    assert field(post({"name": "x1", "role": "viewer", "unit": "NOPE"})) == (400, "unit")
    assert field(post({"name": "x1", "role": "viewer"})) == (400, "unit")
    assert field(post({"name": "x 1", "role": "viewer", "unit": "A1"})) == (400, "name")
    assert field(post({"name": "x1", "role": "viewer", "unit": "A1", "email": "nope"})) == (400, "email")
    assert field(post({"name": "x1", "role": "viewer", "unit": "A1", "password": "secret"})) == (400, "password")
    assert field(post({"name": "x1", "role": "admin"})) == (403, "unit")
    assert field(post({"name": "x1", "role": "admin", "unit": "B"})) == (403, "unit")
    assert field(post({"name": "adm_a1", "role": "viewer", "unit": "A1"})) == (409, "name")
    patch = lambda name, body: httpx.patch(f"{url}/api/v1/users/{name}", headers=adm_a, json=body)  # noqa: E731
    assert field(patch("adm_a1", {"role": "root"})) == (400, "role")
    assert field(patch("adm_a1", {"colour": "red"})) == (400, "colour")
    assert field(patch("adm_a1", {"unit": None})) == (403, "unit")
    assert field(patch("view_b", {"role": "viewer"})) == (404, "user")
    assert field(patch("adm_a", {"role": "manager"})) == (403, "role")  # not one's own
    tokens = f"{url}/api/v1/tokens"
    assert field(httpx.post(tokens, headers=adm_a, json={"user": "gone-user"})) == (409, "user")
    assert field(httpx.post(tokens, headers=adm_a, json={"user": "root0"})) == (404, "user")
    assert field(httpx.post(tokens, headers=adm_a, json={})) == (400, "user")
    assert field(httpx.post(f"{tokens}/tnope/revoke", headers=adm_a)) == (404, "id")
    assert field(httpx.get(f"{url}/api/v1/users", headers=auth_header(world.tokens["mgr_a1"]))) == (403, "role")
    assert httpx.get(f"{url}/api/v1/users").status_code == 401
    assert rows(world.org, "SELECT name FROM users WHERE name = 'x1'") == []


@pytest.mark.postgres_covered_elsewhere
def test_the_openapi_document_describes_the_bodies(world: World) -> None:
    document = httpx.get(f"{world.server.url}/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"NewUser", "UserChange", "UserOut", "TokenRequest", "TokenOut", "NewToken"} <= set(schemas)
    assert "token" in schemas["NewToken"]["properties"] and "token" not in schemas["TokenOut"]["properties"]
    assert {"post", "get"} <= set(document["paths"]["/api/v1/users"]) and "patch" in document["paths"][
        "/api/v1/users/{name}"
    ]


# -- feedback token create never changes an existing user ---------------------------------------------


def test_token_create_for_an_existing_user_takes_its_role_and_unit(org: Org) -> None:
    if org.backend == "postgresql":
        pytest.skip("the command's rule, not the database's: judged on SQLite")
    db = str(org.db)
    users_before = rows(org, "SELECT * FROM users ORDER BY name")
    # ivan is a viewer of B: once the default role (admin) made him an installation-wide admin.
    made = run_cli("token", "create", "--db", db, "--user", "ivan")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    stored = rows(
        org, "SELECT role, unit FROM api_tokens WHERE token_hash = ?", (hashlib.sha256(token.encode()).hexdigest(),)
    )
    assert stored == [{"role": "viewer", "unit": "B"}]
    assert run_cli("token", "create", "--db", db, "--user", "ivan", "--role", "viewer", "--unit", "B").returncode == 0
    tokens_before = rows(org, "SELECT * FROM api_tokens ORDER BY token_hash")
    for option, value in (("--role", "admin"), ("--role", "manager"), ("--unit", "A"), ("--unit", "A1")):
        refused = run_cli("token", "create", "--db", db, "--user", "ivan", option, value)
        assert refused.returncode == 2, refused.stderr
        assert option in refused.stderr and "ivan" in refused.stderr
    refused = run_cli("token", "create", "--db", db, "--user", "root", "--unit", "A")  # unit-less admin
    assert refused.returncode == 2 and "--unit" in refused.stderr
    assert rows(org, "SELECT * FROM users ORDER BY name") == users_before
    assert rows(org, "SELECT * FROM api_tokens ORDER BY token_hash") == tokens_before
    # A new user is still created with the role (default admin) and unit given.
    assert run_cli("token", "create", "--db", db, "--user", "hoa", "--role", "manager", "--unit", "A1").returncode == 0
    assert run_cli("token", "create", "--db", db, "--user", "ops").returncode == 0
    assert rows(org, "SELECT name, role, unit FROM users WHERE name IN ('hoa', 'ops') ORDER BY name") == [
        {"name": "hoa", "role": "manager", "unit": "A1"},
        {"name": "ops", "role": "admin", "unit": None},
    ]


# -- the token section of the user page in the browser ------------------------------------------------


@pytest.mark.parametrize("lang", ["vi", "ru", "zh", "en"])
def test_the_token_section_works_and_passes_axe_in_each_language(world: World, browser, lang: str) -> None:
    if world.org.backend == "postgresql" and lang != "en":
        pytest.skip("the markup does not depend on the database: each language checked on SQLite")
    assert AXE.exists(), "run `npm install` in tests/browser (the CI script does)"
    name = f"bot-{lang}"
    world.add_user(name, "viewer", "A1a")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # to inject axe
    page = context.new_page()
    sign_in(page, world.server, "adm_a1", PASSWORD)
    page.goto(f"{world.server.url}{PAGES}/{name}?lang={lang}")
    page.click("#create-token button[type=submit]")
    shown = page.locator("#new-token-value").inner_text()
    assert shown.startswith("fbk_") and page.locator("#tokens tbody tr").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    save_screenshot(page, ARTIFACTS / f"manage-user-tokens-{lang}.png")
    bad = axe_violations(page)
    assert bad == [], (lang, bad)
    # Revoke the new one after confirming; the page then says so and shows the token nowhere.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#tokens tr:has-text('{shown[-4:]}') .revoke-token button")
    page.wait_for_selector("[role=status]")
    assert shown not in page.content() and page.locator("#tokens .badge.off").count() == 1
    context.close()
