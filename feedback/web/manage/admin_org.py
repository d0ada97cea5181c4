"""Admin pages for the organisation: units, services, touchpoints, their QR codes and posters."""

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from feedback import organisation
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.i18n import ENDONYMS, counter_label, gettext_for
from feedback.models import DEFAULT_COMPLAINT_LEVELS, LANGUAGES, Unit
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store
from feedback.unit_settings import update_unit_settings
from feedback.web.access import requires_unit
from feedback.web.api import fresh_snapshot
from feedback.web.manage import labels
from feedback.web.manage.admin_common import (
    PREFIX,
    WRITERS,
    AdminController,
    Saved,
    depth,
    optional,
    page,
    page_lang,
    require_unit,
    required,
    submit_form,
    unit_name,
    units_in_view,
    visible_units,
    whole_number,
)
from feedback.web.manage.dashboard import LEVEL_LABELS
from feedback.web.qr_routes import filename_part, pdf_response, public_base
from feedback.web.security import Principal


def text_field(values: dict[str, str], name: str, *, needed: bool = False) -> str | None:
    value = required(values, name) if needed else optional(values, name)
    return None if value is None else organisation.check_text(value, name)


def new_code(values: dict[str, str]) -> str:
    """A code for a new unit or service (`organisation.check_code`)."""
    return organisation.check_code(required(values, "code"))


def language_choices() -> list[tuple[str, str]]:
    return [(code, ENDONYMS[code]) for code in LANGUAGES]


async def user_names(state: State) -> list[str]:
    return await state.store.read(user_store.enabled_names)


UNCHANGED = object()  # a form without the complaint fields leaves the setting as it is


def complaint_levels_field(values: dict[str, str]) -> list[int] | None | object:
    """The unit form's complaint levels: None to follow the unit above, else the ticked levels ([] for
    none); UNCHANGED when the form did not carry the choice."""
    mode = values.get("complaint_mode")
    if mode is None:
        return UNCHANGED
    if mode == "inherit":
        return None
    if mode != "own":
        raise InvalidInput(
            "complaint_levels: choose to follow the unit above or to set levels here", "complaint_levels"
        )
    return [level for level in range(1, 6) if values.get(f"complaint_level_{level}") == "1"]


def complaint_view(snapshot: Snapshot, unit: Unit, lang: str) -> dict[str, Any]:
    """The complaint levels as the unit page shows them: its own, what it would follow, and the choices."""
    _ = gettext_for(lang)
    above = snapshot.complaint_levels(unit.parent)[0] if unit.parent else DEFAULT_COMPLAINT_LEVELS
    in_force = snapshot.complaint_levels(unit.code)[0]
    return {
        "own": unit.complaint_levels is not None,
        "checked": set(in_force),
        "above": ", ".join(map(str, above)) or _("none"),
        "in_force": ", ".join(map(str, in_force)) or _("none"),
        "choices": [(level, f"{level} · {_(label)}") for level, label in enumerate(LEVEL_LABELS, start=1)],
    }


class UnitAdmin(AdminController):
    path = f"{PREFIX}/units"

    async def _list(
        self,
        request: Request,
        principal: Principal,
        state: State,
        *,
        error: FeedbackError | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        units = [
            {
                "code": code,
                "name": unit_name(snapshot, code, lang),
                "depth": depth(snapshot, code),
                "unit": snapshot.units[code],
            }
            for code in visible_units(principal, snapshot)
        ]
        return await page(
            request,
            principal,
            "admin_units.html",
            {
                "units": units,
                "lang_choices": language_choices(),
                "users": await user_names(state),
                "values": values or {},
            },
            error=error,
        )

    @get("/")
    async def units(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        return await self._list(request, principal, state)

    @post("/", guards=[WRITERS])
    async def create(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        async def change(values: dict[str, str]) -> Saved:
            snapshot = await fresh_snapshot(state)
            code = new_code(values)
            parent = optional(values, "parent")
            if parent is None:
                if principal.unit is not None:
                    raise InvalidInput("parent: required (you manage one subtree)", "parent")
            else:
                require_unit(principal, snapshot, parent, "parent")
            lang = organisation.check_lang(values.get("lang") or "en")
            names = {code_: text for code_ in LANGUAGES if (text := text_field(values, f"name_{code_}"))}
            if not names:
                raise InvalidInput("name: give the name in at least one language", f"name_{lang}")
            name = organisation.own_name(names, lang)
            tz = values.get("tz") or "UTC"
            owner = optional(values, "owner")
            action_days = whole_number(values, "action_days", 1, 365)
            country = optional(values, "country")

            def job(conn: Connection) -> None:
                organisation.add_unit(conn, code, name, parent=parent, lang=lang, tz=tz, names=names)
                organisation.update_unit(conn, code, owner=owner, action_days=action_days, country=country)

            await state.store.write(job)
            return Saved(f"{PREFIX}/units/{code}", "Unit %(code)s created.", {"code": code})

        return await submit_form(
            request,
            principal,
            state,
            change,
            lambda error, values: self._list(request, principal, state, error=error, values=values),
        )

    async def _edit(
        self, request: Request, principal: Principal, state: State, code: str, *, error: FeedbackError | None = None
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        require_unit(principal, snapshot, code, "code")
        lang = page_lang(request)
        unit = snapshot.units[code]
        live = sum(
            1
            for tp in snapshot.touchpoints.values()
            if tp.unit in snapshot.subtree(code) and tp.token not in snapshot.retired
        )
        return await page(
            request,
            principal,
            "admin_unit.html",
            {
                "unit": unit,
                "name": unit_name(snapshot, code, lang),
                "users": await user_names(state),
                "parent_name": unit_name(snapshot, unit.parent, lang),
                "live_touchpoints": live,
                "complaint": complaint_view(snapshot, unit, lang),
            },
            error=error,
        )

    @get("/{code:str}", guards=[requires_unit("code", source="path")])
    async def edit(
        self, request: Request, principal: NamedDependency[Principal], state: State, code: FromPath[str]
    ) -> Response:
        return await self._edit(request, principal, state, code)

    @post("/{code:str}", guards=[requires_unit("code", source="path"), WRITERS])
    async def update(
        self, request: Request, principal: NamedDependency[Principal], state: State, code: FromPath[str]
    ) -> Response:
        async def change(values: dict[str, str]) -> Saved:
            owner = optional(values, "owner")
            action_days = whole_number(values, "action_days", 1, 365)
            country = optional(values, "country")
            public = values.get("public_results") == "1"
            complaint = complaint_levels_field(values)

            def job(conn: Connection) -> None:
                organisation.update_unit(
                    conn, code, owner=owner, action_days=action_days, country=country, public_results=public
                )
                if complaint is not UNCHANGED:
                    update_unit_settings(conn, code, {"complaint_levels": complaint})

            await state.store.write(job)
            return Saved(f"{PREFIX}/units/{code}", "Unit %(code)s saved.", {"code": code})

        return await submit_form(
            request,
            principal,
            state,
            change,
            lambda error, _values: self._edit(request, principal, state, code, error=error),
        )

    @get("/{code:str}/posters.pdf", guards=[requires_unit("code", source="path")], media_type="application/pdf")
    async def posters(
        self,
        request: Request,
        snapshot: NamedDependency[Snapshot],
        state: State,
        code: FromPath[str],
        paper: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
        from feedback import posters

        size = posters.parse_paper(paper)
        tokens = posters.unit_tokens(snapshot, code)
        if not tokens:
            raise NotFound(f"code: unit {code!r} has no live touchpoints", "code")
        content = await asyncio.to_thread(posters.render_posters, snapshot, tokens, public_base(request, state), size)
        return pdf_response(content, f"posters-{filename_part(code)}-{size}.pdf")


class ServiceAdmin(AdminController):
    path = f"{PREFIX}/services"

    async def _list(
        self,
        request: Request,
        principal: Principal,
        state: State,
        *,
        error: FeedbackError | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        services = []
        for code, row in sorted(snapshot.services.items()):
            if not principal.may_use_service(code, snapshot):
                continue
            agency = row.get("agency")
            services.append(
                {
                    "code": code,
                    "name": snapshot.service_name(code, lang),
                    "kind": row.get("kind"),
                    "agency": agency,
                    "agency_name": unit_name(snapshot, agency, lang),
                }
            )
        units = [(code, unit_name(snapshot, code, lang)) for code in visible_units(principal, snapshot)]
        return await page(
            request,
            principal,
            "admin_services.html",
            {"services": services, "units": units, "values": values or {}},
            error=error,
        )

    @get("/")
    async def services(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        return await self._list(request, principal, state)

    @post("/", guards=[WRITERS])
    async def create(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        async def change(values: dict[str, str]) -> Saved:
            snapshot = await fresh_snapshot(state)
            code = new_code(values)
            agency = optional(values, "agency")
            if agency is None and principal.unit is not None:
                raise InvalidInput("agency: required (you manage one subtree)", "agency")
            if agency is not None:
                require_unit(principal, snapshot, agency, "agency")
            names = {lang: text for lang in LANGUAGES if (text := text_field(values, f"name_{lang}"))}
            if not names:
                raise InvalidInput("name: give the name in at least one language", "name_en")
            kind = organisation.check_service_kind(values.get("kind") or "administrative")
            lang = snapshot.units[agency].lang if agency else "en"
            name = organisation.own_name(names, lang)

            await state.store.write(  # 409 naming `code` when the code is taken
                lambda conn: organisation.add_service(conn, code, name, kind=kind, agency=agency, names=names)
            )
            return Saved(f"{PREFIX}/services", "Service %(code)s created.", {"code": code})

        return await submit_form(
            request,
            principal,
            state,
            change,
            lambda error, values: self._list(request, principal, state, error=error, values=values),
        )


class TouchpointAdmin(AdminController):
    path = f"{PREFIX}/touchpoints"

    async def _list(
        self,
        request: Request,
        principal: Principal,
        state: State,
        unit: str | None,
        *,
        error: FeedbackError | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        codes = units_in_view(principal, snapshot, unit)
        stamps = await state.store.read(organisation_store.touchpoint_stamps)
        groups: list[dict[str, Any]] = []
        for code in codes:
            items = []
            for tp in sorted(
                (t for t in snapshot.touchpoints.values() if t.unit == code),
                key=lambda t: (t.token in snapshot.retired, t.name),
            ):
                items.append(
                    {
                        "tp": tp,
                        "counter": counter_label(tp.counter, lang),
                        "retired_at": (stamps.get(tp.token) or {}).get("retired_at"),
                        "service": tp.service,
                    }
                )
            groups.append(
                {
                    "code": code,
                    "name": unit_name(snapshot, code, lang),
                    "touchpoints": items,
                    "live": sum(1 for item in items if not item["retired_at"]),
                }
            )
        services = [
            (code, row["name"])
            for code, row in sorted(snapshot.services.items())
            if principal.may_use_service(code, snapshot)
        ]
        return await page(
            request,
            principal,
            "admin_touchpoints.html",
            {
                "groups": groups,
                "unit": unit,
                "units": [(c, unit_name(snapshot, c, lang)) for c in codes],
                "surveys": sorted(snapshot.current),
                # Surveys by their title and languages by their own names, never their codes.
                "survey_names": {slug: labels.survey_name(snapshot, slug, lang) for slug in snapshot.current},
                "endonyms": ENDONYMS,
                "services": services,
                "lang_choices": language_choices(),
                "values": values or {"unit": unit or ""},
            },
            error=error,
        )

    @get("/", guards=[requires_unit()])
    async def touchpoints(
        self, request: Request, principal: NamedDependency[Principal], state: State, unit: FromQuery[str | None] = None
    ) -> Response:
        return await self._list(request, principal, state, unit or None)

    @post("/", guards=[WRITERS])
    async def create(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        async def change(values: dict[str, str]) -> Saved:
            snapshot = await fresh_snapshot(state)
            unit = required(values, "unit")
            require_unit(principal, snapshot, unit)
            name = text_field(values, "name", needed=True) or ""
            survey = required(values, "survey")
            if survey not in snapshot.current:
                raise NotFound(f"survey: no published survey {survey!r}", "survey")
            kind = values.get("kind") or "qr"
            counter = text_field(values, "counter")
            service = optional(values, "service")
            if service is not None and service not in snapshot.services:
                raise NotFound(f"service: no service {service!r}", "service")
            if service is not None and not principal.may_use_service(service, snapshot):
                raise Forbidden(f"service: {service!r} belongs to another agency", "service")
            lang = optional(values, "lang")
            if lang is not None:
                organisation.check_lang(lang)
            await state.store.write(
                lambda conn: organisation.add_touchpoint(
                    conn, unit, name, survey, kind=kind, lang=lang, counter=counter, service=service
                )
            )
            return Saved(f"{PREFIX}/touchpoints?unit={unit}", "Touchpoint %(name)s created.", {"name": name})

        return await submit_form(
            request,
            principal,
            state,
            change,
            lambda error, values: self._list(
                request, principal, state, values.get("unit") or None, error=error, values=values
            ),
        )

    @post("/{token:str}/retire", guards=[WRITERS])
    async def retire(
        self, request: Request, principal: NamedDependency[Principal], state: State, token: FromPath[str]
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        touchpoint = snapshot.touchpoints.get(token)
        if touchpoint is None:
            raise NotFound(f"token: no touchpoint {token!r}", "token")
        require_unit(principal, snapshot, touchpoint.unit)

        async def change(_values: dict[str, str]) -> Saved:
            await state.store.write(lambda conn: organisation.retire_touchpoint(conn, token))
            return Saved(
                f"{PREFIX}/touchpoints?unit={touchpoint.unit}",
                "Touchpoint %(name)s retired.",
                {"name": touchpoint.name},
            )

        return await submit_form(
            request,
            principal,
            state,
            change,
            lambda error, _values: self._list(request, principal, state, touchpoint.unit, error=error),
        )

    @get("/{token:str}/poster.pdf", media_type="application/pdf")
    async def poster(
        self,
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        token: FromPath[str],
        paper: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
        from feedback import posters

        size = posters.parse_paper(paper)
        touchpoint = snapshot.touchpoints.get(token)
        if touchpoint is None:
            raise NotFound(f"token: no touchpoint {token!r}", "token")
        require_unit(principal, snapshot, touchpoint.unit)
        content = await asyncio.to_thread(posters.render_posters, snapshot, [token], public_base(request, state), size)
        return pdf_response(content, f"poster-{filename_part(token)}-{size}.pdf")


ROUTES: list = [UnitAdmin, ServiceAdmin, TouchpointAdmin]
