"""Phone numbers for SMS: one written form, and a keyed hash that stands for a number once it is gone.

A number is taken in international form only (`+` or `00`, then 8 to 15 digits, the first not 0; spaces,
dashes, dots, slashes and brackets are allowed): without its country code a number cannot be sent to,
and the core knows no country's numbering plan. A bare run of digits is no number: in free text it may
be a date, a time or a national number, and guessing its country would send to a stranger. `phone_key`
is an HMAC-SHA256 with the installation's secret, so the per-day limit and STOP hold for a number after
it has been erased, while nobody holding the database alone can test a guessed number against them.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from feedback.errors import InvalidInput

MIN_DIGITS, MAX_DIGITS = 8, 15
_SEPARATORS = re.compile(r"[\s().\-/]")
_SEPARATOR_CHARS = " \t\r\n().-/"
# A number inside free text (a call-back contact such as "Иван, +7 914 123-45-67"): its `+` or `00` is
# required, and it starts where no other digit or sign is written just before it.
_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)\d[\d\s().\-/]{6,24}\d")
PHONE_RULE = "an international number: + (or 00) and 8 to 15 digits, e.g. +84912345678"


def normalise_phone(text: str, field: str = "phone", *, prefixed: bool = True) -> str:
    """`text` as `+` and its digits; InvalidInput naming `field` when it is not an international number.
    `prefixed=False` also takes the digits alone, as a gateway reports the sender of a message it received
    (it knows the country); what a person typed needs its `+` or `00`."""
    if not isinstance(text, str):
        raise InvalidInput(f"{field}: {PHONE_RULE}", field)
    raw = _SEPARATORS.sub("", text.strip())
    if raw.startswith("+"):
        raw = raw[1:]
    elif raw.startswith("00"):
        raw = raw[2:]
    elif prefixed:
        raise InvalidInput(f"{field}: {PHONE_RULE}", field)
    if not (MIN_DIGITS <= len(raw) <= MAX_DIGITS and raw.isascii() and raw.isdigit() and raw[0] != "0"):
        raise InvalidInput(f"{field}: {PHONE_RULE}", field)
    return "+" + raw


def find_phone(text: str | None) -> str | None:
    """The one international number (written with `+` or `00`) in `text`, normalised; None when there is
    none, or several different ones (which of them is the respondent's is a guess)."""
    text = text or ""
    found = set()
    for match in _CANDIDATE.finditer(text):
        if match.group(0).startswith("00") and text[: match.start()].rstrip(_SEPARATOR_CHARS)[-1:].isdigit():
            continue  # "8 914 0079 145 550": the 00 is inside a longer run of digits, no prefix
        try:
            found.add(normalise_phone(match.group(0).rstrip()))
        except InvalidInput:
            continue
    return found.pop() if len(found) == 1 else None


def phone_key(secret: str, phone: str) -> str:
    """The keyed hash of a normalised number (128 bits, hex)."""
    return hmac.new(secret.encode(), b"sms-phone:" + phone.encode(), hashlib.sha256).hexdigest()[:32]
