"""The SMS channel's hooks, registered as a core plugin (`feedback.plugins.CORE_PLUGINS`): its settings at
start-up, its jobs ("sms.deliver" every 5 s, "sms.purge" hourly) and the call-back messages of closed
actions (`track_event`). The gateway itself comes from another plugin (`sms_gateway`)."""

from __future__ import annotations

from collections.abc import Awaitable

from feedback import invitations, sms, sms_callbacks
from feedback.db import Store
from feedback.hookspecs import hookimpl
from feedback.jobs import Job, JobContext
from feedback.models import Event
from feedback.settings import Settings

TRACKED = frozenset({"action.changed"})


async def _deliver(ctx: JobContext) -> None:
    await sms.deliver_job(ctx.store, ctx.now, ctx.settings)


@hookimpl
def startup(store: Store, settings: Settings) -> None:
    sms.start(store, settings)


@hookimpl
def register_jobs() -> list[Job]:
    return [Job("sms.deliver", every=5, run=_deliver), Job("sms.purge", every=3600, run=invitations.run_purge)]


@hookimpl
def tracked_events() -> frozenset[str]:
    return TRACKED


@hookimpl
def track_event(event: Event, store: Store) -> Awaitable[None] | None:
    if sms_callbacks.wants(event):
        return sms_callbacks.send_callback(event, store)
    return None
