"""Staff sign-in through the agency's own identity services: the password of an LDAP directory (Active
Directory, OpenLDAP; `ldap3`) and an OpenID Connect provider (`feedback.web.manage.oidc` verifies its
tokens and hands the claims here).

Both end the same way (`resolve`): the person the directory or provider vouched for is matched to an
account here: the provider's person first by the account bound to its issuer and `sub`, then by user name,
then by an e-mail address the provider says it verified (one account, in any case); the directory's by
user name, and by its entry's `mail` only when `FEEDBACK_LDAP_MATCH_EMAIL` is on (people may edit their
own `mail` in many directories). An account with a local password signs in with that password only, never
through the directory or the provider; the provider's first match binds the account to its person, and
another person is then refused. Role and unit are
the account's own, or, when the settings name the claims that carry them, the provider's, checked: a role
that is not one of ours, or a unit that does not exist, refuses the sign-in. A person without an account
is refused unless the autocreate setting names a role and unit for new accounts; a disabled account is
refused. Every refusal is a `Refusal` whose message (an English msgid, translated by the page) says why.

The password form uses the directory for the accounts without a local password, and for names with no
account at all (`uses_directory`); an account with a local password signs in with that password only.
An empty password never reaches the directory: many servers take a DN with an empty password as an
anonymous bind and answer "success".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from feedback import audit
from feedback.db import Store
from feedback.models import ROLES
from feedback.settings import Settings, autocreate_role_and_unit
from feedback.store import Connection
from feedback.store import organisation as organisation_store
from feedback.store import users as user_store

# Seconds to wait for the directory to accept a connection, and then for each answer.
CONNECT_TIMEOUT = 5
ANSWER_TIMEOUT = 10
MAX_NAME = 200

# Why a sign-in is refused (msgids of the manager app's catalogues; `%(…)s` filled from `Refusal.values`).
WRONG = "The user name or the password is wrong."
UNKNOWN = "%(who)s signed in at %(service)s, but has no account here. Ask an administrator to create one."
AMBIGUOUS = "More than one account here has the e-mail address %(email)s. Ask an administrator to tell them apart."
DISABLED = "This account is disabled. Ask an administrator."
LOCAL_ONLY = "The account %(name)s signs in with its own password here, not with the directory's."
PROVIDER_LOCAL = "The account %(name)s signs in with its own password here, not through %(service)s."
BOUND_ELSEWHERE = "The account %(name)s is linked to another person at %(service)s. Ask an administrator."
NO_ROLE = "%(service)s sent no role for this person. Ask its administrator."
NO_UNIT_CLAIM = "%(service)s sent no unit for this person. Ask its administrator."
BAD_ROLE = "%(service)s gave the role %(role)s, which is not a role here. Ask its administrator."
BAD_UNIT = "%(service)s gave the unit %(unit)s, which does not exist here. Ask its administrator."
NO_UNIT = "%(service)s gave the role %(role)s without a unit. Ask its administrator."
BAD_NAME = "%(service)s gave the user name %(who)s, which cannot be a user name here. Ask an administrator."
UNREACHABLE = "%(service)s cannot be reached just now. Try again in a few minutes."
FAILED = "The sign-in at %(service)s did not succeed. Try again."


class Refusal(Exception):
    """A sign-in refused: `message` is a msgid of the manager app, `values` fill it, `status` is the page's."""

    def __init__(self, message: str, status: int = 403, **values: str) -> None:
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values
        self.status = status


@dataclass(frozen=True)
class Identity:
    """Who the directory or provider vouched for. `claimed` names what it also governs ("role", "unit"),
    with the values it sent (None: it sent none)."""

    method: str  # "ldap" or "oidc"
    service: str  # the directory's or provider's name, for messages
    username: str | None
    email: str | None
    claimed: Mapping[str, str | None] = field(default_factory=dict)
    subject: str | None = None  # the provider's own id of the person, named when nothing else is
    issuer: str | None = None  # the provider's issuer, which with `subject` names the person for good
    match_email: bool = True  # whether `email` may match an account (else it only fills a new one)

    @property
    def who(self) -> str:
        return self.username or self.email or self.subject or "?"

    @property
    def binding(self) -> str | None:
        """What an account bound to this provider's person keeps ("<iss> <sub>"; None: not a provider's)."""
        return f"{self.issuer} {self.subject}" if self.method == "oidc" and self.issuer and self.subject else None


@dataclass(frozen=True)
class Account:
    """The account a sign-in resolved to; `changed` when it was created or its role or unit changed."""

    name: str
    role: str
    unit: str | None
    lang: str | None
    changed: bool = False

    def as_user(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "unit": self.unit, "lang": self.lang}


# -- settings ----------------------------------------------------------------------------------------


def provider_name(settings: Settings) -> str | None:
    """The OpenID provider's name on the sign-in page (None: no provider is configured)."""
    if not (settings.oidc_issuer and settings.oidc_client_id):
        return None
    return settings.oidc_name or urlsplit(settings.oidc_issuer).hostname or settings.oidc_issuer


def directory_name(settings: Settings) -> str:
    return urlsplit(settings.ldap_url).hostname or "the directory"


def autocreate(value: str) -> tuple[str, str | None] | None:
    """The role and unit a new account gets (None: no account is made)."""
    return autocreate_role_and_unit(value) if value else None


def uses_directory(settings: Settings, account: Mapping[str, Any] | None) -> bool:
    """Whether the password form checks this name against the directory: when one is configured, for an
    account without a local password and for a name that has no account."""
    return bool(settings.ldap_url) and (account is None or not account.get("password_hash"))


# -- matching ----------------------------------------------------------------------------------------


def resolve(conn: Connection, identity: Identity, new_accounts: tuple[str, str | None] | None) -> Account:
    """The account `identity` signs in as (created, or given the provider's role and unit, as the
    settings say; logged), or Refusal. Runs in a write transaction."""
    found = _match(conn, identity)
    if found is None:
        if new_accounts is None:
            raise Refusal(UNKNOWN, who=identity.who, service=identity.service)
        return _create(conn, identity, *_claimed(conn, identity, new_accounts))
    if found["disabled"]:
        raise Refusal(DISABLED)
    # One password per account: a local one keeps its account from the directory and the provider (whose
    # claims could otherwise name an administrator and skip its second factor).
    if found.get("password_hash"):
        if identity.method == "ldap":
            raise Refusal(LOCAL_ONLY, name=found["name"])
        raise Refusal(PROVIDER_LOCAL, name=found["name"], service=identity.service)
    binding = identity.binding
    if binding and found.get("oidc_subject") not in (None, binding):
        raise Refusal(BOUND_ELSEWHERE, name=found["name"], service=identity.service)
    role, unit = _claimed(conn, identity, (found["role"], found["unit"]))
    changed = (role, unit) != (found["role"], found["unit"])
    if changed:
        _move(conn, found["name"], role, unit)
    if binding and found.get("oidc_subject") is None:
        _bind(conn, found["name"], unit, binding)
    return Account(found["name"], role, unit, found["lang"], changed)


def _match(conn: Connection, identity: Identity) -> dict[str, Any] | None:
    if identity.binding:
        found = user_store.sign_in_record_by_subject(conn, identity.binding)
        if found is not None:
            return found
    if identity.username:
        found = user_store.sign_in_record(conn, identity.username)
        if found is not None:
            return found
    if not (identity.email and identity.match_email):
        return None
    matches = user_store.sign_in_records_by_email(conn, identity.email)
    if len(matches) > 1:
        raise Refusal(AMBIGUOUS, email=identity.email)
    return matches[0] if matches else None


def _claim(identity: Identity, what: str, missing: str) -> str:
    value = identity.claimed.get(what)
    if not value:
        raise Refusal(missing, service=identity.service)
    return value


def _claimed(conn: Connection, identity: Identity, default: tuple[str, str | None]) -> tuple[str, str | None]:
    """The role and unit: `default`, or what the provider sent for those it governs (checked)."""
    role, unit = default
    if "role" in identity.claimed:
        role = _claim(identity, "role", NO_ROLE)
        if role not in ROLES:
            raise Refusal(BAD_ROLE, service=identity.service, role=role)
    if "unit" in identity.claimed:
        unit = _claim(identity, "unit", NO_UNIT_CLAIM)
        if not organisation_store.unit_exists(conn, unit):
            raise Refusal(BAD_UNIT, service=identity.service, unit=unit)
    if role != "admin" and not unit:
        raise Refusal(NO_UNIT, service=identity.service, role=role)
    return role, unit


def _create(conn: Connection, identity: Identity, role: str, unit: str | None) -> Account:
    name = (identity.username or identity.email or "").strip()
    if not name or len(name) > MAX_NAME or any(ch.isspace() or ch in "/\\" for ch in name):
        raise Refusal(BAD_NAME, service=identity.service, who=identity.who)
    created_at = datetime.now(UTC).isoformat()
    # The person signing in made the change (the provider vouched for them, the settings allowed it).
    with audit.acting_as(audit.Actor("user", name, unit)), audit.tracked(conn, "user", name, "create"):
        user_store.insert(conn, name, role, unit, created_at, email=identity.email)
        if identity.binding:
            user_store.bind_subject(conn, name, identity.binding)
    return Account(name, role, unit, None, changed=True)


def _bind(conn: Connection, name: str, unit: str | None, binding: str) -> None:
    """Bind the account to the provider's person at its first sign-in through the provider (logged)."""
    with audit.acting_as(audit.Actor("user", name, unit)), audit.tracked(conn, "user", name, "update"):
        user_store.bind_subject(conn, name, binding)


def _move(conn: Connection, name: str, role: str, unit: str | None) -> None:
    """Give the user the provider's role and unit; its live API tokens follow (as `feedback.auth.ensure_user`
    does), each change logged."""
    live = [token["id"] for token in user_store.tokens(conn, name) if token["revoked_at"] is None]
    with ExitStack() as changes:
        changes.enter_context(audit.acting_as(audit.Actor("user", name, unit)))
        changes.enter_context(audit.tracked(conn, "user", name, "update"))
        for token_id in live:
            changes.enter_context(audit.tracked(conn, "token", token_id, "update"))
        user_store.upsert(conn, name, role, unit, None, datetime.now(UTC).isoformat())
        user_store.retarget_tokens(conn, name, role, unit)


def claims_identity(settings: Settings, claims: Mapping[str, Any]) -> Identity:
    """The identity an OpenID provider's verified claims describe (`iss` and `sub`, `preferred_username`,
    `email` only when `email_verified` is true, and the role and unit claims the settings name)."""
    email = claims.get("email") if _verified(claims.get("email_verified")) else None
    claimed: dict[str, str | None] = {}
    for what, claim in (("role", settings.oidc_role_claim), ("unit", settings.oidc_unit_claim)):
        if claim:
            claimed[what] = _claim_text(claims.get(claim))
    return Identity(
        method="oidc",
        service=provider_name(settings) or "",
        username=_claim_text(claims.get("preferred_username")),
        email=_claim_text(email),
        claimed=claimed,
        subject=_claim_text(claims.get("sub")),
        issuer=_claim_text(claims.get("iss")) or settings.oidc_issuer,
    )


def _verified(value: Any) -> bool:
    """Whether the provider vouches for the e-mail address: the boolean true (some send the string)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _claim_text(value: Any) -> str | None:
    """A claim as one string: a string, or a list holding exactly one (groups often come as lists)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


# -- LDAP --------------------------------------------------------------------------------------------


def starttls(settings: Settings) -> bool:
    """Whether the directory is asked for StartTLS (an ldap:// URL with FEEDBACK_LDAP_STARTTLS on)."""
    return settings.ldap_starttls and settings.ldap_url.lower().startswith("ldap:")


class DirectoryUnavailable(Exception):
    """The directory could not be reached or did not answer in time."""


def ldap_bind(settings: Settings, username: str, password: str) -> dict[str, str | None] | None:
    """Bind to the directory as `username` (the DN template with the name escaped for a DN); its entry's
    `mail` on success, None for wrong credentials; DirectoryUnavailable when unreachable. Blocking."""
    import ssl

    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.dn import escape_rdn

    if not password:  # an empty password is an anonymous bind, which many servers let through
        return None
    dn = settings.ldap_user_dn.replace("{username}", escape_rdn(username))
    # ldaps:// and StartTLS check the server's certificate against the system's authorities (ldap3 does
    # not by default).
    secure = settings.ldap_url.lower().startswith("ldaps:") or settings.ldap_starttls
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED) if secure else None
    server = ldap3.Server(settings.ldap_url, get_info=ldap3.NONE, connect_timeout=CONNECT_TIMEOUT, tls=tls)
    connection = ldap3.Connection(
        server,
        user=dn,
        password=password,
        authentication=ldap3.SIMPLE,
        read_only=True,
        receive_timeout=ANSWER_TIMEOUT,
        raise_exceptions=False,
    )
    try:
        # StartTLS before the bind, so the password never crosses in clear; a directory that cannot start it
        # is as good as unreachable.
        if starttls(settings) and not connection.start_tls(read_server_info=False):
            raise DirectoryUnavailable(f"StartTLS failed: {connection.last_error or connection.result}")
        if not connection.bind():
            return None
        # The person's own entry, for the e-mail match; a directory that hides it leaves the name to match.
        connection.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["mail"])
        entries = [entry for entry in connection.response or () if entry.get("type") == "searchResEntry"]
        mail = entries[0].get("attributes", {}).get("mail") if entries else None
        return {"dn": dn, "mail": _claim_text(mail)}
    except LDAPException as error:
        raise DirectoryUnavailable(str(error)) from None
    finally:
        connection.unbind()


async def directory_sign_in(store: Store, settings: Settings, username: str, password: str) -> Account:
    """Check `username` and `password` against the directory, then resolve the account; Refusal otherwise
    (WRONG, with status 401, for any failed bind)."""
    service = directory_name(settings)
    try:
        entry = await asyncio.to_thread(ldap_bind, settings, username, password)
    except DirectoryUnavailable:
        raise Refusal(UNREACHABLE, status=503, service=service) from None
    if entry is None:
        raise Refusal(WRONG, status=401)
    identity = Identity(
        method="ldap", service=service, username=username, email=entry["mail"], match_email=settings.ldap_match_email
    )
    new_accounts = autocreate(settings.ldap_autocreate)
    return await store.write(lambda conn: resolve(conn, identity, new_accounts))
