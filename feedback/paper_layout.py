"""Where everything sits on a printed paper form, in millimetres from the page's top-left corner.

`form_layout` is the one function the printer (`feedback.paper_pdf`) and the reader
(`feedback.paper_scan`) both ask, so a box is looked for exactly where it was printed. A layout depends
on the survey version's questions, the paper and the year printed only, never on the language: the
printer fits each text into the band the layout gives it (smaller type where a language needs more
room), so a scanned form is read with nothing but its serial's record (survey, version, paper, print
day).

The page: four filled squares in the corners (the reader finds them and undoes rotation, scale and
shift with one perspective transform); a header with the title, the place, the serial as large text
and its QR code in the top right corner; a line of instructions with three example boxes; the date of
service as boxes to tick (day as tens 0-3 and units 0-9, month 1-12, the year printed and the next);
then each question: ratings as a row of numbered boxes with the scale's words under them, choices as
one box per option, free text as a ruled area, contact as a box to write in and a consent box. A
version that does not fit on one page raises `DoesNotFit`; a form is always one page.

Forms already printed are read with this code: a change to any measure here moves the boxes of the
forms in circulation, so it must come with a new QR prefix (`paper_forms.QR_PREFIX`) and the old
layout kept for the old prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from feedback.models import ChoiceQuestion, ContactQuestion, RatingQuestion, SurveyDefinition, TextQuestion

PAPER_MM = {"A4": (210.0, 297.0), "A5": (148.0, 210.0)}  # ISO 216, portrait (as feedback.posters)

MARK = 7.0  # side of a corner mark
MARK_EDGE = 7.0  # from the paper's edge to a mark's outer side: inside what office printers print
SIDE = 16.0  # left and right margin of the content; the marks sit in the corners beside it
ANSWER_BOX = 5.0  # the boxes of ratings, options and consent
DATE_BOX = 4.5
GAP = 2.0  # between blocks
QR_SIDE = {"A4": 26.0, "A5": 22.0}  # the code with its quiet zone
RATING_HEIGHT = {"A4": 16.0, "A5": 13.5}
WRITING_HEIGHT = {"A4": 15.0, "A5": 11.0}  # a free-text question's ruled area
RULE_PITCH = 5.0
FOOTER_HEIGHT = 4.5

QuestionKind = Literal["rating", "choice", "text", "contact"]


class DoesNotFit(ValueError):
    """The survey version's questions need more than one page of this paper."""

    def __init__(self, paper: str, needed: float, available: float) -> None:
        super().__init__(f"the questions need {needed:.0f} mm of a {paper} page's {available:.0f} mm")
        self.paper = paper
        self.needed = needed
        self.available = available


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True, slots=True)
class Box:
    """A box to tick: its square, the answer it stands for, and where its number or word is printed."""

    rect: Rect
    value: Any  # a rating value, an option key, a digit, a month, a year, or True (consent)
    label: Rect  # where the printer writes the box's number (ratings, dates) or text (options, consent)


@dataclass(frozen=True, slots=True)
class QuestionBlock:
    key: str
    kind: QuestionKind
    number: int  # as printed, from 1
    multiple: bool  # several boxes may be ticked (a multiple choice)
    area: Rect
    text: Rect  # the question's own text (with its hints)
    boxes: tuple[Box, ...]
    words: tuple[Rect, ...] = ()  # ratings: the scale's word under each box
    writing: Rect | None = None  # free text: the ruled area; contact: the box to write in
    rules: tuple[float, ...] = ()  # free text: the y of each ruled line


@dataclass(frozen=True, slots=True)
class DateGrid:
    area: Rect
    heading: Rect
    day_label: Rect
    month_label: Rect
    year_label: Rect
    day_tens: tuple[Box, ...]  # 0..3
    day_units: tuple[Box, ...]  # 0..9
    months: tuple[Box, ...]  # 1..12
    years: tuple[Box, ...]  # the year printed and the next

    @property
    def groups(self) -> dict[str, tuple[Box, ...]]:
        return {"day_tens": self.day_tens, "day_units": self.day_units, "month": self.months, "year": self.years}


@dataclass(frozen=True, slots=True)
class FormLayout:
    paper: str
    width: float
    height: float
    marks: tuple[Rect, Rect, Rect, Rect]  # top left, top right, bottom right, bottom left
    qr: Rect
    title: Rect
    place: Rect
    serial: Rect
    instructions: Rect
    examples: tuple[Rect, Rect, Rect]  # a ticked, a crossed and a filled example box
    date: DateGrid
    questions: tuple[QuestionBlock, ...]
    footer: Rect

    def mark_centres(self) -> list[tuple[float, float]]:
        return [mark.centre for mark in self.marks]

    def question(self, key: str) -> QuestionBlock | None:
        return next((block for block in self.questions if block.key == key), None)

    def answer_boxes(self) -> list[Box]:
        """Every box a respondent may tick (the example boxes are not among them)."""
        found = [box for group in self.date.groups.values() for box in group]
        for block in self.questions:
            found.extend(block.boxes)
        return found


def _row(x: float, y: float, values: list[Any], pitch: float, side: float, label_height: float) -> tuple[Box, ...]:
    """Boxes side by side from x, each with its number above it."""
    boxes = []
    for i, value in enumerate(values):
        left = x + i * pitch + (pitch - side) / 2
        label = Rect(x + i * pitch, y, pitch, label_height)
        boxes.append(Box(Rect(left, y + label_height, side, side), value, label))
    return tuple(boxes)


def _date_grid(top: float, left: float, width: float, paper: str, year: int) -> DateGrid:
    label_w = 20.0 if paper == "A4" else 16.0
    pitch = 6.0 if paper == "A4" else 5.4
    digit_label = 2.6
    row_h = digit_label + DATE_BOX + 1.0
    heading = Rect(left, top, width, 4.5)
    row1 = heading.bottom
    x = left + label_w
    tens = _row(x, row1, [0, 1, 2, 3], pitch, DATE_BOX, digit_label)
    units = _row(x + 4 * pitch + 3.0, row1, list(range(10)), pitch, DATE_BOX, digit_label)
    row2 = row1 + row_h
    months = _row(x, row2, list(range(1, 13)), pitch, DATE_BOX, digit_label)
    year_label_x = x + 12 * pitch + 3.0
    year_pitch = 9.0
    years = _row(year_label_x + 10.0, row2, [year, year + 1], year_pitch, DATE_BOX, digit_label)
    return DateGrid(
        area=Rect(left, top, width, row2 + row_h - top),
        heading=heading,
        day_label=Rect(left, row1 + digit_label, label_w - 1, DATE_BOX),
        month_label=Rect(left, row2 + digit_label, label_w - 1, DATE_BOX),
        year_label=Rect(year_label_x, row2 + digit_label, 10.0, DATE_BOX),
        day_tens=tens,
        day_units=units,
        months=months,
        years=years,
    )


def _choice_columns(question: ChoiceQuestion) -> int:
    longest = max((len(text) for option in question.options for text in option.text.values()), default=0)
    return 3 if longest <= 22 else 2


def _block(question: Any, number: int, top: float, left: float, width: float, paper: str) -> QuestionBlock:
    """The block of one question, starting at `top`."""
    if isinstance(question, RatingQuestion):
        height = RATING_HEIGHT[paper]
        text_w = round(width * 0.42, 1)
        answers_x = left + text_w + 2.0
        pitch = (width - text_w - 2.0) / question.scale
        number_h = 3.0
        boxes = _row(answers_x, top, list(range(1, question.scale + 1)), pitch, ANSWER_BOX, number_h)
        words_top = top + number_h + ANSWER_BOX + 0.5
        words = tuple(
            Rect(answers_x + i * pitch + 0.3, words_top, pitch - 0.6, top + height - words_top)
            for i in range(question.scale)
        )
        return QuestionBlock(
            question.key, "rating", number, False, Rect(left, top, width, height), Rect(left, top, text_w, height),
            boxes, words,
        )  # fmt: skip
    if isinstance(question, ChoiceQuestion):
        heading = Rect(left, top, width, 6.0)
        columns = _choice_columns(question)
        column_w = width / columns
        row_h = ANSWER_BOX + 1.0
        boxes = []
        for i, option in enumerate(question.options):
            row, column = divmod(i, columns)
            x = left + column * column_w
            y = heading.bottom + row * row_h
            label = Rect(x + ANSWER_BOX + 1.5, y, column_w - ANSWER_BOX - 2.5, ANSWER_BOX)
            boxes.append(Box(Rect(x, y, ANSWER_BOX, ANSWER_BOX), option.key, label))
        rows = -(-len(question.options) // columns)
        height = heading.h + rows * row_h + 0.5
        return QuestionBlock(
            question.key, "choice", number, question.multiple, Rect(left, top, width, height), heading, tuple(boxes)
        )
    if isinstance(question, TextQuestion):
        heading = Rect(left, top, width, 5.0)
        writing = Rect(left, heading.bottom, width, WRITING_HEIGHT[paper])
        rules = tuple(writing.y + RULE_PITCH * (i + 1) for i in range(int(writing.h // RULE_PITCH)))
        return QuestionBlock(
            question.key, "text", number, False, Rect(left, top, width, heading.h + writing.h), heading, (),
            writing=writing, rules=rules,
        )  # fmt: skip
    if isinstance(question, ContactQuestion):
        heading = Rect(left, top, width, 5.0)
        writing = Rect(left, heading.bottom, width, 8.0)
        consent_y = writing.bottom + 1.0
        consent = Box(
            Rect(left, consent_y, ANSWER_BOX, ANSWER_BOX),
            True,
            Rect(left + ANSWER_BOX + 1.5, consent_y, width - ANSWER_BOX - 1.5, ANSWER_BOX),
        )
        height = consent.rect.bottom - top
        return QuestionBlock(
            question.key, "contact", number, False, Rect(left, top, width, height), heading, (consent,), writing=writing
        )
    raise DoesNotFit(paper, 0, 0)  # a plugin's question kind has no printed form


def printable(question: Any) -> bool:
    """Whether a question kind has a printed form (a plugin's own kinds have none)."""
    return isinstance(question, RatingQuestion | ChoiceQuestion | TextQuestion | ContactQuestion)


def form_layout(definition: SurveyDefinition, paper: str, year: int) -> FormLayout:
    """The layout of a form of this survey version on `paper` ("A4" or "A5"), printed in `year`.
    Raises DoesNotFit when the questions need more than the page, or a question has no printed form."""
    width, height = PAPER_MM[paper]
    content_w = width - 2 * SIDE
    marks = (
        Rect(MARK_EDGE, MARK_EDGE, MARK, MARK),
        Rect(width - MARK_EDGE - MARK, MARK_EDGE, MARK, MARK),
        Rect(width - MARK_EDGE - MARK, height - MARK_EDGE - MARK, MARK, MARK),
        Rect(MARK_EDGE, height - MARK_EDGE - MARK, MARK, MARK),
    )
    qr_side = QR_SIDE[paper]
    top = MARK_EDGE
    qr = Rect(width - SIDE - qr_side, top, qr_side, qr_side)
    header_w = qr.x - SIDE - 3.0
    title = Rect(SIDE, top, header_w, 9.0)
    place = Rect(SIDE, title.bottom, header_w, 6.0)
    serial = Rect(SIDE, place.bottom + 1.0, header_w, qr_side - title.h - place.h - 1.0)
    example_pitch = 12.0  # each example box with its word under it
    instructions = Rect(SIDE, qr.bottom + 1.0, content_w - 3 * example_pitch - 2.0, 9.0)
    examples = tuple(
        Rect(instructions.right + 2.0 + (i + 0.5) * example_pitch - DATE_BOX / 2, instructions.y, DATE_BOX, DATE_BOX)
        for i in range(3)
    )
    date = _date_grid(instructions.bottom + GAP, SIDE, content_w, paper, year)
    footer = Rect(SIDE, height - MARK_EDGE - FOOTER_HEIGHT, content_w, FOOTER_HEIGHT)

    blocks: list[QuestionBlock] = []
    cursor = date.area.bottom + GAP
    for number, question in enumerate(definition.questions, start=1):
        if not printable(question):
            raise DoesNotFit(paper, 0, 0)
        block = _block(question, number, cursor, SIDE, content_w, paper)
        blocks.append(block)
        cursor = block.area.bottom + GAP
    available = footer.y - date.area.bottom
    needed = cursor - date.area.bottom
    if needed > available:
        raise DoesNotFit(paper, needed, available)
    return FormLayout(
        paper=paper,
        width=width,
        height=height,
        marks=marks,
        qr=qr,
        title=title,
        place=place,
        serial=serial,
        instructions=instructions,
        examples=examples,  # type: ignore[arg-type]
        date=date,
        questions=tuple(blocks),
        footer=footer,
    )
