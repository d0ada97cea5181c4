"""Printable paper forms (fpdf2): one page per form, every question of the survey version in force with
boxes to tick, the date of service as boxes, the form's serial as large text and in a QR code.

Where each thing goes comes from `feedback.paper_layout` (the reader uses the same layout); this
module only draws it, in the form's language, fitting every text into the band the layout gives it.
The fonts, the QR images and the page set-up are the posters' (`feedback.posters.Poster`). Each form
tells readers of the survey's other languages, in their own language, that the form exists in theirs.

`plan_print` checks a request (touchpoint, language, count, paper) and makes the form records;
`register_job` is the write job that stores them (with an audit entry); `render_forms` draws them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from feedback import audit, paper_forms, qr
from feedback.catalog import Snapshot
from feedback.errors import Gone, InvalidInput, NotFound
from feedback.i18n import N_, counter_label, gettext_for, text_in
from feedback.models import LANGUAGES, ChoiceQuestion, ContactQuestion, RatingQuestion, SurveyVersion, Touchpoint
from feedback.paper_layout import DoesNotFit, FormLayout, QuestionBlock, Rect, form_layout
from feedback.posters import GREY, INK, PDF_LANG, Poster, service_name
from feedback.store import Connection

FORM_ECC = "Q"  # a quarter of the code may be smudged or folded away
RULE_GREY = (215, 215, 215)  # ruled lines and writing frames: light enough not to count as ink


FORM_NUMBER = N_("Form no. %(serial)s")
INSTRUCTIONS = N_(
    "Tick or cross one box per question, or several where it says so. To change an answer, fill the "
    "wrong box completely and tick the right one."
)
CHOSEN = N_("chosen")
CANCELLED = N_("cancelled")
DATE_HEADING = N_("Date of service: tick the day as two digits (2 and 7 for the 27th), the month and the year")
DAY = N_("Day")
MONTH = N_("Month")
YEAR = N_("Year")
TICK_ONE = N_("tick one")
TICK_ALL = N_("tick all that apply")
ONLY_IF_RANGE = N_("only if your answer to question %(number)s was %(low)s to %(high)s")
ONLY_IF_AT_MOST = N_("only if your answer to question %(number)s was %(high)s or lower")
ONLY_IF_AT_LEAST = N_("only if your answer to question %(number)s was %(low)s or higher")
WRITE_HERE = N_("write on the lines below")
CONTACT_HINT = N_("write your phone number or e-mail address in the box")
OTHER_LANGUAGE = N_("This form is available in your language: ask at the counter.")


def parse_count(value: str | int | None) -> int:
    """`count` as asked (default 1); InvalidInput naming `count` unless a whole number 1..MAX_FORMS_PER_PRINT."""
    if value is None or value == "":
        return 1
    try:
        count = int(str(value).strip())
    except ValueError:
        count = 0
    if not 1 <= count <= paper_forms.MAX_FORMS_PER_PRINT:
        raise InvalidInput(f"count: must be a whole number from 1 to {paper_forms.MAX_FORMS_PER_PRINT}", "count")
    return count


def parse_paper(value: str | None) -> str:
    paper = (value or "A4").strip().upper()
    if paper not in paper_forms.PAPER_SIZES:
        raise InvalidInput("paper: must be A4 or A5", "paper")
    return paper


@dataclass(frozen=True)
class PrintJob:
    """Forms to print and register: the touchpoint, the survey version in force, the language and paper."""

    touchpoint: Touchpoint
    version: SurveyVersion
    lang: str
    paper: str
    forms: list[dict[str, Any]]


def check_fits(version: SurveyVersion, paper: str, year: int) -> FormLayout:
    """The layout, or InvalidInput: naming `paper` when the form would fit on A4, else `touchpoint`."""
    try:
        return form_layout(version.definition, paper, year)
    except DoesNotFit:
        pass
    if paper != "A4":
        try:
            form_layout(version.definition, "A4", year)
        except DoesNotFit:
            pass
        else:
            raise InvalidInput(
                f"paper: survey {version.slug!r} version {version.version} does not fit on one {paper} page; "
                "print it on A4",
                "paper",
            )
    raise InvalidInput(
        f"touchpoint: survey {version.slug!r} version {version.version} does not fit on one page of paper "
        "(too many questions, or a question kind with no printed form)",
        "touchpoint",
    )


def plan_print(
    snapshot: Snapshot,
    token: str,
    *,
    lang: str | None,
    count: str | int | None,
    paper: str | None,
    printed_by: str | None,
    now: datetime | None = None,
) -> PrintJob:
    """Check a print request and make its form records (not stored yet). Raises InvalidInput naming
    `count`, `paper`, `lang` or `touchpoint`, NotFound or Gone naming `touchpoint`."""
    number = parse_count(count)
    size = parse_paper(paper)
    touchpoint = snapshot.touchpoint(token)
    if touchpoint is None:
        raise NotFound(f"touchpoint: no touchpoint {token!r}", "touchpoint")
    retired_at = snapshot.retired.get(touchpoint.token)
    if retired_at is not None:
        raise Gone(f"touchpoint: {touchpoint.token!r} was retired at {retired_at.isoformat()}", "touchpoint")
    version = snapshot.current.get(touchpoint.survey)
    if version is None:
        raise NotFound(f"touchpoint: survey {touchpoint.survey!r} has no published version", "touchpoint")
    languages = [code for code in version.definition.languages if code in LANGUAGES]
    if lang is None or lang == "":
        chosen = touchpoint.lang if touchpoint.lang in languages else (languages or ["en"])[0]
    elif lang in languages:
        chosen = lang
    else:
        raise InvalidInput(f"lang: must be one of {languages}", "lang")
    now = now or datetime.now(UTC)
    check_fits(version, size, now.year)
    forms = paper_forms.new_forms(
        touchpoint=touchpoint.token,
        unit=touchpoint.unit,
        survey=version.slug,
        survey_version=version.version,
        lang=chosen,
        paper=size,
        count=number,
        printed_by=printed_by,
        now=now,
    )
    return PrintJob(touchpoint, version, chosen, size, forms)


def register_job(job: PrintJob) -> Callable[[Connection], None]:
    """The write job that stores the forms of a print, with one audit entry naming the serials."""

    def write(conn: Connection) -> None:
        paper_forms.register(conn, job.forms)
        audit.record(
            conn,
            "paper_forms",
            job.touchpoint.token,
            "print",
            after={
                "count": len(job.forms),
                "serials": [form["serial"] for form in job.forms],
                "survey": job.version.slug,
                "survey_version": job.version.version,
                "lang": job.lang,
                "paper": job.paper,
            },
            unit=job.touchpoint.unit,
        )

    return write


# -- drawing -------------------------------------------------------------------------------------------


class FormPDF(Poster):
    """The posters' page set-up and fonts, with text fitted into the layout's rectangles."""

    def __init__(self, paper: str) -> None:
        super().__init__(paper)  # type: ignore[arg-type]
        self.set_margins(0, 0)

    def fit(
        self,
        rect: Rect,
        text: str,
        size: float,
        *,
        bold: bool = False,
        color: tuple[int, int, int] = INK,
        align: str = "L",
        middle: bool = False,
        least: float = 4.5,
    ) -> None:
        """`text` in `rect`, wrapped, in the largest type from `size` down to `least` points that fits (the
        lines that still do not fit at `least` are left out rather than spill over a box)."""
        if not text:
            return
        style = "B" if bold else ""
        while True:
            self.set_font("NotoSans", style, size)
            height = size * 0.3528 * 1.2
            lines = self.multi_cell(rect.w, height, text, dry_run=True, output="LINES")
            if len(lines) * height <= rect.h + 0.01 or size <= least:
                break
            size = max(least, size - 0.25)
        lines = lines[: max(1, int((rect.h + 0.01) // height))]
        # Selected anew: after a line set in the fallback face (CJK), fpdf2 may believe the page still has
        # this face selected and set the next Latin text in the wrong one.
        self.set_font("NotoSans", style, size + 1)
        self.set_font("NotoSans", style, size)
        self.set_text_color(*color)
        y = rect.y + ((rect.h - len(lines) * height) / 2 if middle else 0)
        for line in lines:
            self.set_xy(rect.x, y)
            self.cell(rect.w, height, line, align=align)
            y += height

    def box(self, rect: Rect, *, filled: bool = False, width: float = 0.3) -> None:
        self.set_draw_color(0, 0, 0)
        self.set_fill_color(0, 0, 0)
        self.set_line_width(width)
        self.rect(rect.x, rect.y, rect.w, rect.h, style="DF" if filled else "D")

    def tick(self, rect: Rect) -> None:
        self.set_line_width(0.35)
        self.line(rect.x + rect.w * 0.2, rect.y + rect.h * 0.55, rect.x + rect.w * 0.42, rect.y + rect.h * 0.8)
        self.line(rect.x + rect.w * 0.42, rect.y + rect.h * 0.8, rect.x + rect.w * 0.85, rect.y + rect.h * 0.2)

    def cross(self, rect: Rect) -> None:
        self.set_line_width(0.35)
        self.line(rect.x + 0.8, rect.y + 0.8, rect.right - 0.8, rect.bottom - 0.8)
        self.line(rect.x + 0.8, rect.bottom - 0.8, rect.right - 0.8, rect.y + 0.8)


@dataclass(frozen=True)
class FormText:
    """What a form says, in its language: everything but the serial."""

    lang: str
    title: str
    place: str
    other_languages: list[str]


def form_text(snapshot: Snapshot, touchpoint: Touchpoint, version: SurveyVersion, lang: str) -> FormText:
    survey = version.definition
    unit = snapshot.units[touchpoint.unit]
    place = [snapshot.unit_name(unit.code, lang), service_name(snapshot, touchpoint.service, lang)]
    place.append(counter_label(touchpoint.counter, lang) or touchpoint.name)
    others = [code for code in survey.languages if code in LANGUAGES and code != lang]
    return FormText(
        lang=lang,
        title=text_in(survey.title, lang, survey.slug),
        place=" · ".join(part for part in place if part),
        other_languages=[gettext_for(code)(OTHER_LANGUAGE) for code in others],
    )


def _only_if(block: QuestionBlock, question: Any, layout: FormLayout, _: Callable[[str], str]) -> str | None:
    condition = question.show_if
    if condition is None:
        return None
    source = layout.question(condition.question)
    if source is None:
        return None
    values = {"number": source.number, "low": condition.min, "high": condition.max}
    if condition.min is not None and condition.max is not None:
        return _(ONLY_IF_RANGE) % values
    if condition.max is not None:
        return _(ONLY_IF_AT_MOST) % values
    if condition.min is not None:
        return _(ONLY_IF_AT_LEAST) % values
    return None


def draw_form(pdf: FormPDF, layout: FormLayout, version: SurveyVersion, text: FormText, serial: str) -> None:
    """One form on a new page."""
    _ = gettext_for(text.lang)
    survey = version.definition
    pdf.add_page()
    for mark in layout.marks:
        pdf.box(mark, filled=True)
    payload = paper_forms.qr_payload(serial, version.slug, version.version)
    image = qr.pil_image(payload, FORM_ECC, scale=8)
    pdf.image(image, x=layout.qr.x, y=layout.qr.y, w=layout.qr.w, h=layout.qr.h, alt_text=payload)

    pdf.fit(layout.title, text.title, 14, bold=True)
    pdf.fit(layout.place, text.place, 9.5, color=GREY)
    pdf.fit(layout.serial, _(FORM_NUMBER) % {"serial": serial}, 17, bold=True, middle=True)

    pdf.fit(layout.instructions, _(INSTRUCTIONS), 7.5, least=5.5)
    for index, example in enumerate(layout.examples):
        pdf.box(example, filled=index == 2)
        if index == 0:
            pdf.tick(example)
        elif index == 1:
            pdf.cross(example)
        label = Rect(example.x + example.w / 2 - 6.0, example.bottom + 0.5, 12.0, 3.5)
        pdf.fit(label, _(CANCELLED if index == 2 else CHOSEN), 6, color=GREY, align="C", least=3.5)

    date = layout.date
    pdf.fit(date.heading, _(DATE_HEADING), 8, bold=True, least=5.5)
    for rect, word in ((date.day_label, DAY), (date.month_label, MONTH), (date.year_label, YEAR)):
        pdf.fit(rect, _(word), 7.5, middle=True, least=4.5)
    for group, boxes in date.groups.items():
        for box in boxes:
            pdf.box(box.rect)
            label = f"{box.value:02d}" if group == "month" else str(box.value)
            pdf.fit(box.label, label, 6.5, color=GREY, align="C", middle=True)

    for block in layout.questions:
        question = survey.question(block.key)
        if question is None:
            continue
        draw_question(pdf, layout, block, question, text.lang, _)

    pdf.fit(layout.footer, "   ".join(text.other_languages), 6.5, color=GREY, align="C", middle=True, least=4)


def draw_question(
    pdf: FormPDF, layout: FormLayout, block: QuestionBlock, question: Any, lang: str, _: Callable[[str], str]
) -> None:
    wording = f"{block.number}. {text_in(question.text, lang, question.key)}"
    hints = []
    if isinstance(question, ChoiceQuestion):
        hints.append(_(TICK_ALL if question.multiple else TICK_ONE))
    elif block.kind == "text":
        hints.append(_(WRITE_HERE))
    elif isinstance(question, ContactQuestion):
        hints.append(_(CONTACT_HINT))
    only_if = _only_if(block, question, layout, _)
    if only_if:
        hints.insert(0, only_if)
    if hints:
        wording += f" ({'; '.join(hints)})"
    pdf.fit(block.text, wording, 9 if layout.paper == "A4" else 8, least=5)

    if isinstance(question, RatingQuestion):
        words = (question.labels or {}).get(lang) or []
        wide = bool(block.words) and block.words[0].w >= 10
        for index, box in enumerate(block.boxes):
            pdf.box(box.rect)
            pdf.fit(box.label, str(box.value), 7, align="C", middle=True)
            if index < len(words) and (wide or index in (0, len(block.boxes) - 1)):
                pdf.fit(block.words[index], words[index], 6, color=GREY, align="C", least=3.5)
    elif isinstance(question, ChoiceQuestion):
        options = {option.key: option for option in question.options}
        for box in block.boxes:
            pdf.box(box.rect)
            option = options.get(box.value)
            if option is not None:
                pdf.fit(box.label, text_in(option.text, lang, option.key), 8, middle=True, least=4.5)
    elif block.writing is not None:
        pdf.set_draw_color(*RULE_GREY)
        pdf.set_line_width(0.2)
        pdf.rect(block.writing.x, block.writing.y, block.writing.w, block.writing.h)
        for y in block.rules:
            if y < block.writing.bottom - 0.5:
                pdf.line(block.writing.x + 2, y, block.writing.right - 2, y)
        for box in block.boxes:  # the consent box of a contact question
            pdf.box(box.rect)
            consent = text_in(getattr(question, "consent_text", None), lang) or _(paper_forms.CONSENT)
            pdf.fit(box.label, consent, 8, middle=True, least=4.5)


def render_forms(snapshot: Snapshot, job: PrintJob) -> bytes:
    """The PDF of a print job: one page per form, in the order of its serials."""
    year = date.fromisoformat(job.forms[0]["printed_at"][:10]).year if job.forms else datetime.now(UTC).year
    layout = check_fits(job.version, job.paper, year)
    text = form_text(snapshot, job.touchpoint, job.version, job.lang)
    pdf = FormPDF(job.paper)
    pdf.set_lang(PDF_LANG.get(job.lang, "en"))
    pdf.set_title(f"{text.title} – {job.touchpoint.name}")
    for form in job.forms:
        draw_form(pdf, layout, job.version, text, form["serial"])
    return bytes(pdf.output())
