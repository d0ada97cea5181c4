"""Staff sign-in through the agency's identity provider and directory: a real OpenID provider (the npm
`oidc-provider` package, tests/oidc/provider.mjs) and a real LDAP directory (Debian's slapd), both on
127.0.0.1, in front of a real server over a real database (SQLite, and PostgreSQL with --backends)."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from feedback import audit
from feedback.auth import issue_token, save_user
from feedback.db import open_database
from feedback.directory_login import DirectoryUnavailable, ldap_bind
from feedback.settings import SettingsError, load_settings
from feedback.store import users as user_store
from feedback.web.manage.auth import ACCOUNT_PATH, sign_in_key
from feedback.web.manage.oidc import CALLBACK_PATH, UnknownKey, verify_id_token
from tests.conftest import BOTH_BACKENDS, Org, Server, connect, free_port, org_on, rows
from tests.identity import Directory, OpenIDProvider, missing_node, missing_slapd

pytestmark = BOTH_BACKENDS

LOCAL_PASSWORD = "correct horse 1"
PROVIDER = "idp.example"  # FEEDBACK_OIDC_NAME
LOCKOUT = 3

# People at the OpenID provider: login -> password and the claims it releases.
PROVIDER_PEOPLE: dict[str, dict[str, Any]] = {
    login: {"password": f"provider pass {login}", "claims": {"preferred_username": login, **claims}}
    for login, claims in {
        "mai": {"email": "mai@example.org", "email_verified": True},
        "lan.tran": {"email": "Lan@Example.org", "email_verified": True},  # the account "lan", by e-mail
        "olga": {"email": "olga@example.org", "email_verified": True},
        "zoe": {"email": "zoe@example.org", "email_verified": True},
        "sam": {"email": "sam@example.org", "email_verified": True, "feedback_role": "viewer", "feedback_unit": "B"},
        "kim": {"email": "kim@example.org", "feedback_role": "auditor", "feedback_unit": "A"},
        "eve": {"email": "eve@example.org", "feedback_role": "superuser", "feedback_unit": "A"},
        "tom": {"email": "tom@example.org", "feedback_role": "viewer", "feedback_unit": "NOPE"},
        "ned": {"email": "ned@example.org"},  # no role or unit claim
        "minh": {"email": "minh@example.org", "email_verified": True},
        # The address of the account "thu", not vouched for: no email_verified, or not the boolean true.
        "vic": {"email": "thu@example.org"},
        "wes": {"email": "thu@example.org", "email_verified": "false"},
        "bao": {"email": "bao@example.org", "email_verified": True},  # "bao" is bound to another subject
        "h.nguyen": {},  # the subject the account "hung" is bound to
    }.items()
}
# People in the directory (uid, password, mail).
DIRECTORY_PEOPLE = [
    {"uid": uid, "password": f"directory pass {uid}", "mail": f"{uid}@example.org"}
    for uid in ("dai", "zoe", "olga", "mai", "lock.me", "nina", "nobody.here")
] + [
    {"uid": "d.hoang", "password": "directory pass d.hoang", "mail": "hoang@example.org"},
    {"uid": "p.quy", "password": "directory pass p.quy", "mail": "quy@example.org"},
    {"uid": "twin", "password": "directory pass twin", "mail": "twin@example.org"},
]


def directory_password(uid: str) -> str:
    return f"directory pass {uid}"


@dataclass
class Site:
    """A server with the provider and the directory it signs in through (None where they cannot run)."""

    org: Org
    server: Server
    provider: OpenIDProvider | None
    directory: Directory | None
    why_not: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def need_provider(self) -> OpenIDProvider:
        if self.provider is None:
            pytest.skip(self.why_not["provider"])
        return self.provider

    def need_directory(self) -> Directory:
        if self.directory is None:
            pytest.skip(self.why_not["directory"])
        return self.directory


def add_account(
    db: Path | str,
    name: str,
    role: str,
    unit: str | None,
    *,
    email: str | None = None,
    password: str | None = None,
    disabled: bool = False,
    token: bool = False,
) -> None:
    """An account straight in the database: without a password unless given (a directory account)."""
    database = open_database(str(db))
    try:
        with database.conn:
            save_user(database.conn, name, role, unit, password=password, email=email)
            if disabled:
                user_store.set_disabled(database.conn, name, True)
            if token:
                issue_token(database.conn, name)
    finally:
        database.close()


def start_site(org: Org, folder: Path, **settings: str) -> Site:
    """The org's server with the provider and the directory; stop it with `stop_site`."""
    server = Server(org.db)
    why_not = {"provider": missing_node() or "", "directory": missing_slapd() or ""}
    provider = directory = None
    if not why_not["provider"]:
        provider = OpenIDProvider(server.url + CALLBACK_PATH, PROVIDER_PEOPLE, folder / "provider.log").__enter__()
        server.env.update(provider.settings(FEEDBACK_OIDC_NAME=PROVIDER))
    if not why_not["directory"]:
        directory = Directory(folder / "ldap", DIRECTORY_PEOPLE).__enter__()
        server.env.update(directory.settings())
    server.env.update({"FEEDBACK_LOCKOUT_ATTEMPTS": str(LOCKOUT), **settings})
    return Site(org, server.start(), provider, directory, why_not)


def stop_site(site: Site) -> None:
    site.server.stop()
    for service in (site.provider, site.directory):
        if service is not None:
            service.__exit__()


@pytest.fixture(scope="module")
def site(shared_org: Org, tmp_path_factory: pytest.TempPathFactory):
    """No autocreate, role and unit from the accounts."""
    db = shared_org.db
    add_account(db, "mai", "manager", "A1", email="mai@example.org", password=LOCAL_PASSWORD)
    add_account(db, "lan", "manager", "A1", email="lan@example.org")  # also API token user "lan"
    add_account(db, "olga", "viewer", "B", email="olga@example.org", disabled=True)
    add_account(db, "dai", "manager", "A1", email="dai.other@example.org")
    add_account(db, "hoang", "viewer", "A", email="HOANG@example.org")
    add_account(db, "lock.me", "viewer", "A")
    add_account(db, "quy", "viewer", "A", email="quy@example.org", password=LOCAL_PASSWORD)
    add_account(db, "twin.a", "viewer", "A", email="twin@example.org")
    add_account(db, "twin.b", "viewer", "B", email="Twin@example.org")
    add_account(db, "minh", "manager", "A1", email="minh@example.org")
    add_account(db, "thu", "manager", "A1", email="thu@example.org")
    add_account(db, "bao", "viewer", "A")
    add_account(db, "hung", "viewer", "A1")
    running = start_site(shared_org, tmp_path_factory.mktemp("sso"), FEEDBACK_LDAP_MATCH_EMAIL="1")
    if running.provider is not None:
        bind_subject(shared_org, "bao", f"{running.provider.issuer} someone-else")
        bind_subject(shared_org, "hung", f"{running.provider.issuer} h.nguyen")
    yield running
    stop_site(running)


@pytest.fixture(scope="module")
def claims_site(backend: str, tmp_path_factory: pytest.TempPathFactory):
    """Role and unit from the provider's claims; new accounts made from the provider and the directory."""
    folder = tmp_path_factory.mktemp("sso-claims")
    org = org_on(backend, folder)
    add_account(org.db, "kim", "manager", "A1", email="kim@example.org", token=True)
    add_account(org.db, "ned", "manager", "A1", email="ned@example.org")
    add_account(org.db, "hoang", "viewer", "A", email="hoang@example.org")  # not matched by the directory's mail
    running = start_site(
        org,
        folder,
        FEEDBACK_OIDC_ROLE_CLAIM="feedback_role",
        FEEDBACK_OIDC_UNIT_CLAIM="feedback_unit",
        FEEDBACK_OIDC_AUTOCREATE="viewer:A1",
        FEEDBACK_LDAP_AUTOCREATE="viewer:A1a",
        # The provider asks for its own second factor; a directory password is followed by ours.
        FEEDBACK_REQUIRE_2FA="all",
    )
    yield running
    stop_site(running)


# -- helpers ----------------------------------------------------------------------------------------


def client() -> httpx.Client:
    return httpx.Client(timeout=30)


def provider_sign_in(http: httpx.Client, site: Site, login: str, password: str) -> httpx.Response:
    """Through the sign-in page's link to the provider, its sign-in form, and back: the last reply."""
    site.need_provider()
    form = http.get(f"{site.url}/manage/login/oidc", params={"next": "/manage/actions"}, follow_redirects=True)
    assert form.status_code == 200 and "/interaction/" in str(form.url), form.text[:500]
    action = re.search(r'<form method="post" action="([^"]+)"', form.text)
    assert action, form.text[:500]
    return http.post(
        urljoin(str(form.url), action.group(1)), data={"login": login, "password": password}, follow_redirects=True
    )


def directory_sign_in_form(http: httpx.Client, site: Site, username: str, password: str) -> httpx.Response:
    """The password form, posted (its CSRF token first)."""
    site.need_directory()
    page = http.get(f"{site.url}/manage/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    return http.post(
        f"{site.url}/manage/login",
        data={"username": username, "password": password, "_csrf_token": token, "next": "/manage/actions"},
    )


def alert(html: str) -> str:
    match = re.search(r'role="alert"[^>]*>([^<]*)<', html)
    return unescape(match.group(1).strip()) if match else ""


def sessions_of(org: Org, user: str) -> int:
    return rows(org, 'SELECT count(*) AS n FROM sessions WHERE "user" = ?', (user,))[0]["n"]


def sign_in_entries(org: Org, user: str) -> list[dict[str, Any]]:
    found = rows(
        org,
        "SELECT actor_kind, actor_id, record_id, change FROM audit_log"
        " WHERE kind = 'session' AND action = 'sign_in' ORDER BY seq",
    )
    entries = [{**row, "change": json.loads(row["change"])} for row in found]
    return [entry for entry in entries if entry["change"]["after"]["user"] == user]


def user_row(org: Org, name: str) -> dict[str, Any] | None:
    found = rows(org, "SELECT name, role, unit, email, password_hash FROM users WHERE name = ?", (name,))
    return found[0] if found else None


def subject_of(org: Org, name: str) -> str | None:
    return rows(org, "SELECT oidc_subject FROM users WHERE name = ?", (name,))[0]["oidc_subject"]


def bind_subject(org: Org, name: str, subject: str) -> None:
    """An account already bound to a person at the provider (its issuer and `sub`)."""
    conn = connect(org.db)
    try:
        conn.execute("UPDATE users SET oidc_subject = ? WHERE name = ?", (subject, name))
        conn.commit()
    finally:
        conn.close()


def last_logged_state(org: Org, kind: str, record_id: str) -> dict[str, Any] | None:
    found = rows(
        org,
        "SELECT change FROM audit_log WHERE kind = ? AND record_id = ? ORDER BY seq DESC LIMIT 1",
        (kind, record_id),
    )
    return json.loads(found[0]["change"])["after"] if found else None


def stored_state(org: Org, kind: str, record_id: str) -> dict[str, Any] | None:
    conn = connect(org.db)
    try:
        return audit.state_of(conn, kind, record_id)
    finally:
        conn.close()


def attempts(org: Org, key: str) -> int:
    return rows(org, "SELECT count(*) AS n FROM login_attempts WHERE username = ?", (sign_in_key(key),))[0]["n"]


# -- the sign-in page -------------------------------------------------------------------------------------

LINK = {
    "en": f"Sign in with {PROVIDER}",
    "vi": f"Đăng nhập bằng {PROVIDER}",
    "ru": f"Войти через {PROVIDER}",
    "zh": f"通过 {PROVIDER} 登录",
}


@pytest.mark.parametrize("lang", sorted(LINK))
@pytest.mark.postgres_covered_elsewhere
def test_the_sign_in_page_offers_the_provider_in_each_language(site: Site, lang: str) -> None:
    site.need_provider()
    with client() as http:
        page = http.get(f"{site.url}/manage/login", params={"lang": lang, "next": "/manage/actions"})
    assert page.status_code == 200
    link = re.search(r'<a class="button" id="sign-in-provider" href="([^"]+)">([^<]+)</a>', page.text)
    assert link, page.text[-1500:]
    assert link.group(1) == "/manage/login/oidc?next=/manage/actions"
    assert link.group(2) == LINK[lang]


@pytest.mark.postgres_covered_elsewhere
def test_without_a_provider_the_page_offers_none(start_server: Any, org: Org) -> None:
    server = start_server(org.db)
    with client() as http:
        page = http.get(f"{server.url}/manage/login")
        start = http.get(f"{server.url}/manage/login/oidc")
    assert "sign-in-provider" not in page.text
    assert start.status_code == 303 and start.headers["location"] == "/manage/login"


# -- OpenID Connect -----------------------------------------------------------------------------------------


@pytest.mark.postgres_covered_elsewhere
def test_a_person_signed_in_at_the_provider_gets_a_session_of_the_matching_account(site: Site) -> None:
    before = sessions_of(site.org, "minh")
    with client() as http:
        reply = provider_sign_in(http, site, "minh", PROVIDER_PEOPLE["minh"]["password"])
        assert reply.status_code == 200, reply.text[:500]
        assert str(reply.url) == f"{site.url}/manage/actions"  # the page asked for
        callback = reply.history[-1]
        assert callback.url.path == CALLBACK_PATH and callback.status_code == 303
        assert http.get(f"{site.url}/manage/actions", follow_redirects=False).status_code == 200
    assert sessions_of(site.org, "minh") == before + 1
    entry = sign_in_entries(site.org, "minh")[-1]
    assert entry["change"]["after"] == {"user": "minh", "method": "oidc"}
    assert (entry["actor_kind"], entry["actor_id"]) == ("user", "minh")
    assert user_row(site.org, "minh")["password_hash"] is None  # the provider's sign-in sets none
    # The first match binds the account to the provider's person (issuer and sub), logged as a change.
    assert subject_of(site.org, "minh") == f"{site.provider.issuer} minh"
    assert last_logged_state(site.org, "user", "minh") == stored_state(site.org, "user", "minh")


def test_an_account_with_a_local_password_is_not_signed_in_through_the_provider(site: Site) -> None:
    before = sessions_of(site.org, "mai")
    with client() as http:
        reply = provider_sign_in(http, site, "mai", PROVIDER_PEOPLE["mai"]["password"])
        assert http.get(f"{site.url}/manage/actions", follow_redirects=False).status_code == 303
    assert reply.status_code == 403
    assert alert(reply.text) == f"The account mai signs in with its own password here, not through {PROVIDER}."
    assert sessions_of(site.org, "mai") == before
    assert subject_of(site.org, "mai") is None


@pytest.mark.parametrize("login", ["vic", "wes"])
def test_an_e_mail_address_the_provider_does_not_vouch_for_matches_no_account(site: Site, login: str) -> None:
    with client() as http:
        reply = provider_sign_in(http, site, login, PROVIDER_PEOPLE[login]["password"])
    assert reply.status_code == 403
    assert alert(reply.text) == (
        f"{login} signed in at {PROVIDER}, but has no account here. Ask an administrator to create one."
    )
    assert sessions_of(site.org, "thu") == 0 and subject_of(site.org, "thu") is None


def test_an_account_bound_to_another_person_at_the_provider_is_refused(site: Site) -> None:
    with client() as http:
        reply = provider_sign_in(http, site, "bao", PROVIDER_PEOPLE["bao"]["password"])
    assert reply.status_code == 403
    assert alert(reply.text) == f"The account bao is linked to another person at {PROVIDER}. Ask an administrator."
    assert sessions_of(site.org, "bao") == 0
    assert subject_of(site.org, "bao") == f"{site.provider.issuer} someone-else"


def test_a_bound_account_is_matched_by_the_providers_subject_first(site: Site) -> None:
    with client() as http:
        reply = provider_sign_in(http, site, "h.nguyen", PROVIDER_PEOPLE["h.nguyen"]["password"])
        assert reply.status_code == 200 and reply.url.path == "/manage/actions", alert(reply.text)
    assert sign_in_entries(site.org, "hung")[-1]["change"]["after"] == {"user": "hung", "method": "oidc"}
    assert user_row(site.org, "h.nguyen") is None


def test_a_person_is_matched_by_e_mail_in_any_case(site: Site) -> None:
    with client() as http:
        reply = provider_sign_in(http, site, "lan.tran", PROVIDER_PEOPLE["lan.tran"]["password"])
        assert reply.status_code == 200 and reply.url.path == "/manage/actions", alert(reply.text)
    assert sign_in_entries(site.org, "lan")[-1]["change"]["after"]["method"] == "oidc"
    assert user_row(site.org, "lan.tran") is None  # no account made for the provider's name


def test_a_wrong_password_at_the_provider_never_comes_back(site: Site) -> None:
    before = len(sign_in_entries(site.org, "mai"))
    with client() as http:
        reply = provider_sign_in(http, site, "mai", "not the password")
        assert reply.status_code == 200 and "/interaction/" in str(reply.url)
        assert "Invalid login or password." in reply.text
        assert not any(step.url.path == CALLBACK_PATH for step in reply.history)
        assert http.get(f"{site.url}/manage/actions", follow_redirects=False).status_code == 303
    assert len(sign_in_entries(site.org, "mai")) == before


def test_an_unknown_person_is_refused_and_the_refusal_counts(site: Site) -> None:
    with client() as http:
        reply = provider_sign_in(http, site, "zoe", PROVIDER_PEOPLE["zoe"]["password"])
        assert reply.status_code == 403
        assert reply.url.path == CALLBACK_PATH
        assert alert(reply.text) == (
            f"zoe signed in at {PROVIDER}, but has no account here. Ask an administrator to create one."
        )
        assert http.get(f"{site.url}/manage/actions", follow_redirects=False).status_code == 303
    assert user_row(site.org, "zoe") is None
    assert attempts(site.org, "zoe") >= 1


def test_a_disabled_account_is_refused(site: Site) -> None:
    with client() as http:
        reply = provider_sign_in(http, site, "olga", PROVIDER_PEOPLE["olga"]["password"])
    assert reply.status_code == 403
    assert alert(reply.text) == "This account is disabled. Ask an administrator."
    assert sessions_of(site.org, "olga") == 0


def test_refusals_are_in_the_readers_language(site: Site) -> None:
    with client() as http:
        http.cookies.set("fb_lang", "vi")
        reply = provider_sign_in(http, site, "olga", PROVIDER_PEOPLE["olga"]["password"])
    assert alert(reply.text) == "Tài khoản này đã bị vô hiệu hóa. Hãy liên hệ quản trị viên."


def test_a_callback_not_from_this_browsers_flow_is_refused(site: Site) -> None:
    site.need_provider()
    with client() as http:
        # No flow at all (a link someone sent), then a flow whose state does not match.
        lone = http.get(f"{site.url}{CALLBACK_PATH}", params={"code": "x", "state": "y"})
        assert lone.status_code == 400
        start = http.get(f"{site.url}/manage/login/oidc")
        assert start.status_code == 303 and http.cookies.get("fb_oidc")
        forged = http.get(f"{site.url}{CALLBACK_PATH}", params={"code": "x", "state": "not-the-state"})
        assert forged.status_code == 400
        assert alert(forged.text) == f"The sign-in at {PROVIDER} did not succeed. Try again."
        # A flow cookie edited by hand is not the server's own either.
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        http.cookies.set("fb_oidc", "e30." + "0" * 64, path="/manage/login/oidc")
        tampered = http.get(f"{site.url}{CALLBACK_PATH}", params={"code": "x", "state": state})
        assert tampered.status_code == 400


def test_the_request_sent_to_the_provider_carries_pkce_a_nonce_and_the_configured_redirect(site: Site) -> None:
    provider = site.need_provider()
    with client() as http:
        start = http.get(
            f"{site.url}/manage/login/oidc",
            headers={"host": "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https"},
        )
    assert start.status_code == 303
    location = urlsplit(start.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == provider.issuer
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["redirect_uri"] == site.url + CALLBACK_PATH  # FEEDBACK_PUBLIC_URL, never the Host header
    assert query["client_id"] == provider.client_id and query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["nonce"] and query["state"] and "openid" in query["scope"].split()


@pytest.mark.postgres_covered_elsewhere
def test_role_and_unit_come_from_the_claims_when_configured(claims_site: Site) -> None:
    org = claims_site.org
    token_before = rows(org, "SELECT id, role, unit FROM api_tokens WHERE \"user\" = 'kim'")[0]
    assert (token_before["role"], token_before["unit"]) == ("manager", "A1")
    with client() as http:
        reply = provider_sign_in(http, claims_site, "kim", PROVIDER_PEOPLE["kim"]["password"])
        assert reply.status_code == 200 and reply.url.path == "/manage/actions", alert(reply.text)
    assert (user_row(org, "kim")["role"], user_row(org, "kim")["unit"]) == ("auditor", "A")
    token = rows(org, "SELECT id, role, unit FROM api_tokens WHERE \"user\" = 'kim'")[0]
    assert (token["role"], token["unit"]) == ("auditor", "A")  # the live token follows its user
    # Both changes are logged as what the verifier compares them with.
    assert last_logged_state(org, "user", "kim") == stored_state(org, "user", "kim")
    assert last_logged_state(org, "user", "kim")["role"] == "auditor"
    assert last_logged_state(org, "token", token["id"]) == stored_state(org, "token", token["id"])


@pytest.mark.postgres_covered_elsewhere
def test_autocreate_makes_an_account_with_the_claims_role_and_unit(claims_site: Site) -> None:
    org = claims_site.org
    assert user_row(org, "sam") is None
    with client() as http:
        reply = provider_sign_in(http, claims_site, "sam", PROVIDER_PEOPLE["sam"]["password"])
        assert reply.status_code == 200 and reply.url.path == "/manage/actions", alert(reply.text)
    created = user_row(org, "sam")
    assert (created["role"], created["unit"], created["email"], created["password_hash"]) == (
        "viewer",
        "B",
        "sam@example.org",
        None,
    )
    assert subject_of(org, "sam") == f"{claims_site.provider.issuer} sam"  # bound from the start
    entry = rows(org, "SELECT actor_kind, actor_id, action FROM audit_log WHERE kind = 'user' AND record_id = 'sam'")
    assert [(e["actor_kind"], e["actor_id"], e["action"]) for e in entry] == [("user", "sam", "create")]
    assert last_logged_state(org, "user", "sam") == stored_state(org, "user", "sam")


@pytest.mark.parametrize(
    ("login", "message"),
    [
        ("eve", f"{PROVIDER} gave the role superuser, which is not a role here. Ask its administrator."),
        ("tom", f"{PROVIDER} gave the unit NOPE, which does not exist here. Ask its administrator."),
        ("ned", f"{PROVIDER} sent no role for this person. Ask its administrator."),
    ],
)
def test_a_role_or_unit_the_claims_cannot_give_refuses_the_sign_in(claims_site: Site, login: str, message: str) -> None:
    before = user_row(claims_site.org, login)
    with client() as http:
        reply = provider_sign_in(http, claims_site, login, PROVIDER_PEOPLE[login]["password"])
    assert reply.status_code == 403
    assert alert(reply.text) == message
    assert user_row(claims_site.org, login) == before  # neither made nor changed


# -- ID tokens -------------------------------------------------------------------------------------------


def test_an_id_token_is_accepted_only_with_the_providers_signature_issuer_audience_time_and_nonce() -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    keys = KeySet.import_key_set({"keys": [key.as_dict(private=False)]})
    meta = {"id_token_signing_alg_values_supported": ["RS256"]}
    issuer, client_id, nonce = "https://idp.example", "feedback", "n-123"
    now = int(time.time())
    good = {"iss": issuer, "sub": "mai", "aud": client_id, "exp": now + 300, "iat": now, "nonce": nonce}

    def verify(token: str) -> dict[str, Any]:
        return verify_id_token(token, keys, meta, issuer=issuer, client_id=client_id, nonce=nonce, access_token=None)

    def check(claims: dict[str, Any], signer: Any = key, header: dict[str, str] | None = None) -> dict[str, Any]:
        return verify(jwt.encode(header or {"alg": "RS256", "kid": "k1"}, claims, signer))

    def unsigned(claims: dict[str, Any]) -> str:
        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none'})}.{part(claims)}."

    assert check(good)["sub"] == "mai"
    assert check({**good, "aud": [client_id]})["sub"] == "mai"
    refused = {
        "another key": lambda: check(good, stranger),
        "a key not published": lambda: check(good, header={"alg": "RS256", "kid": "k2"}),
        "no signature": lambda: verify(unsigned(good)),
        "another issuer": lambda: check({**good, "iss": "https://evil.example"}),
        "another audience": lambda: check({**good, "aud": "someone-else"}),
        "expired": lambda: check({**good, "exp": now - 600, "iat": now - 900}),
        "another nonce": lambda: check({**good, "nonce": "replayed"}),
        "no nonce": lambda: check({k: v for k, v in good.items() if k != "nonce"}),
        "no expiry": lambda: check({k: v for k, v in good.items() if k != "exp"}),
    }
    for what, attempt in refused.items():
        with pytest.raises(ValueError):
            attempt()
            pytest.fail(f"accepted an ID token with {what}")
    with pytest.raises(UnknownKey):  # what makes the server fetch the provider's keys again, once
        check(good, header={"alg": "RS256", "kid": "k2"})


# -- LDAP ----------------------------------------------------------------------------------------------------


def test_a_directory_account_signs_in_with_the_directory_password(site: Site) -> None:
    with client() as http:
        reply = directory_sign_in_form(http, site, "dai", directory_password("dai"))
        assert reply.status_code == 303 and reply.headers["location"] == "/manage/actions", alert(reply.text)
        assert http.get(f"{site.url}/manage/actions", follow_redirects=False).status_code == 200
    entry = sign_in_entries(site.org, "dai")[-1]
    assert entry["change"]["after"] == {"user": "dai", "method": "ldap"}
    assert user_row(site.org, "dai")["password_hash"] is None  # nothing of the password is kept here


def test_a_directory_person_is_matched_by_the_entrys_e_mail(site: Site) -> None:
    with client() as http:
        reply = directory_sign_in_form(http, site, "d.hoang", directory_password("d.hoang"))
    assert reply.status_code == 303, alert(reply.text)
    assert sign_in_entries(site.org, "hoang")[-1]["change"]["after"]["method"] == "ldap"


def test_a_wrong_directory_password_is_refused_as_a_local_one_is(site: Site) -> None:
    with client() as http:
        wrong = directory_sign_in_form(http, site, "dai", "not the password")
        stranger = directory_sign_in_form(http, site, "not.in.directory", "whatever it is")
    for reply in (wrong, stranger):
        assert reply.status_code == 401
        assert alert(reply.text) == "The user name or the password is wrong."


def test_a_directory_person_without_an_account_is_refused(site: Site) -> None:
    with client() as http:
        reply = directory_sign_in_form(http, site, "nobody.here", directory_password("nobody.here"))
    assert reply.status_code == 403
    assert alert(reply.text) == (
        "nobody.here signed in at 127.0.0.1, but has no account here. Ask an administrator to create one."
    )
    assert user_row(site.org, "nobody.here") is None


def test_an_e_mail_address_of_two_accounts_matches_neither(site: Site) -> None:
    with client() as http:
        reply = directory_sign_in_form(http, site, "twin", directory_password("twin"))
    assert reply.status_code == 403
    assert alert(reply.text) == (
        "More than one account here has the e-mail address twin@example.org. Ask an administrator to tell them apart."
    )
    assert sessions_of(site.org, "twin.a") == sessions_of(site.org, "twin.b") == 0


def test_a_disabled_directory_account_is_refused(site: Site) -> None:
    with client() as http:
        reply = directory_sign_in_form(http, site, "olga", directory_password("olga"))
    assert reply.status_code == 403
    assert alert(reply.text) == "This account is disabled. Ask an administrator."
    assert sessions_of(site.org, "olga") == 0


def test_an_empty_password_never_reaches_the_directory(site: Site) -> None:
    directory = site.need_directory()
    binds = directory.log().count('BIND dn="uid=dai,')
    with client() as http:
        reply = directory_sign_in_form(http, site, "dai", "")
    assert reply.status_code == 401
    # This directory lets a DN with an empty password through as an anonymous bind: it was never asked.
    assert directory.log().count('BIND dn="uid=dai,') == binds


def test_an_account_with_a_local_password_uses_that_password_only(site: Site) -> None:
    with client() as http:
        directory = directory_sign_in_form(http, site, "mai", directory_password("mai"))
        # Nor does a directory person whose e-mail address is that of an account with a local password.
        by_mail = directory_sign_in_form(http, site, "p.quy", directory_password("p.quy"))
        local = directory_sign_in_form(http, site, "mai", LOCAL_PASSWORD)
    assert directory.status_code == 401
    assert local.status_code == 303
    assert by_mail.status_code == 403
    assert alert(by_mail.text) == "The account quy signs in with its own password here, not with the directory's."
    assert sessions_of(site.org, "quy") == 0


def test_the_lockout_holds_for_directory_sign_ins(site: Site) -> None:
    with client() as http:
        for _ in range(LOCKOUT):
            assert directory_sign_in_form(http, site, "lock.me", "wrong guess").status_code == 401
        locked = directory_sign_in_form(http, site, "lock.me", directory_password("lock.me"))
    assert locked.status_code == 429
    assert sessions_of(site.org, "lock.me") == 0


def test_autocreate_makes_an_account_for_a_directory_person(claims_site: Site) -> None:
    org = claims_site.org
    with client() as http:
        reply = directory_sign_in_form(http, claims_site, "nina", directory_password("nina"))
    assert reply.status_code == 303, alert(reply.text)
    assert reply.headers["location"].startswith(ACCOUNT_PATH + "?")  # FEEDBACK_REQUIRE_2FA=all: set it up first
    created = user_row(org, "nina")
    assert (created["role"], created["unit"], created["email"]) == ("viewer", "A1a", "nina@example.org")
    assert last_logged_state(org, "user", "nina") == stored_state(org, "user", "nina")
    assert sign_in_entries(org, "nina")[-1]["change"]["after"]["method"] == "ldap"
    assert sign_in_entries(org, "nina")[-1]["change"]["after"]["pending"]  # the second factor still owed


def test_the_directory_matches_by_user_name_only_unless_e_mail_matching_is_on(claims_site: Site) -> None:
    org = claims_site.org
    with client() as http:
        reply = directory_sign_in_form(http, claims_site, "d.hoang", directory_password("d.hoang"))
    assert reply.status_code == 303, alert(reply.text)
    # The entry's mail is hoang@example.org, the address of the account "hoang": not matched, a new account.
    assert sessions_of(org, "hoang") == 0
    assert sign_in_entries(org, "d.hoang")[-1]["change"]["after"]["method"] == "ldap"


def test_a_plain_ldap_url_off_this_host_needs_starttls() -> None:
    def settings(url: str, **more: str) -> Any:
        environ = {"FEEDBACK_LDAP_URL": url, "FEEDBACK_LDAP_USER_DN": "uid={username},dc=x", **more}
        return load_settings(environ, keep_secret=False)

    with pytest.raises(SettingsError, match="^FEEDBACK_LDAP_URL: .*FEEDBACK_LDAP_STARTTLS"):
        settings("ldap://ldap.example.org")
    assert settings("ldap://ldap.example.org", FEEDBACK_LDAP_STARTTLS="1").ldap_starttls
    for url in ("ldaps://ldap.example.org", "ldap://127.0.0.1:3890", "ldap://localhost", "ldap://[::1]:389"):
        assert settings(url).ldap_url == url


def test_starttls_that_the_directory_cannot_start_never_sends_the_password(site: Site) -> None:
    directory = site.need_directory()
    environ = {**directory.settings(), "FEEDBACK_LDAP_STARTTLS": "1"}
    binds = directory.log().count('BIND dn="uid=dai,')
    with pytest.raises(DirectoryUnavailable):
        ldap_bind(load_settings(environ, keep_secret=False), "dai", directory_password("dai"))
    assert directory.log().count('BIND dn="uid=dai,') == binds


def test_an_unreachable_directory_is_said_so_and_an_empty_password_never_connects() -> None:
    settings = load_settings(
        {"FEEDBACK_LDAP_URL": f"ldap://127.0.0.1:{free_port()}", "FEEDBACK_LDAP_USER_DN": "uid={username},dc=x"},
        keep_secret=False,
    )
    with pytest.raises(DirectoryUnavailable):
        ldap_bind(settings, "dai", "a password")
    assert ldap_bind(settings, "dai", "") is None  # refused before any connection is tried
