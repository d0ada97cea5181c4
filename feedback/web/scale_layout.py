"""How a rating scale fits a phone: side by side when its box is wide enough, else one option per line.

CSS alone cannot say "all options in one row, or none": flex wrapping leaves a scale broken 4 + 1, and
squeezing labels breaks words mid-word. So the page estimates, once per cached page variant, the width
the options need side by side — each option as wide as its face or its longest label word in bold (as
when chosen), in Noto Sans (shipped in feedback/fonts/, and the widest of the common phone fonts) — and
names it in a class `fit-N` (N rem, even); the survey CSS holds one container query per N. The sizes
below are the CSS's (feedback/web/static/survey.css): change both together.
"""

import math
import re
from functools import cache
from pathlib import Path

FONT = Path(__file__).resolve().parent.parent / "fonts" / "NotoSans-Bold.ttf"
LABEL_REM = 0.75  # .lbl font-size
FACE_REM = 2.5  # .face svg
STAR_REM = 1.05  # .style-stars .face font-size; a star is at most 1em wide, and the box holds `scale` of them
NUMBER_REM = 1.5  # .style-numbers .face font-size
OPTION_EXTRA_REM = 0.2 + 0.25  # an option's padding and border, both sides
GAP_REM = 0.3  # .scale gap
FIT_STEP, FIT_MIN, FIT_MAX = 2, 12, 36  # the container queries of survey.css: fit-12 … fit-36
# Scripts that break between characters: a line may end after any of them.
CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")


@cache
def _metrics() -> tuple[dict[int, str], dict[str, tuple[int, int]], int]:
    from fontTools.ttLib import TTFont  # loaded with the first page rendered, not with the app

    font = TTFont(FONT, lazy=True)
    return font.getBestCmap(), font["hmtx"].metrics, font["head"].unitsPerEm


def text_em(text: str) -> float:
    """Width of `text` in em (bold Noto Sans); a character the font lacks counts as 1 em."""
    cmap, advances, units = _metrics()
    return sum(advances[cmap[ord(ch)]][0] if ord(ch) in cmap else units for ch in text) / units


def longest_word_em(label: str) -> float:
    """The widest piece of a label no line may break: a word, or two characters of Chinese text (so that a
    closing mark never starts a line alone)."""
    widths = [0.0]
    for word in label.split():
        widths.append(min(text_em(word), 2.0) if CJK.search(word) else text_em(word))
    return max(widths)


def symbol_rem(style: str, scale: int, value: int) -> float:
    """Width of an option's face: a face picture, a row of stars (up to five), or the number."""
    if style == "stars" and scale <= 5:
        return STAR_REM * scale
    if style in ("faces", "thumbs"):
        return FACE_REM
    return NUMBER_REM * text_em(str(value))


def scale_fit(style: str, scale: int, labels: list[str]) -> str:
    """The class for a scale whose options (1..n) carry these labels: "" when they fit side by side in any box,
    `fit-N` when they need N rem, "fit-list" when they need more than the widest page gives."""
    if not labels:
        return ""
    widest = max(
        max(symbol_rem(style, scale, value), LABEL_REM * longest_word_em(label))
        for value, label in enumerate(labels, start=1)
    )
    needed = len(labels) * (widest + OPTION_EXTRA_REM) + (len(labels) - 1) * GAP_REM
    step = math.ceil(needed / FIT_STEP) * FIT_STEP
    if step < FIT_MIN:
        return ""
    return f"fit-{step}" if step <= FIT_MAX else "fit-list"
