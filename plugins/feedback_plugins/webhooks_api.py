"""The webhooks' API: admins register, list and disable webhooks and read their deliveries.

Imported by `feedback_plugins.webhooks.register_routes` when an app is built; the delivery side lives
in `feedback_plugins.webhooks`, which the command line loads without Litestar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct

from feedback.errors import Forbidden, InvalidInput, NotFound
from feedback.outbox import stamp
from feedback.store import events as event_store
from feedback.store import plugin_data
from feedback.web.access import TOKEN, requires
from feedback.web.security import Principal
from feedback_plugins.webhooks import (
    CHANNEL,
    EVENTS,
    PUBLIC_COLUMNS,
    WEBHOOKS,
    check_url,
    disable_webhook,
    forget_cache,
    log,
    register_webhook,
)

# -- API ---------------------------------------------------------------------------------------------


class WebhookBody(Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    secret: Annotated[str, Meta(min_length=1, max_length=256)]
    events: Annotated[list[str], Meta(max_length=len(EVENTS))] | None = None


class WebhookCreated(Struct, kw_only=True):
    """A webhook just registered (its secret is never shown again)."""

    id: int
    url: str
    events: Annotated[list[str], Meta(description='event types, or ["*"] for all')]
    created_at: str


class Webhook(WebhookCreated, kw_only=True):
    created_by: str | None
    disabled_at: Annotated[str | None, Meta(description="when it was disabled; null while active")]
    active: bool


class Delivery(Struct, kw_only=True):
    id: int
    event_id: Annotated[str | None, Meta(description="the same on every retry of one event")]
    event_type: str | None
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str
    delivered_at: str | None
    failed_at: str | None
    status: Literal["pending", "retrying", "delivered", "failed"]


# The controller has a method named `list`, which shadows the builtin inside its body.
Deliveries = list[Delivery]


def _documented(body: Any, status: int = 200, description: str = "OK") -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(data_container=body, description=description, generate_examples=False)}


def _require_admin(principal: Principal) -> None:
    # Webhooks see every unit's events: only an installation-wide admin may manage them.
    if principal.role != "admin" or principal.unit is not None:
        raise Forbidden("role: only an installation-wide admin may manage webhooks", "role")


def _normalise_events(events: list[str] | None) -> list[str]:
    if events is None:
        return ["*"]
    if not events:
        raise InvalidInput('events: name at least one event, or "*" for all', "events")
    for name in events:
        if name not in EVENTS:
            raise InvalidInput(f"events: unknown event {name!r}; known: {list(EVENTS)}", "events")
    return ["*"] if "*" in events else sorted(set(events))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "events": row["events"],
        "created_at": row["created_at"],
        "created_by": row["created_by"],
        "disabled_at": row["disabled_at"],
        "active": row["disabled_at"] is None,
    }


def _delivery_status(row: dict[str, Any]) -> str:
    if row["delivered_at"]:
        return "delivered"
    if row["failed_at"]:
        return "failed"
    return "retrying" if row["attempts"] else "pending"


class WebhooksController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]
    dependencies = {"principal": TOKEN}
    guards = [requires(_require_admin)]

    async def _get(self, state: State, webhook_id: int) -> dict[str, Any]:
        row = await state.store.read(
            lambda conn: plugin_data.first(conn, WEBHOOKS, {"id": webhook_id}, columns=PUBLIC_COLUMNS)
        )
        if row is None:
            raise NotFound(f"id: no webhook {webhook_id}", "id")
        return row

    @post(
        summary="Register a webhook (admin)",
        responses=_documented(WebhookCreated, 201, "Registered"),
        description="Events: " + ", ".join(EVENTS) + '; none or ["*"] means all. The secret is never shown again.',
    )
    async def create(
        self, data: JSONBody[WebhookBody], principal: NamedDependency[Principal], state: State
    ) -> Response[dict[str, Any]]:
        events = _normalise_events(data.events)
        await check_url(data.url, state.settings.webhook_allow_private)
        created_at = stamp(datetime.now(UTC))
        row = {"url": data.url, "secret": data.secret, "events": events, "created_by": principal.user}
        webhook_id = await state.store.write(lambda conn: register_webhook(conn, {**row, "created_at": created_at}))
        forget_cache(state.store)
        log.info("webhook %s registered for %s by %s", webhook_id, events, principal.user)
        return Response(
            {"id": webhook_id, "url": data.url, "events": events, "created_at": created_at}, status_code=201
        )

    @get(summary="Registered webhooks, secrets hidden (admin)", responses=_documented(list[Webhook]))
    async def list(self, state: State) -> list[dict[str, Any]]:
        rows = await state.store.read(
            lambda conn: plugin_data.select(conn, WEBHOOKS, columns=PUBLIC_COLUMNS, order_by="id")
        )
        return [_public(row) for row in rows]

    @delete(
        "/{webhook_id:int}",
        status_code=200,
        summary="Disable a webhook; its record and deliveries stay",
        responses=_documented(Webhook),
    )
    async def disable(
        self, webhook_id: FromPath[int], principal: NamedDependency[Principal], state: State
    ) -> dict[str, Any]:
        await self._get(state, webhook_id)
        at = stamp(datetime.now(UTC))
        # A second call keeps the first time.
        await state.store.write(lambda conn: disable_webhook(conn, webhook_id, at))
        forget_cache(state.store)
        log.info("webhook %s disabled by %s", webhook_id, principal.user)
        return _public(await self._get(state, webhook_id))

    @get(
        "/{webhook_id:int}/deliveries",
        summary="Recent deliveries of a webhook, newest first (admin)",
        responses=_documented(Deliveries),
    )
    async def deliveries(
        self,
        webhook_id: FromPath[int],
        state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        await self._get(state, webhook_id)
        rows = await state.store.read(lambda conn: event_store.deliveries(conn, CHANNEL, str(webhook_id), limit))
        return [{**row, "status": _delivery_status(row)} for row in rows]
