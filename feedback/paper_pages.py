"""The pages of scanned paper forms, from the files a scanner writes: every page of a PDF (rendered in grey
at 200 dpi with PDFium), and every frame of an image (PNG, JPEG, TIFF, a multi-page TIFF), as greyscale
numpy arrays for `feedback.paper_scan`. Files are checked before any page is read, so a folder with one
file that is neither PDF nor image is refused whole, naming that file.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageSequence, UnidentifiedImageError

SCAN_DPI = 200  # PDF pages are rendered at this resolution
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# PDFium is not thread-safe: one call into it at a time in this process (two uploads may be read at once).
_PDFIUM = threading.Lock()


class UnreadableInput(Exception):
    """A file that holds no page to read (not a PDF or an image, or a damaged one)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}")
        self.name = name
        self.why = why


def _as_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "P"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        image = background
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def pdf_pages(data: bytes, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """Each page of a PDF, rendered in grey at SCAN_DPI, as (its name, the image)."""
    count = pdf_page_count(data, name)
    for index in range(count):
        with _PDFIUM:
            document = pdfium.PdfDocument(data)
            try:
                image = _as_gray(document[index].render(scale=SCAN_DPI / 72, grayscale=True).to_pil())
            finally:
                document.close()
        yield f"{name} p. {index + 1}", image


def pdf_page_count(data: bytes, name: str) -> int:
    """How many pages a PDF has; UnreadableInput when it is no readable PDF or has none."""
    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as error:
            raise UnreadableInput(name, f"not a readable PDF ({error})") from None
        try:
            count = len(document)
        finally:
            document.close()
    if count == 0:
        raise UnreadableInput(name, "the PDF has no pages")
    return count


def image_pages(data: bytes, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """Each frame of an image file (a TIFF may hold many pages), in grey."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnreadableInput(name, f"not a readable image ({error})") from None
    frames = getattr(image, "n_frames", 1)
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        yield (f"{name} p. {index + 1}" if frames > 1 else name), _as_gray(frame)


def check_file(data: bytes, name: str) -> None:
    """UnreadableInput unless the file is a PDF with pages or an image PIL can open."""
    if data[:5] == b"%PDF-":
        pdf_page_count(data, name)
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UnreadableInput(name, "neither a PDF nor an image that can be read (png, jpg, tiff)") from None


def file_pages(data: bytes, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """The pages of an uploaded or named file: a PDF by its first bytes, else an image."""
    if data[:5] == b"%PDF-":
        return pdf_pages(data, name)
    return image_pages(data, name)


def scan_files(path: Path) -> list[Path]:
    """The files to read at `path`: the file itself, or every PDF and image of a folder (by name), each
    checked first. UnreadableInput naming the file (or folder) otherwise."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".pdf", *IMAGE_SUFFIXES))
        if not files:
            raise UnreadableInput(str(path), "the folder holds no PDF or image (png, jpg, tiff)")
    elif path.is_file():
        files = [path]
    else:
        raise UnreadableInput(str(path), "no such file or folder")
    for file in files:
        check_file(_read(file), str(file))
    return files


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        raise UnreadableInput(str(file), error.strerror or str(error)) from None


def path_pages(files: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    """The pages of files `scan_files` found, one file after another."""
    for file in files:
        yield from file_pages(_read(file), file.name)
