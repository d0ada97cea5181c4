"""Admin pages for kiosks (health, enrollment, revocation) and surveys (templates, preview, publish)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.response import Redirect

from feedback import kiosks, surveys
from feedback.errors import FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.i18n import ENDONYMS, text_in
from feedback.models import SurveyVersion, Touchpoint
from feedback.web import survey_page
from feedback.web.api import fresh_snapshot
from feedback.web.kiosk_api import forget_device_cache
from feedback.web.manage import auth
from feedback.web.manage.admin_common import (
    EXCEPTION_HANDLERS,
    PREFIX,
    flash_redirect,
    page,
    page_lang,
    read_form,
    require_unit,
    require_writer,
    required,
    unit_name,
    visible_units,
)
from feedback.web.security import Principal


class KioskAdmin(Controller):
    path = f"{PREFIX}/kiosks"
    include_in_schema = False
    dependencies = {"principal": Provide(auth.current_user)}
    exception_handlers = EXCEPTION_HANDLERS

    async def _list(self, request: Request, principal: Principal, state: State, *,
                    error: FeedbackError | None = None) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        rows = await state.store.query(
            "SELECT k.id, k.touchpoint, k.name, k.enrolled_at, k.revoked_at, k.last_seen, k.backlog,"
            " k.dead_letters, k.app_version, k.last_sync, k.battery, t.unit"
            " FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint ORDER BY t.unit, k.enrolled_at")
        silent_after = timedelta(seconds=state.settings.kiosk_silent_after)
        now = datetime.now(UTC)
        items = []
        for row in rows:
            if not principal.may_see(row["unit"], snapshot):
                continue
            last = datetime.fromisoformat(row["last_seen"] or row["enrolled_at"])
            touchpoint = snapshot.touchpoints.get(row["touchpoint"])
            items.append({**row, "unit_name": unit_name(snapshot, row["unit"], lang),
                          "touchpoint_name": touchpoint.name if touchpoint else row["touchpoint"],
                          "revoked": row["revoked_at"] is not None,
                          "silent": row["revoked_at"] is None and now - last > silent_after,
                          "last_seen_at": datetime.fromisoformat(row["last_seen"]) if row["last_seen"] else None,
                          "battery_percent": None if row["battery"] is None else round(row["battery"] * 100)})
        visible = set(visible_units(principal, snapshot))
        kiosk_points = sorted(
            ((tp.token, f"{tp.name} — {unit_name(snapshot, tp.unit, lang)}") for tp in snapshot.touchpoints.values()
             if tp.kind == "kiosk" and tp.unit in visible and tp.token not in snapshot.retired),
            key=lambda item: item[1])
        return await page(request, principal, "admin_kiosks.html",
                          {"kiosks": items, "kiosk_points": kiosk_points}, error=error)

    @get("/")
    async def kiosks(self, request: Request, principal: Principal, state: State) -> Response:
        return await self._list(request, principal, state)

    @post("/enroll")
    async def enroll(self, request: Request, principal: Principal, state: State) -> Response:
        values = await read_form(request)
        try:
            require_writer(principal)
            snapshot = await fresh_snapshot(state)
            token = required(values, "touchpoint")
            touchpoint = snapshot.touchpoints.get(token)
            if touchpoint is None:
                raise NotFound(f"touchpoint: no touchpoint {token!r}", "touchpoint")
            require_unit(principal, snapshot, touchpoint.unit)
            if touchpoint.kind != "kiosk":
                raise InvalidInput("touchpoint: not a kiosk touchpoint", "touchpoint")
            code, _expires = await state.store.write(
                lambda conn: kiosks.create_enrollment(conn, token, principal.user))
        except FeedbackError as error:
            return await self._list(request, principal, state, error=error)
        # The code travels in the one-time, HttpOnly flash cookie, never in a URL or a log line.
        return flash_redirect(f"{PREFIX}/kiosks", "Enrollment code for %(name)s: %(code)s (valid 15 minutes).",
                              state, name=touchpoint.name, code=code)

    @post("/{kiosk_id:str}/revoke")
    async def revoke(self, request: Request, principal: Principal, state: State, kiosk_id: str) -> Response:
        snapshot = await fresh_snapshot(state)
        rows = await state.store.query(
            "SELECT t.unit FROM kiosks k JOIN touchpoints t ON t.token = k.touchpoint WHERE k.id = ?", (kiosk_id,))
        if not rows:
            raise NotFound(f"id: no kiosk {kiosk_id!r}", "id")
        require_unit(principal, snapshot, rows[0]["unit"])
        require_writer(principal)
        await state.store.write(lambda conn: kiosks.revoke(conn, kiosk_id))
        forget_device_cache()
        return flash_redirect(f"{PREFIX}/kiosks", "Kiosk %(id)s revoked.", state, id=kiosk_id)


_encoder = msgspec.json.Encoder()


def template_or_404(slug: str) -> Any:
    templates = surveys.survey_templates()
    if slug not in templates:
        raise NotFound(f"template: no survey template {slug!r}", "template")
    return templates[slug]


class SurveyAdmin(Controller):
    """A new survey version is drafted from a registered template, previewed in each language, then
    published; a published version never changes (responses pin it)."""

    path = f"{PREFIX}/surveys"
    include_in_schema = False
    dependencies = {"principal": Provide(auth.current_user)}
    exception_handlers = EXCEPTION_HANDLERS

    async def _list(self, request: Request, principal: Principal, state: State, *,
                    error: FeedbackError | None = None) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        versions: dict[str, list[SurveyVersion]] = {}
        for (slug, _number), version in sorted(snapshot.versions.items()):
            versions.setdefault(slug, []).append(version)
        published = [{"slug": slug, "title": text_in(items[-1].definition.title, lang, slug),
                      "versions": [{"version": v.version, "published_at": v.published_at,
                                    "questions": len(v.definition.questions),
                                    "languages": v.definition.languages} for v in reversed(items)]}
                     for slug, items in versions.items()]
        templates = []
        for slug, template in sorted(surveys.survey_templates().items()):
            current = snapshot.current.get(slug)
            same = current is not None and _encoder.encode(current.definition) == _encoder.encode(
                surveys.decode_definition(_encoder.encode(template)))
            templates.append({"slug": slug, "title": text_in(template.title, lang, slug),
                              "languages": [(code, ENDONYMS.get(code, code)) for code in template.languages],
                              "current": current.version if current else None, "same": same,
                              "next": (current.version + 1) if current else 1})
        return await page(request, principal, "admin_surveys.html",
                          {"published": published, "templates": templates}, error=error)

    @get("/")
    async def surveys(self, request: Request, principal: Principal, state: State) -> Response:
        return await self._list(request, principal, state)

    @get("/drafts/{slug:str}")
    async def draft(self, request: Request, principal: Principal, state: State, slug: str) -> Response:
        template = template_or_404(slug)
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        current = snapshot.current.get(slug)
        questions = [{"key": q.key, "kind": type(q).__name__.removesuffix("Question").lower(),
                      "indicator": getattr(q, "indicator", None), "required": q.required,
                      "text": text_in(q.text, lang)} for q in template.questions]
        return await page(request, principal, "admin_survey_draft.html", {
            "slug": slug, "title": text_in(template.title, lang, slug), "questions": questions,
            "survey_langs": [(code, ENDONYMS.get(code, code)) for code in template.languages],
            "current": current.version if current else None, "next": (current.version + 1) if current else 1})

    @get("/drafts/{slug:str}/preview", media_type=MediaType.HTML)
    async def preview(self, request: Request, principal: Principal, state: State, slug: str) -> Response:
        """The citizen page exactly as a touchpoint would show it, in one language, storing nothing."""
        template = surveys.decode_definition(_encoder.encode(template_or_404(slug)))
        snapshot = await fresh_snapshot(state)
        units = visible_units(principal, snapshot)
        if not units:
            raise NotFound("unit: no unit to preview in", "unit")
        asked = request.query_params.get("lang")
        lang = asked if asked in template.languages else template.languages[0]
        current = snapshot.current.get(slug)
        version = SurveyVersion(slug=slug, version=(current.version + 1) if current else 1, definition=template,
                                published_at="")
        touchpoint = Touchpoint(token="preview", name="preview", unit=units[0], lang=lang, survey=slug)
        path = f"{PREFIX}/surveys/drafts/{slug}/preview"
        html = survey_page.render_survey(snapshot, touchpoint, version, lang, path, has_case=False)
        return survey_page.html(survey_page.fill(html, None))

    @post("/drafts/{slug:str}/preview")
    async def preview_submit(self, slug: str) -> Response:
        # A preview's form goes nowhere: back to the draft, nothing stored.
        return Redirect(f"{PREFIX}/surveys/drafts/{slug}", status_code=303)

    @post("/drafts/{slug:str}/publish")
    async def publish(self, request: Request, principal: Principal, state: State, slug: str) -> Response:
        await read_form(request)
        # Surveys are shared by every unit: only an installation-wide admin publishes one.
        require_writer(principal)
        if principal.role != "admin" or principal.unit is not None:
            raise Forbidden("role: only an installation-wide admin publishes surveys", "role")
        template = template_or_404(slug)
        version = await state.store.write(lambda conn: surveys.publish(conn, template))
        state.catalog.invalidate()
        survey_page.page_cache.pages.clear()
        return flash_redirect(f"{PREFIX}/surveys", "Survey %(slug)s version %(version)s published.", state,
                              slug=slug, version=str(version))


ROUTES: list = [KioskAdmin, SurveyAdmin]
