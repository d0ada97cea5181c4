"""Kiosk endpoints: `/api/v1/kiosk/…` for the tablet itself (device token), `/api/v1/kiosks/…` for
managers and counter systems (API token), and the app's shell at `/kiosk/`."""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct

from feedback import kiosks, serving
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import InvalidInput, NotFound, Unauthorized
from feedback.i18n import gettext_for
from feedback.ingest import Item, Outcome, ingest
from feedback.models import LANGUAGES, Submission
from feedback.store import kiosks as kiosk_store
from feedback.web.access import TOKEN, requires_role
from feedback.web.api import fresh_snapshot, survey_document
from feedback.web.client_address import client_key
from feedback.web.schemas import (
    EnrollmentCode,
    HeartbeatReply,
    InvitationPoll,
    IssuedInvitation,
    KioskConfig,
    KioskEnrolled,
    KioskHealth,
    KioskRevoked,
    SyncResults,
    success,
)
from feedback.web.security import Principal

log = logging.getLogger("feedback.kiosk")
DEVICE_CACHE_SECONDS = 10.0
MAX_BATCH = 500


@dataclass(frozen=True)
class Device:
    id: str
    touchpoint: str


class EnrollBody(Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(max_length=16)]
    name: Annotated[str, Meta(max_length=100)] | None = None


class KioskItem(Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(max_length=64)]
    answers: dict[Annotated[str, Meta(max_length=64)], Any]
    submitted_at: Annotated[str, Meta(max_length=64)]
    lang: str | None = None
    case_ref: Annotated[str, Meta(max_length=128)] | None = None
    service: Annotated[str, Meta(max_length=64)] | None = None
    officer: Annotated[str, Meta(max_length=64)] | None = None


class SyncBody(Struct, forbid_unknown_fields=True):
    items: Annotated[list[KioskItem], Meta(max_length=MAX_BATCH)]


class Heartbeat(Struct):
    queue: Annotated[int, Meta(ge=0)] = 0
    dead_letters: Annotated[int, Meta(ge=0)] = 0
    app_version: Annotated[str, Meta(max_length=40)] | None = None
    last_sync: Annotated[str, Meta(max_length=64)] | None = None
    battery: Annotated[float, Meta(ge=0, le=1)] | None = None


class EnrollRequest(Struct, forbid_unknown_fields=True):
    touchpoint: Annotated[str, Meta(max_length=64)]


class InviteBody(Struct, forbid_unknown_fields=True):
    case_ref: Annotated[str, Meta(min_length=1, max_length=128)]
    service: Annotated[str, Meta(max_length=64)] | None = None
    officer: Annotated[str, Meta(max_length=64)] | None = None


def _device_cache(store: Store) -> dict[str, tuple[Device | None, float]]:
    """This app's looked-up device tokens: token hash -> (device, valid until monotonic)."""
    return store.local("kiosk_devices", dict)


def invitation_events(store: Store) -> dict[str, asyncio.Event]:
    """One event per kiosk of this app, which wakes its long-poll at once when an invitation is posted here."""
    return store.local("kiosk_invitations", dict)


async def current_device(request: Request, state: State) -> Device:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(kiosks.DEVICE_TOKEN_PREFIX):
        raise Unauthorized("authorization: a kiosk device token is required", "authorization")
    digest = kiosks.hash_secret(token.strip())
    cache = _device_cache(state.store)
    cached = cache.get(digest)
    if cached is None or cached[1] < time.monotonic():
        row = await state.store.read(lambda conn: kiosk_store.device(conn, digest))
        device = Device(row["id"], row["touchpoint"]) if row else None
        cache[digest] = (device, time.monotonic() + DEVICE_CACHE_SECONDS)
    else:
        device = cached[0]
    if device is None:
        raise Unauthorized("authorization: unknown or revoked kiosk", "authorization")
    return device


def wake_on_other_nodes_invitations(store: Store, loop: asyncio.AbstractEventLoop) -> None:
    """On PostgreSQL, an invitation another node stores wakes this node's long-poll of that kiosk at
    once (without it, the 1 s re-check finds it)."""

    def wake(payload: str) -> None:
        kiosk = payload.partition(":")[2]
        events = invitation_events(store)
        for event in events.values() if kiosk in ("", "*") else filter(None, [events.get(kiosk)]):
            loop.call_soon_threadsafe(event.set)

    store.listen("invitation", wake)


def end_long_polls(store: Store) -> None:
    """The server is stopping (`serving.stopping` is set): wake every waiting long-poll, which then
    answers `{"invitation": null}` at once, as at the end of its wait."""
    for event in invitation_events(store).values():
        event.set()


def forget_device_cache(store: Store) -> None:
    _device_cache(store).clear()


def kiosk_strings() -> dict[str, dict[str, str]]:
    """Interface text of the tablet app in every language, from the gettext catalogues."""
    from feedback.kiosk_strings import KIOSK_MESSAGES

    return {lang: {key: gettext_for(lang)(msgid) for key, msgid in KIOSK_MESSAGES.items()} for lang in LANGUAGES}


class KioskDeviceController(Controller):
    """What the tablet calls. Singular: the device itself."""

    path = "/api/v1/kiosk"
    tags = ["kiosk device"]

    @post(
        "/enroll",
        summary="Trade a one-time enrollment code for a device token (public)",
        responses=success(KioskEnrolled, 201, "Enrolled"),
    )
    async def enroll(self, data: JSONBody[EnrollBody], request: Request, state: State) -> Response[dict]:
        key = client_key(request.scope, state.settings)
        # Reserved before the code is checked, so no more than the limit are checked however many arrive.
        attempt = await state.store.write(lambda conn: kiosks.reserve_enrollment_attempt(conn, key))
        if attempt is None:
            return Response(
                {"status_code": 429, "detail": "code: too many wrong codes; wait and try again", "field": "code"},
                status_code=429,
            )
        code = data.code.strip()
        result = await state.store.write(lambda conn: kiosks.redeem_reserved(conn, attempt, code, data.name))
        return Response(result, status_code=201)

    @get(
        "/config",
        dependencies={"device": Provide(current_device)},
        summary="The kiosk's touchpoint and survey",
        responses=success(KioskConfig),
    )
    async def config(
        self, device: NamedDependency[Device], snapshot: NamedDependency[Snapshot], state: State
    ) -> dict[str, Any]:
        touchpoint = snapshot.touchpoints.get(device.touchpoint)
        version = snapshot.current.get(touchpoint.survey) if touchpoint else None
        if touchpoint is None or version is None:
            raise NotFound("touchpoint: the kiosk's touchpoint has no survey", "touchpoint")
        unit = snapshot.units[touchpoint.unit]
        settings = state.settings
        # A retired touchpoint refuses every new tap: the tablet shows an out-of-service screen instead
        # of faces, yet keeps its survey so taps queued while it was live still go out.
        retired_at = snapshot.retired.get(touchpoint.token)
        return {
            "kiosk": {
                "id": device.id,
                "touchpoint": touchpoint.token,
                "unit": unit.code,
                "unit_name": unit.name,
                "unit_names": unit.names or {},
                "counter": touchpoint.counter,
            },
            "lang": touchpoint.lang,
            "retired_at": retired_at.isoformat() if retired_at is not None else None,
            "survey": survey_document(version),
            "settings": {
                "thanks_seconds": settings.kiosk_thanks_seconds,
                "idle_seconds": settings.kiosk_idle_seconds,
                "heartbeat_seconds": settings.kiosk_heartbeat_seconds,
                "sync_seconds": settings.kiosk_sync_seconds,
            },
        }

    @post(
        "/sync",
        dependencies={"device": Provide(current_device)},
        status_code=200,
        request_max_body_size=4 * 1024 * 1024,
        summary="Store queued taps; a result per item",
        responses=success(SyncResults),
    )
    async def sync(self, data: JSONBody[SyncBody], device: NamedDependency[Device], state: State) -> dict[str, Any]:
        snapshot = await fresh_snapshot(state)
        # A case the server itself sent this tablet as an invitation is verified; any other is not.
        cases = {item.case_ref for item in data.items if item.case_ref}
        invited = await state.store.read(lambda conn: kiosks.invited_cases(conn, device.id, cases)) if cases else set()
        items = [Item(tap_submission(item, device), case_verified=item.case_ref in invited) for item in data.items]
        settings = state.settings
        policy = kiosks.KioskPolicy(
            device=device.id,
            min_interval=settings.kiosk_min_interval,
            burst_count=settings.kiosk_burst_count,
            burst_window=settings.kiosk_burst_window,
        )
        outcomes = await ingest(
            items, state.store, snapshot, policy=policy, default_action_days=settings.default_action_days
        )
        return {"results": [sync_result(item, outcome) for item, outcome in zip(data.items, outcomes, strict=True)]}

    @post(
        "/heartbeat",
        dependencies={"device": Provide(current_device)},
        status_code=200,
        summary="Report queue length, dead letters, app version, battery; answers survey version and retirement",
        responses=success(HeartbeatReply),
    )
    async def heartbeat(
        self, data: JSONBody[Heartbeat], device: NamedDependency[Device], state: State
    ) -> dict[str, Any]:
        seen = datetime.now(UTC).isoformat()

        await state.store.write(
            lambda conn: kiosk_store.record_heartbeat(
                conn, device.id, seen, data.queue, data.dead_letters, data.app_version, data.last_sync, data.battery
            )
        )
        snapshot = await fresh_snapshot(state)
        touchpoint = snapshot.touchpoints.get(device.touchpoint)
        version = snapshot.current.get(touchpoint.survey) if touchpoint else None
        # The retirement rides on the beat itself, so a resting tablet switches screens without a config read.
        retired_at = snapshot.retired.get(device.touchpoint)
        return {
            "survey_version": version.version if version else None,
            "time": seen,
            "retired_at": retired_at.isoformat() if retired_at is not None else None,
        }

    @get(
        "/invitation",
        dependencies={"device": Provide(current_device)},
        summary="Long-poll for the next case invitation (answers within `wait` seconds)",
        responses=success(InvitationPoll),
    )
    async def invitation(
        self, device: NamedDependency[Device], state: State, wait: Annotated[int, QueryParameter(ge=0, le=60)] = 20
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        event = invitation_events(state.store).setdefault(device.id, asyncio.Event())
        stopping = serving.stopping(state.store)
        while True:
            now = datetime.now(UTC).isoformat()
            pending = await state.store.read(
                lambda conn, at=now: kiosk_store.has_pending_invitation(conn, device.id, at)
            )
            if pending:
                found = await state.store.write(lambda conn: kiosks.take_invitation(conn, device.id))
                if found:
                    return {"invitation": found}
            remaining = deadline - loop.time()
            if remaining <= 0 or stopping.is_set():  # stopping: the tablet polls again, on another node
                return {"invitation": None}
            event.clear()
            # Woken at once by an invitation posted here; the 1 s re-check covers other processes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(1.0, remaining))


def tap_submission(item: KioskItem, device: Device) -> Submission:
    """A queued tap as a submission to the kiosk's own touchpoint."""
    return Submission(
        touchpoint=device.touchpoint,
        answers=item.answers,
        id=item.id,
        lang=item.lang,
        case_ref=item.case_ref,
        service=item.service,
        officer=item.officer,
        channel="kiosk",
        submitted_at=item.submitted_at,
    )


def sync_result(item: KioskItem, outcome: Outcome) -> dict[str, Any]:
    """The tablet's answer for one tap: `stored` or `duplicate` (it may leave the queue) with its
    receipt, else `rejected` with the reason and field (it goes to the dead letters)."""
    if outcome.result is not None:
        status = "stored" if outcome.status == "stored" else "duplicate"
        return {"id": outcome.result.id, "status": status, "receipt": outcome.result.receipt}
    error = outcome.error
    return {"id": outcome.id or item.id, "status": "rejected", "reason": error.message, "field": error.field}


class KioskFleetController(Controller):
    """Managers and counter systems. Plural: the fleet."""

    path = "/api/v1/kiosks"
    tags = ["kiosks"]
    dependencies = {"principal": TOKEN}

    async def _kiosk_unit(self, state: State, kiosk_id: str) -> str:
        unit = await state.store.read(lambda conn: kiosk_store.unit_of(conn, kiosk_id))
        if unit is None:
            raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
        return unit

    @get(summary="Kiosks of the token's subtree with their health", responses=success(list[KioskHealth]))
    async def list(
        self, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> list[dict[str, Any]]:
        now, silent_after = datetime.now(UTC), timedelta(seconds=state.settings.kiosk_silent_after)
        fields = (
            "id",
            "touchpoint",
            "unit",
            "name",
            "enrolled_at",
            "last_seen",
            "backlog",
            "dead_letters",
            "app_version",
            "last_sync",
            "battery",
            "revoked",
            "silent",
        )
        return [
            {name: kiosk[name] for name in fields}
            for kiosk in await state.store.read(lambda conn: kiosks.health(conn, now, silent_after))
            if principal.may_see(kiosk["unit"], snapshot)
        ]

    @post(
        "/enroll",
        guards=[requires_role("admin", "manager")],
        summary="A one-time 6-digit enrollment code for a kiosk touchpoint",
        responses=success(EnrollmentCode, 201, "Issued"),
    )
    async def enroll(
        self,
        data: JSONBody[EnrollRequest],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[dict]:
        touchpoint = snapshot.touchpoints.get(data.touchpoint)
        if touchpoint is None:
            raise NotFound(f"touchpoint: no touchpoint {data.touchpoint!r}", "touchpoint")
        principal.require_unit(touchpoint.unit, snapshot)
        code, expires = await state.store.write(
            lambda conn: kiosks.create_enrollment(conn, data.touchpoint, principal.user)
        )
        return Response({"code": code, "expires_at": expires, "touchpoint": data.touchpoint}, status_code=201)

    @post(
        "/{kiosk_id:str}/invite",
        guards=[requires_role("admin", "manager")],
        summary="Show the rating screen for a case that just ended",
        responses=success(IssuedInvitation, 201, "Issued"),
    )
    async def invite(
        self,
        kiosk_id: FromPath[str],
        data: JSONBody[InviteBody],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> Response[dict]:
        unit = await self._kiosk_unit(state, kiosk_id)
        principal.require_unit(unit, snapshot)
        if data.service is not None and data.service not in snapshot.services:
            raise InvalidInput(f"service: no service {data.service!r}", "service")
        if data.service is not None and not snapshot.service_offered_at(data.service, unit):
            raise InvalidInput(f"service: {data.service!r} is not offered at unit {unit!r}", "service")
        invitation = await state.store.write(
            lambda conn: kiosks.create_invitation(
                conn, kiosk_id, data.case_ref, data.service, data.officer, principal.user
            )
        )
        event = invitation_events(state.store).get(kiosk_id)
        if event is not None:
            event.set()
        return Response(invitation, status_code=201)

    @post(
        "/{kiosk_id:str}/revoke",
        guards=[requires_role("admin", "manager")],
        status_code=200,
        summary="Revoke a kiosk's device token",
        responses=success(KioskRevoked),
    )
    async def revoke(
        self,
        kiosk_id: FromPath[str],
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
    ) -> dict[str, Any]:
        principal.require_unit(await self._kiosk_unit(state, kiosk_id), snapshot)
        await state.store.write(lambda conn: kiosks.revoke(conn, kiosk_id))
        forget_device_cache(state.store)
        return {"id": kiosk_id, "revoked": True}


@get("/kiosk/strings.json", include_in_schema=False, cache_control=None)
async def strings_json() -> dict[str, dict[str, str]]:
    return kiosk_strings()


async def watch_for_silent_kiosks(store, settings, interval: float | None = None) -> None:
    """Log `kiosk.silent` once for each kiosk whose heartbeats stopped for `kiosk_silent_after` seconds."""
    interval = interval or max(1.0, min(60.0, settings.kiosk_silent_after / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            cutoff = (datetime.now(UTC) - timedelta(seconds=settings.kiosk_silent_after)).isoformat()
            marked_at = datetime.now(UTC).isoformat()
            await store.write(lambda conn, c=cutoff, m=marked_at: kiosks.mark_silent(conn, c, m))
        except Exception:  # noqa: BLE001 - the watcher must outlive a bad round
            log.exception("silent-kiosk check failed")


KIOSK_CONTROLLERS = [KioskDeviceController, KioskFleetController, strings_json]
