"""Reporting upward between installations, the parent's side: pairing, receiving signed daily reports, and
showing each child's tree as a subtree of the parent's own.

A parent (a ministry, a customs administration) pairs with a child installation (a department) by a one-time
code it prints (`feedback federation invite --unit CODE`): the child's tree will hang under that unit. The
child sends its Ed25519 public key with the code (`POST /api/v1/federation/join`) and gets an id; from then
on it sends one report per closed day (`POST /api/v1/federation/reports`), signed over the exact body, which
the parent verifies against that key before it reads anything else.

A report carries aggregates only: the unit tree (codes, names, parent), rollups by unit × service × day,
objective statuses and corrective-action counts. It is decoded into the Structs below, which refuse any key
they do not name, so no response, comment, contact or officer can be stored here even if a child sent one.

The child's units become units of the parent named "<child>:<code>" (no unit made here has ':' in its code),
so every rate, objective, dashboard and review pack over the parent unit covers them: their figures are read
from `federation_rollups` beside the parent's own rollups (`feedback.store.responses.rollup_source`, the one
place where the two meet). A day sent again replaces what was stored for it; the same content again changes
nothing.

This module also holds what both sides share: the keys, the signature and the content hash.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from feedback import audit
from feedback.catalog import Snapshot
from feedback.errors import Conflict, InvalidInput, NotFound
from feedback.models import LANGUAGES
from feedback.store import Connection
from feedback.store import federation as federation_store
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store
from feedback.store.responses import REPORTED_MARK, ROLLUP_MEASURES

#: The version of the report format (`"version"` in every report).
REPORT_VERSION = 1
INVITE_DAYS = 7
# Wrong pairing codes one client may try within the window.
JOIN_GUESSES = 10
JOIN_GUESS_WINDOW = timedelta(minutes=15)
# A pairing code: 20 symbols that cannot be mistaken for one another (100 bits), in groups of five.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_SYMBOLS = 20
CODE_GROUP = 5
CHILD_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CHILD_ID_SYMBOLS = 6
CHILD_HEADER = "X-Feedback-Child"
SIGNATURE_HEADER = "X-Feedback-Signature"
SIGNATURE_PREFIX = "ed25519="
#: The largest report body the parent reads (one day of a large child: every unit × service rated that day).
MAX_REPORT_BODY = 4 * 1024 * 1024
MAX_UNITS = 5000
MAX_TEXT = 200


def now() -> datetime:
    return datetime.now(UTC)


# -- keys, signatures and content hashes (both sides) -----------------------------------------------------


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half of a key pair as the parent stores it: the 32 raw bytes in base64."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key(text: str, field: str = "public_key") -> Ed25519PublicKey:
    """A stored or posted public key (base64 of the 32 raw bytes)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeEncodeError):
        raise InvalidInput(f"{field}: an Ed25519 public key, the 32 raw bytes in base64", field) from None


def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"feedback federation key").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal_private_key(key: Ed25519PrivateKey, secret: str) -> str:
    """The private key encrypted (and authenticated) with a key derived from the installation's secret, as
    two-factor secrets are kept: it is never stored or logged in the clear."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return _fernet(secret).encrypt(raw).decode("ascii")


def unseal_private_key(sealed: str, secret: str) -> Ed25519PrivateKey | None:
    """The private key, or None when it was sealed under another installation secret."""
    try:
        return Ed25519PrivateKey.from_private_bytes(_fernet(secret).decrypt(sealed.encode("ascii")))
    except (InvalidToken, ValueError):
        return None


def sign(body: bytes, key: Ed25519PrivateKey) -> str:
    """The `X-Feedback-Signature` value of a body: `ed25519=` and the signature over the exact bytes, in base64."""
    return SIGNATURE_PREFIX + base64.b64encode(key.sign(body)).decode("ascii")


def signature_holds(body: bytes, header: str | None, public_key: str) -> bool:
    """Whether `header` is a valid signature of `body` by the holder of `public_key`."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    try:
        signature = base64.b64decode(header[len(SIGNATURE_PREFIX) :].encode("ascii"), validate=True)
        load_public_key(public_key).verify(signature, body)
    except (InvalidSignature, InvalidInput, ValueError, UnicodeEncodeError):
        return False
    return True


#: Keys of a report that are not its content: the content hash itself and when it was sent.
NOT_CONTENT = ("content_hash", "sent_at")


def canonical(value: Any) -> bytes:
    """The one encoding a report's body and its content hash are written in: JSON with sorted keys."""
    return msgspec.json.encode(value, order="sorted")


def content_hash(report: dict[str, Any]) -> str:
    """SHA-256 of the report's content (every key but NOT_CONTENT), canonically encoded: the same day with
    the same figures has the same hash, whenever it is sent."""
    return hashlib.sha256(canonical({k: v for k, v in report.items() if k not in NOT_CONTENT})).hexdigest()


# -- the report format -----------------------------------------------------------------------------------------

Count = Annotated[int, msgspec.Meta(ge=0)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]


class ReportUnit(msgspec.Struct, forbid_unknown_fields=True):
    """A unit of the child's tree; `parent` null for a root the child declared when it joined."""

    code: Code
    name: Text
    parent: Code | None
    lang: str
    tz: str
    names: dict[str, Text] | None = None


class ReportRollup(msgspec.Struct, forbid_unknown_fields=True):
    """One unit × service of the day: ROLLUP_MEASURES (`service` null for responses that named none)."""

    unit: Code
    service: Code | None
    n: Count
    satisfied: Count
    dissatisfied: Count
    score_n: Count
    score_sum: float
    l1: Count
    l2: Count
    l3: Count
    l4: Count
    l5: Count
    suspect: Count


assert tuple(f for f in ReportRollup.__struct_fields__ if f not in ("unit", "service")) == ROLLUP_MEASURES


class ReportObjective(msgspec.Struct, forbid_unknown_fields=True):
    """An objective of the child's and its status as judged on the day (its period up to that day)."""

    objective: int
    unit: Code
    title: Text | None
    metric: Text
    comparator: Text
    target: float
    period: Text
    period_key: Text
    status: Text
    n: Count
    value: float | None
    ci95: list[float] | None
    titles: dict[str, Text] | None = None
    service: Code | None = None
    indicator: Text | None = None
    date_from: str = msgspec.field(name="from", default="")
    date_to: str = msgspec.field(name="to", default="")


class ReportActions(msgspec.Struct, forbid_unknown_fields=True):
    """A unit's own corrective actions on the day: opened, closed, closed by their due day, still open past
    it at the day's end, call-backs due and reached."""

    unit: Code
    opened: Count
    closed: Count
    closed_on_time: Count
    overdue_open: Count
    callbacks: Count = 0
    callbacks_reached: Count = 0


class Report(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    child: Code
    day: str
    sent_at: str
    content_hash: str
    units: list[ReportUnit]
    rollups: list[ReportRollup]
    objectives: list[ReportObjective] = []
    actions: list[ReportActions] = []


def parse_report(raw: Any) -> Report:
    """A decoded report body, checked: its content hash, the format, its day. InvalidInput names the field."""
    if not isinstance(raw, dict):
        raise InvalidInput("body: a JSON object", "body")
    if raw.get("content_hash") != content_hash(raw):
        raise InvalidInput("content_hash: does not match the report's content", "content_hash")
    try:
        report = msgspec.convert(raw, Report)
    except msgspec.ValidationError as error:
        text = str(error)
        message, _, where = text.partition(" - at `$")
        field = where.rstrip("`").lstrip(".") or "body"
        raise InvalidInput(f"{field}: {message}", field) from None
    if report.version != REPORT_VERSION:
        raise InvalidInput(f"version: this installation reads version {REPORT_VERSION}", "version")
    check_moments(report)
    check_rollups(report)
    return report


#: How far ahead of the parent's clock a report's `sent_at` may be (clocks drift a little).
CLOCK_SKEW = timedelta(minutes=5)
#: The latest offset from UTC of any zone: a child's day may have begun this far ahead of UTC.
LATEST_OFFSET = timedelta(hours=14)


def check_moments(report: Report, at: datetime | None = None) -> None:
    """`day` a real day in the strict YYYY-MM-DD form, begun somewhere on earth; `sent_at` an RFC 3339 time
    with its offset, not ahead of the parent's clock (a later `sent_at` would shield a day from corrections)."""
    at = at or now()
    try:
        day = date.fromisoformat(report.day) if len(report.day) == 10 and report.day[4::3] == "--" else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInput("day: a day (YYYY-MM-DD)", "day")
    latest = (at + LATEST_OFFSET).date()
    if day > latest:
        raise InvalidInput(f"day: {report.day} has not begun anywhere yet ({latest.isoformat()})", "day")
    try:
        sent = datetime.fromisoformat(report.sent_at) if len(report.sent_at) >= 19 else None
    except ValueError:
        sent = None
    if sent is None or sent.tzinfo is None:
        raise InvalidInput("sent_at: an RFC 3339 time with its offset", "sent_at")
    if sent > at + CLOCK_SKEW:
        raise InvalidInput(f"sent_at: {report.sent_at} is ahead of this installation's clock", "sent_at")


def check_rollups(report: Report) -> None:
    """Each rollup's counts as `rollup_measures` makes them: every rated response is one of l1..l5 (their sum is
    n), satisfied and dissatisfied are rated responses of distinct kinds, scores are 0..100 each — so the
    rates the parent shows stay shares between 0 and 1."""
    for index, row in enumerate(report.rollups):
        levels = row.l1 + row.l2 + row.l3 + row.l4 + row.l5
        problem = None
        if levels != row.n:
            problem = f"l1..l5 add up to {levels}, not n ({row.n})"
        elif row.satisfied + row.dissatisfied > row.n:
            problem = f"satisfied + dissatisfied ({row.satisfied + row.dissatisfied}) is more than n ({row.n})"
        elif not (math.isfinite(row.score_sum) and 0 <= row.score_sum <= 100 * row.score_n * (1 + 1e-9)):
            problem = f"score_sum ({row.score_sum}) is not within 0..100 × score_n ({row.score_n})"
        if problem:
            raise InvalidInput(f"rollups[{index}]: {problem}", "rollups")


def valid_zone(tz: str) -> bool:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_tree(report: Report, roots: list[str]) -> list[ReportUnit]:
    """The report's units in tree order (a parent before its children), checked to form the child's own
    tree: each unit hangs from a root it declared when it joined; figures name only these units."""
    if len(report.units) > MAX_UNITS:
        raise InvalidInput(f"units: at most {MAX_UNITS}", "units")
    units = {}
    for unit in report.units:
        if "/" in unit.code or unit.code in units:
            raise InvalidInput(f"units: {unit.code!r} is not a code, or is given twice", "units")
        if unit.lang not in LANGUAGES or not valid_zone(unit.tz):
            raise InvalidInput(f"units: {unit.code!r} needs a language of {list(LANGUAGES)} and a time zone", "units")
        units[unit.code] = unit
    # Each unit's depth below its root, walking up without recursion (a child's tree may be deep).
    depth: dict[str, int] = {}
    for code in units:
        chain = [code]
        while chain[-1] not in depth:
            unit = units[chain[-1]]
            if unit.parent is None:
                if unit.code not in roots:
                    raise InvalidInput(
                        f"units: {unit.code!r} is not a root unit this child declared when it joined", "units"
                    )
                depth[unit.code] = 0
                break
            if unit.parent not in units or unit.parent in chain:
                raise InvalidInput(f"units: the parent of {unit.code!r} is not in the child's tree", "units")
            chain.append(unit.parent)
        for below, code_above in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
            depth[below] = depth[code_above] + 1
    for part, items in (("rollups", report.rollups), ("objectives", report.objectives), ("actions", report.actions)):
        for item in items:
            if item.unit not in units:
                raise InvalidInput(f"{part}: unit {item.unit!r} is outside the child's tree", part)
    return sorted(units.values(), key=lambda unit: (depth[unit.code], unit.code))


# -- the parent: pairing ------------------------------------------------------------------------------------------


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_code(text: str) -> str:
    """A pairing code as typed: without spaces and dashes, in capitals."""
    return "".join(ch for ch in text.strip().upper() if ch not in " -")[:64]


def create_invite(conn: Connection, unit: str, created_by: str | None = None, replace: bool = False) -> tuple[str, str]:
    """A one-time pairing code for a child whose tree will hang under `unit`, valid INVITE_DAYS days.
    Refused (409 naming `unit`) while a child already hangs there, unless `replace`: then the children
    hanging there when the code is used are removed (a child pairing again must not count its past twice).
    Returns (code as printed, expires_at)."""
    if not organisation_store.unit_exists(conn, unit):
        raise NotFound(f"unit: no unit {unit!r}", "unit")
    if REPORTED_MARK in unit:
        raise InvalidInput(f"unit: {unit!r} is a child installation's unit; choose one of this installation's", "unit")
    present = federation_store.children_under(conn, unit)
    if present and not replace:
        raise Conflict(
            f"unit: child installation {', '.join(present)} reports under {unit} already; pass --replace to"
            " replace it when the new child joins (or remove it first with feedback federation remove)",
            "unit",
        )
    issued = now()
    expires = (issued + timedelta(days=INVITE_DAYS)).isoformat()
    symbols = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_SYMBOLS))
    federation_store.drop_expired_invites(conn, issued.isoformat())
    federation_store.insert_invite(conn, hash_code(symbols), unit, issued.isoformat(), created_by, expires, replace)
    after = {"unit": unit, "expires_at": expires, "replace": replace}
    audit.record(conn, "federation_invite", unit, "create", after=after, unit=unit)
    code = "-".join(symbols[i : i + CODE_GROUP] for i in range(0, CODE_SYMBOLS, CODE_GROUP))
    return code, expires


class JoinRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What a child posts to pair: the code it was given, its public key, its name and its root units."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    public_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
    units: Annotated[list[Code], msgspec.Meta(min_length=1, max_length=100)]


def new_child_id(taken: set[str]) -> str:
    """A short id for a new child, none given before: the prefix of its units' codes at the parent."""
    while True:
        child = "".join(secrets.choice(CHILD_ID_ALPHABET) for _ in range(CHILD_ID_SYMBOLS))
        if child not in taken:
            return child


def reserve_join_attempt(conn: Connection, client: str, at: datetime | None = None) -> int | None:
    """Count a code against the client before it is checked; None when the client has had its JOIN_GUESSES
    within the window (the code must then not be checked at all)."""
    return user_store.reserve_attempt(
        conn, federation_store.JOIN_ATTEMPTS, client, at or now(), JOIN_GUESS_WINDOW, JOIN_GUESSES
    )


def accept_join(conn: Connection, attempt: int, request: JoinRequest) -> dict[str, Any]:
    """Pair a child for a reserved attempt: a good code is spent (once) and takes the attempt back; a bad one
    raises, so the write rolls back and the attempt stays counted as a wrong code."""
    load_public_key(request.public_key)
    roots = list(dict.fromkeys(request.units))
    if any("/" in code or REPORTED_MARK in code for code in roots):
        raise InvalidInput("units: the child's own root unit codes (without '/' or ':')", "units")
    child = new_child_id(federation_store.child_ids(conn))
    issued = now().isoformat()
    invite = federation_store.spend_invite(conn, hash_code(normalise_code(request.code)), issued, child)
    if invite is None:
        raise NotFound("code: unknown, expired or already used", "code")
    unit = invite["unit"]
    user_store.release_attempt(conn, federation_store.JOIN_ATTEMPTS, attempt)
    if invite["replace_children"]:
        for old in federation_store.children_under(conn, unit):
            remove_child(conn, old, replaced_by=child)
    row = {
        "id": child,
        "name": request.name.strip(),
        "public_key": request.public_key,
        "unit": unit,
        "roots": msgspec.json.encode(roots).decode(),
        "joined_at": issued,
    }
    federation_store.insert_child(conn, row)
    after = {"name": row["name"], "unit": unit, "roots": roots, "public_key": request.public_key}
    audit.record(conn, "federation_child", child, "join", after=after, unit=unit)
    return {"child": child, "unit": unit, "prefix": child + REPORTED_MARK}


def remove_child(conn: Connection, child: str, replaced_by: str | None = None) -> dict[str, Any]:
    """Retire a child: its reported rollups are dropped and it is no longer shown, counted or heard (its
    reports are 401 from now on); its stored reports stay for `verify_reports`, its units stay in the tree
    (objectives may name them) without figures. Audited. NotFound naming `child` when unknown or removed."""
    found = federation_store.get_child(conn, child)
    if found is None:
        raise NotFound(f"child: no child installation {child!r} reports here", "child")
    dropped = federation_store.remove_child(conn, child, now().isoformat())
    before = {"name": found["name"], "unit": found["unit"], "as_of": found["as_of"]}
    after = {"removed": True, "rollups_dropped": dropped, "replaced_by": replaced_by}
    audit.record(conn, "federation_child", child, "remove", before=before, after=after, unit=found["unit"])
    return {"child": child, "unit": found["unit"], "rollups_dropped": dropped, "replaced_by": replaced_by}


# -- the parent: reports ---------------------------------------------------------------------------------------------


def parent_code(child: str, code: str) -> str:
    """A child's unit as the parent names it."""
    return f"{child}{REPORTED_MARK}{code}"


def child_of_code(code: str) -> str | None:
    """The child a reported unit came from (None for the parent's own units)."""
    child, mark, _ = code.partition(REPORTED_MARK)
    return child if mark else None


def _put_units(conn: Connection, child: dict[str, Any], units: list[ReportUnit]) -> bool:
    """Create or update the child's units under the parent's unit; True when any changed."""
    hanging_path = organisation_store.unit_path(conn, child["unit"])
    if hanging_path is None:
        raise Conflict(f"unit: the unit {child['unit']!r} this child hangs under is gone", "unit")
    paths: dict[str, str] = {}
    changed = False
    for unit in units:
        code = parent_code(child["id"], unit.code)
        parent = child["unit"] if unit.parent is None else parent_code(child["id"], unit.parent)
        path = f"{hanging_path if unit.parent is None else paths[unit.parent]}{code}/"
        paths[unit.code] = path
        names = msgspec.json.encode(unit.names).decode() if unit.names else None
        values = {"name": unit.name or unit.code, "names": names, "parent": parent, "lang": unit.lang, "tz": unit.tz}
        stored = organisation_store.unit_columns(conn, code, [*values, "path"])
        if stored is None:
            with audit.tracked(conn, "unit", code, "create"):
                organisation_store.insert_unit(
                    conn, code, values["name"], names, parent, unit.lang, unit.tz, path, now().isoformat()
                )
            changed = True
        elif stored != {**values, "path": path}:
            with audit.tracked(conn, "unit", code, "update"):
                organisation_store.update_unit(conn, code, {**values, "path": path})
            changed = True
    return changed


def _summary(child: str, report: Report) -> str:
    """What the parent keeps of the report besides its rollups, units named as the parent names them."""

    def renamed(item: msgspec.Struct) -> dict[str, Any]:
        data = msgspec.to_builtins(item)
        data["unit"] = parent_code(child, data["unit"])
        return data

    return canonical(
        {"objectives": [renamed(o) for o in report.objectives], "actions": [renamed(a) for a in report.actions]}
    ).decode()


def receive_report(
    conn: Connection, child: dict[str, Any], report: Report, body: bytes | None = None, signature: str | None = None
) -> dict[str, Any]:
    """Store a verified report of a child's day, in the caller's write: the same content again changes
    nothing ("unchanged"); other content replaces the day ("replaced"), unless a later report of the day is
    stored already (409 naming `sent_at`: an old report replayed). The exact body and its signature are kept
    with it, so `verify_reports` can re-check it later."""
    if report.child != child["id"]:
        raise InvalidInput(f"child: the report names {report.child!r}, the signature {child['id']!r}", "child")
    roots = msgspec.json.decode(child["roots"])
    units = check_tree(report, roots)
    answer = {"child": child["id"], "day": report.day, "content_hash": report.content_hash}
    stored = federation_store.stored_report(conn, child["id"], report.day)
    if stored is not None and stored["content_hash"] == report.content_hash:
        return {**answer, "status": "unchanged"}
    if stored is not None and stored["sent_at"] > report.sent_at:
        raise Conflict(f"sent_at: a report of {report.day} sent later ({stored['sent_at']}) is stored", "sent_at")
    received = now().isoformat()
    units_changed = _put_units(conn, child, units)
    rollups = [
        {**msgspec.to_builtins(row), "unit": parent_code(child["id"], row.unit)}
        for row in report.rollups
        if row.n or row.suspect
    ]
    federation_store.replace_rollups(conn, child["id"], report.day, rollups)
    federation_store.put_report(
        conn,
        child["id"],
        report.day,
        report.content_hash,
        report.sent_at,
        received,
        _summary(child["id"], report),
        body.decode("utf-8") if body is not None else None,
        signature,
    )
    federation_store.mark_reported(conn, child["id"], report.day, received)
    status = "stored" if stored is None else "replaced"
    after = {"day": report.day, "content_hash": report.content_hash, "units": len(units), "rollups": len(rollups)}
    audit.record(conn, "federation_report", f"{child['id']}/{report.day}", status, after=after, unit=child["unit"])
    return {**answer, "status": status, "units_changed": units_changed}


def check_stored_report(row: dict[str, Any]) -> str | None:
    """What is wrong with a stored report (`federation_store.stored_reports` row), or None when it holds: its
    signature over the stored body by the child's stored key, and the body's content hash, child and day."""
    if row["public_key"] is None:
        return "its child is not paired here"
    if row["body"] is None or row["signature"] is None:
        return "no body or signature kept (stored before they were kept)"
    body = row["body"].encode("utf-8")
    if not signature_holds(body, row["signature"], row["public_key"]):
        return "the signature does not hold for the stored body and the child's key"
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "the stored body is not JSON"
    if not isinstance(raw, dict) or raw.get("content_hash") != content_hash(raw):
        return "the body's content hash does not match its content"
    if raw["content_hash"] != row["content_hash"] or raw.get("child") != row["child"] or raw.get("day") != row["day"]:
        return "the body's content hash, child or day differs from the stored row"
    return None


def verify_reports(conn: Connection, child: str | None = None) -> dict[str, Any]:
    """Re-check every stored report (or one child's): `{"checked", "bad": [{"child", "day", "problem"}]}`."""
    if child is not None and federation_store.get_child(conn, child, removed=True) is None:
        raise NotFound(f"child: no child installation {child!r} is paired here", "child")
    rows = federation_store.stored_reports(conn, child)
    bad = []
    for row in rows:
        problem = check_stored_report(row)
        if problem is not None:
            bad.append({"child": row["child"], "day": row["day"], "problem": problem})
    return {"checked": len(rows), "bad": bad}


# -- the parent: what is shown as reported -----------------------------------------------------------------------------


def reported_children(conn: Connection) -> dict[str, dict[str, Any]]:
    """child id → {"child", "name", "unit" (the parent's unit its tree hangs under), "as_of" (the latest day
    it reported, or None), "joined_at", "last_report_at"}."""
    return {
        row["id"]: {
            "child": row["id"],
            "name": row["name"],
            "unit": row["unit"],
            "as_of": row["as_of"],
            "joined_at": row["joined_at"],
            "last_report_at": row["last_report_at"],
        }
        for row in federation_store.children(conn)
    }


def any_reported(codes: Iterable[str]) -> bool:
    """Whether any of these units is a child installation's (what decides whether marks are looked up)."""
    return any(REPORTED_MARK in code for code in codes)


def mark_of(code: str | None, children: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """`{"child", "name", "as_of"}` for a reported unit; None for the parent's own."""
    child = child_of_code(code) if code else None
    found = children.get(child) if child else None
    return None if found is None else {"child": found["child"], "name": found["name"], "as_of": found["as_of"]}


def children_within(snapshot: Snapshot, unit: str, children: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The children whose figures a question about `unit`'s subtree takes in: `{"child", "name", "unit",
    "as_of"}` each, by child id."""
    found = {child_of_code(code) for code in snapshot.subtree(unit) if REPORTED_MARK in code}
    return [
        {key: children[child][key] for key in ("child", "name", "unit", "as_of")}
        for child in sorted(c for c in found if c in children)
    ]


def mark_satisfaction(result: dict[str, Any], snapshot: Snapshot, children: dict[str, dict[str, Any]]) -> None:
    """Mark a satisfaction answer (`feedback.rates.satisfaction`): each row of a reported unit (by=unit) with
    the child and the day it is reported as of, and the answer with every child it takes in."""
    within = children_within(snapshot, result["unit"], children)
    if not within:
        return
    result["reported"] = within
    if result["by"] != "unit":
        return
    for row in result["rows"]:
        mark = mark_of(row["key"], children)
        if mark is not None:
            row["reported"] = mark


def report_summaries(
    conn: Connection, snapshot: Snapshot, unit: str, day_from: str, day_to: str
) -> list[dict[str, Any]]:
    """For each child within `unit`'s subtree: the child, as of when, the objective statuses of its latest
    report in the period and its action counts summed over the period (the review pack's section)."""
    children = reported_children(conn)
    found = []
    for child in children_within(snapshot, unit, children):
        reports = federation_store.summaries(conn, child["child"], day_from, day_to)
        totals = {"opened": 0, "closed": 0, "closed_on_time": 0, "callbacks": 0, "callbacks_reached": 0}
        objectives: list[dict[str, Any]] = []
        for item in reports:
            summary = msgspec.json.decode(item["summary"])
            for row in summary.get("actions", []):
                for key in totals:
                    totals[key] += int(row.get(key, 0))
            objectives = summary.get("objectives", [])
        found.append({**child, "days": len(reports), "actions": totals, "objectives": objectives})
    return found
