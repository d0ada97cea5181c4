"""Phone numbers for SMS: one written form, and a keyed hash that stands for a number once it is gone.

A number is taken in international form only (`+`, then 8 to 15 digits, the first not 0; `00` for `+`
and spaces, dashes, dots, slashes and brackets are allowed): without its country code a number cannot
be sent to, and the core knows no country's numbering plan. `phone_key` is an HMAC-SHA256 with the
installation's secret, so the per-day limit and STOP hold for a number after it has been erased,
while nobody holding the database alone can test a guessed number against them.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from feedback.errors import InvalidInput

MIN_DIGITS, MAX_DIGITS = 8, 15
_SEPARATORS = re.compile(r"[\s().\-/]")
# A run that may be a number inside free text (a call-back contact such as "Иван, +7 914 123-45-67").
_CANDIDATE = re.compile(r"(?:\+|\b00)?\d[\d\s().\-/]{6,24}\d")
PHONE_RULE = "an international number: + and 8 to 15 digits, e.g. +84912345678"


def normalise_phone(text: str, field: str = "phone") -> str:
    """`text` as `+` and its digits; InvalidInput naming `field` when it is not an international number."""
    if not isinstance(text, str):
        raise InvalidInput(f"{field}: {PHONE_RULE}", field)
    raw = _SEPARATORS.sub("", text.strip())
    if raw.startswith("+"):
        raw = raw[1:]
    elif raw.startswith("00"):
        raw = raw[2:]
    if not (MIN_DIGITS <= len(raw) <= MAX_DIGITS and raw.isascii() and raw.isdigit() and raw[0] != "0"):
        raise InvalidInput(f"{field}: {PHONE_RULE}", field)
    return "+" + raw


def find_phone(text: str | None) -> str | None:
    """The first international number written in `text` (normalised), or None."""
    for match in _CANDIDATE.finditer(text or ""):
        try:
            return normalise_phone(match.group(0))
        except InvalidInput:
            continue
    return None


def phone_key(secret: str, phone: str) -> str:
    """The keyed hash of a normalised number (128 bits, hex)."""
    return hmac.new(secret.encode(), b"sms-phone:" + phone.encode(), hashlib.sha256).hexdigest()[:32]
