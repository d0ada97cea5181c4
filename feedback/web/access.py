"""Who calls a route, and what they may do there: the `snapshot` and principal dependencies and the guards.

Handlers take the catalog as the `snapshot` dependency (app-wide) and the caller as a principal dependency
their controller or route provides: `TOKEN` (a bearer API token), or one made with `authenticator` (the
manager app's `SESSION` and `TOKEN_OR_SESSION`). Role and unit checks are Litestar guards declared on the
route: `requires_role(...)`, `requires(check)` and `requires_unit(...)`.

Litestar runs guards before it resolves a handler's dependencies, so a guard authenticates the caller the
way the route's own principal dependency does and leaves the result on the request; that dependency then
hands the handler the same Principal without a second look-up. The snapshot is kept the same way.
"""

from collections.abc import Awaitable, Callable
from typing import Literal

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Guard, Receive, Scope, Send

from feedback import audit
from feedback.catalog import Snapshot
from feedback.errors import NotFound
from feedback.web.security import Principal, current_principal

Authenticate = Callable[[Request, State], Awaitable[Principal]]

# Where one request keeps its caller and its snapshot (the scope is the request's own dict).
_CALLER = "fb_caller"
_SNAPSHOT = "fb_snapshot"
# Each principal dependency's provider -> how it authenticates, for the guards of its routes.
_AUTHENTICATORS: dict[Callable[..., Awaitable[Principal]], Authenticate] = {}


async def fresh_snapshot(state: State) -> Snapshot:
    """The catalog, reloaded on a reader thread when stale (never on the event loop)."""
    catalog = state.catalog
    if catalog.needs_reload():
        return await state.store.read(catalog.reload)
    return catalog.snapshot


async def request_snapshot(connection: ASGIConnection) -> Snapshot:
    """The catalog as this request sees it: fetched once, shared by its guards and its handler."""
    found = connection.scope.get(_SNAPSHOT)  # type: ignore[typeddict-item]
    if found is None:
        found = await fresh_snapshot(connection.app.state)
        connection.scope[_SNAPSHOT] = found  # type: ignore[typeddict-unknown-key]
    return found


async def provide_snapshot(request: Request) -> Snapshot:
    return await request_snapshot(request)


# App-wide: a handler asks for it by naming a parameter `snapshot: NamedDependency[Snapshot]`.
SNAPSHOT = Provide(provide_snapshot)


async def _remembered(connection: ASGIConnection, authenticate: Authenticate) -> Principal:
    found = connection.scope.get(_CALLER)  # type: ignore[typeddict-item]
    if found is None:
        found = await authenticate(connection, connection.app.state)  # type: ignore[arg-type]
        connection.scope[_CALLER] = found  # type: ignore[typeddict-unknown-key]
        # The one place a request's caller becomes known: from here on the audit log names them.
        audit.identify(actor_of(found))
    return found


def actor_of(principal: Principal) -> audit.Actor:
    """The audit log's actor for a principal: the API token (by its public id) or the signed-in user."""
    if principal.token is not None:
        return audit.Actor("token", principal.token, principal.unit)
    return audit.Actor("user", principal.user, principal.unit)


def actor_slot(app: ASGIApp) -> ASGIApp:
    """App middleware: each HTTP request starts with an empty actor slot in its context, which
    `_remembered` fills in whichever task authenticates the caller (a guard, or a dependency Litestar
    resolves in a task group of its own), so the handler and its writes see the same actor."""

    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = audit.new_slot()
        try:
            await app(scope, receive, send)
        finally:
            audit.end_slot(token)

    return run


def authenticator(authenticate: Authenticate) -> Provide:
    """A principal dependency that authenticates through `authenticate`; the guards of its routes use it too."""

    async def provide_principal(request: Request, state: State) -> Principal:
        return await _remembered(request, authenticate)

    _AUTHENTICATORS[provide_principal] = authenticate
    return Provide(provide_principal)


# A bearer API token; 401 naming `authorization` without a valid one.
TOKEN = authenticator(current_principal)


def route_authenticator(handler: BaseRouteHandler) -> Authenticate:
    """How the route learns who calls: its principal dependency (one per route, at whatever layer)."""
    for provide in handler.resolve_dependencies().values():
        found = _AUTHENTICATORS.get(provide.dependency)
        if found is not None:
            return found
    raise ImproperlyConfiguredException(f"{handler.handler_name}: a guarded route needs a principal dependency")


async def caller(connection: ASGIConnection, handler: BaseRouteHandler) -> Principal:
    """The authenticated caller, for a guard (401 or a sign-in redirect as the route's dependency gives)."""
    return await _remembered(connection, route_authenticator(handler))


def requires(check: Callable[[Principal], None]) -> Guard:
    """A guard running `check` on the caller; `check` raises Forbidden naming the field."""

    async def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        check(await caller(connection, handler))

    return guard


def requires_role(*roles: str) -> Guard:
    """403 naming `role` unless the caller has one of `roles`."""
    return requires(lambda principal: principal.require_role(*roles))


def requires_unit(name: str = "unit", *, source: Literal["query", "path"] = "query", field: str | None = None) -> Guard:
    """The unit a query or path parameter names must exist (else 404 naming `field`, by default the
    parameter) and lie in the caller's subtree (else 403 naming `unit`).

    Every value of a repeated query parameter is checked, whichever one the handler ends up with. A
    query without the parameter passes: the handler decides what that means (mostly the caller's own
    unit). A unit named in a body is checked by the handler, with the same `Principal.require_unit`."""
    label = field or name

    async def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        principal = await caller(connection, handler)
        if source == "path":
            codes = [connection.path_params[name]]
        else:
            codes = [code for code in connection.query_params.getall(name, []) if code]
        if not codes:
            return
        snapshot = await request_snapshot(connection)
        for code in codes:
            if code not in snapshot.units:
                raise NotFound(f"{label}: no unit {code!r}", label)
            principal.require_unit(code, snapshot)

    return guard
