"""Reading scanned paper forms: where a page's boxes are, what is marked in them, and how sure that is.

A page (a PDF page rendered at 200 dpi, or an image) is read in two steps, so that the forms' records
can be looked up in between, all at once:

1. `locate`: the four corner marks (the filled squares nearest the page's corners, of one size) and
   the QR code (zxing-cpp: serial, survey and version);
2. `read_located`, with the serial's record (paper, print day) and its survey version: one
   perspective transform from the marks onto the layout's (`paper_layout.form_layout`) undoes
   rotation, scale and shift (a page fed upside down too: the QR code says which corner is the top
   right), redrawing the page at 8 px/mm; the printed frames of each question's boxes are looked for
   within a millimetre of where the layout puts them (paper is not flat), and a page whose frames
   are not found is not read; then the ink inside each box: empty, ticked (a tick or a cross), filled
   out (a corrected mark: "not this one"), or unclear (faint, or between a tick and a fill).

Per question that gives an answer or the reason it is uncertain: two ticks on a single answer, a faint
or unclear mark, only filled-out boxes, an unreadable date, handwriting to be typed (free text, a
contact), a required question left empty. A page is confident only when nothing on it is uncertain;
the others go to a person with their reasons and the page's image. Nothing is guessed: a wrong
stored answer is worse than a page in the review queue.

OpenCV, numpy and zxing-cpp load with this module: the web app imports it only when a scan arrives. The
pages come from `feedback.paper_pages` (PDFs and images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import cv2
import numpy as np
import zxingcpp

from feedback import paper_forms
from feedback.models import SurveyDefinition
from feedback.paper_layout import PAPER_MM, Box, DoesNotFit, FormLayout, QuestionBlock, Rect, form_layout

PX_PER_MM = 8.0  # the page is redrawn at this scale once aligned (203 dpi)
REVIEW_PX_PER_MM = 4.0  # the image a person reviews (about 100 dpi)
MAX_SIDE = 3600  # larger images are scaled down first (a 600 dpi scan reads no better)

# Ink inside a box, as shares of its inside (the frame excluded): dark pixels (under 55 % of the paper's
# white) and light ones (under 80 %: a faint pencil, a pen running dry).
FILLED_AT = 0.72  # a box filled out
UNCLEAR_AT = 0.5  # too much for a tick, too little for a fill
TICK_AT = 0.07  # a tick or a cross
FAINT_AT = 0.04  # a faint mark: light ink, or a little dark ink
WRITING_AT = 0.004  # handwriting in a writing area (light or dark)
FRAME_AT = 0.18  # the printed frames of a question's boxes, found where they should be

EMPTY, TICKED, FILLED, FAINT, UNCLEAR = "empty", "ticked", "filled", "faint", "unclear"

# Reasons a page is not stored by itself (each with the question it concerns, where there is one).
NO_MARKS = "no_marks"  # the four corner marks were not found
NO_QR = "no_qr"  # the QR code could not be read (smudged, torn, missing)
UNKNOWN_SERIAL = "unknown_serial"  # no form with that serial was printed here
QR_MISMATCH = "qr_mismatch"  # the code names another survey or version than the serial's record
NO_SURVEY = "no_survey"  # the serial's survey version is not known or has no printed form
MISALIGNED = "misaligned"  # the printed boxes are not where the layout says
BLANK = "blank"  # nothing is marked
TWO_TICKS = "two_ticks"  # more than one box ticked where one answer is asked for
FAINT_MARK = "faint"  # a faint mark
UNCLEAR_MARK = "unclear"  # a mark between a tick and a filled box
ONLY_CANCELLED = "only_cancelled"  # boxes filled out, none ticked: a cancelled answer, or a fill meant as a tick
DATE = "date"  # the date of service is missing, unreadable, or not a day since printing
HANDWRITING = "handwriting"  # free text written by hand: a person types it
CONTACT = "contact"  # a contact or the consent box marked: a person types the contact
REQUIRED = "required"  # a required question left empty
REJECTED = "rejected"  # the entry was refused when stored (its message says why)
PAGE_REASONS = (NO_MARKS, NO_QR, UNKNOWN_SERIAL, QR_MISMATCH, NO_SURVEY, MISALIGNED, BLANK, REJECTED)
QUESTION_REASONS = (TWO_TICKS, FAINT_MARK, UNCLEAR_MARK, ONLY_CANCELLED, DATE, HANDWRITING, CONTACT, REQUIRED)
DATE_KEY = "date"  # the date of service among a reading's answers


@dataclass
class Answer:
    """What one question (or the date of service) reads as."""

    key: str
    value: Any = None  # the answer read or proposed (None: none)
    reason: str | None = None  # why it is uncertain (None: confident)
    marks: dict[str, str] = field(default_factory=dict)  # each box's value -> its ink (empty, ticked, …)


@dataclass
class Located:
    """A page's corner marks and QR code, before its form's record is known."""

    source: str
    gray: np.ndarray
    marks: np.ndarray | None  # 4 x 2: top left, top right, bottom right, bottom left (as in the image)
    payload: str | None  # the QR code's text, when one of ours was read
    qr_centre: tuple[float, float] | None
    serial: str | None  # from the payload, checked

    @property
    def code(self) -> tuple[str, int] | None:
        """(survey slug, version) the QR code names."""
        if not self.payload:
            return None
        parts = self.payload.split(":")
        try:
            return parts[2], int(parts[3])
        except (IndexError, ValueError):
            return None


@dataclass
class PageReading:
    source: str
    serial: str | None = None
    form: dict[str, Any] | None = None
    answers: dict[str, Answer] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # "code" or "code:question key"
    image: bytes = b""  # a PNG for the person reviewing the page
    aligned: str | None = None  # the paper the image is aligned to (None: as scanned)

    @property
    def confident(self) -> bool:
        return self.form is not None and not self.reasons

    @property
    def occurred_on(self) -> str | None:
        found = self.answers.get(DATE_KEY)
        return found.value if found is not None else None

    def proposed(self) -> dict[str, Any]:
        """The answers read (not the date; contacts are never read), for storing or for a person to check."""
        return {
            key: found.value
            for key, found in self.answers.items()
            if key != DATE_KEY and found.value is not None and found.value != []
        }

    def uncertain(self) -> dict[str, str]:
        """Question key (or "date") -> why it is uncertain."""
        return {key: found.reason for key, found in self.answers.items() if found.reason}

    def add_reason(self, code: str, key: str | None = None) -> None:
        reason = f"{code}:{key}" if key else code
        if reason not in self.reasons:
            self.reasons.append(reason)


# -- step 1: corner marks and QR code -------------------------------------------------------------------


def _limit(gray: np.ndarray) -> np.ndarray:
    side = max(gray.shape)
    if side <= MAX_SIDE:
        return gray
    factor = MAX_SIDE / side
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def find_marks(gray: np.ndarray) -> np.ndarray | None:
    """The centres of the four corner marks (top left, top right, bottom right, bottom left as the image
    lies), or None: the solid squares nearest each corner, of about the same size."""
    height, width = gray.shape
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, dark = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(dark, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    short = min(height, width)
    candidates = []
    for contour in contours:
        area = cv2.contourArea(contour)
        if not (short / 70) ** 2 <= area <= (short / 8) ** 2:
            continue
        (cx, cy), (w, h), _angle = cv2.minAreaRect(contour)
        if w <= 0 or h <= 0 or not 0.75 <= w / h <= 1.33 or area / (w * h) < 0.85:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        inside = np.zeros((bh, bw), np.uint8)
        cv2.drawContours(inside, [contour - np.array([x, y])], -1, 255, -1)
        filled = np.count_nonzero(dark[y : y + bh, x : x + bw] & inside) / max(1, np.count_nonzero(inside))
        if filled >= 0.9:  # solid, unlike a QR finder pattern (a ring around a square)
            candidates.append((cx, cy, area**0.5))
    chosen: list[tuple[float, float, float] | None] = []
    for corner_x, corner_y in ((0, 0), (width, 0), (width, height), (0, height)):
        near = [c for c in candidates if abs(c[0] - corner_x) < 0.3 * width and abs(c[1] - corner_y) < 0.3 * height]
        chosen.append(min(near, key=lambda c: (c[0] - corner_x) ** 2 + (c[1] - corner_y) ** 2) if near else None)
    missing = [i for i, found in enumerate(chosen) if found is None]
    if len(missing) > 1:
        return None
    sides = [c[2] for c in chosen if c is not None]
    if max(sides) > 1.25 * min(sides):
        return None
    points = np.array([[c[0], c[1]] if c is not None else [0.0, 0.0] for c in chosen], dtype=np.float32)
    if missing:
        # A mark smudged or torn away: the other three make it a parallelogram's fourth corner (the frames
        # of the boxes are checked after aligning, so a poor guess is caught there).
        i = missing[0]
        points[i] = points[(i - 1) % 4] + points[(i + 1) % 4] - points[(i + 2) % 4]
    return points


def _qr_codes(gray: np.ndarray) -> list[tuple[str, tuple[float, float]]]:
    found = []
    for code in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode):
        if not code.text.upper().startswith(paper_forms.QR_PREFIX + ":"):
            continue
        corners = [code.position.top_left, code.position.top_right, code.position.bottom_right]
        corners.append(code.position.bottom_left)
        centre = (sum(p.x for p in corners) / 4, sum(p.y for p in corners) / 4)
        found.append((code.text, centre))
    return found


def locate(gray: np.ndarray, source: str) -> Located:
    """Step 1: the corner marks and the QR code of a page."""
    gray = _limit(gray)
    marks = find_marks(gray)
    codes = _qr_codes(gray)
    texts = {text for text, _ in codes}
    payload, centre = (codes[0] if len(texts) == 1 else (None, None)) if codes else (None, None)
    serial = paper_forms.serial_from_typed(payload) if payload else None
    if payload and serial is None:  # a code of ours whose serial fails its check symbol: misread
        payload, centre = None, None
    return Located(source, gray, marks, payload, centre, serial)


# -- step 2: aligning and reading -------------------------------------------------------------------------


def _mark_targets(layout: FormLayout, scale: float) -> np.ndarray:
    return np.array([[x * scale, y * scale] for x, y in layout.mark_centres()], dtype=np.float32)


def guess_paper(marks: np.ndarray) -> str:
    """The paper whose marks' proportions these are (A4 and A5 differ by 2 %)."""
    top = float(np.linalg.norm(marks[1] - marks[0]) + np.linalg.norm(marks[2] - marks[3])) / 2
    side = float(np.linalg.norm(marks[3] - marks[0]) + np.linalg.norm(marks[2] - marks[1])) / 2
    ratio = max(top, side) / max(1.0, min(top, side))

    def marks_ratio(paper: str) -> float:
        width, height = PAPER_MM[paper]
        inset = 2 * (7.0 + 3.5)
        return (height - inset) / (width - inset)

    return min(PAPER_MM, key=lambda paper: abs(marks_ratio(paper) - ratio))


def _blank_layout(paper: str) -> FormLayout:
    return form_layout(SurveyDefinition(slug="blank", title={}), paper, 2000)


def align(located: Located, layout: FormLayout, scale: float = PX_PER_MM) -> np.ndarray | None:
    """The page redrawn onto the layout at `scale` px/mm (None without marks). The marks are matched to
    the layout's corners in the turn that puts the QR code in its corner (upright when it was not read)."""
    if located.marks is None:
        return None
    targets = _mark_targets(layout, scale)
    turns = [np.roll(located.marks, -turn, axis=0) for turn in range(4)]
    chosen = turns[0]
    if located.qr_centre is not None:
        qx, qy = layout.qr.centre
        best = None
        for marks in turns:
            matrix = cv2.getPerspectiveTransform(marks, targets)
            point = cv2.perspectiveTransform(np.array([[located.qr_centre]], dtype=np.float32), matrix)[0][0]
            distance = float(np.hypot(point[0] / scale - qx, point[1] / scale - qy))
            if best is None or distance < best[0]:
                best = (distance, marks)
        if best is not None:
            chosen = best[1]
    matrix = cv2.getPerspectiveTransform(chosen, targets)
    size = (round(layout.width * scale), round(layout.height * scale))
    return cv2.warpPerspective(located.gray, matrix, size, flags=cv2.INTER_LINEAR, borderValue=255)


def percentile(image: np.ndarray, q: float) -> float:
    """`np.percentile(image, q)` (its default, linear method) of an 8-bit image, from its histogram: the
    same value at less than half the time of sorting a few million pixels."""
    counts = np.cumsum(np.bincount(image.ravel(), minlength=256))
    n = image.size
    virtual = (n - 1) * (q / 100)  # where the value lies in the sorted pixels, as numpy places it
    below = math.floor(virtual)
    gamma = virtual - below
    low = int(np.searchsorted(counts, below, side="right"))  # the pixel value at sorted index `below`
    high = int(np.searchsorted(counts, min(below + 1, n - 1), side="right"))
    diff = high - low
    # numpy's interpolation, step for step (from the nearer end), so that the float is the same
    return float(high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma)


def review_image(aligned: np.ndarray | None, gray: np.ndarray, scale: float = PX_PER_MM) -> bytes:
    """A PNG of the page for a person: the aligned page at about 100 dpi, else the scan at a similar size."""
    if aligned is not None:
        factor = REVIEW_PX_PER_MM / scale
        small = cv2.resize(aligned, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    else:
        factor = min(1.0, 1200 / max(gray.shape))
        small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    # Paper white, and the scanner's speckle on it, become pure white (they cost bytes and help no reader);
    # ink keeps 16 greys, faint marks included.
    white = max(64.0, percentile(small, 90))
    levels = np.where(small > 0.86 * white, 255, (small // 16) * 16 + 8)
    # Run-length matching suits these long runs of white: as small as zlib's default search at level 9
    # (within 0.1 % over the suite's pages) at an eighth of its time (10 ms a page instead of 85).
    options = [cv2.IMWRITE_PNG_COMPRESSION, 9, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, encoded = cv2.imencode(".png", levels.astype(np.uint8), options)
    return encoded.tobytes() if ok else b""


class Sheet:
    """An aligned page: the shares of dark and light pixels in any rectangle, in millimetres."""

    def __init__(self, aligned: np.ndarray, scale: float) -> None:
        self.scale = scale
        # Speckle out at scanning resolution; at review resolution (4 px/mm) a median would wipe out frames.
        clean = cv2.medianBlur(aligned, 3) if scale >= 6 else aligned
        white = max(64.0, percentile(clean, 90))
        self.dark = cv2.integral((clean < 0.55 * white).astype(np.uint8))
        self.light = cv2.integral((clean < 0.80 * white).astype(np.uint8))
        self.height, self.width = aligned.shape

    def _px(self, rect: Rect, dx: int = 0, dy: int = 0) -> tuple[int, int, int, int]:
        x0 = min(max(0, round(rect.x * self.scale) + dx), self.width)
        y0 = min(max(0, round(rect.y * self.scale) + dy), self.height)
        x1 = min(max(0, round(rect.right * self.scale) + dx), self.width)
        y1 = min(max(0, round(rect.bottom * self.scale) + dy), self.height)
        return x0, y0, x1, y1

    @staticmethod
    def _sum(table: np.ndarray, x0: Any, y0: Any, x1: Any, y1: Any) -> Any:
        """The pixels counted in a rectangle [x0, x1) × [y0, y1) of an integral table: of one rectangle
        (numbers), or of one per shift (arrays of corners)."""
        return table[y1, x1].astype(np.int64) - table[y0, x1] - table[y1, x0] + table[y0, x0]

    def share(self, rect: Rect, *, light: bool = False, dx: int = 0, dy: int = 0) -> float:
        x0, y0, x1, y1 = self._px(rect, dx, dy)
        area = (x1 - x0) * (y1 - y0)
        if area <= 0:
            return 0.0
        return int(self._sum(self.light if light else self.dark, x0, y0, x1, y1)) / area

    def _shifted(self, rect: Rect, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
        """`_px` of a rectangle under each of the shifts `dx[i], dy[i]` at once (arrays of corners)."""
        x0, y0 = round(rect.x * self.scale), round(rect.y * self.scale)
        x1, y1 = round(rect.right * self.scale), round(rect.bottom * self.scale)
        return (
            np.clip(x0 + dx, 0, self.width),
            np.clip(y0 + dy, 0, self.height),
            np.clip(x1 + dx, 0, self.width),
            np.clip(y1 + dy, 0, self.height),
        )

    def frame(self, rect: Rect, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """The share of dark pixels in a ring 0.8 mm wide around a box's printed frame, under each shift
        (0 where the shift leaves no ring on the page)."""
        outer = self._shifted(_grow(rect, 0.4), dx, dy)
        inner = self._shifted(_grow(rect, -0.4), dx, dy)
        ring = (outer[2] - outer[0]) * (outer[3] - outer[1]) - (inner[2] - inner[0]) * (inner[3] - inner[1])
        dark = self._sum(self.dark, *outer) - self._sum(self.dark, *inner)
        return np.divide(dark, ring, out=np.zeros(len(ring)), where=ring > 0)

    def settle(self, boxes: tuple[Box, ...] | list[Box]) -> tuple[int, int, float]:
        """The shift (px, within a millimetre) that puts these boxes on their printed frames, and how
        well they then match (the mean share of dark pixels on the frames).

        Every shift's frames are measured at once (a page has ten groups of boxes, each tried at 289
        shifts); the choice then walks the shifts in order, preferring the nearer of equal scores."""
        reach = round(self.scale)
        steps = np.arange(-reach, reach + 1)
        dy, dx = (grid.ravel() for grid in np.meshgrid(steps, steps, indexing="ij"))  # dy the outer loop
        total = np.zeros(len(dx))
        for box in boxes:  # added box by box, in order, as a running sum would
            total = total + self.frame(box.rect, dx, dy)
        scores = (total / max(1, len(boxes))).tolist()
        best = (0, 0, -1.0)
        for sx, sy, score in zip(dx.tolist(), dy.tolist(), scores, strict=True):
            nearer = abs(sx) + abs(sy) < abs(best[0]) + abs(best[1])
            if score > best[2] + 1e-9 or (score > best[2] - 1e-9 and nearer):
                best = (sx, sy, score)
        return best

    def ink(self, box: Box, dx: int, dy: int) -> str:
        inside = _grow(box.rect, -max(0.6, 3 / self.scale))  # the printed frame left out, however blurred
        dark = self.share(inside, dx=dx, dy=dy)
        if dark >= FILLED_AT:
            return FILLED
        if dark >= UNCLEAR_AT:
            return UNCLEAR
        if dark >= TICK_AT:
            return TICKED
        if dark >= FAINT_AT / 2 or self.share(inside, light=True, dx=dx, dy=dy) >= FAINT_AT:
            return FAINT
        return EMPTY

    def written(self, area: Rect, rules: tuple[float, ...], dx: int, dy: int) -> bool:
        """Whether anything is written in an area (its printed frame and ruled lines left out)."""
        inside = _grow(area, -1.0)
        bands = [inside.y, *[y for y in rules if inside.y < y < inside.bottom], inside.bottom]
        total, marked = 0, 0
        for top, bottom in zip(bands, bands[1:], strict=False):
            strip = Rect(inside.x, top + 0.6, inside.w, bottom - top - 1.2)
            if strip.h <= 0:
                continue
            x0, y0, x1, y1 = self._px(strip, dx, dy)
            total += max(0, (x1 - x0) * (y1 - y0))
            marked += int(self._sum(self.light, x0, y0, x1, y1)) if x1 > x0 and y1 > y0 else 0
        return total > 0 and marked / total >= WRITING_AT


def _grow(rect: Rect, by: float) -> Rect:
    return Rect(rect.x - by, rect.y - by, rect.w + 2 * by, rect.h + 2 * by)


def _single(key: str, boxes: tuple[Box, ...], inks: list[str]) -> Answer:
    """One answer from a row of boxes: the one ticked, or why there is no sure answer."""
    answer = Answer(key, marks={str(box.value): ink for box, ink in zip(boxes, inks, strict=True)})
    ticked = [box.value for box, ink in zip(boxes, inks, strict=True) if ink == TICKED]
    if FAINT in inks:
        answer.reason = FAINT_MARK
    elif UNCLEAR in inks:
        answer.reason = UNCLEAR_MARK
    elif len(ticked) > 1:
        answer.reason = TWO_TICKS
    elif not ticked and FILLED in inks:
        answer.reason = ONLY_CANCELLED
    if len(ticked) == 1:
        answer.value = ticked[0]
    return answer


def _several(key: str, boxes: tuple[Box, ...], inks: list[str]) -> Answer:
    answer = Answer(key, marks={str(box.value): ink for box, ink in zip(boxes, inks, strict=True)})
    answer.value = [box.value for box, ink in zip(boxes, inks, strict=True) if ink == TICKED]
    if FAINT in inks:
        answer.reason = FAINT_MARK
    elif UNCLEAR in inks:
        answer.reason = UNCLEAR_MARK
    elif not answer.value and FILLED in inks:
        answer.reason = ONLY_CANCELLED
    return answer


def _read_date(sheet: Sheet, layout: FormLayout, earliest: date, latest: date) -> tuple[Answer, bool]:
    """The date of service (and whether its boxes were found where they should be)."""
    parts: dict[str, Answer] = {}
    found = True
    for name, boxes in layout.date.groups.items():
        dx, dy, score = sheet.settle(boxes)
        found = found and score >= FRAME_AT
        parts[name] = _single(name, boxes, [sheet.ink(box, dx, dy) for box in boxes])
    answer = Answer(DATE_KEY, marks={f"{n}.{v}": ink for n, part in parts.items() for v, ink in part.marks.items()})
    if any(part.reason for part in parts.values()) or any(part.value is None for part in parts.values()):
        answer.reason = DATE
        return answer, found
    try:
        day = date(parts["year"].value, parts["month"].value, parts["day_tens"].value * 10 + parts["day_units"].value)
    except ValueError:
        answer.reason = DATE
        return answer, found
    answer.value = day.isoformat()
    if not earliest <= day <= latest:
        answer.reason = DATE
    return answer, found


def _read_question(sheet: Sheet, block: QuestionBlock, question: Any) -> tuple[Answer, bool]:
    if block.kind in ("rating", "choice"):
        dx, dy, score = sheet.settle(block.boxes)
        inks = [sheet.ink(box, dx, dy) for box in block.boxes]
        answer = _several(block.key, block.boxes, inks) if block.multiple else _single(block.key, block.boxes, inks)
        return answer, score >= FRAME_AT
    answer = Answer(block.key)
    if block.kind == "text" and block.writing is not None:
        if sheet.written(block.writing, block.rules, 0, 0):
            answer.reason = HANDWRITING
        return answer, True
    if block.kind == "contact" and block.writing is not None:
        dx, dy, score = sheet.settle(block.boxes)
        consent = sheet.ink(block.boxes[0], dx, dy)
        answer.marks = {"consent": consent}
        if consent != EMPTY or sheet.written(block.writing, (), 0, 0):
            answer.reason = CONTACT
        return answer, score >= FRAME_AT
    return answer, True


def read_sheet(
    aligned: np.ndarray, scale: float, layout: FormLayout, definition: SurveyDefinition, days: tuple[date, date]
) -> tuple[dict[str, Answer], list[str]]:
    """Every answer of an aligned page, and the page's reasons (by code, or "code:key"). `days`: the first
    and last possible date of service (the form's print day and today, in its unit's time zone)."""
    sheet = Sheet(aligned, scale)
    answers: dict[str, Answer] = {}
    reasons: list[str] = []
    answer, found = _read_date(sheet, layout, *days)
    answers[DATE_KEY] = answer
    frames_found = found
    for block in layout.questions:
        question = definition.question(block.key)
        answer, found = _read_question(sheet, block, question)
        answers[block.key] = answer
        frames_found = frames_found and found
    if not frames_found:
        return answers, [MISALIGNED]
    given = {key: a.value for key, a in answers.items() if key != DATE_KEY and a.value not in (None, [])}
    for key, answer in answers.items():
        if answer.reason:
            reasons.append(f"{answer.reason}:{key}")
    for question in definition.questions:
        if question.key in given or not question.required or answers[question.key].reason:
            continue
        if question.show_if is not None and not question.show_if.holds(given):
            continue
        answers[question.key].reason = REQUIRED
        reasons.append(f"{REQUIRED}:{question.key}")
    marked = any(ink != EMPTY for a in answers.values() for ink in a.marks.values())
    if not marked and not any(a.reason in (HANDWRITING, CONTACT) for a in answers.values()):
        return answers, [BLANK]
    return answers, reasons


def printed_year(form: dict[str, Any]) -> int:
    """The year a form was printed, as its layout's year boxes count it (the print moment's, in UTC)."""
    return int(str(form["printed_at"])[:4])


def read_located(
    located: Located, form: dict[str, Any] | None, definition: SurveyDefinition | None, days: tuple[date, date]
) -> PageReading:
    """Step 2: the page read against its serial's record (`form`, None when no form has that serial),
    its survey version (`definition`) and the first and last possible date of service (`days`)."""
    if form is not None and form["paper"] not in PAPER_MM:
        form = None  # a serial of no printed form (a hotline call sheet): read as an unknown serial
    reading = PageReading(located.source, serial=located.serial, form=form)
    if located.marks is None:
        reading.add_reason(NO_MARKS)
        if located.payload is None:
            reading.add_reason(NO_QR)
        reading.image = review_image(None, located.gray)
        return reading
    if located.payload is None or located.serial is None:
        reading.add_reason(NO_QR)
        paper = guess_paper(located.marks)
        aligned = align(located, _blank_layout(paper))
        reading.image, reading.aligned = review_image(aligned, located.gray), paper
        return reading
    if form is None:
        reading.add_reason(UNKNOWN_SERIAL)
        paper = guess_paper(located.marks)
        aligned = align(located, _blank_layout(paper))
        reading.image, reading.aligned = review_image(aligned, located.gray), paper
        return reading
    if located.code != (form["survey"], form["survey_version"]):
        reading.add_reason(QR_MISMATCH)
    try:
        layout = form_layout(definition, form["paper"], printed_year(form)) if definition is not None else None
    except DoesNotFit:
        layout = None
    if layout is None:
        reading.add_reason(NO_SURVEY)
        aligned = align(located, _blank_layout(form["paper"]))
        reading.image, reading.aligned = review_image(aligned, located.gray), form["paper"]
        return reading
    aligned = align(located, layout)
    assert aligned is not None and definition is not None
    reading.image, reading.aligned = review_image(aligned, located.gray), form["paper"]
    if reading.reasons:
        return reading
    reading.answers, reasons = read_sheet(aligned, PX_PER_MM, layout, definition, days)
    for reason in reasons:
        reading.add_reason(reason)
    return reading


def reread(image: bytes, form: dict[str, Any], definition: SurveyDefinition, days: tuple[date, date]) -> PageReading:
    """A reviewed page read again once a person has typed its serial: the stored review image, aligned to
    the form's paper, against the serial's layout (its answers are proposals for the person to check)."""
    reading = PageReading("review", serial=form["serial"], form=form, image=image, aligned=form["paper"])
    if form["paper"] not in PAPER_MM:  # no printed form (a hotline call sheet): nothing to read against
        reading.add_reason(NO_SURVEY)
        return reading
    gray = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
    try:
        layout = form_layout(definition, form["paper"], printed_year(form))
    except DoesNotFit:
        reading.add_reason(NO_SURVEY)
        return reading
    if gray is None or abs(gray.shape[1] - layout.width * REVIEW_PX_PER_MM) > 2:
        reading.add_reason(MISALIGNED)
        return reading
    reading.answers, reasons = read_sheet(gray, REVIEW_PX_PER_MM, layout, definition, days)
    for reason in reasons:
        reading.add_reason(reason)
    return reading
