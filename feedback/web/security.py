"""Bearer-token authentication and unit-subtree scope for the JSON API."""

from __future__ import annotations

import time
from dataclasses import dataclass

from litestar import Request
from litestar.datastructures import State

from feedback.auth import hash_token
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, Unauthorized

# Looked-up tokens are cached briefly so the hot path needs no read; a revocation takes effect
# within this many seconds.
TOKEN_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    unit: str | None  # None: the whole installation

    def may_see(self, unit: str, snapshot: Snapshot) -> bool:
        return self.unit is None or snapshot.in_subtree(unit, self.unit)

    def may_use_service(self, code: str, snapshot: Snapshot) -> bool:
        """A service without an agency is everyone's; an agency's service is its whole tree's, so the
        units above and below the agency may offer it and see it."""
        agency = (snapshot.services.get(code) or {}).get("agency")
        if self.unit is None or not agency:
            return True
        return snapshot.in_subtree(agency, self.unit) or snapshot.in_subtree(self.unit, agency)

    def require_unit(self, unit: str, snapshot: Snapshot) -> None:
        if not self.may_see(unit, snapshot):
            raise Forbidden(f"unit: {unit!r} is outside the token's unit {self.unit!r}", "unit")

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role: {self.role!r} may not do this", "role")


_cache: dict[str, tuple[Principal | None, float]] = {}


async def current_principal(request: Request, state: State) -> Principal:
    """The dependency every token-protected handler takes."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authorization: a bearer token is required", "authorization")
    digest = hash_token(token.strip())
    cached = _cache.get(digest)
    now = time.monotonic()
    if cached is None or cached[1] < now:
        rows = await state.store.query(
            "SELECT t.user, t.role, t.unit FROM api_tokens t JOIN users u ON u.name = t.user"
            " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND coalesce(u.disabled, 0) = 0",
            (digest,),
        )
        principal = Principal(rows[0]["user"], rows[0]["role"], rows[0]["unit"]) if rows else None
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (principal, now + TOKEN_CACHE_SECONDS)
    else:
        principal = cached[0]
    if principal is None:
        raise Unauthorized("authorization: unknown or revoked token", "authorization")
    return principal
