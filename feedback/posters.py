"""Printable posters (fpdf2): one page per touchpoint, its QR code and the call to action in four languages.

Each page names the place (unit in its own script, service, counter), asks for a rating in the
touchpoint's language with the other three languages smaller beneath, and carries the QR code with
the short code and a typeable URL under it for people who cannot scan. Kiosk touchpoints get a
poster too, offering the phone as an alternative to the tablet. All text is real text (Noto Sans,
with Droid Sans Fallback for CJK), so the PDF is searchable and screen readers can read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fpdf import FPDF

import feedback
from feedback import qr
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput, NotFound
from feedback.i18n import counter_label, gettext_for
from feedback.models import LANGUAGES, Touchpoint

Paper = Literal["A4", "A5"]
PAPERS = ("A4", "A5")
PAPER_MM = {"A4": (210, 297), "A5": (148, 210)}  # ISO 216, portrait
FONTS_DIR = Path(feedback.__file__).parent / "fonts"
POSTER_ECC = "Q"  # printed codes get scuffed and smudged: a quarter of the code may be lost
PDF_LANG = {"vi": "vi", "ru": "ru", "zh": "zh-Hans", "en": "en"}

INK = (25, 25, 25)
GREY = (95, 95, 95)
ACCENT = (18, 62, 120)
RULE = (200, 205, 215)


def N_(message: str) -> str:
    """Marks a message for extraction; translated at render time."""
    return message


CALL_TO_ACTION = N_("Rate our service")
CALL_TO_ACTION_KIOSK = N_("Prefer your phone? Scan to rate")
SCAN_HINT = N_("Scan the QR code with your phone camera")
KIOSK_HINT = N_("You can also rate on the tablet here")
QUICK = N_("It takes less than a minute. Thank you!")
COUNTER = N_("Counter %(counter)s")
OR_OPEN = N_("or open %(url)s")


def parse_paper(value: str | None) -> Paper:
    paper = (value or "A4").strip().upper()
    if paper not in PAPERS:
        raise InvalidInput("paper: must be A4 or A5", "paper")
    return paper  # type: ignore[return-value]


def unit_tokens(snapshot: Snapshot, code: str) -> list[str]:
    """Tokens of every live touchpoint in a unit's subtree, in unit order."""
    subtree = set(snapshot.subtree(code))
    live = [tp for tp in snapshot.touchpoints.values() if tp.unit in subtree and tp.token not in snapshot.retired]
    return [tp.token for tp in sorted(live, key=lambda tp: (snapshot.units[tp.unit].path, tp.name, tp.token))]


def short_code_of(snapshot: Snapshot, token: str) -> str | None:
    return next((code for code, value in snapshot.short_codes.items() if value == token), None)


def service_name(snapshot: Snapshot, code: str | None, lang: str) -> str | None:
    return snapshot.service_name(code, lang) if code in snapshot.services else None


class Poster(FPDF):
    def __init__(self, paper: Paper) -> None:
        super().__init__(orientation="portrait", unit="mm", format=PAPER_MM[paper])
        self.scale = self.w / 210  # layouts are drawn for A4 and scaled
        self.set_margins(14 * self.scale, 14 * self.scale)
        self.set_auto_page_break(False)
        self.add_font("NotoSans", "", FONTS_DIR / "NotoSans-Regular.ttf")
        self.add_font("NotoSans", "B", FONTS_DIR / "NotoSans-Bold.ttf")
        self.add_font("DroidSansFallback", "", FONTS_DIR / "DroidSansFallbackFull.ttf")
        # CJK has no bold face here: bold Chinese falls back to the regular fallback face.
        self.set_fallback_fonts(["DroidSansFallback"], exact_match=False)
        self.set_creator(f"feedback {feedback.__version__}")
        self.c_margin = 0

    def pt(self, size: float) -> float:
        return size * self.scale

    def line_height(self, size: float, scaled: bool = True) -> float:
        """Millimetres a line of `size` points takes, with leading."""
        return (self.pt(size) if scaled else size) * 0.3528 * 1.3

    def centered(
        self, text: str, size: float, *, bold: bool = False, color=INK, max_lines: int = 2, link: str = ""
    ) -> None:
        """One centred line, shrunk to fit (down to 70 % when it may wrap onto `max_lines`), then wrapped."""
        width = self.epw
        style = "B" if bold else ""
        size = self.pt(size)
        floor = size * (0.7 if max_lines > 1 else 0.3)
        self.set_font("NotoSans", style, size)
        while self.get_string_width(text) > width and size > floor:
            size -= 0.5
            self.set_font("NotoSans", style, size)
        self.set_text_color(*color)
        line_height = self.line_height(size, scaled=False)
        self.set_x(self.l_margin)
        self.multi_cell(width, line_height, text, align="C", new_x="LMARGIN", new_y="NEXT", link=link)

    def rule(self, gap: float = 4) -> None:
        self.ln(self.pt(gap))
        self.set_draw_color(*RULE)
        self.set_line_width(self.pt(0.4))
        middle = self.w / 2
        half = self.epw * 0.35
        self.line(middle - half, self.get_y(), middle + half, self.get_y())
        self.ln(self.pt(gap))

    def page_for(self, snapshot: Snapshot, touchpoint: Touchpoint, public_url: str) -> None:
        lang = touchpoint.lang if touchpoint.lang in LANGUAGES else "en"
        _ = gettext_for(lang)
        kiosk = touchpoint.kind == "kiosk"
        action = CALL_TO_ACTION_KIOSK if kiosk else CALL_TO_ACTION
        unit = snapshot.units[touchpoint.unit]
        code = short_code_of(snapshot, touchpoint.token)
        url = qr.survey_url(public_url, touchpoint.token)
        typed = qr.display_url(qr.survey_url(public_url, code or touchpoint.token))

        self.add_page()
        self.set_fill_color(*ACCENT)
        self.rect(0, 0, self.w, self.pt(5), style="F")

        # Where: the unit in its own script, then service and counter (or the touchpoint's name).
        self.set_y(self.pt(16))
        self.centered(unit.name, 24, bold=True)
        place = [service_name(snapshot, touchpoint.service, unit.lang)]
        place.append(counter_label(touchpoint.counter, touchpoint.lang) or touchpoint.name)
        place = [part for part in place if part]
        self.ln(self.pt(1))
        self.set_font("NotoSans", "", self.pt(15))
        if self.get_string_width(" · ".join(place)) <= self.epw:
            place = [" · ".join(place)]
        for part in place:
            self.centered(part, 15, color=GREY)
        self.rule(4)

        # What: the call to action, large in the touchpoint's language, the others smaller beneath.
        self.centered(_(action), 34, bold=True, color=ACCENT)
        self.ln(self.pt(2))
        for other in LANGUAGES:
            if other != lang:
                self.centered(gettext_for(other)(action), 14, color=GREY, max_lines=1)

        # The code, as large as the page allows, with the hint, the short code and the URL below it,
        # centred in the space left above the footer.
        below = self.line_height(14) + self.pt(1) + self.line_height(30) + self.line_height(13)
        top, bottom = self.get_y() + self.pt(2), self.h - self.pt(26)
        side = max(self.pt(60), min(self.pt(140), bottom - top - below))
        top += max(0.0, (bottom - top - below - side) / 2)
        image = qr.pil_image(url, POSTER_ECC, scale=8)
        self.image(image, x=(self.w - side) / 2, y=top, w=side, h=side, link=url, alt_text=url)
        self.set_y(top + side)
        self.centered(_(SCAN_HINT), 14)
        self.ln(self.pt(1))
        self.centered(code or touchpoint.token, 30, bold=True, max_lines=1)
        self.centered(_(OR_OPEN) % {"url": typed}, 13, color=GREY, link=url)

        # Footer: reassurance (and, at a kiosk, the tablet).
        self.set_y(self.h - self.pt(22))
        self.rule(0)
        self.ln(self.pt(3))
        self.centered(_(KIOSK_HINT if kiosk else QUICK), 13, color=GREY)


def render_posters(snapshot: Snapshot, tokens: list[str], public_url: str, paper: Paper = "A4") -> bytes:
    """A PDF with one poster page per touchpoint (tokens or short codes), in the order given."""
    paper = parse_paper(paper)
    touchpoints = []
    for token in tokens:
        touchpoint = snapshot.touchpoint(token)
        if touchpoint is None:
            raise NotFound(f"token: no touchpoint {token!r}", "token")
        touchpoints.append(touchpoint)
    if not touchpoints:
        raise InvalidInput("tokens: no touchpoint to print", "tokens")
    pdf = Poster(paper)
    first = touchpoints[0]
    pdf.set_lang(PDF_LANG.get(first.lang, "en"))
    title = snapshot.units[first.unit].name if len({tp.unit for tp in touchpoints}) == 1 else "feedback"
    pdf.set_title(f"{title} – QR posters" if len(touchpoints) > 1 else f"{title} – {first.name}")
    for touchpoint in touchpoints:
        pdf.page_for(snapshot, touchpoint, public_url)
    return bytes(pdf.output())
