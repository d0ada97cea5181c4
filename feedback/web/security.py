"""Bearer-token authentication and unit-subtree scope for the JSON API."""

import time
from dataclasses import dataclass

from litestar import Request
from litestar.datastructures import State

from feedback.auth import hash_token
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import Forbidden, Unauthorized
from feedback.store import users as user_store

# Looked-up tokens are cached briefly so the hot path needs no read; a revocation takes effect
# within this many seconds.
TOKEN_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    unit: str | None  # None: the whole installation
    token: str | None = None  # the API token's public id, when a token speaks (the audit log's actor)

    def may_see(self, unit: str, snapshot: Snapshot) -> bool:
        return self.unit is None or snapshot.in_subtree(unit, self.unit)

    def may_use_service(self, code: str, snapshot: Snapshot) -> bool:
        """A service without an agency is everyone's; an agency's service is its whole tree's, so the
        units above and below the agency may offer it and see it (the rule ingest applies too)."""
        return self.unit is None or snapshot.service_offered_at(code, self.unit)

    def require_unit(self, unit: str, snapshot: Snapshot) -> None:
        if not self.may_see(unit, snapshot):
            raise Forbidden(f"unit: {unit!r} is outside the token's unit {self.unit!r}", "unit")

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role: {self.role!r} may not do this", "role")


TokenCache = dict[str, tuple[Principal | None, float]]  # token hash -> (who, valid until monotonic)


def _token_cache(store: Store) -> TokenCache:
    return store.local("tokens", dict)


def forget_tokens(store: Store, *, user: str | None = None, digest: str | None = None) -> None:
    """Drop this app's cached look-ups of one token (by hash) or of every token of a user, after a
    revocation or a change of the user. Other server processes keep theirs for up to
    TOKEN_CACHE_SECONDS."""
    cache = _token_cache(store)
    if digest is not None:
        cache.pop(digest, None)
    if user is not None:
        for key, (principal, _until) in list(cache.items()):
            if principal is not None and principal.user == user:
                cache.pop(key, None)


async def current_principal(request: Request, state: State) -> Principal:
    """Who a request's bearer token speaks for (behind `feedback.web.access.TOKEN`); 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authorization: a bearer token is required", "authorization")
    principal = await token_principal(token, state)
    if principal is None:
        raise Unauthorized("authorization: unknown or revoked token", "authorization")
    return principal


async def token_principal(token: str, state: State) -> Principal | None:
    """Who a bearer token speaks for (None: unknown, revoked or its user disabled); cached briefly."""
    digest = hash_token(token.strip())
    cache = _token_cache(state.store)
    cached = cache.get(digest)
    now = time.monotonic()
    if cached is None or cached[1] < now:
        row = await state.store.read(lambda conn: user_store.token_principal(conn, digest))
        principal = Principal(row["user"], row["role"], row["unit"], row["id"]) if row else None
        if len(cache) > 10_000:
            cache.clear()
        cache[digest] = (principal, now + TOKEN_CACHE_SECONDS)
        return principal
    return cached[0]


# Roles whose token vouches for a case reference: they run the counters that hand the cases out.
CASE_ROLES = ("admin", "manager")


def may_vouch_for_case(principal: Principal | None, unit: str, snapshot: Snapshot) -> bool:
    """Whether a token's holder may vouch for a case reference at a touchpoint of `unit`."""
    return principal is not None and principal.role in CASE_ROLES and principal.may_see(unit, snapshot)


async def integration_vouches(authorization: str | None, state: State, snapshot: Snapshot, touchpoint: str) -> bool:
    """Whether the bearer token a public post carries vouches for its case reference. A post without
    one, or with an unknown token or one that does not cover the touchpoint, is still taken (the
    endpoint is public); its case reference then stays unverified."""
    scheme, _, token = (authorization or "").partition(" ")
    found = snapshot.touchpoint(touchpoint)
    if scheme.lower() != "bearer" or not token.strip() or found is None:
        return False
    return may_vouch_for_case(await token_principal(token, state), found.unit, snapshot)
