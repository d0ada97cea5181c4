"""QR codes for touchpoints: the URL they encode, and the code as SVG, PNG or a PIL image.

`qrcode` does the encoding; the images are drawn from its module matrix, so a PNG is exactly the
requested size with whole-pixel modules and an SVG is one path. Rendered images are kept in a
small in-process LRU keyed on the encoded text and the parameters.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from urllib.parse import quote
from xml.sax.saxutils import escape

import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

from feedback.errors import InvalidInput

ECC_LEVELS = {"L": ERROR_CORRECT_L, "M": ERROR_CORRECT_M, "Q": ERROR_CORRECT_Q, "H": ERROR_CORRECT_H}
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 64, 2048, 512
MAX_CASE_LENGTH = 128
QUIET_ZONE = 4  # modules of white border the QR specification asks for


def survey_url(public_url: str, token: str, case: str | None = None, sig: str | None = None) -> str:
    """`{public_url}/s/{token}`, with `?case=REF` for a case-specific code (receipts, refusal slips) and
    `&sig=…` when the server signed that case (see `case_links`)."""
    url = f"{public_url.rstrip('/')}/s/{quote(token, safe='')}"
    if case:
        url += f"?case={quote(case, safe='')}"
        if sig:
            url += f"&sig={quote(sig, safe='')}"
    return url


def display_url(url: str) -> str:
    """A URL as a person would type it: without the scheme."""
    return url.split("://", 1)[-1]


def parse_size(value: str | int | None) -> int:
    if value is None or value == "":
        return DEFAULT_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"size: must be an integer from {MIN_SIZE} to {MAX_SIZE}", "size") from None
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidInput(f"size: must be an integer from {MIN_SIZE} to {MAX_SIZE}", "size")
    return size


def parse_ecc(value: str | None) -> str:
    if value is None or value == "":
        return "M"
    ecc = value.strip().upper()
    if ecc not in ECC_LEVELS:
        raise InvalidInput("ecc: must be one of L, M, Q, H", "ecc")
    return ecc


def parse_case(value: str | None, field: str = "case") -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_CASE_LENGTH:
        raise InvalidInput(f"{field}: at most {MAX_CASE_LENGTH} characters", field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(f"{field}: control characters are not allowed", field)
    return value


def matrix(data: str, ecc: str = "M") -> list[list[bool]]:
    """The module matrix of `data`, quiet zone included (True is a dark module)."""
    code = qrcode.QRCode(version=None, error_correction=ECC_LEVELS[ecc], box_size=1, border=QUIET_ZONE)
    code.add_data(data)
    code.make(fit=True)
    return code.get_matrix()


def pil_image(data: str, ecc: str = "M", scale: int = 1) -> Image.Image:
    """The code as a black-and-white PIL image, `scale` pixels per module."""
    rows = matrix(data, ecc)
    n = len(rows)
    image = Image.frombytes("L", (n, n), bytes(0 if dark else 255 for row in rows for dark in row))
    if scale > 1:
        image = image.resize((n * scale, n * scale), Image.Resampling.NEAREST)
    return image


def png_bytes(data: str, ecc: str = "M", size: int = DEFAULT_SIZE) -> bytes:
    """A `size` x `size` PNG with whole-pixel modules, centred (any slack widens the quiet zone)."""
    modules = len(matrix(data, ecc))
    scale = size // modules
    if scale < 1:
        raise InvalidInput(f"size: this code needs at least {modules} pixels", "size")
    code = pil_image(data, ecc, scale)
    canvas = Image.new("L", (size, size), 255)
    offset = (size - code.width) // 2
    canvas.paste(code, (offset, offset))
    buffer = io.BytesIO()
    canvas.convert("1").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def svg_bytes(data: str, ecc: str = "M", size: int = DEFAULT_SIZE) -> bytes:
    """An SVG `size` pixels wide: one path in module units, horizontal runs merged."""
    rows = matrix(data, ecc)
    n = len(rows)
    parts = []
    for y, row in enumerate(rows):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    title = escape(data)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{size}" height="{size}" '
        f'viewBox="0 0 {n} {n}" shape-rendering="crispEdges" role="img">'
        f"<title>{title}</title>"
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/>'
        "</svg>\n"
    )
    return svg.encode()


class ImageCache:
    """A thread-safe LRU of rendered images; `get` never renders, so a hit costs no thread hop."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


RENDERERS = {"png": png_bytes, "svg": svg_bytes}
cache = ImageCache()


def render(fmt: str, data: str, ecc: str = "M", size: int = DEFAULT_SIZE) -> bytes:
    """The image from the cache, else rendered and cached."""
    key = (fmt, data, ecc, size)
    value = cache.get(key)
    if value is None:
        value = RENDERERS[fmt](data, ecc, size)
        cache.put(key, value)
    return value
