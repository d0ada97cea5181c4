"""Signed case links: `/s/{token}?case=REF&sig=…`.

A case reference on a rating is only trusted when the server itself handed it out: a link or QR code
it signed, a kiosk invitation it delivered, or an integration that authenticated. Only a trusted
(verified) reference can make a later rating of the same case a duplicate; otherwise anyone who knew
a case number could rate it first and push the citizen's own rating out of the rates.

The signature is an HMAC-SHA256 with the installation's secret over the touchpoint's token and the
case reference, cut to 72 bits and written URL-safe (12 characters), short enough for a QR code on a
receipt. A guess costs a rate-limited request and the sender never learns whether it was right.
"""

from __future__ import annotations

import base64
import hmac

import msgspec

from feedback.qr import survey_url

SIG_BYTES = 9  # 72 bits: 12 base64url characters, no padding
MAX_SIG_LENGTH = 64  # anything longer is no signature of ours; never worth hashing


def case_sig(secret: str, token: str, case_ref: str) -> str:
    """The signature of a case reference at one touchpoint (its canonical token, not the short code)."""
    # A JSON pair, so no (token, case) split can collide with another.
    message = b"case-link:" + msgspec.json.encode([token, case_ref])
    digest = hmac.digest(secret.encode(), message, "sha256")[:SIG_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def case_sig_valid(secret: str, token: str, case_ref: str | None, sig: str | None) -> bool:
    """Whether `sig` is this server's signature of `case_ref` at `token` (compared in constant time)."""
    if not case_ref or not sig or len(sig) > MAX_SIG_LENGTH:
        return False
    return hmac.compare_digest(sig.encode(), case_sig(secret, token, case_ref).encode())


def case_link(public_url: str, token: str, case_ref: str, secret: str) -> tuple[str, str]:
    """(signed survey URL, signature) for a case at a touchpoint."""
    sig = case_sig(secret, token, case_ref)
    return survey_url(public_url, token, case_ref, sig), sig
