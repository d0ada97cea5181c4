"""A person with a pen, for the paper form tests: ticks, crosses, corrected and faint marks, handwriting
and a smudge drawn on rendered form pages (PIL), and a scanner's tilt, shift and noise.

Positions come from `feedback.paper_layout` in millimetres; a page rendered at `dpi` has dpi / 25.4
pixels per millimetre.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from feedback.paper_layout import Box, FormLayout, Rect

DPI = 200
PEN = 0  # black ink
FAINT_PEN = 196  # a pencil barely touching the paper


def render_pages(pdf: bytes, dpi: int = DPI) -> list[Image.Image]:
    """Each page of a PDF as a greyscale image, as a scanner at `dpi` sees a clean print."""
    document = pdfium.PdfDocument(pdf)
    try:
        return [document[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L") for i in range(len(document))]
    finally:
        document.close()


class Pen:
    """Draws on one page image, in the layout's millimetres."""

    def __init__(self, image: Image.Image, dpi: int = DPI, width_mm: float = 0.45) -> None:
        self.image = image
        self.scale = dpi / 25.4
        self.draw = ImageDraw.Draw(image)
        self.width = max(1, round(width_mm * self.scale))

    def _xy(self, x: float, y: float) -> tuple[float, float]:
        return x * self.scale, y * self.scale

    def tick(self, box: Box | Rect, colour: int = PEN) -> None:
        r = box.rect if isinstance(box, Box) else box
        points = [
            self._xy(r.x + r.w * 0.15, r.y + r.h * 0.5),
            self._xy(r.x + r.w * 0.4, r.y + r.h * 0.85),
            self._xy(r.x + r.w * 1.05, r.y - r.h * 0.15),
        ]
        self.draw.line(points, fill=colour, width=self.width, joint="curve")

    def cross(self, box: Box | Rect, colour: int = PEN) -> None:
        r = box.rect if isinstance(box, Box) else box
        self.draw.line(
            [self._xy(r.x + 0.4, r.y + 0.4), self._xy(r.right - 0.4, r.bottom - 0.4)], fill=colour, width=self.width
        )
        self.draw.line(
            [self._xy(r.x + 0.4, r.bottom - 0.4), self._xy(r.right - 0.4, r.y + 0.4)], fill=colour, width=self.width
        )

    def fill(self, box: Box | Rect) -> None:
        """A box filled out completely: a corrected answer."""
        r = box.rect if isinstance(box, Box) else box
        self.draw.rectangle([self._xy(r.x, r.y), self._xy(r.right, r.bottom)], fill=PEN)

    def write(self, area: Rect, words: int = 6, seed: int = 1) -> None:
        """Handwriting-like scribbles along the first line of a writing area."""
        rng = random.Random(seed)
        x, y = area.x + 3, area.y + 3.5
        for _ in range(words):
            length = rng.uniform(6, 14)
            points = [self._xy(x + i * length / 8, y + rng.uniform(-1.2, 1.2)) for i in range(9)]
            self.draw.line(points, fill=PEN, width=self.width)
            x += length + 3
            if x > area.right - 16:
                x, y = area.x + 3, y + 5

    def smudge(self, area: Rect) -> None:
        """Coffee, a thumb, a fold: most of the area dark and blotchy."""
        rng = random.Random(7)
        for _ in range(40):
            cx, cy = rng.uniform(area.x, area.right), rng.uniform(area.y + area.h * 0.2, area.bottom)
            radius = rng.uniform(1.5, 4.0)
            self.draw.ellipse(
                [self._xy(cx - radius, cy - radius), self._xy(cx + radius, cy + radius)], fill=rng.choice([40, 90, 140])
            )


def scanned(
    image: Image.Image,
    *,
    degrees: float = 0.0,
    shift_mm: tuple[float, float] = (0, 0),
    noise: float = 0.0,
    dpi: int = DPI,
    seed: int = 3,
) -> Image.Image:
    """What a scanner hands back: the page a little turned and shifted, with sensor noise."""
    scale = dpi / 25.4
    out = image.rotate(
        degrees, resample=Image.Resampling.BICUBIC, fillcolor=255, translate=(shift_mm[0] * scale, shift_mm[1] * scale)
    )
    if noise:
        pixels = np.asarray(out, dtype=np.float32)
        pixels = pixels + np.random.default_rng(seed).normal(0, noise, pixels.shape)
        out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return out


def as_pdf(images: list[Image.Image], dpi: int = DPI) -> bytes:
    """Pages as a scanner's PDF: one image per page."""
    buffer = io.BytesIO()
    first, *rest = [image.convert("L") for image in images]
    first.save(buffer, format="PDF", save_all=True, append_images=rest, resolution=dpi)
    return buffer.getvalue()


def answer_box(layout: FormLayout, key: str, value) -> Box:
    block = layout.question(key)
    assert block is not None, key
    return next(box for box in block.boxes if box.value == value)


def date_boxes(layout: FormLayout, day: int, month: int, year: int) -> list[Box]:
    grid = layout.date
    pick = lambda boxes, value: next(box for box in boxes if box.value == value)  # noqa: E731
    return [
        pick(grid.day_tens, day // 10),
        pick(grid.day_units, day % 10),
        pick(grid.months, month),
        pick(grid.years, year),
    ]
