"""Passwords of the manager web app's users: argon2id hashes, with the library's recommended parameters.

Hashing is slow on purpose: callers on the event loop run these functions in a thread, and the
writer thread is handed a ready hash, never a password.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from feedback.errors import InvalidInput

MIN_PASSWORD = 8
MAX_PASSWORD = 1024

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Unknown names are verified against this, so a wrong name costs as long as a wrong password.
    Made on first use, not on import: every command and server process imports this module."""
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str | None) -> bool:
    """Whether a stored hash was made with weaker parameters than today's (rehash at the next sign-in)."""
    return bool(password_hash) and _hasher.check_needs_rehash(password_hash or "")


def check_password(password: str) -> None:
    """400 naming `password` unless it has between MIN_PASSWORD and MAX_PASSWORD characters."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password: at most {MAX_PASSWORD} characters", "password")
