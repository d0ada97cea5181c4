"""Paper form serials: what is printed on a form, as text and in its QR code, and what a clerk or a
scanner reads back.

A serial is nine random symbols of the receipt alphabet (no 0/O, 1/I) and a check symbol (Luhn mod
32), written `ABCDE-FGHJK`: a clerk's single mistyped symbol or swapped neighbours is caught before
anything is looked up. The response keyed from a form takes an id derived from its serial, so the
same form keyed twice, scanned and keyed, or keyed at two desks is one response.

The QR code holds `FBP1:<serial>:<survey slug>:<version>`: a handheld scanner types that into the
entry screen's serial field, and `serial_from_typed` accepts it as well as the bare serial.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from feedback.errors import InvalidInput, NotFound
from feedback.i18n import N_
from feedback.ingest import RECEIPT_ALPHABET, random_bytes
from feedback.store import Connection
from feedback.store import paper as paper_store

#: The consent line of a contact question that gives none of its own: printed on the form
#: (`feedback.paper_pdf`) and shown beside the box when a form is keyed in.
CONSENT = N_("I agree to be contacted about this feedback")

QR_PREFIX = "FBP1"
PAPER_SIZES = ("A4", "A5")
Paper = Literal["A4", "A5"]
MAX_FORMS_PER_PRINT = 500
_INDEX = {symbol: i for i, symbol in enumerate(RECEIPT_ALPHABET)}
_N = len(RECEIPT_ALPHABET)


def _check_symbol(payload: str) -> str:
    """Luhn mod N over the alphabet: catches any one wrong symbol and most swapped neighbours."""
    factor, total = 2, 0
    for symbol in reversed(payload):
        addend = factor * _INDEX[symbol]
        factor = 1 if factor == 2 else 2
        total += addend // _N + addend % _N
    return RECEIPT_ALPHABET[(_N - total % _N) % _N]


def new_serial() -> str:
    """A fresh serial, `ABCDE-FGHJK` (45 random bits and a check symbol)."""
    payload = "".join(RECEIPT_ALPHABET[b % _N] for b in random_bytes(9))  # 256 % 32 == 0: unbiased
    code = payload + _check_symbol(payload)
    return f"{code[:5]}-{code[5:]}"


def normalise_serial(text: str) -> str | None:
    """A serial as typed ("abcde fghjk", "ABCDEFGHJK") in its printed form, or None when it is not one
    (wrong length, a symbol outside the alphabet, or a check symbol that does not match)."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != 10 or any(symbol not in _INDEX for symbol in code):
        return None
    if _check_symbol(code[:9]) != code[9]:
        return None
    return f"{code[:5]}-{code[5:]}"


def qr_payload(serial: str, survey: str, version: int) -> str:
    """What a form's QR code holds."""
    return f"{QR_PREFIX}:{serial}:{survey}:{version}"


def serial_from_typed(text: str) -> str | None:
    """The serial in what a clerk typed or a scanner read: a QR payload or a bare serial; None if neither."""
    text = text.strip()
    if text.upper().startswith(QR_PREFIX + ":"):
        parts = text.split(":")
        return normalise_serial(parts[1]) if len(parts) >= 2 else None
    return normalise_serial(text)


def response_id(secret: str, serial: str) -> str:
    """The id of the response keyed from this form: the same for every entry of the same form. It is an
    HMAC of the serial with the installation's secret (laid out as a version 8 UUID): serials are printed
    on blank forms, and an id anyone could derive from one could be taken first through the public API."""
    digest = bytearray(hmac.digest(secret.encode(), b"paper-response:" + serial.encode(), "sha256")[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8 (custom)
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(digest)))


def new_forms(
    *,
    touchpoint: str,
    unit: str,
    survey: str,
    survey_version: int,
    lang: str,
    paper: str,
    count: int,
    printed_by: str | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """`count` new form records (not stored yet: see `register`). Raises InvalidInput naming the field."""
    if paper not in PAPER_SIZES:
        raise InvalidInput(f"paper: must be one of {list(PAPER_SIZES)}", "paper")
    if not 1 <= count <= MAX_FORMS_PER_PRINT:
        raise InvalidInput(f"count: must be a whole number from 1 to {MAX_FORMS_PER_PRINT}", "count")
    printed_at = (now or datetime.now(UTC)).isoformat()
    return [
        {
            "serial": new_serial(),
            "touchpoint": touchpoint,
            "unit": unit,
            "survey": survey,
            "survey_version": survey_version,
            "lang": lang,
            "paper": paper,
            "printed_at": printed_at,
            "printed_by": printed_by,
        }
        for _ in range(count)
    ]


def register(conn: Connection, forms: list[dict[str, Any]]) -> None:
    """Store printed forms (a write job's step)."""
    paper_store.register_forms(conn, forms)


def find_form(conn: Connection, typed: str) -> dict[str, Any]:
    """The printed form a clerk's typed serial or a scanned QR names. Raises InvalidInput (`serial`)
    for text that is no serial, NotFound (`serial`) for a serial never printed here."""
    serial = serial_from_typed(typed)
    if serial is None:
        raise InvalidInput("serial: not a form serial (ten symbols such as ABCDE-FGHJK, or its QR code)", "serial")
    found = paper_store.form(conn, serial)
    if found is None:
        raise NotFound(f"serial: no form {serial} was printed here", "serial")
    return found
