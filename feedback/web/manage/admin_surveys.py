"""Admin pages for surveys: published versions, templates, and editable drafts of the next version.

A draft starts from a registered template or from the version in force; the admin edits its texts,
which questions are required, their order, and removes optional ones, previews it in each language
and publishes it as the next immutable version. Keys, kinds, scales and indicators never change in a
draft: responses of every version are compared by them.
"""

from datetime import datetime
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import surveys
from feedback.errors import FeedbackError, Forbidden, InvalidInput, NotFound
from feedback.i18n import ENDONYMS, gettext_for, text_in
from feedback.models import LANGUAGES, SurveyDefinition, SurveyVersion, Touchpoint
from feedback.plugins import PluginManager
from feedback.store import surveys as survey_store
from feedback.surveys import create_draft, publish_draft, save_draft
from feedback.web import survey_page
from feedback.web.access import requires
from feedback.web.api import fresh_snapshot
from feedback.web.manage.admin_common import (
    FLASH_MESSAGES,
    N_,
    PREFIX,
    REASONS,
    AdminController,
    flash_redirect,
    page,
    page_lang,
    read_form,
    require_writer,
    visible_units,
)
from feedback.web.security import Principal

_encoder = msgspec.json.Encoder()
MAX_TEXT = 1000


def template_or_404(slug: str, plugins: PluginManager) -> Any:
    templates = surveys.survey_templates(plugins)
    if slug not in templates:
        raise NotFound(f"template: no survey template {slug!r}", "template")
    return templates[slug]


def require_survey_admin(principal: Principal) -> None:
    """Surveys are shared by every unit: only an installation-wide admin drafts or publishes one."""
    require_writer(principal)
    if principal.role != "admin" or principal.unit is not None:
        raise Forbidden("role: only an installation-wide admin publishes surveys", "role")


# The guard of the survey editor and of publishing.
SURVEY_ADMINS = requires(require_survey_admin)


def kind_of(question: Any) -> str:
    return type(question).__name__.removesuffix("Question").lower()


def preview_response(
    snapshot: Any,
    principal: Principal,
    slug: str,
    definition: SurveyDefinition,
    number: int,
    asked: str | None,
    path: str,
) -> Response:
    """The citizen page exactly as a touchpoint would show it, in one language, storing nothing."""
    units = visible_units(principal, snapshot)
    if not units:
        raise NotFound("unit: no unit to preview in", "unit")
    lang = asked if asked in definition.languages else definition.languages[0]
    version = SurveyVersion(slug=slug, version=number, definition=definition, published_at="")
    touchpoint = Touchpoint(token="preview", name="preview", unit=units[0], lang=lang, survey=slug)
    html = survey_page.render_survey(snapshot, touchpoint, version, lang, path, has_case=False)
    return survey_page.html(survey_page.fill(html, None))


class SurveyAdmin(AdminController):
    """Published versions and templates; a template is previewed as it is, or copied into a draft."""

    path = f"{PREFIX}/surveys"

    async def _list(
        self, request: Request, principal: Principal, state: State, *, error: FeedbackError | None = None
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        versions: dict[str, list[SurveyVersion]] = {}
        for (slug, _number), version in sorted(snapshot.versions.items()):
            versions.setdefault(slug, []).append(version)
        published = [
            {
                "slug": slug,
                "title": text_in(items[-1].definition.title, lang, slug),
                "versions": [
                    {
                        "version": v.version,
                        "published_at": v.published_at,
                        "questions": len(v.definition.questions),
                        "languages": v.definition.languages,
                    }
                    for v in reversed(items)
                ],
            }
            for slug, items in versions.items()
        ]
        templates = []
        for slug, template in sorted(surveys.survey_templates(state.plugins).items()):
            current = snapshot.current.get(slug)
            same = current is not None and _encoder.encode(current.definition) == _encoder.encode(
                surveys.decode_definition(_encoder.encode(template), state.plugins)
            )
            templates.append(
                {
                    "slug": slug,
                    "title": text_in(template.title, lang, slug),
                    "languages": [(code, ENDONYMS.get(code, code)) for code in template.languages],
                    "current": current.version if current else None,
                    "same": same,
                    "next": (current.version + 1) if current else 1,
                }
            )
        drafts = await open_drafts(state, None, lang)
        return await page(
            request,
            principal,
            "admin_surveys.html",
            {"published": published, "templates": templates, "drafts": drafts},
            error=error,
        )

    @get("/")
    async def surveys(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        return await self._list(request, principal, state)

    @get("/drafts/{slug:str}")
    async def draft(
        self, request: Request, principal: NamedDependency[Principal], state: State, slug: FromPath[str]
    ) -> Response:
        template = template_or_404(slug, state.plugins)
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        current = snapshot.current.get(slug)
        questions = [
            {
                "key": q.key,
                "kind": kind_of(q),
                "indicator": getattr(q, "indicator", None),
                "required": q.required,
                "text": text_in(q.text, lang),
            }
            for q in template.questions
        ]
        return await page(
            request,
            principal,
            "admin_survey_draft.html",
            {
                "slug": slug,
                "title": text_in(template.title, lang, slug),
                "questions": questions,
                "survey_langs": [(code, ENDONYMS.get(code, code)) for code in template.languages],
                "current": current.version if current else None,
                "next": (current.version + 1) if current else 1,
                "drafts": await open_drafts(state, slug, lang),
            },
        )

    @get("/drafts/{slug:str}/preview", media_type=MediaType.HTML)
    async def preview(
        self, request: Request, principal: NamedDependency[Principal], state: State, slug: FromPath[str]
    ) -> Response:
        template = surveys.decode_definition(_encoder.encode(template_or_404(slug, state.plugins)), state.plugins)
        snapshot = await fresh_snapshot(state)
        current = snapshot.current.get(slug)
        return preview_response(
            snapshot,
            principal,
            slug,
            template,
            (current.version + 1) if current else 1,
            request.query_params.get("lang"),
            f"{PREFIX}/surveys/drafts/{slug}/preview",
        )

    @post("/drafts/{slug:str}/preview")
    async def preview_submit(self, slug: FromPath[str]) -> Response:
        # A preview's form goes nowhere: back to the draft, nothing stored.
        return Redirect(f"{PREFIX}/surveys/drafts/{slug}", status_code=303)

    @post("/drafts/{slug:str}/publish", guards=[SURVEY_ADMINS])
    async def publish(
        self, request: Request, principal: NamedDependency[Principal], state: State, slug: FromPath[str]
    ) -> Response:
        await read_form(request)
        template = template_or_404(slug, state.plugins)
        version = await state.store.write(lambda conn: surveys.publish(conn, template, state.plugins))
        state.catalog.invalidate()
        survey_page.page_cache(state.store).pages.clear()
        return flash_redirect(
            f"{PREFIX}/surveys",
            "Survey %(slug)s version %(version)s published.",
            state,
            slug=slug,
            version=str(version),
        )

    @post("/drafts/{slug:str}/edit", guards=[SURVEY_ADMINS])
    async def start_draft(
        self, request: Request, principal: NamedDependency[Principal], state: State, slug: FromPath[str]
    ) -> Response:
        """Copy the template, or the version in force (`source=current`), into a new editable draft."""
        values = await read_form(request)
        snapshot = await fresh_snapshot(state)
        current = snapshot.current.get(slug)
        if values.get("source") == "current":
            if current is None:
                raise NotFound(f"survey: no published survey {slug!r}", "survey")
            definition, base = current.definition, current.version
        else:
            template = template_or_404(slug, state.plugins)
            definition, base = surveys.decode_definition(_encoder.encode(template), state.plugins), None
        draft_id = await state.store.write(lambda conn: create_draft(conn, definition, base, principal.user))
        return Redirect(f"{PREFIX}/surveys/edit/{draft_id}", status_code=303)


# --- the draft store (feedback.surveys: create_draft, save_draft, publish_draft, discard_draft) ------------


async def load_draft(state: State, draft_id: int) -> tuple[dict[str, Any], SurveyDefinition]:
    row = await state.store.read(lambda conn: survey_store.draft(conn, draft_id))
    if row is None:
        raise NotFound(f"id: no survey draft {draft_id}", "id")
    try:
        definition = surveys.decode_definition(row["definition"], state.plugins)
    except msgspec.ValidationError as error:
        raise InvalidInput(f"body: the stored draft is not a valid survey ({error})", "body") from None
    return row, definition


async def open_drafts(state: State, slug: str | None, lang: str) -> list[dict[str, Any]]:
    rows = await state.store.read(lambda conn: survey_store.drafts(conn, slug))
    drafts = []
    for row in rows:
        try:
            title = text_in(surveys.decode_definition(row["definition"], state.plugins).title, lang, row["slug"])
        except msgspec.ValidationError:
            title = row["slug"]
        drafts.append({**row, "title": title, "updated_at": datetime.fromisoformat(row["updated_at"])})
    return drafts


# --- editing -----------------------------------------------------------------------------------------


def _texts(old: dict[str, str], values: dict[str, str], prefix: str, languages: list[str]) -> dict[str, str]:
    """The texts of one field from the form: every language the survey lists must have one."""
    texts = {lang: text for lang, text in old.items() if lang not in LANGUAGES}  # other languages stay as they were
    for lang in LANGUAGES:
        name = f"{prefix}.{lang}"
        text = values.get(name, old.get(lang, ""))
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"{name}: longer than {MAX_TEXT} characters", name)
        if text:
            texts[lang] = text
        elif lang in languages:
            raise InvalidInput(f"{name}: must not be empty, the survey is offered in this language", name)
    return texts


def apply_edit(definition: SurveyDefinition, values: dict[str, str], plugins: PluginManager) -> SurveyDefinition:
    """The draft with the form's texts, `required` flags and the one move/remove asked for (`op`).

    Only texts, `required`, order and removal of optional questions change; the result is validated
    by decoding it as the survey Struct."""
    raw = msgspec.to_builtins(definition)
    languages = list(definition.languages)
    raw["title"] = _texts(raw["title"], values, "title", languages)
    keys = [q["key"] for q in raw["questions"]]
    for question in raw["questions"]:
        prefix = f"q.{question['key']}"
        question["text"] = _texts(question["text"], values, f"{prefix}.text", languages)
        if f"{prefix}.shown" in values:  # the form listed it: an unticked box means "not required"
            question["required"] = f"{prefix}.required" in values
        for option in question.get("options") or []:
            option["text"] = _texts(option["text"], values, f"{prefix}.opt.{option['key']}", languages)
    op, _, key = values.get("op", "save").partition(":")
    if op in ("up", "down", "remove"):
        if key not in keys:
            raise NotFound(f"op: no question {key!r}", "op")
        at = keys.index(key)
        questions = raw["questions"]
        if op == "remove":
            question = questions[at]
            if question.get("required") or question.get("primary"):
                raise InvalidInput(f"op: question {key!r} is required; only an optional one is removed", "op")
            if any((q.get("show_if") or {}).get("question") == key for q in questions):
                raise InvalidInput(f"op: another question is shown depending on {key!r}", "op")
            del questions[at]
        else:
            to = at - 1 if op == "up" else at + 1
            if 0 <= to < len(questions):
                questions[at], questions[to] = questions[to], questions[at]
            order = [q["key"] for q in questions]
            for q in questions:  # a conditional question must come after the rating it depends on
                source = (q.get("show_if") or {}).get("question")
                if source in order and order.index(source) > order.index(q["key"]):
                    raise InvalidInput(f"op: {q['key']!r} must stay after {source!r}, which it depends on", "op")
    elif op != "save":
        raise InvalidInput(f"op: unknown action {op!r}", "op")
    try:
        edited = surveys.decode_definition(_encoder.encode(raw), plugins)
    except msgspec.ValidationError as error:
        raise InvalidInput(f"body: not a valid survey ({error})", "body") from None
    if edited.primary_rating() is None and definition.primary_rating() is not None:
        raise InvalidInput("op: the survey needs its primary rating", "op")
    return edited


def field_label(field: str | None, lang: str) -> str | None:
    """A draft form field as a person reads it, in the page language."""
    _ = gettext_for(lang)
    if not field:
        return None
    parts = field.split(".")
    language = ENDONYMS.get(parts[-1], parts[-1])
    if parts[0] == "title" and len(parts) == 2:
        return _("Title in %(language)s") % {"language": language}
    if parts[0] == "q" and len(parts) == 4 and parts[2] == "text":
        return _("Question %(key)s: text in %(language)s") % {"key": parts[1], "language": language}
    if parts[0] == "q" and len(parts) == 5 and parts[2] == "opt":
        return _("Question %(key)s, option %(option)s: text in %(language)s") % {
            "key": parts[1],
            "option": parts[3],
            "language": language,
        }
    if parts[0] == "op":
        return _("Question order and removal")
    return None


def draft_context(row: dict[str, Any], definition: SurveyDefinition, lang: str, current: int | None) -> dict[str, Any]:
    questions = []
    for q in definition.questions:
        questions.append(
            {
                "key": q.key,
                "kind": kind_of(q),
                "indicator": q.indicator,
                "required": q.required,
                "primary": q is definition.primary_rating(),
                "text": q.text,
                "scale": getattr(q, "scale", None),
                "show_if": q.show_if.question if q.show_if else None,
                "options": [{"key": o.key, "text": o.text} for o in getattr(q, "options", None) or []],
            }
        )
    return {
        "draft": row,
        "draft_id": row["id"],
        "slug": definition.slug,
        "title": text_in(definition.title, lang, definition.slug),
        "title_texts": definition.title,
        "questions": questions,
        "text_langs": [(code, ENDONYMS[code]) for code in LANGUAGES],
        "survey_langs": [(code, ENDONYMS.get(code, code)) for code in definition.languages],
        "draft_langs": list(definition.languages),
        "current": current,
        "next": (current or 0) + 1,
        "stale": row["base_version"] is not None and current is not None and current != row["base_version"],
    }


class SurveyDraftAdmin(AdminController):
    """One stored draft: edit, preview, publish, discard. Only an installation-wide admin."""

    path = f"{PREFIX}/surveys/edit"

    async def _edit_page(
        self,
        request: Request,
        principal: Principal,
        state: State,
        draft_id: int,
        *,
        definition: SurveyDefinition | None = None,
        error: FeedbackError | None = None,
    ) -> Response:
        row, stored = await load_draft(state, draft_id)
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        current = snapshot.current.get(row["slug"])
        context = draft_context(row, definition or stored, lang, current.version if current else None)
        if error is not None:
            label = field_label(error.field, lang)
            if label:
                _ = gettext_for(lang)
                reason = next(
                    (text for kind, text in REASONS.items() if isinstance(error, kind)), REASONS[InvalidInput]
                )
                context["error"] = _("%(field)s: %(reason)s") % {"field": label, "reason": _(reason)}
        return await page(request, principal, "admin_survey_edit.html", context, error=error)

    @get("/{draft_id:int}", guards=[SURVEY_ADMINS])
    async def edit(
        self, request: Request, principal: NamedDependency[Principal], state: State, draft_id: FromPath[int]
    ) -> Response:
        return await self._edit_page(request, principal, state, draft_id)

    @post("/{draft_id:int}", guards=[SURVEY_ADMINS])
    async def save(
        self, request: Request, principal: NamedDependency[Principal], state: State, draft_id: FromPath[int]
    ) -> Response:
        values = await read_form(request)
        _row, definition = await load_draft(state, draft_id)
        try:
            edited = apply_edit(definition, values, state.plugins)
        except FeedbackError as error:
            return await self._edit_page(request, principal, state, draft_id, error=error)
        await state.store.write(lambda conn: save_draft(conn, draft_id, edited))
        anchor = values.get("op", "save").partition(":")[2]
        return flash_redirect(
            f"{PREFIX}/surveys/edit/{draft_id}" + (f"#q-{anchor}" if anchor else ""),
            "Draft %(id)s saved.",
            state,
            id=str(draft_id),
        )

    @get("/{draft_id:int}/preview", media_type=MediaType.HTML, guards=[SURVEY_ADMINS])
    async def preview(
        self, request: Request, principal: NamedDependency[Principal], state: State, draft_id: FromPath[int]
    ) -> Response:
        row, definition = await load_draft(state, draft_id)
        snapshot = await fresh_snapshot(state)
        current = snapshot.current.get(row["slug"])
        return preview_response(
            snapshot,
            principal,
            row["slug"],
            definition,
            (current.version + 1) if current else 1,
            request.query_params.get("lang"),
            f"{PREFIX}/surveys/edit/{draft_id}/preview",
        )

    @post("/{draft_id:int}/preview")
    async def preview_submit(self, draft_id: FromPath[int]) -> Response:
        # A preview's form goes nowhere: back to the draft, nothing stored.
        return Redirect(f"{PREFIX}/surveys/edit/{draft_id}", status_code=303)

    @post("/{draft_id:int}/publish", guards=[SURVEY_ADMINS])
    async def publish(
        self, request: Request, principal: NamedDependency[Principal], state: State, draft_id: FromPath[int]
    ) -> Response:
        await read_form(request)
        row, definition = await load_draft(state, draft_id)
        try:
            apply_edit(definition, {}, state.plugins)  # what was stored is checked again, as a save would
        except FeedbackError as error:
            return await self._edit_page(request, principal, state, draft_id, error=error)
        version = await state.store.write(lambda conn: publish_draft(conn, draft_id, definition, state.plugins))
        state.catalog.invalidate()
        survey_page.page_cache(state.store).pages.clear()
        return flash_redirect(
            f"{PREFIX}/surveys",
            "Survey %(slug)s version %(version)s published.",
            state,
            slug=row["slug"],
            version=str(version),
        )

    @post("/{draft_id:int}/discard", guards=[SURVEY_ADMINS])
    async def discard(
        self, request: Request, principal: NamedDependency[Principal], state: State, draft_id: FromPath[int]
    ) -> Response:
        await read_form(request)
        await load_draft(state, draft_id)
        await state.store.write(lambda conn: surveys.discard_draft(conn, draft_id))
        return flash_redirect(f"{PREFIX}/surveys", "Draft %(id)s discarded.", state, id=str(draft_id))


FLASH_MESSAGES.update((N_("Draft %(id)s saved."), N_("Draft %(id)s discarded.")))
ROUTES: list = [SurveyAdmin, SurveyDraftAdmin]
