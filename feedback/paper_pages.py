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
from PIL import Image

SCAN_DPI = 200  # PDF pages are rendered at this resolution
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
IMAGE_FORMATS = ["PNG", "JPEG", "TIFF"]  # what scanners write; no other PIL decoder sees an upload
MAX_SIDE = 3600  # px: a PDF page is rendered no larger (feedback.paper_scan reads no better above it)
MAX_PIXELS = 40_000_000  # an A4 page at 600 dpi is 35 M; more is no scan but a decompression bomb
MIN_SIDE = 200  # px: a narrower strip holds no form
MAX_RATIO = 4  # a page's long side over its short side: paper is about 1.4
MAX_PAGES = 200  # pages of one file (and of one upload)
# PDFium is not thread-safe: one call into it at a time in this process (two uploads may be read at once).
_PDFIUM = threading.Lock()


class UnreadableInput(Exception):
    """A file that holds no page to read (not a PDF or an image, or a damaged one)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}")
        self.name = name
        self.why = why


class TooManyPages(UnreadableInput):
    """A file (or an upload) of more than MAX_PAGES pages: to be sent in parts."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"more than {MAX_PAGES} pages: send the scans in parts")


def _checked_size(width: float, height: float, name: str) -> None:
    """UnreadableInput unless a page of this size in px can be a scanned form."""
    if width * height > MAX_PIXELS:
        raise UnreadableInput(name, f"{int(width)} × {int(height)} px is more than {MAX_PIXELS:,} pixels")
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_RATIO * min(width, height):
        raise UnreadableInput(name, f"{int(width)} × {int(height)} px is no page of a form")


def _as_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "P"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        image = background
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def pdf_pages(data: bytes, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """Each page of a PDF, rendered in grey at SCAN_DPI (smaller when its long side would pass MAX_SIDE),
    as (its name, the image); UnreadableInput naming the page when it cannot be rendered."""
    count = pdf_page_count(data, name)
    for index in range(count):
        page_name = f"{name} p. {index + 1}"
        with _PDFIUM:
            try:
                document = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as error:
                raise UnreadableInput(name, f"not a readable PDF ({error})") from None
            try:
                page = document[index]
                width, height = page.get_size()  # in points (1/72 in)
                if min(width, height) <= 0:
                    raise UnreadableInput(page_name, "the page has no size")
                scale = min(SCAN_DPI / 72, (MAX_SIDE - 1) / max(width, height))  # PDFium rounds up
                _checked_size(width * scale, height * scale, page_name)
                image = _as_gray(page.render(scale=scale, grayscale=True).to_pil())
            except pdfium.PdfiumError as error:
                raise UnreadableInput(page_name, f"the page cannot be rendered ({error})") from None
            finally:
                document.close()
        yield page_name, image


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
    if count > MAX_PAGES:
        raise TooManyPages(name)
    return count


def _open_image(data: bytes, name: str) -> tuple[Image.Image, int]:
    """The image (PNG, JPEG or TIFF) and its number of frames, its first frame's size checked, nothing
    decoded yet; UnreadableInput otherwise."""
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        frames = getattr(image, "n_frames", 1)
    except Exception:  # a damaged file may fail anywhere in a decoder (DecompressionBombError included)
        raise UnreadableInput(name, "neither a PDF nor an image that can be read (png, jpg, tiff)") from None
    if frames > MAX_PAGES:
        raise TooManyPages(name)
    _checked_size(*image.size, name)
    return image, frames


def image_pages(data: bytes, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """Each frame of an image file (a TIFF may hold many pages), in grey; UnreadableInput naming the page
    that cannot be read or is no page of a form (too many pixels, a strip)."""
    image, frames = _open_image(data, name)
    for index in range(frames):
        page_name = f"{name} p. {index + 1}" if frames > 1 else name
        try:
            image.seek(index)
            _checked_size(*image.size, page_name)
            gray = _as_gray(image)
        except UnreadableInput:
            raise
        except Exception as error:  # a later frame may be damaged, or a bomb, in any decoder
            raise UnreadableInput(page_name, f"not a readable image ({error})") from None
        yield page_name, gray


def check_file(data: bytes, name: str) -> int:
    """How many pages the file has: UnreadableInput unless it is a PDF with pages or a PNG, JPEG or TIFF
    image PIL can open, with at most MAX_PAGES pages and a first page of a sensible size."""
    if data[:5] == b"%PDF-":
        return pdf_page_count(data, name)
    image, frames = _open_image(data, name)
    try:
        image.verify()
    except Exception:  # a damaged file may fail anywhere in a decoder
        raise UnreadableInput(name, "neither a PDF nor an image that can be read (png, jpg, tiff)") from None
    finally:
        image.close()
    return frames


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
