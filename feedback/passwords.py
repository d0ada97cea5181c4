"""Passwords of the manager web app's users: argon2id hashes.

Hashing is slow on purpose: callers on the event loop run these functions in a thread, and the
writer thread is handed a ready hash, never a password. How slow is the `password_hashing` setting
(`PROFILES`), chosen once per process by `use_hashing` (the app and the command line call it with their
settings): every app of one process is built from the same environment.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from feedback.errors import InvalidInput

MIN_PASSWORD = 8
MAX_PASSWORD = 1024

# argon2-cffi's default is RFC 9106's second recommendation; OWASP's least is its cheapest argon2id
# set-up that is still recommended (about a sixth of the CPU and a third of the memory).
PROFILES = {
    "standard": {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4},
    "minimum": {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1},
}
_hasher = PasswordHasher(**PROFILES["standard"])


def use_hashing(profile: str) -> None:
    """Hash new passwords (and recovery codes) with `profile`'s cost from now on, in this process.
    Hashes of any cost still verify; `needs_rehash` flags those of another cost."""
    global _hasher
    wanted = PROFILES[profile]
    if (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism) != tuple(wanted.values()):
        _hasher = PasswordHasher(**wanted)
        _dummy_hash.cache_clear()


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
    """Whether a stored hash was made with other parameters than today's (rehash at the next sign-in)."""
    return bool(password_hash) and _hasher.check_needs_rehash(password_hash or "")


def check_password(password: str) -> None:
    """400 naming `password` unless it has between MIN_PASSWORD and MAX_PASSWORD characters."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password: at most {MAX_PASSWORD} characters", "password")
