"""Two-factor sign-in for local accounts: TOTP codes (RFC 6238, pyotp) and single-use recovery codes.

A user switches TOTP on at /manage/account by scanning a QR code of the otpauth URI and confirming a
current code; ten recovery codes are shown once and kept only as argon2id hashes. The secret is stored
encrypted with a key derived from the installation's secret (`FEEDBACK_SECRET` or the file beside the
database), shown only while it is being set up, and never logged: the audit log holds the SHA-256 of the
stored value only. A code is accepted in the 30-second step it belongs to and one step either side
(clock drift), and each step once: the step of the last accepted code is kept, and a code of that step
or an earlier one is refused (a replay). Enabling, disabling and spending a recovery code are audit
entries of the user ("2fa_enabled", "2fa_disabled", "recovery_code_used", "recovery_codes_renewed").
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from feedback import audit, qr, user_admin
from feedback.catalog import Snapshot
from feedback.passwords import hash_password, verify_password
from feedback.store import Connection
from feedback.store import users as user_store

ISSUER = "Feedback"
RECOVERY_CODES = 10
# Codes of the step before and after the current one are accepted too: phones' clocks drift.
DRIFT_STEPS = 1
# A recovery code: two groups of five letters and digits that cannot be mistaken for one another.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUP = 5
# How long a session may wait for its second step (the code), or for two-factor sign-in to be set up.
CODE_STEP_TIME = timedelta(minutes=10)
ENROL_STEP_TIME = timedelta(minutes=30)
# The stages a session can wait in (sessions.stage): the code after the password, or setting TOTP up.
CODE_STAGE = "2fa"
ENROL_STAGE = "enrol"


def required(setting: str, role: str) -> bool:
    """Whether FEEDBACK_REQUIRE_2FA (`none`, `admin`, `all`) asks a user of `role` for a second factor."""
    return setting == "all" or (setting == "admin" and role == "admin")


def stage_after_password(conn: Connection, name: str, require: str) -> str | None:
    """The step a user still owes once its password was right: the code when TOTP is on, the set-up
    when its role requires two-factor sign-in and it has none, else None (signed in)."""
    found = user_store.two_factor(conn, name)
    if found is None:
        return None
    if found["totp_secret"]:
        return CODE_STAGE
    return ENROL_STAGE if required(require, found["role"]) else None


def status(conn: Connection, name: str) -> dict[str, Any]:
    """What a page may show of a user's second factor: enabled, enabled_at, codes_left."""
    found = user_store.two_factor(conn, name) or {}
    enabled = bool(found.get("totp_secret"))
    return {
        "enabled": enabled,
        "enabled_at": found.get("totp_enabled_at") if enabled else None,
        "codes_left": recovery_codes_left(found.get("recovery_codes")) if enabled else 0,
    }


# -- secrets and codes -----------------------------------------------------------------------------


def new_secret() -> str:
    """A new TOTP secret (base32, 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, user: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as a PNG data: URI (made for this page only, never cached: it holds the secret)."""
    png = qr.png_bytes(uri, "M", 264)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def grouped(secret: str) -> str:
    """The secret in groups of four, as a person types it into an authenticator app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"feedback totp secret").derive(key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret: str, key: str) -> str:
    """The TOTP secret encrypted (and authenticated) with a key derived from the installation's secret."""
    return _fernet(key).encrypt(secret.encode("ascii")).decode("ascii")


def unseal(sealed: str | None, key: str) -> str | None:
    """The TOTP secret, or None when there is none or it was sealed with another installation secret."""
    if not sealed:
        return None
    try:
        return _fernet(key).decrypt(sealed.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        return None


def clean_code(text: str) -> str:
    """What a person typed, without spaces and dashes, in lower case."""
    return "".join(ch for ch in text.strip().lower() if ch not in " -\u00a0")[:64]


def is_totp_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()


def code_step(secret: str | None, code: str, at: datetime) -> int | None:
    """The time step `code` belongs to (the current one or one either side), or None when it fits none."""
    if not secret or not is_totp_code(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(at)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten fresh recovery codes, `xxxxx-xxxxx` (about 49 bits each)."""
    return [
        "-".join("".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP)) for _group in range(2))
        for _ in range(RECOVERY_CODES)
    ]


def hash_recovery_codes(codes: list[str]) -> str:
    """The codes' argon2id hashes as the JSON list the user's row keeps (slow: run it in a thread)."""
    return json.dumps([hash_password(clean_code(code)) for code in codes])


def recovery_codes_left(stored: str | None) -> int:
    return len(json.loads(stored)) if stored else 0


def matching_recovery_code(stored: str | None, code: str) -> str | None:
    """The stored hash an unused recovery code matches, or None (slow: up to ten argon2 checks, so run
    it in a thread; a spent code is no longer in the list)."""
    code = clean_code(code)
    if not stored or is_totp_code(code) or len(code) != 2 * RECOVERY_GROUP:
        return None
    return next((hashed for hashed in json.loads(stored) if verify_password(hashed, code)), None)


# -- changes (in the writer's transaction) ------------------------------------------------------------


def enable(conn: Connection, name: str, sealed: str, step: int, hashed_codes: str, at: datetime) -> bool:
    """Switch TOTP on, logged; False when it is on already (another tab confirmed first)."""
    found = user_store.two_factor(conn, name)
    if found is None or found["totp_secret"]:
        return False
    with audit.tracked(conn, "user", name, "2fa_enabled"):
        user_store.enable_totp(conn, name, sealed, at.isoformat(), hashed_codes, step)
    return True


def disable(conn: Connection, name: str) -> bool:
    """Switch TOTP off, logged (the actor says whether the user or an administrator did); False when off."""
    found = user_store.two_factor(conn, name)
    if found is None or not found["totp_secret"]:
        return False
    with audit.tracked(conn, "user", name, "2fa_disabled"):
        user_store.disable_totp(conn, name)
    return True


def take_step(conn: Connection, name: str, step: int) -> bool:
    """Accept a code's time step once: False for a replay (that step or a later one was taken)."""
    return user_store.take_totp_step(conn, name, step)


def spend_recovery_code(conn: Connection, name: str, stored: str, matched: str) -> bool:
    """Spend one recovery code, logged: False when it was spent meanwhile (the list changed)."""
    remaining = [hashed for hashed in json.loads(stored) if hashed != matched]
    with audit.tracked(conn, "user", name, "recovery_code_used"):
        spent = user_store.swap_recovery_codes(conn, name, stored, json.dumps(remaining))
    return spent


def renew_recovery_codes(conn: Connection, name: str, stored: str | None, hashed_codes: str) -> bool:
    """Replace every recovery code with new ones, logged; False when they changed meanwhile."""
    with audit.tracked(conn, "user", name, "recovery_codes_renewed"):
        renewed = user_store.swap_recovery_codes(conn, name, stored or "[]", hashed_codes)
    return renewed


def reset_by_admin(conn: Connection, actor: user_admin.Actor, snapshot: Snapshot, name: str) -> bool:
    """An admin switches TOTP off for a user it administers (one who lost its phone and its recovery
    codes), logged with the admin as the actor; NotFound naming `user` for anyone else."""
    user_admin.visible_user(conn, actor, name, snapshot)
    return disable(conn, name)


def step_time(stage: str) -> timedelta:
    """How long a session may wait in `stage` before it expires."""
    return CODE_STEP_TIME if stage == CODE_STAGE else ENROL_STEP_TIME
