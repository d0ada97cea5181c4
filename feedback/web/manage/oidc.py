"""Sign-in through the agency's OpenID Connect provider: the authorization code flow with PKCE.

`GET /manage/login/oidc` sends the browser to the provider with a fresh state, nonce and PKCE verifier,
which wait in a short-lived cookie signed with the installation's secret (so any node can finish the
flow). The provider sends it back to `GET /manage/login/oidc/callback`, always at the redirect URI built
from FEEDBACK_PUBLIC_URL, never from the request's Host or forwarding headers. There the state is
checked, the code is exchanged (the client authenticates with its secret, and proves the verifier), and
the ID token's signature (the provider's published keys), issuer, audience, expiry and nonce are
verified before any claim is read; the userinfo claims are added when the provider has that endpoint.
`feedback.directory_login.resolve` then decides which account signs in, and the sign-in ends like a
password's (`auth.start_session`). The provider does its own second factor, so no TOTP step follows.

The provider's metadata (discovery, `<issuer>/.well-known/openid-configuration`) and keys are cached
for an hour per app; a token signed with a key not yet seen fetches the keys again once.
"""

import base64
import hmac
import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from litestar import Request, Response, get
from litestar.datastructures import Cookie, State
from litestar.response import Redirect

from feedback import directory_login, tls
from feedback.directory_login import Refusal
from feedback.store import users as user_store
from feedback.web.manage import layout
from feedback.web.manage.auth import HOME_PATH, LOGIN_PATH, safe_next, sign_in_key, start_session

START_PATH = LOGIN_PATH + "/oidc"
CALLBACK_PATH = START_PATH + "/callback"
FLOW_COOKIE = "fb_oidc"
FLOW_SECONDS = 600  # a sign-in at the provider must come back within ten minutes
SCOPE = "openid email profile"
METADATA_SECONDS = 3600.0
HTTP_TIMEOUT = 10.0
LEEWAY = 60  # seconds of clock difference allowed on exp, iat and nbf


log = logging.getLogger("feedback.oidc")


class ProviderError(Exception):
    """The provider could not be reached, or answered something that cannot be trusted."""


class UnknownKey(ValueError):
    """An ID token signed with a key the cached key set does not hold (the provider may have rolled over)."""


# -- the flow's cookie ---------------------------------------------------------------------------------


def _mac(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), b"oidc-flow:" + payload, "sha256").hexdigest()


def _flow_cookie(request: Request, value: str, max_age: int) -> Cookie:
    secure = (request.app.state.settings.public_url or "").startswith("https://")
    return Cookie(
        key=FLOW_COOKIE, value=value, path=START_PATH, httponly=True, samesite="lax", secure=secure, max_age=max_age
    )


def seal_flow(secret: str, flow: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(flow, separators=(",", ":")).encode()).rstrip(b"=")
    return f"{payload.decode()}.{_mac(secret, payload)}"


def open_flow(secret: str, value: str | None) -> dict[str, Any] | None:
    """The flow a cookie carries, when it is this installation's own and not yet expired."""
    if not value or len(value) > 4000 or "." not in value:
        return None
    payload, _, mac = value.rpartition(".")
    if not hmac.compare_digest(mac, _mac(secret, payload.encode())):
        return None
    try:
        flow = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    if not isinstance(flow, dict) or not isinstance(flow.get("expires"), int) or flow["expires"] < time.time():
        return None
    return flow


# -- the provider --------------------------------------------------------------------------------------


def redirect_uri(public_url: str) -> str:
    """Where the provider sends the browser back: always below the configured public address."""
    return public_url.rstrip("/") + CALLBACK_PATH


def _cache(state: State) -> dict[str, Any]:
    return state.store.local("oidc", dict)


async def _get_json(client: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        reply = await client.get(url, **kwargs)
    except httpx.HTTPError as error:
        raise ProviderError(f"{url}: {error!r}") from None
    if reply.status_code != 200:
        raise ProviderError(f"{url}: HTTP {reply.status_code}")
    try:
        found = reply.json()
    except ValueError:
        raise ProviderError(f"{url}: not JSON") from None
    if not isinstance(found, dict):
        raise ProviderError(f"{url}: not a JSON object")
    return found


async def metadata(state: State, client: httpx.AsyncClient) -> dict[str, Any]:
    """The provider's discovery document (cached), checked to be the configured issuer's own."""
    cache = _cache(state)
    cached = cache.get("metadata")
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    issuer = state.settings.oidc_issuer
    found = await _get_json(client, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if found.get("issuer") != issuer:
        raise ProviderError(f"discovery names the issuer {found.get('issuer')!r}, not {issuer!r}")
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(found.get(endpoint), str):
            raise ProviderError(f"discovery has no {endpoint}")
    cache["metadata"] = (found, time.monotonic() + METADATA_SECONDS)
    return found


async def _keys(state: State, client: httpx.AsyncClient, meta: dict[str, Any], *, again: bool = False) -> Any:
    from joserfc.jwk import KeySet

    cache = _cache(state)
    cached = cache.get("jwks")
    if cached is not None and cached[1] > time.monotonic() and not again:
        return cached[0]
    try:
        keys = KeySet.import_key_set(await _get_json(client, meta["jwks_uri"]))
    except (ValueError, TypeError, KeyError) as error:
        raise ProviderError(f"jwks: {error!r}") from None
    cache["jwks"] = (keys, time.monotonic() + METADATA_SECONDS)
    return keys


def verify_id_token(
    id_token: str, keys: Any, meta: dict[str, Any], *, issuer: str, client_id: str, nonce: str, access_token: str | None
) -> dict[str, Any]:
    """The claims of an ID token whose signature (by one of `keys`), issuer, audience, expiry, nonce and
    access-token hash hold; ValueError otherwise (UnknownKey when no key has the token's id)."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import InvalidKeyIdError, JoseError
    from joserfc.jws import JWSRegistry

    # Never "none", never a shared-secret algorithm: the token must carry the provider's own signature.
    algorithms = [
        name
        for name in meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        if isinstance(name, str) and name != "none" and not name.startswith("HS")
    ]
    try:
        token = jwt.decode(id_token, keys, registry=JWSRegistry(algorithms=algorithms))
        claims = CodeIDToken(
            token.claims,
            token.header,
            {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
            {"nonce": nonce, "client_id": client_id, "access_token": access_token},
        )
        claims.validate(leeway=LEEWAY)
    except InvalidKeyIdError:
        raise UnknownKey("id_token: signed with a key the provider has not published (yet)") from None
    except JoseError as error:
        raise ValueError(f"id_token: {error}") from None
    if "nonce" not in claims:  # CodeIDToken checks a nonce only when the token has one: it must
        raise ValueError("id_token: no nonce")
    return dict(claims)


async def _exchange(state: State, client: httpx.AsyncClient, flow: dict[str, Any], code: str) -> dict[str, Any]:
    """The verified claims for an authorization code: the ID token's, then the userinfo endpoint's."""
    from authlib.oauth2.rfc6749.parameters import prepare_token_request

    settings = state.settings
    meta = await metadata(state, client)
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=flow["redirect_uri"], code_verifier=flow["verifier"]
    )
    try:
        reply = await client.post(
            meta["token_endpoint"],
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
            auth=(settings.oidc_client_id, settings.oidc_client_secret),
        )
    except httpx.HTTPError as error:
        raise ProviderError(f"token endpoint: {error!r}") from None
    if reply.status_code != 200:
        raise ProviderError(f"token endpoint: HTTP {reply.status_code} {reply.text[:200]}")
    tokens = reply.json()
    if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        raise ProviderError("token endpoint: no id_token")
    access_token = tokens.get("access_token") if isinstance(tokens.get("access_token"), str) else None

    def verify(keys: Any) -> dict[str, Any]:
        return verify_id_token(
            tokens["id_token"],
            keys,
            meta,
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            nonce=flow["nonce"],
            access_token=access_token,
        )

    try:
        claims = verify(await _keys(state, client, meta))
    except UnknownKey:  # the provider rolled its keys over since they were fetched
        claims = verify(await _keys(state, client, meta, again=True))
    if access_token and isinstance(meta.get("userinfo_endpoint"), str):
        more = await _get_json(client, meta["userinfo_endpoint"], headers={"authorization": f"Bearer {access_token}"})
        if more.get("sub") != claims["sub"]:
            raise ProviderError("userinfo describes another subject")
        claims = {**more, **claims}  # the signed ID token's claims win
    return claims


# -- pages ----------------------------------------------------------------------------------------------


def _refusal_page(request: Request, message: str, status: int, values: dict[str, Any] | None = None) -> Response:
    _ = layout.translator(request)
    text = _(message) % values if values else _(message)
    settings = request.app.state.settings
    context = {
        "error": text,
        "username": "",
        "next": HOME_PATH,
        "page_title_msg": "Sign in",
        "identity_provider": directory_login.provider_name(settings),
    }
    response = layout.render(request, "login.html", context, status=status)
    response.cookies.append(_flow_cookie(request, "", 0))
    return response


def _failed(request: Request, status: int = 502) -> Response:
    name = directory_login.provider_name(request.app.state.settings) or ""
    return _refusal_page(request, directory_login.FAILED, status, {"service": name})


@get(START_PATH, include_in_schema=False)
async def oidc_start(request: Request, state: State) -> Response:
    """Off to the provider, with a new state, nonce and PKCE verifier kept in the flow cookie."""
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    settings = state.settings
    if directory_login.provider_name(settings) is None or not settings.public_url:
        return Redirect(LOGIN_PATH, status_code=303)
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, verify=tls.client_context()) as client:
            meta = await metadata(state, client)
    except ProviderError as error:
        log.warning("sign-in through %s cannot start: %s", settings.oidc_issuer, error)
        name = directory_login.provider_name(settings) or ""
        return _refusal_page(request, directory_login.UNREACHABLE, 503, {"service": name})
    flow = {
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": secrets.token_urlsafe(48),
        "next": safe_next(request.query_params.get("next")),
        "redirect_uri": redirect_uri(settings.public_url),
        "expires": int(time.time()) + FLOW_SECONDS,
    }
    location = prepare_grant_uri(
        meta["authorization_endpoint"],
        client_id=settings.oidc_client_id,
        response_type="code",
        redirect_uri=flow["redirect_uri"],
        scope=SCOPE,
        state=flow["state"],
        nonce=flow["nonce"],
        code_challenge=create_s256_code_challenge(flow["verifier"]),
        code_challenge_method="S256",
        ui_locales=layout.choose_language(request),
    )
    response = Redirect(location, status_code=303)
    response.cookies.append(_flow_cookie(request, seal_flow(settings.secret, flow), FLOW_SECONDS))
    return response


@get(CALLBACK_PATH, include_in_schema=False)
async def oidc_callback(request: Request, state: State) -> Response:
    """Back from the provider: check the flow, verify the tokens, and sign the matched account in."""
    settings = state.settings
    if directory_login.provider_name(settings) is None:
        return Redirect(LOGIN_PATH, status_code=303)
    flow = open_flow(settings.secret, request.cookies.get(FLOW_COOKIE))
    params = request.query_params
    given_state = params.get("state") or ""
    if flow is None or not hmac.compare_digest(given_state.encode(), flow["state"].encode()):
        return _failed(request, 400)  # not the browser that set out, or too late: start again
    if params.get("iss") is not None and params.get("iss") != settings.oidc_issuer:
        return _failed(request, 400)  # an answer from another provider (RFC 9207)
    code = params.get("code")
    if params.get("error") or not code:
        return _failed(request, 401)  # the person did not sign in at the provider (cancelled, refused)
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, verify=tls.client_context()) as client:
            claims = await _exchange(state, client, flow, code)
    except (ProviderError, ValueError) as error:
        log.warning("sign-in through %s failed: %s", settings.oidc_issuer, error)
        return _failed(request)
    identity = directory_login.claims_identity(settings, claims)
    return await _sign_in(request, state, identity, flow["next"])


async def _sign_in(request: Request, state: State, identity: directory_login.Identity, next_path: str) -> Response:
    """Match the provider's person to an account and open its session; refusals count as failed sign-ins
    of the name, so the lockout of the password form holds here too."""
    settings = state.settings
    key = sign_in_key(identity.who)
    now = datetime.now(UTC)
    window = timedelta(minutes=settings.lockout_minutes)
    attempt = await state.store.write(
        lambda conn: user_store.reserve_attempt(conn, user_store.SIGN_IN, key, now, window, settings.lockout_attempts)
    )
    if attempt is None:  # the password form's message and rule
        return _refusal_page(
            request,
            "Too many failed sign-ins for this user name. Try again in %(minutes)d minutes.",
            429,
            {"minutes": round(settings.lockout_minutes)},
        )
    new_accounts = directory_login.autocreate(settings.oidc_autocreate)
    try:
        account = await state.store.write(lambda conn: directory_login.resolve(conn, identity, new_accounts))
    except Refusal as refusal:
        return _refusal_page(request, refusal.message, refusal.status, refusal.values)
    if account.changed:
        state.catalog.invalidate()
    response = await start_session(
        request,
        state,
        account.as_user(),
        next_path,
        method="oidc",
        also=lambda conn: user_store.clear_attempts(conn, user_store.SIGN_IN, key, attempt),
    )
    response.cookies.append(_flow_cookie(request, "", 0))
    return response


ROUTES: list = [oidc_start, oidc_callback]
