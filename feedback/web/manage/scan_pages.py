"""Paper forms in the manager app: printing them, uploading scans, and the review queue of scanned pages.

- `/manage/entry/scans`: print forms for a touchpoint of the user's subtree (`/manage/entry/print`, the
  PDF of `GET /api/v1/touchpoints/{token}/paper-forms.pdf`), and upload scans (PDF or images, at most
  `paper_review.MAX_UPLOAD_BYTES`): the pages read with confidence are stored, the others queued, and
  the page says what became of each;
- `/manage/entry/review`: the pages of the user's subtree waiting for a person;
- `/manage/entry/review/{id}`: one page's image beside the answers read from it (the uncertain ones
  marked): the person corrects what needs it and stores the page, types the serial when the QR code
  could not be read (the page is then read again with that form's layout), or discards the page with a
  reason. The work is `feedback.paper_review`'s.

For admins and managers; every form posts its CSRF token.
"""

import asyncio
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import paper_entry, paper_forms, paper_review
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError, InvalidInput
from feedback.i18n import ENDONYMS, text_in
from feedback.models import LANGUAGES, ChoiceQuestion, ContactQuestion, RatingQuestion, TextQuestion
from feedback.paper_forms import MAX_FORMS_PER_PRINT
from feedback.web.access import requires_role
from feedback.web.api import fresh_snapshot
from feedback.web.manage import auth, layout
from feedback.web.qr_routes import filename_part, pdf_response
from feedback.web.security import Principal

SCANS_PATH = "/manage/entry/scans"
REVIEW_PATH = "/manage/entry/review"
PRINT_PATH = "/manage/entry/print"
UPLOAD_MB = paper_review.MAX_UPLOAD_BYTES // (1024 * 1024)


def N_(message: str) -> str:
    """Marks a message for translation; it is translated where it is shown."""
    return message


#: Why a page waits for a person, by `feedback.paper_scan`'s reason codes.
REASONS = {
    "no_marks": N_("The four corner marks were not found."),
    "no_qr": N_("The QR code could not be read: type the serial printed under the title."),
    "unknown_serial": N_("No form with this serial was printed here."),
    "qr_mismatch": N_("The QR code names another survey version than the form's record."),
    "no_survey": N_("The form's survey version has no printed form here."),
    "misaligned": N_("The boxes were not found where they should be."),
    "blank": N_("Nothing is marked on the page."),
    "rejected": N_("The answers read were refused when stored."),
    "two_ticks": N_("More than one box is ticked."),
    "faint": N_("A faint mark."),
    "unclear": N_("A mark between a tick and a filled box."),
    "only_cancelled": N_("Only filled-out (cancelled) boxes, none ticked."),
    "date": N_("The date of service is missing, unclear or outside the form's life."),
    "handwriting": N_("Handwritten text: type it in."),
    "contact": N_("A contact or the consent box is marked: type the contact in."),
    "required": N_("A required question is not answered."),
}
STATUS_NAMES = {
    "waiting": N_("Waiting"),
    "stored": N_("Stored"),
    "conflict": N_("Kept as a second entry"),
    "discarded": N_("Discarded"),
}
DATE_LABEL = N_("Date of service")
DATE_KEY = "date"  # the date among a reading's answers (feedback.paper_scan.DATE_KEY)


#: What a refused entry, review step or print says, by the field the error names.
FIELD_ERRORS = {
    "serial": N_("Check the serial: it is not one of a form printed for your units."),
    "occurred_on": N_("The date of service must be a day from the form's print day to today."),
    "consent": N_("A contact is kept only when the consent box is ticked."),
    "contact": N_("The contact is too long."),
    "channel": N_("The answers could not be stored."),
    "reason": N_("Give the reason for discarding the page."),
    "review": N_("This page was decided meanwhile, or it is not one of your units'."),
    "touchpoint": N_("Choose a touchpoint of your units whose survey fits on one page."),
    "lang": N_("Choose one of the survey's languages."),
    "count": N_("The number of forms must be a whole number from 1 to %(max)s."),
    "paper": N_("This survey does not fit on one page of that paper: print it on A4."),
    "unit": N_("Choose a touchpoint of your units."),
}
ANSWER_ERROR = N_("Question %(number)s: %(problem)s")
REQUIRED_ANSWER = N_("an answer is required.")
INVALID_ANSWER = N_("the answer is not one the question takes.")


def error_text(error: FeedbackError, numbers: dict[str, int], _) -> str:
    """A refusal in the reader's language, naming the question where there is one."""
    field = error.field or ""
    if field.startswith("answers."):
        key = field.split(".", 1)[1]
        problem = REQUIRED_ANSWER if "required" in error.message else INVALID_ANSWER
        return _(ANSWER_ERROR) % {"number": numbers.get(key, key), "problem": _(problem)}
    if field in FIELD_ERRORS:
        return _(FIELD_ERRORS[field]) % {"max": MAX_FORMS_PER_PRINT}
    return f"{_(FIELD_ERRORS['channel'])} ({error.message})"


def reason_texts(reasons: list[str], numbers: dict[str, int], _) -> list[str]:
    """Each reason as a sentence, with the question it concerns (its number, else its key)."""
    texts = []
    for reason in reasons:
        code, _sep, key = reason.partition(":")
        text = _(REASONS.get(code, code))
        if key == DATE_KEY:
            text = f"{_(DATE_LABEL)}: {text}"
        elif key:
            text = _(ANSWER_ERROR) % {"number": numbers.get(key, key), "problem": text}
        texts.append(text)
    return texts


def _scope(principal: Principal, snapshot: Snapshot) -> tuple[Any, bool]:
    return (lambda unit: principal.may_see(unit, snapshot)), principal.unit is None


def _touchpoints(snapshot: Snapshot, principal: Principal, lang: str) -> list[dict[str, str]]:
    """The live touchpoints of the user's subtree whose survey has a published version."""
    found = []
    for touchpoint in sorted(snapshot.touchpoints.values(), key=lambda t: (snapshot.units[t.unit].path, t.name)):
        if touchpoint.token in snapshot.retired or not principal.may_see(touchpoint.unit, snapshot):
            continue
        if touchpoint.survey not in snapshot.current:
            continue
        found.append(
            {"token": touchpoint.token, "label": f"{touchpoint.name} · {snapshot.unit_name(touchpoint.unit, lang)}"}
        )
    return found


async def _scans_page(
    request: Request, state: State, principal: Principal, *, summary: dict | None = None, error: str | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    snapshot = await fresh_snapshot(state)
    lang = layout.choose_language(request)
    _ = layout.translator(request)

    def read(conn) -> int:
        if summary:
            _with_forms(conn, summary["queued"])
        return paper_review.waiting_count(conn, principal.unit, snapshot)

    waiting = await state.store.read(read)
    for page in summary["queued"] if summary else []:
        page["reason_texts"] = reason_texts(page["reasons"], _numbers(snapshot, page), _)
    context = {
        "touchpoints": _touchpoints(snapshot, principal, lang),
        "form_languages": [(code, ENDONYMS[code]) for code in LANGUAGES],
        "max_forms": MAX_FORMS_PER_PRINT,
        "upload_mb": UPLOAD_MB,
        "waiting": waiting,
        "summary": summary,
        "error": error,
    }
    return layout.render(request, "entry_scans.html", context, status=status)


GUARDED = {"dependencies": {"principal": auth.SESSION}, "guards": [requires_role(*auth.WRITER_ROLES)]}


@get(SCANS_PATH, include_in_schema=False, **GUARDED)
async def scans_page(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    return await _scans_page(request, state, principal)


@get(PRINT_PATH, include_in_schema=False, **GUARDED)
async def print_forms(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """The PDF of the print form on the scans page (errors as that page, naming the field)."""
    # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
    from feedback import paper_pdf

    snapshot = await fresh_snapshot(state)
    params = request.query_params
    try:
        touchpoint = snapshot.touchpoint(params.get("touchpoint") or "")
        if touchpoint is not None:  # scope first: another unit's touchpoint tells nothing of itself
            principal.require_unit(touchpoint.unit, snapshot)
        job = paper_pdf.plan_print(
            snapshot,
            params.get("touchpoint") or "",
            lang=params.get("lang") or None,
            count=params.get("count"),
            paper=params.get("paper"),
            printed_by=principal.user,
        )
    except FeedbackError as error:
        message = error_text(error, {}, layout.translator(request))
        return await _scans_page(request, state, principal, error=message, status=error.status_code)
    content = await asyncio.to_thread(paper_pdf.render_forms, snapshot, job)
    await state.store.write(paper_pdf.register_job(job))
    return pdf_response(content, f"paper-forms-{filename_part(job.touchpoint.token)}-{job.lang}-{job.paper}.pdf")


@post(
    SCANS_PATH,
    include_in_schema=False,
    request_max_body_size=paper_review.MAX_UPLOAD_BYTES + 1024 * 1024,  # the files and the form around them
    **GUARDED,
)
async def upload_scans(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """Read the uploaded scans: the summary on the same page (400 naming a file that cannot be read)."""
    from feedback import paper_pages

    form = await request.form()
    uploads = [item for item in form.getall("files") if isinstance(item, UploadFile)] if "files" in form else []
    files = []
    total = 0
    for upload in uploads:
        data = await upload.read()
        if not data:
            continue
        total += len(data)
        files.append((upload.filename or "upload", data))
    _ = layout.translator(request)
    if not files:
        return await _scans_page(request, state, principal, error=_("Choose the scanned files to upload."), status=400)
    if total > paper_review.MAX_UPLOAD_BYTES:
        message = _("The upload is larger than %(mb)s MB: send the scans in parts.") % {"mb": UPLOAD_MB}
        return await _scans_page(request, state, principal, error=message, status=413)
    try:
        pages_in = 0
        for name, data in files:  # parsing takes PDFium's process-wide lock: off the event loop
            pages_in += await asyncio.to_thread(paper_pages.check_file, data, name)
            if pages_in > paper_pages.MAX_PAGES:
                raise paper_pages.TooManyPages(name)
    except paper_pages.TooManyPages:
        message = _("The upload has more than %(max)s pages: send the scans in parts.") % {"max": paper_pages.MAX_PAGES}
        return await _scans_page(request, state, principal, error=message, status=400)
    except paper_pages.UnreadableInput as error:
        message = _("%(file)s cannot be read: it is neither a PDF nor an image.") % {"file": error.name}
        return await _scans_page(request, state, principal, error=message, status=400)
    snapshot = await fresh_snapshot(state)
    may_see, _whole = _scope(principal, snapshot)

    def pages():
        for name, data in files:
            yield from paper_pages.file_pages(data, name)

    try:
        summary = await paper_review.read_scans(
            state.store,
            snapshot,
            pages(),
            by=principal.user,
            unit=principal.unit,
            secret=state.settings.secret,
            may_enter=may_see,
        )
    except paper_pages.UnreadableInput as error:
        message = _("%(file)s cannot be read: it is neither a PDF nor an image.") % {"file": error.name}
        return await _scans_page(request, state, principal, error=message, status=400)
    return await _scans_page(request, state, principal, summary=summary.as_dict())


@get(REVIEW_PATH, include_in_schema=False, **GUARDED)
async def review_list(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    snapshot = await fresh_snapshot(state)

    def read(conn) -> list[dict[str, Any]]:
        return _with_forms(conn, paper_review.listing(conn, principal.unit, snapshot, "waiting"))

    items = await state.store.read(read)
    _ = layout.translator(request)
    for found in items:
        found["reason_texts"] = reason_texts(found["reasons"], _numbers(snapshot, found), _)
    done = request.query_params.get("done")
    return layout.render(request, "entry_review.html", {"items": items, "done": done, "status_names": STATUS_NAMES})


def _with_forms(conn, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items, each with its serial's form record (`form`, None while unknown): their questions' numbers."""
    from feedback.store import paper as paper_store

    forms = paper_store.forms(conn, sorted({item["serial"] for item in items if item.get("serial")}))
    for item in items:
        item["form"] = forms.get(item.get("serial") or "")
    return items


def _numbers(snapshot: Snapshot, found: dict[str, Any]) -> dict[str, int]:
    definition = _definition_of(snapshot, found)
    return {q.key: i for i, q in enumerate(definition.questions, start=1)} if definition else {}


def _definition_of(snapshot: Snapshot, found: dict[str, Any]):
    form = found.get("form")
    if form is None:
        return None
    version = snapshot.versions.get((form["survey"], form["survey_version"]))
    return version.definition if version else None


async def _load(state: State, principal: Principal, scan_id: int) -> tuple[dict[str, Any], Snapshot]:
    from feedback.store import paper as paper_store

    snapshot = await fresh_snapshot(state)
    may_see, whole = _scope(principal, snapshot)

    def read(conn):
        found = paper_review.item(conn, scan_id, may_see, whole)
        found["form"] = paper_store.form(conn, found["serial"]) if found["serial"] else None
        return found

    return await state.store.read(read), snapshot


def _questions(snapshot: Snapshot, found: dict[str, Any], lang: str, values: dict[str, Any], _) -> list[dict]:
    """Each question of the page's form as the review form shows it: its inputs, the value read (or
    posted), and why it is uncertain."""
    definition = _definition_of(snapshot, found)
    if definition is None:
        return []
    uncertain = found["proposed"].get("uncertain", {})
    rows = []
    for number, question in enumerate(definition.questions, start=1):
        row: dict[str, Any] = {
            "key": question.key,
            "number": number,
            "text": text_in(question.text, lang, question.key),
            "value": values.get(question.key),
            "reason": _(REASONS[uncertain[question.key]]) if question.key in uncertain else None,
            "required": question.required,
        }
        if isinstance(question, RatingQuestion):
            words = (question.labels or {}).get(lang) or []
            row["kind"] = "single"
            row["options"] = [
                (str(v), f"{v} – {words[v - 1]}" if v - 1 < len(words) else str(v))
                for v in range(1, question.scale + 1)
            ]
        elif isinstance(question, ChoiceQuestion):
            row["kind"] = "several" if question.multiple else "single"
            row["options"] = [(option.key, text_in(option.text, lang, option.key)) for option in question.options]
        elif isinstance(question, TextQuestion):
            row["kind"] = "text"
        elif isinstance(question, ContactQuestion):
            row["kind"] = "contact"
            row["consent_text"] = text_in(question.consent_text, lang) or _(paper_forms.CONSENT)
        else:
            continue
        rows.append(row)
    return rows


async def _review_page(
    request: Request, state: State, principal: Principal, scan_id: int, *, error: str | None = None,
    posted: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    found, snapshot = await _load(state, principal, scan_id)
    lang = layout.choose_language(request)
    _ = layout.translator(request)
    proposed = found["proposed"]
    values = posted if posted is not None else {k: v for k, v in proposed.get("answers", {}).items()}
    if posted is None:
        values["occurred_on"] = proposed.get("occurred_on") or ""
    context = {
        "scan": found,
        "reason_texts": reason_texts(found["reasons"], _numbers(snapshot, found), _),
        "questions": _questions(snapshot, found, lang, values, _),
        "values": values,
        "date_reason": _(REASONS[proposed["uncertain"]["date"]]) if "date" in proposed.get("uncertain", {}) else None,
        "error": error,
        "status_name": _(STATUS_NAMES.get(found["status"], found["status"])),
        "touchpoint_name": _touchpoint_name(snapshot, found),
    }
    return layout.render(request, "entry_review_page.html", context, status=status)


def _touchpoint_name(snapshot: Snapshot, found: dict[str, Any]) -> str | None:
    form = found.get("form")
    if not form:
        return None
    touchpoint = snapshot.touchpoints.get(form["touchpoint"])
    return touchpoint.name if touchpoint else form["touchpoint"]


@get(REVIEW_PATH + "/{scan_id:int}", include_in_schema=False, **GUARDED)
async def review_page(
    request: Request, state: State, principal: NamedDependency[Principal], scan_id: FromPath[int]
) -> Response:
    return await _review_page(request, state, principal, scan_id)


@get(REVIEW_PATH + "/{scan_id:int}/image.png", include_in_schema=False, **GUARDED)
async def review_image(state: State, principal: NamedDependency[Principal], scan_id: FromPath[int]) -> Response:
    snapshot = await fresh_snapshot(state)
    may_see, whole = _scope(principal, snapshot)
    image = await state.store.read(lambda conn: paper_review.image_of(conn, scan_id, may_see, whole))
    return Response(image, media_type="image/png", headers={"cache-control": "private, max-age=3600"})


def _posted_answers(form: Any, definition) -> tuple[dict[str, Any], dict[str, Any], str | None, bool]:
    """(answers for the entry, every value as posted, the contact, consent) from the review form."""
    answers: dict[str, Any] = {}
    posted: dict[str, Any] = {"occurred_on": str(form.get("occurred_on") or "")}
    contact, consent = None, False
    for question in definition.questions if definition else []:
        name = f"q.{question.key}"
        if isinstance(question, ChoiceQuestion) and question.multiple:
            chosen = [str(v) for v in form.getall(name)] if name in form else []
            posted[question.key] = chosen
            if chosen:
                answers[question.key] = chosen
            continue
        if isinstance(question, ContactQuestion):
            contact = str(form.get("contact") or "").strip() or None
            consent = form.get("consent") == "yes"
            posted["contact"], posted["consent"] = contact or "", consent
            continue
        value = str(form.get(name) or "").strip() if name in form else ""
        if isinstance(question, RatingQuestion) and value:
            posted[question.key] = value
            if not (value.isascii() and value.isdigit() and len(value) < 4):  # "²" is a digit int() refuses
                raise InvalidInput(f"answers.{question.key}: must be a whole number", f"answers.{question.key}")
            answers[question.key] = int(value)
        elif value:
            posted[question.key] = value
            answers[question.key] = value
    return answers, posted, contact, consent


@post(REVIEW_PATH + "/{scan_id:int}", include_in_schema=False, **GUARDED)
async def confirm_page(
    request: Request, state: State, principal: NamedDependency[Principal], scan_id: FromPath[int]
) -> Response:
    """Store the page with the answers as the person confirmed or corrected them."""
    found, snapshot = await _load(state, principal, scan_id)
    form = await request.form()
    definition = _definition_of(snapshot, found)
    posted: dict[str, Any] | None = None
    try:
        answers, posted, contact, consent = _posted_answers(form, definition)
        entry = paper_entry.PaperEntry(
            serial=found["serial"] or "",
            answers=answers,
            occurred_on=posted["occurred_on"],
            contact=contact,
            consent=consent,
            source="scanned",
        )
        may_see, whole = _scope(principal, snapshot)
        result = await paper_review.confirm(
            state.store,
            snapshot,
            scan_id,
            entry,
            by=principal.user,
            may_see=may_see,
            whole=whole,
            secret=state.settings.secret,
        )
    except FeedbackError as error:
        message = error_text(error, _numbers(snapshot, found), layout.translator(request))
        return await _review_page(
            request, state, principal, scan_id, error=message, posted=posted, status=error.status_code
        )
    query = urlencode({"done": result["status"], "page": scan_id})
    return Redirect(f"{REVIEW_PATH}?{query}", status_code=303)


@post(REVIEW_PATH + "/{scan_id:int}/serial", include_in_schema=False, **GUARDED)
async def serial_page(
    request: Request, state: State, principal: NamedDependency[Principal], scan_id: FromPath[int]
) -> Response:
    """Read the page again with the serial a person typed."""
    form = await request.form()
    snapshot = await fresh_snapshot(state)
    may_see, whole = _scope(principal, snapshot)
    try:
        await paper_review.read_with_serial(
            state.store, snapshot, scan_id, str(form.get("serial") or ""), may_see=may_see, whole=whole
        )
    except FeedbackError as error:
        message = error_text(error, {}, layout.translator(request))
        return await _review_page(request, state, principal, scan_id, error=message, status=error.status_code)
    return Redirect(f"{REVIEW_PATH}/{scan_id}", status_code=303)


@post(REVIEW_PATH + "/{scan_id:int}/discard", include_in_schema=False, **GUARDED)
async def discard_page(
    request: Request, state: State, principal: NamedDependency[Principal], scan_id: FromPath[int]
) -> Response:
    form = await request.form()
    snapshot = await fresh_snapshot(state)
    may_see, whole = _scope(principal, snapshot)
    try:
        await paper_review.discard(
            state.store, scan_id, str(form.get("reason") or ""), by=principal.user, may_see=may_see, whole=whole
        )
    except FeedbackError as error:
        message = error_text(error, {}, layout.translator(request))
        return await _review_page(request, state, principal, scan_id, error=message, status=error.status_code)
    return Redirect(f"{REVIEW_PATH}?{urlencode({'done': 'discarded', 'page': scan_id})}", status_code=303)


ROUTES: list = [
    scans_page,
    print_forms,
    upload_scans,
    review_list,
    review_page,
    review_image,
    confirm_page,
    serial_page,
    discard_page,
]
