"""Admin pages for kiosks (health, enrollment, revocation)."""

from datetime import UTC, datetime, timedelta

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from feedback import kiosks
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError, InvalidInput, NotFound
from feedback.i18n import gettext_for
from feedback.store import kiosks as kiosk_store
from feedback.web.api import fresh_snapshot
from feedback.web.kiosk_api import forget_device_cache
from feedback.web.manage import labels
from feedback.web.manage.admin_common import (
    PREFIX,
    WRITERS,
    AdminController,
    Saved,
    flash_redirect,
    page,
    page_lang,
    require_unit,
    required,
    submit_form,
    unit_name,
    visible_units,
)
from feedback.web.security import Principal


class KioskAdmin(AdminController):
    path = f"{PREFIX}/kiosks"

    async def _list(
        self, request: Request, principal: Principal, state: State, *, error: FeedbackError | None = None
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        now, silent_after = datetime.now(UTC), timedelta(seconds=state.settings.kiosk_silent_after)
        found = await state.store.read(lambda conn: kiosks.health(conn, now, silent_after))
        items = []
        for kiosk in sorted(found, key=lambda k: k["unit"]):  # by unit, then enrolment (a stable sort)
            if not principal.may_see(kiosk["unit"], snapshot):
                continue
            touchpoint = snapshot.touchpoints.get(kiosk["touchpoint"])
            items.append(
                {
                    **kiosk,
                    "unit_name": unit_name(snapshot, kiosk["unit"], lang),
                    "touchpoint_name": touchpoint.name if touchpoint else kiosk["touchpoint"],
                    "label": labels.kiosk_name(
                        kiosk, touchpoint.name if touchpoint else kiosk["touchpoint"], gettext_for(lang)
                    ),
                    "last_seen_at": datetime.fromisoformat(kiosk["last_seen"]) if kiosk["last_seen"] else None,
                    "battery_percent": None if kiosk["battery"] is None else round(kiosk["battery"] * 100),
                }
            )
        visible = set(visible_units(principal, snapshot))
        kiosk_points = sorted(
            (
                (tp.token, f"{tp.name} — {unit_name(snapshot, tp.unit, lang)}")
                for tp in snapshot.touchpoints.values()
                if tp.kind == "kiosk" and tp.unit in visible and tp.token not in snapshot.retired
            ),
            key=lambda item: item[1],
        )
        return await page(
            request, principal, "admin_kiosks.html", {"kiosks": items, "kiosk_points": kiosk_points}, error=error
        )

    @get("/")
    async def kiosks(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        return await self._list(request, principal, state)

    @post("/enroll", guards=[WRITERS])
    async def enroll(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        async def change(values: dict[str, str]) -> Saved:
            snapshot = await fresh_snapshot(state)
            token = required(values, "touchpoint")
            touchpoint = snapshot.touchpoints.get(token)
            if touchpoint is None:
                raise NotFound(f"touchpoint: no touchpoint {token!r}", "touchpoint")
            require_unit(principal, snapshot, touchpoint.unit)
            if touchpoint.kind != "kiosk":
                raise InvalidInput("touchpoint: not a kiosk touchpoint", "touchpoint")
            code, _expires = await state.store.write(lambda conn: kiosks.create_enrollment(conn, token, principal.user))
            # The code travels in the one-time, HttpOnly flash cookie, never in a URL or a log line.
            return Saved(
                f"{PREFIX}/kiosks",
                "Enrollment code for %(name)s: %(code)s (valid 15 minutes).",
                {"name": touchpoint.name, "code": code},
            )

        return await submit_form(
            request, principal, state, change, lambda error, _values: self._list(request, principal, state, error=error)
        )

    @post("/{kiosk_id:str}/revoke", guards=[WRITERS])
    async def revoke(
        self,
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        kiosk_id: FromPath[str],
    ) -> Response:
        unit = await state.store.read(lambda conn: kiosk_store.unit_of(conn, kiosk_id))
        if unit is None:
            raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
        require_unit(principal, snapshot, unit)
        await state.store.write(lambda conn: kiosks.revoke(conn, kiosk_id))
        forget_device_cache(state.store)
        return flash_redirect(f"{PREFIX}/kiosks", "Kiosk %(id)s revoked.", state, id=kiosk_id)


# The survey pages live in admin_surveys.
ROUTES: list = [KioskAdmin]
