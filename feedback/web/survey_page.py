"""The citizen survey page: `GET /s/{token}` renders it, `POST /s/{token}` submits it (JavaScript optional).

A scan must not render a template from scratch: each page variant (touchpoint × language × survey
version × with/without a case) is rendered once and cached with placeholders; a request only swaps
in its own form id (generated per render, so a double tap or a resubmit stores one response) and
its escaped case reference.

The form id is a signed UUID v7: its first 48 bits are the render time, its last 32 an HMAC with the
server secret. So a form opened while its touchpoint was live is still taken after the touchpoint is
retired, and only a form this server handed out can claim that.
"""

import hmac
import re
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.params import FromPath
from litestar.types import ASGIApp, Receive, Scope, Send
from markupsafe import Markup, escape

from feedback import __version__
from feedback.calendars import working_days_between
from feedback.case_links import MAX_SIG_LENGTH, case_sig_valid
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import InvalidInput, StorageUnavailable
from feedback.i18n import CATALOGUE, ENDONYMS, HTML_LANG, counter_label, gettext_for, negotiate, text_in
from feedback.ingest import DEFAULT_POLICY, Item, Policy, ingest, new_response_id_bytes
from feedback.models import (
    LANGUAGES,
    ChoiceQuestion,
    ContactQuestion,
    RatingQuestion,
    Submission,
    SurveyVersion,
    TextQuestion,
    Touchpoint,
    is_suspect,
)
from feedback.store import actions as action_store
from feedback.web.api import fresh_snapshot
from feedback.web.client_address import forwarded_https
from feedback.web.scale_layout import scale_fit

TEMPLATES = Path(__file__).parent / "templates"
FORM_ID = "__FORM_ID__"
CASE_REF = "__CASE_REF__"
CASE_QUERY = "__CASE_QUERY__"
CASE_SIG = "__CASE_SIG__"
MAX_FORM_BODY = 64 * 1024
MAX_CASE_REF = 128
# Bytes of a form id that carry its signature: the low 32 bits of the UUID's random part. Enough,
# as each guess costs a rate-limited request and a forged stamp gains no more than `submitted_at`
# already allows; the 42 random bits left keep ids rendered in the same millisecond apart.
FORM_MAC_BYTES = 4
# Face per common level 1..5, so a 3-level scale (Vietnam) shows the faces its levels mean. Inline
# SVG rather than emoji: cheap phones lack some emoji glyphs. (fill colour, mouth path)
_FACE_PARTS = {
    1: ("#d84a3a", "M12 29 Q20 21 28 29"),
    2: ("#ef8a3a", "M13 28 Q20 24 27 28"),
    3: ("#f2c230", "M13 26 L27 26"),
    4: ("#8cc152", "M13 24 Q20 29 27 24"),
    5: ("#3ca35a", "M11 23 Q20 33 29 23"),
}
FACES = {
    level: Markup(
        '<svg viewBox="0 0 40 40" width="44" height="44" aria-hidden="true" focusable="false">'
        f'<circle cx="20" cy="20" r="18" fill="{fill}" stroke="#1a1a1a" stroke-width="1.5"/>'
        '<circle cx="14" cy="16" r="2.4" fill="#1a1a1a"/><circle cx="26" cy="16" r="2.4" fill="#1a1a1a"/>'
        f'<path d="{mouth}" fill="none" stroke="#1a1a1a" stroke-width="2.6" stroke-linecap="round"/></svg>'
    )
    for level, (fill, mouth) in _FACE_PARTS.items()
}
REPEAT_COOKIE = "fb_rated"

# Autoescape on everything: comments and names are always rendered escaped.
jinja = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), auto_reload=False)


# The per-request values of a cached page; CASE_* stand for nothing in a page without a case.
PLACEHOLDER = re.compile(f"({FORM_ID}|{CASE_REF}|{CASE_QUERY}|{CASE_SIG})")
FORM_ID_LENGTH = 36
PAGE_HEADERS = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"private, no-cache")]


class PageView:
    """One view of a cached page, as a plain ASGI app that the route hands back as it is: no response
    object and no header handling per scan (the app's security headers are still added on the way out)."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class CachedPage:
    """A rendered page variant, cut at its placeholders and encoded once, with what it was rendered from.

    A view joins the pieces around its own form id (and case): no template and no search through the
    page per scan. Without a case only the form id varies, and it is always 36 characters, so even the
    headers are made once."""

    __slots__ = ("headers", "pieces", "snapshot", "source")

    def __init__(self, html: str, source: tuple, has_case: bool) -> None:
        self.source = source  # what the page shows: touchpoint, unit, service, survey version
        # The catalog it was last found current in; weakly, so that no old catalog outlives its reload.
        self.snapshot: weakref.ref[Snapshot] | None = None
        pieces: list[bytes | str] = []
        literal = ""
        for index, part in enumerate(PLACEHOLDER.split(html)):
            if index % 2 == 0:
                literal += part
            elif has_case or part == FORM_ID:
                pieces += [literal.encode(), part]
                literal = ""
        pieces.append(literal.encode())
        self.pieces = pieces
        self.headers: list[tuple[bytes, bytes]] | None = None
        if not has_case:
            length = sum(len(piece) if isinstance(piece, bytes) else FORM_ID_LENGTH for piece in pieces)
            self.headers = [*PAGE_HEADERS, (b"content-length", str(length).encode())]

    def view(self, form_id: str, case_ref: str | None = None, case_sig: str | None = None) -> PageView:
        values = {FORM_ID: form_id.encode()}
        if case_ref:
            values.update((key, text.encode()) for key, text in case_texts(case_ref, case_sig).items())
        body = b"".join(values[piece] if isinstance(piece, str) else piece for piece in self.pieces)
        headers = self.headers if self.headers and len(values[FORM_ID]) == FORM_ID_LENGTH else None
        return PageView(headers or [*PAGE_HEADERS, (b"content-length", str(len(body)).encode())], body)


class PageCache:
    """A small LRU of rendered page variants."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self.pages: OrderedDict[tuple, CachedPage] = OrderedDict()

    def get(self, key: tuple) -> CachedPage | None:
        page = self.pages.get(key)
        if page is not None:
            self.pages.move_to_end(key)
        return page

    def put(self, key: tuple, page: CachedPage) -> None:
        self.pages[key] = page
        if len(self.pages) > self.size:
            self.pages.popitem(last=False)


def page_cache(store: Store) -> PageCache:
    """This app's rendered pages (another app in the process may have another survey under the same version)."""
    return store.local("survey_pages", PageCache)


def choose_language(request: Request, touchpoint: Touchpoint, version: SurveyVersion) -> str:
    """?lang= first, then the touchpoint's language, then Accept-Language, then the survey's first."""
    available = version.definition.languages
    asked = request.query_params.get("lang")
    if asked in available:
        return asked
    if touchpoint.lang in available:
        return touchpoint.lang
    return negotiate(request.headers.get("accept-language"), available) or available[0]


def rating_view(question: RatingQuestion, lang: str) -> list[dict[str, Any]]:
    labels = (question.labels or {}).get(lang) or (question.labels or {}).get("en") or []
    options = []
    for value in range(1, question.scale + 1):
        level = question.level_of(value)
        if question.style == "stars":
            symbol = "★" * value if question.scale <= 5 else str(value)
        elif question.style == "numbers":
            symbol = str(value)
        elif question.style == "thumbs" and question.scale == 2:
            symbol = FACES[1] if value == 1 else FACES[5]
        else:
            symbol = FACES[level]
        label = labels[value - 1] if len(labels) >= value else str(value)
        options.append({"value": value, "level": level, "symbol": symbol, "label": label})
    return options


def question_views(version: SurveyVersion, lang: str) -> list[dict[str, Any]]:
    views = []
    for question in version.definition.questions:
        view: dict[str, Any] = {
            "key": question.key,
            "text": text_in(question.text, lang),
            "required": question.required,
            "show_if": question.show_if,
        }
        if isinstance(question, RatingQuestion):
            options = rating_view(question, lang)
            fit = scale_fit(question.style, question.scale, [option["label"] for option in options])
            view.update(kind="rating", scale=question.scale, style=question.style, options=options, fit=fit)
        elif isinstance(question, ChoiceQuestion):
            view.update(
                kind="choice",
                multiple=question.multiple,
                options=[{"key": o.key, "text": text_in(o.text, lang)} for o in question.options],
            )
        elif isinstance(question, TextQuestion):
            view.update(kind="text", max_length=question.max_length)
        elif isinstance(question, ContactQuestion):
            view.update(kind="contact", max_length=question.max_length, consent=text_in(question.consent_text, lang))
        else:
            continue  # a plugin's kind has no page widget: it is answered through the API
        views.append(view)
    return views


def base_context(
    snapshot: Snapshot, touchpoint: Touchpoint, lang: str, languages: list[str], path: str
) -> dict[str, Any]:
    return {
        "_": gettext_for(lang),
        "lang": lang,
        "html_lang": HTML_LANG.get(lang, lang),
        "asset_version": __version__,
        "switch_langs": [(code, ENDONYMS.get(code, code)) for code in languages],
        "base_path": path,
        "unit_name": snapshot.unit_name(touchpoint.unit, lang),
        "service_name": snapshot.service_name(touchpoint.service, lang) if touchpoint.service else None,
        "counter": counter_label(touchpoint.counter, lang),
    }


def render_survey(
    snapshot: Snapshot,
    touchpoint: Touchpoint,
    version: SurveyVersion,
    lang: str,
    path: str,
    *,
    has_case: bool,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    error_key: str | None = None,
) -> str:
    survey = version.definition
    context = base_context(snapshot, touchpoint, lang, survey.languages, path)
    context.update(
        title=text_in(survey.title, lang),
        questions=question_views(version, lang),
        form_id=FORM_ID,
        has_case=has_case,
        case_ref=CASE_REF,
        case_sig=CASE_SIG,
        case_query=CASE_QUERY,
        values=values or {},
        error=error,
        error_key=error_key,
    )
    return jinja.get_template("survey.html").render(context)


def cached_page(
    cache: PageCache,
    snapshot: Snapshot,
    touchpoint: Touchpoint,
    version: SurveyVersion,
    lang: str,
    token: str,
    has_case: bool,
) -> CachedPage:
    """The page variant, rendered when first asked for or when what it shows has changed. The catalog is
    reloaded every few seconds, so a page is checked again (not rendered again) once per reload."""
    key = (token, lang, has_case)
    page = cache.get(key)
    if page is not None and page.snapshot is not None and page.snapshot() is snapshot:
        return page
    unit = snapshot.units[touchpoint.unit]
    source = (touchpoint, unit, snapshot.services.get(touchpoint.service or ""), version.slug, version.version)
    if page is None or page.source != source:
        html = render_survey(snapshot, touchpoint, version, lang, f"/s/{token}", has_case=has_case)
        page = CachedPage(html, source, has_case)
        cache.put(key, page)
    page.snapshot = weakref.ref(snapshot)
    return page


@cache
def _form_hmac(secret: str) -> hmac.HMAC:
    """The keyed hash with its prefix already fed in: a form id only copies it (a page view makes one)."""
    return hmac.new(secret.encode(), b"survey-form:", "sha256")


def form_mac(head: bytes, secret: str) -> bytes:
    mac = _form_hmac(secret).copy()
    mac.update(head)
    return mac.digest()[:FORM_MAC_BYTES]


def new_form_id(secret: str) -> str:
    """A per-render form id (the response id it will be stored under) that says when the server rendered it.

    Built straight from bytes: every page view makes one, so it stays a few microseconds."""
    head = new_response_id_bytes()[:-FORM_MAC_BYTES]  # v7: 48-bit milliseconds, version, variant, random
    text = (head + form_mac(head, secret)).hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def read_form_id(value: str, secret: str) -> tuple[str | None, datetime | None]:
    """(response id, render time) of a posted form id. The render time only for an id this server signed;
    None for a page from before signed ids, or a made-up id (still taken, without a render time)."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None, None
    head, mac = parsed.bytes[:-FORM_MAC_BYTES], parsed.bytes[-FORM_MAC_BYTES:]
    if parsed.version != 7 or not hmac.compare_digest(mac, form_mac(head, secret)):
        return str(parsed), None
    return str(parsed), datetime.fromtimestamp(int.from_bytes(head[:6], "big") / 1000, UTC)


def case_texts(case_ref: str, case_sig: str | None) -> dict[str, str]:
    """What stands for the case placeholders: the reference escaped, and the query that carries it (and its
    signature, which travels on and is checked when the form is posted) to the language links."""
    case_query = f"&amp;case={quote(case_ref, safe='')}"
    if case_sig:
        case_query += f"&amp;sig={quote(case_sig, safe='')}"
    return {CASE_QUERY: case_query, CASE_REF: str(escape(case_ref)), CASE_SIG: str(escape(case_sig or ""))}


def fill(page: str, case_ref: str | None, form_id: str | None = None, case_sig: str | None = None) -> str:
    """Swap the per-request values into a rendered page."""
    values = {FORM_ID: form_id or str(uuid.uuid4()), CASE_QUERY: ""}
    if case_ref:
        values.update(case_texts(case_ref, case_sig))
    return PLACEHOLDER.sub(lambda match: values.get(match[0], match[0]), page)


def case_signature(value: str | None) -> str | None:
    """A `sig` as given, or None when absent or too long to be one of ours."""
    return value if value and len(value) <= MAX_SIG_LENGTH else None


def html(
    content: str, status: int = 200, cookies: list[Cookie] | None = None, cache_control: str = "no-store"
) -> Response[str]:
    return Response(
        content,
        status_code=status,
        media_type=MediaType.HTML,
        cookies=cookies or [],
        headers={"Cache-Control": cache_control},
    )


def message_page(lang: str, heading: str, message: str, status: int) -> Response[str]:
    context = {
        "_": gettext_for(lang),
        "lang": lang,
        "html_lang": HTML_LANG.get(lang, lang),
        "asset_version": __version__,
        "switch_langs": [],
        "heading": heading,
        "message": message,
    }
    return html(jinja.get_template("message.html").render(context), status)


def not_found(request: Request) -> Response[str]:
    lang = request.query_params.get("lang") or negotiate(request.headers.get("accept-language")) or "en"
    _ = gettext_for(lang)
    return message_page(
        lang,
        _("Page not found"),
        _("This survey page does not exist. Check the code on the poster and try again."),
        404,
    )


def too_many(request: Request) -> Response[str]:
    lang = request.query_params.get("lang") or negotiate(request.headers.get("accept-language")) or "en"
    _ = gettext_for(lang)
    return message_page(
        lang,
        _("Please check your answers."),
        _("Too many ratings from this connection. Please try again in a minute."),
        429,
    )


def not_saved(lang: str, retry_after: int) -> Response[str]:
    """The database could not take the answer (a full disk): nothing was stored, and the same form sent
    again (its form id unchanged) is stored once it recovers."""
    _ = gettext_for(lang)
    page = message_page(
        lang,
        _("Your answer was not saved"),
        _("We could not save your answer just now. Please go back and send it again in a minute."),
        503,
    )
    page.headers["Retry-After"] = str(retry_after)
    return page


def live_alternatives(snapshot: Snapshot, touchpoint: Touchpoint) -> list[Touchpoint]:
    """Where to rate instead of a retired touchpoint: the live ones of its unit (same counter first, QR
    codes before kiosks), else those of the nearest unit above that has any."""
    for code in snapshot.ancestors(touchpoint.unit):
        live = [tp for tp in snapshot.touchpoints.values() if tp.unit == code and tp.token not in snapshot.retired]
        if live:
            return sorted(
                live, key=lambda tp: (tp.counter != touchpoint.counter or not tp.counter, tp.kind != "qr", tp.name)
            )
    return []


def retired_page(request: Request, snapshot: Snapshot, touchpoint: Touchpoint, token: str) -> Response[str]:
    """A printed code whose touchpoint was retired: say so politely and point to the current ones."""
    asked = request.query_params.get("lang")
    lang = (
        asked
        if asked in LANGUAGES
        else touchpoint.lang
        if touchpoint.lang in LANGUAGES
        else negotiate(request.headers.get("accept-language")) or "en"
    )
    context = base_context(snapshot, touchpoint, lang, list(LANGUAGES), f"/s/{token}")
    context["alternatives"] = [
        {
            "href": f"/s/{quote(tp.token, safe='')}?lang={lang}",
            "name": tp.name,
            "counter": counter_label(tp.counter, lang),
            "unit_name": snapshot.unit_name(tp.unit, lang),
        }
        for tp in live_alternatives(snapshot, touchpoint)
    ]
    # 410: the code is gone for good, and says so to crawlers and link checkers too.
    return html(jinja.get_template("retired.html").render(context), 410)


def form_answers(version: SurveyVersion, form: dict[str, list[str]]) -> dict[str, Any]:
    """Form fields `q.<key>` → answers as the API takes them. Contact only with its consent box ticked."""
    answers: dict[str, Any] = {}
    consent = form.get("contact_consent", [""])[0] == "1"
    for question in version.definition.questions:
        values = [v for v in form.get(f"q.{question.key}", []) if v.strip()]
        if not values:
            continue
        if isinstance(question, RatingQuestion):
            raw = values[0]
            answers[question.key] = int(raw) if raw.isdecimal() and len(raw) < 4 else raw
        elif isinstance(question, ChoiceQuestion):
            answers[question.key] = values if question.multiple else values[0]
        elif isinstance(question, ContactQuestion):
            if consent:
                answers[question.key] = values[0]
        else:
            answers[question.key] = values[0]
    return answers


async def survey_at(state: State, token: str) -> tuple[Snapshot, Touchpoint | None, SurveyVersion | None]:
    """The touchpoint a token or short code names, and the survey version in force there."""
    snapshot = await fresh_snapshot(state)
    touchpoint = snapshot.touchpoint(token)
    version = snapshot.current.get(touchpoint.survey) if touchpoint else None
    return snapshot, touchpoint, version


class SurveyPageController(Controller):
    path = "/s"
    include_in_schema = False

    @get("/{token:str}")
    async def page(self, request: Request) -> ASGIApp:
        """The page a scan opens. It takes the request alone (no parameters for Litestar to bind) and answers
        a `PageView`: that binding and a response object would each cost more than the cached page itself."""
        token: str = request.path_params["token"]
        state: State = request.app.state
        snapshot, touchpoint, version = await survey_at(state, token)
        if touchpoint is not None and touchpoint.token in snapshot.retired:
            return retired_page(request, snapshot, touchpoint, token)
        if touchpoint is None or version is None:
            return not_found(request)
        lang = choose_language(request, touchpoint, version)
        case_ref = (request.query_params.get("case") or "")[:MAX_CASE_REF] or None
        case_sig = case_signature(request.query_params.get("sig"))
        page = cached_page(
            page_cache(state.store), snapshot, touchpoint, version, lang, token, has_case=case_ref is not None
        )
        # Not "no-store" (PAGE_HEADERS): going back to the form must show the same form (and form id), so
        # that sending it again is recognised as the same response rather than stored twice.
        return page.view(new_form_id(state.settings.secret), case_ref, case_sig)

    @post("/{token:str}", request_max_body_size=MAX_FORM_BODY, status_code=200)
    async def submit(self, token: FromPath[str], request: Request, state: State) -> Response[str]:
        return await take_form(request, state, token)


@dataclass(frozen=True)
class FormOrigin:
    """A survey form that is not a touchpoint's own page (an SMS invitation's, `/i/<code>`): where it
    posts, the one response id it stores under whatever the page posted, its case (verified: the server
    handed it out), its channel, and the ingest policy of its answers."""

    path: str
    response_id: str
    case_ref: str | None
    channel: str
    policy: Policy


async def take_form(request: Request, state: State, token: str, origin: FormOrigin | None = None) -> Response[str]:
    """A posted survey form of the touchpoint `token`: stored through the one ingest path and answered with
    the thanks page, or the form again with what to correct. `origin`: a form another route rendered."""
    snapshot, touchpoint, version = await survey_at(state, token)
    if touchpoint is None:
        return not_found(request)
    retired_at = snapshot.retired.get(touchpoint.token)
    if version is None:
        return retired_page(request, snapshot, touchpoint, token) if retired_at else not_found(request)
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
    first = {key: values[0] for key, values in form.items()}
    form_id, rendered_at = read_form_id(first.get("form_id", ""), state.settings.secret)
    if origin is not None:
        form_id, rendered_at = origin.response_id, None  # one response per origin, whatever the page posted
    if retired_at is not None and (rendered_at is None or rendered_at >= retired_at):
        # Nothing new is stored for a retired code, unless this server handed out the form before.
        return retired_page(request, snapshot, touchpoint, token)
    lang = first.get("lang") if first.get("lang") in version.definition.languages else None
    lang = lang or choose_language(request, touchpoint, version)
    _ = gettext_for(lang)
    case_ref = (first.get("case_ref") or request.query_params.get("case") or "")[:MAX_CASE_REF] or None
    case_sig = case_signature(first.get("case_sig") or request.query_params.get("sig"))
    # A wrong or missing signature keeps the case reference, unverified: it can claim no case.
    case_verified = case_sig_valid(state.settings.secret, touchpoint.token, case_ref, case_sig)
    if origin is not None:  # its own case, whatever the page posted
        case_ref, case_sig, case_verified = origin.case_ref, None, origin.case_ref is not None
    answers = form_answers(version, form)
    flags = []
    if first.get("website"):
        flags.append("honeypot")  # a field people never see: only bots fill it
    if request.cookies.get(f"{REPEAT_COOKIE}_{touchpoint.token}"):
        flags.append("repeat_device")
    # form_id None: an old or tampered page, still accepted, with a new id.
    submission = Submission(
        touchpoint=touchpoint.token,
        answers=answers,
        id=form_id,
        lang=lang,
        case_ref=case_ref,
        channel=origin.channel if origin is not None else "qr",
    )
    # A form rendered while the touchpoint was live is still taken after its retirement (`opened_at`).
    item = Item(submission, flags=tuple(flags), case_verified=case_verified, opened_at=rendered_at)
    try:
        [outcome] = await ingest(
            [item],
            state.store,
            snapshot,
            policy=origin.policy if origin is not None else DEFAULT_POLICY,
            default_action_days=state.settings.default_action_days,
        )
    except StorageUnavailable as error:
        return not_saved(lang, error.retry_after)
    if outcome.status == "gone":
        return retired_page(request, snapshot, touchpoint, token)
    if outcome.status == "rejected" and isinstance(outcome.error, InvalidInput):
        key = (outcome.error.field or "").removeprefix("answers.")
        question = version.definition.question(key)
        if question is not None:
            template = (
                "Please answer: %(question)s"
                if "required" in outcome.error.message
                else "This answer is not valid: %(question)s"
            )
            message = _(template) % {"question": text_in(question.text, lang)}
        else:
            message = _("Please check your answers.")
        values = {k: v for k, v in answers.items() if not isinstance(version.definition.question(k), ContactQuestion)}
        page = render_survey(
            snapshot,
            touchpoint,
            version,
            lang,
            origin.path if origin is not None else f"/s/{token}",
            has_case=case_ref is not None,
            values=values,
            error=message,
            error_key=key,
        )
        # The same form id again: once corrected, the form is still the one rendered back then.
        return html(fill(page, case_ref, form_id, case_sig), 400)
    if outcome.status == "conflict":
        # The same form was sent again with other answers: the first stays, as stored.
        return thanks_page(snapshot, touchpoint, lang, token, receipt=None, already=True, status=409)
    if outcome.error is not None:
        raise outcome.error
    result = outcome.result
    cookies = []
    window = state.settings.repeat_window
    if window > 0:
        # Secure when served over https: the public URL says so, or a trusted proxy does.
        secure = (state.settings.public_url or "").startswith("https://") or forwarded_https(
            request.scope, state.settings
        )
        cookies.append(
            Cookie(
                key=f"{REPEAT_COOKIE}_{touchpoint.token}",
                value="1",
                max_age=int(window),
                path="/s",
                httponly=True,
                samesite="lax",
                secure=secure,
            )
        )
    contact_given = any(isinstance(version.definition.question(k), ContactQuestion) for k in answers)
    # What this response really opened: told by the write, or for a resent form read back.
    opened = list(result.actions) if result.created else await opened_by(state.store, result.id)
    response = thanks_page(
        snapshot,
        touchpoint,
        lang,
        token,
        receipt=result.receipt,
        promises=promised_actions(opened, snapshot, lang),
        contact=contact_given,
        counted=not is_suspect(list(result.flags)),
        already=not result.created,
        status=201 if result.created else 200,
    )
    response.cookies.extend(cookies)
    return response


async def opened_by(store: Store, response_id: str) -> list[dict[str, Any]]:
    """The actions a stored response opened (for a form sent again: the page says what happened the first time)."""
    return await store.read(lambda conn: action_store.opened_for(conn, [response_id]))


def citizen_day(day: date, lang: str) -> str:
    """A day as the citizen reads it in their language ("12 March 2026", "12 марта 2026 г.")."""
    return format_date(day, "long", locale=CATALOGUE.get(lang, "en"))


def promised_actions(opened: list[dict[str, Any]], snapshot: Snapshot, lang: str) -> list[str]:
    """What the thank-you page may promise: for each action the response opened, that it was opened
    and when the unit reports back (its deadline, in working days on the unit's calendar). Nothing
    for a response that opened none."""
    _ = gettext_for(lang)
    said = []
    for action in opened:
        unit = snapshot.units.get(action["unit"])
        if unit is None or not action.get("due"):
            continue
        opened_day = datetime.fromisoformat(action["opened_at"]).astimezone(ZoneInfo(unit.tz)).date()
        due = date.fromisoformat(action["due"])
        days = working_days_between(opened_day, due, unit.country)
        values = {"days": days, "date": citizen_day(due, lang)}
        if days > 1:
            message = _(
                "A corrective action was opened for your rating. "
                "The unit will report back within %(days)s working days, by %(date)s."
            )
        elif days == 1:
            message = _(
                "A corrective action was opened for your rating. "
                "The unit will report back within one working day, by %(date)s."
            )
        else:
            message = _("A corrective action was opened for your rating. The unit will report back by %(date)s.")
        said.append(message % values)
    return said


def thanks_page(
    snapshot: Snapshot,
    touchpoint: Touchpoint,
    lang: str,
    token: str,
    *,
    receipt: str | None,
    already: bool,
    status: int,
    promises: list[str] | None = None,
    contact: bool = False,
    counted: bool = False,
) -> Response[str]:
    """Says only what happened to this response: its receipt, the actions it opened (no promise when
    none), and that it counts in the unit's results when it does (a flagged one does not)."""
    context = base_context(snapshot, touchpoint, lang, [], f"/s/{token}")
    context.update(
        receipt=receipt or "—",
        receipt_href=f"/r/{quote(receipt, safe='')}?lang={lang}" if receipt else None,
        promises=promises or [],
        contact=contact,
        counted=counted,
        already=already,
    )
    return html(jinja.get_template("thanks.html").render(context), status)
