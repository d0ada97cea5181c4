"""Settings: one Struct, read from the environment (and optionally a TOML file) in one place."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from feedback.models import ROLES
from feedback.store.dialect import is_postgres_url


class SettingsError(ValueError):
    """A setting that cannot be used; the message starts with its variable's name."""


class Settings(msgspec.Struct, kw_only=True):
    db: str = "feedback.db"
    secret: str = ""
    public_url: str | None = None
    rate_limit: int = 120
    # Reverse proxies (addresses or networks) whose X-Forwarded-For / Forwarded headers name the
    # client; from any other peer those headers are ignored. Comma-separated in FEEDBACK_TRUSTED_PROXIES.
    trusted_proxies: tuple[str, ...] = ()
    smtp_url: str | None = None
    # SMS (feedback.sms): the generic HTTP gateway's URL (http or https), the bearer token sent to it and
    # the body it takes (empty: JSON {"to", "text", "id"}; see feedback_plugins.sms), the secret the
    # gateway signs inbound messages with (empty: POST /api/v1/sms/inbound answers 404), and how many days
    # an invitation stays open (its number is erased when it is answered or expires).
    sms_url: str = ""
    sms_token: str = ""
    sms_template: str = ""
    sms_secret: str = ""
    sms_invitation_days: int = 7
    # Kiosks: presses closer together than this on one device are suspect; 0 turns every kiosk
    # misuse filter off (bursts too).
    kiosk_min_interval: float = 2.0
    kiosk_burst_count: int = 10  # this many presses …
    kiosk_burst_window: float = 60.0  # … within this many seconds on one device: a burst
    kiosk_thanks_seconds: float = 4.0
    kiosk_idle_seconds: float = 20.0
    kiosk_heartbeat_seconds: float = 60.0
    kiosk_sync_seconds: float = 5.0
    kiosk_silent_after: float = 600.0  # no heartbeat for this long: a kiosk.silent event
    webhook_allow_private: bool = False
    # A second response from the same browser to the same touchpoint within this many seconds is
    # stored flagged (a first-party cookie); 0 turns the check off.
    repeat_window: int = 3600
    # Below this many responses a rate is "insufficient": it can neither meet nor breach.
    min_n: int = 30
    # Plugins switched off by name (comma-separated in FEEDBACK_BLOCK_PLUGINS).
    block_plugins: list[str] = msgspec.field(default_factory=list)
    # A folder whose *.py files are loaded as plugins (handy for site-specific rules and tests).
    plugins_dir: str | None = None
    # Writes batched into one transaction at most (group commit).
    max_batch: int = 256
    # Periodic jobs (objective evaluation, deadlines, deliveries) run inside the server unless 0.
    jobs: bool = True
    # GET /readyz answers 503 when the filesystem holding an SQLite database has less free space than
    # this (MB), or when an event has waited longer than this many seconds to be dispatched.
    ready_min_free_mb: int = 256
    ready_max_event_age: float = 300.0
    # Corrective actions: working days to rectify when neither a rule nor the unit sets a deadline,
    # how many working days before the deadline the owner is reminded, and how many weeks an action
    # under effectiveness review is watched (and, when its interval neither clears nor misses the
    # target, watched at most this many weeks more before its owner must decide).
    default_action_days: int = 10
    due_soon_days: int = 2
    effectiveness_weeks: int = 4
    # Consented contact is purged when its action closes, or after this many days at the latest.
    contact_retention_days: int = 90
    # A call-back (feedback.callbacks) counts as not reached after this many attempts that did not reach.
    callback_tries: int = 3
    # Outbox rows delivered longer ago than this many days are deleted (given-up rows after three
    # times as long, so an operator can still see why a delivery failed); pending rows never.
    outbox_keep_days: int = 30
    # The weekly digest goes to each unit manager on this weekday (0 = Monday) from this local hour.
    digest_weekday: int = 0
    digest_hour: int = 7
    # Manager web app: a session lasts this many hours; this many failed sign-ins for one user name
    # within lockout_minutes lock that name for lockout_minutes.
    session_hours: float = 12.0
    lockout_attempts: int = 5
    lockout_minutes: float = 15.0
    # Who must sign in with a second factor (TOTP): `none`, `admin` (administrators) or `all` users.
    require_2fa: str = "none"
    # The cost of the argon2id password hashes (feedback.passwords.PROFILES): `standard` (RFC 9106's
    # second recommendation: 64 MiB, 3 passes, 4 lanes) or `minimum` (OWASP's least: 19 MiB, 2 passes,
    # 1 lane), for a host short of memory or CPU. A stored hash of the other cost is re-made at its
    # user's next sign-in.
    password_hashing: str = "standard"
    # What `feedback serve` logs: the service's own loggers (`feedback.*`) from this level, every other
    # library's (font subsetting, HTTP clients, …) from its own, so their chatter stays out unless asked.
    log_level: str = "INFO"
    library_log_level: str = "WARNING"
    # `text` (one line per record, as before) or `json` (one JSON object per line, for a log shipper).
    log_format: str = "text"
    # The bearer token that opens GET /metrics to hosts other than this one (loopback needs none);
    # unset, /metrics answers only loopback clients.
    metrics_token: str = ""
    # Staff sign-in through the agency's OpenID provider (both issuer and client id set, or neither):
    # its display name on the sign-in page (default: the issuer's host), the claims that carry a user's
    # role and unit (unset: the account's own), and `role:unit` to give a signed-in person without an
    # account here a new one (unset: refused).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_name: str = ""
    oidc_role_claim: str = ""
    oidc_unit_claim: str = ""
    oidc_autocreate: str = ""
    # Staff sign-in with the password of an LDAP directory (Active Directory, OpenLDAP): its URL and the
    # DN to bind as, `{username}` standing for the name typed; `role:unit` as for OpenID Connect.
    ldap_url: str = ""
    ldap_user_dn: str = ""
    ldap_autocreate: str = ""
    # Match a directory person to an account by the entry's `mail` too (off: by user name only, since
    # people may edit their own `mail` in many directories), and ask an ldap:// directory for StartTLS
    # (required for one not on this host: the password would cross in clear).
    ldap_match_email: bool = False
    ldap_starttls: bool = False


_ENV = {
    "FEEDBACK_DB": "db",
    "FEEDBACK_SECRET": "secret",
    "FEEDBACK_PUBLIC_URL": "public_url",
    "FEEDBACK_RATE_LIMIT": "rate_limit",
    "FEEDBACK_TRUSTED_PROXIES": "trusted_proxies",
    "FEEDBACK_SMTP_URL": "smtp_url",
    "FEEDBACK_SMS_URL": "sms_url",
    "FEEDBACK_SMS_TOKEN": "sms_token",
    "FEEDBACK_SMS_TEMPLATE": "sms_template",
    "FEEDBACK_SMS_SECRET": "sms_secret",
    "FEEDBACK_SMS_INVITATION_DAYS": "sms_invitation_days",
    "FEEDBACK_KIOSK_MIN_INTERVAL": "kiosk_min_interval",
    "FEEDBACK_KIOSK_BURST_COUNT": "kiosk_burst_count",
    "FEEDBACK_KIOSK_BURST_WINDOW": "kiosk_burst_window",
    "FEEDBACK_KIOSK_THANKS_SECONDS": "kiosk_thanks_seconds",
    "FEEDBACK_KIOSK_IDLE_SECONDS": "kiosk_idle_seconds",
    "FEEDBACK_KIOSK_HEARTBEAT_SECONDS": "kiosk_heartbeat_seconds",
    "FEEDBACK_KIOSK_SYNC_SECONDS": "kiosk_sync_seconds",
    "FEEDBACK_KIOSK_SILENT_AFTER": "kiosk_silent_after",
    "FEEDBACK_WEBHOOK_ALLOW_PRIVATE": "webhook_allow_private",
    "FEEDBACK_MIN_N": "min_n",
    "FEEDBACK_BLOCK_PLUGINS": "block_plugins",
    "FEEDBACK_PLUGINS_DIR": "plugins_dir",
    "FEEDBACK_REPEAT_WINDOW": "repeat_window",
    "FEEDBACK_MAX_BATCH": "max_batch",
    "FEEDBACK_JOBS": "jobs",
    "FEEDBACK_READY_MIN_FREE_MB": "ready_min_free_mb",
    "FEEDBACK_READY_MAX_EVENT_AGE": "ready_max_event_age",
    "FEEDBACK_DEFAULT_ACTION_DAYS": "default_action_days",
    "FEEDBACK_DUE_SOON_DAYS": "due_soon_days",
    "FEEDBACK_EFFECTIVENESS_WEEKS": "effectiveness_weeks",
    "FEEDBACK_CONTACT_RETENTION_DAYS": "contact_retention_days",
    "FEEDBACK_CALLBACK_TRIES": "callback_tries",
    "FEEDBACK_OUTBOX_KEEP_DAYS": "outbox_keep_days",
    "FEEDBACK_DIGEST_WEEKDAY": "digest_weekday",
    "FEEDBACK_DIGEST_HOUR": "digest_hour",
    "FEEDBACK_SESSION_HOURS": "session_hours",
    "FEEDBACK_LOCKOUT_ATTEMPTS": "lockout_attempts",
    "FEEDBACK_LOCKOUT_MINUTES": "lockout_minutes",
    "FEEDBACK_REQUIRE_2FA": "require_2fa",
    "FEEDBACK_PASSWORD_HASHING": "password_hashing",
    "FEEDBACK_LOG_LEVEL": "log_level",
    "FEEDBACK_LIBRARY_LOG_LEVEL": "library_log_level",
    "FEEDBACK_LOG_FORMAT": "log_format",
    "FEEDBACK_METRICS_TOKEN": "metrics_token",
    "FEEDBACK_OIDC_ISSUER": "oidc_issuer",
    "FEEDBACK_OIDC_CLIENT_ID": "oidc_client_id",
    "FEEDBACK_OIDC_CLIENT_SECRET": "oidc_client_secret",
    "FEEDBACK_OIDC_NAME": "oidc_name",
    "FEEDBACK_OIDC_ROLE_CLAIM": "oidc_role_claim",
    "FEEDBACK_OIDC_UNIT_CLAIM": "oidc_unit_claim",
    "FEEDBACK_OIDC_AUTOCREATE": "oidc_autocreate",
    "FEEDBACK_LDAP_URL": "ldap_url",
    "FEEDBACK_LDAP_USER_DN": "ldap_user_dn",
    "FEEDBACK_LDAP_AUTOCREATE": "ldap_autocreate",
    "FEEDBACK_LDAP_MATCH_EMAIL": "ldap_match_email",
    "FEEDBACK_LDAP_STARTTLS": "ldap_starttls",
}
_BOOLEAN = {"webhook_allow_private", "jobs", "ldap_match_email", "ldap_starttls"}
REQUIRE_2FA = ("none", "admin", "all")
PASSWORD_HASHING = ("standard", "minimum")
_LISTS = {"block_plugins", "trusted_proxies"}  # comma-separated in the environment


def load_settings(environ: dict[str, str] | None = None, *, keep_secret: bool = True, **overrides: object) -> Settings:
    """Settings from `FEEDBACK_CONFIG` (a TOML file), then `FEEDBACK_*` variables, then overrides.

    Without a secret set, the one kept beside the database is read or made (`stored_secret`);
    `keep_secret=False` leaves it empty instead, for callers that sign nothing (loading plugins)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = dict(_config_file(environ))
    for variable, field in _ENV.items():
        if variable in environ and environ[variable] != "":
            raw = environ[variable]
            if field in _LISTS:
                values[field] = [name.strip() for name in raw.split(",") if name.strip()]
            elif field in _BOOLEAN:
                values[field] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[field] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("trusted_proxies"), str):  # a TOML file may give one string, as the variable does
        values["trusted_proxies"] = [name.strip() for name in values["trusted_proxies"].split(",") if name.strip()]
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise SettingsError(_name_the_setting(str(error))) from None
    proxy_networks(settings.trusted_proxies)  # a typo stops start-up rather than trusting nobody silently
    settings.log_level = _log_level(settings.log_level, "FEEDBACK_LOG_LEVEL")
    settings.library_log_level = _log_level(settings.library_log_level, "FEEDBACK_LIBRARY_LOG_LEVEL")
    settings.log_format = str(settings.log_format).strip().lower()
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"FEEDBACK_LOG_FORMAT: {settings.log_format!r} is not one of text, json")
    if settings.callback_tries < 1:
        raise SettingsError(f"FEEDBACK_CALLBACK_TRIES: {settings.callback_tries} is not a whole number of 1 or more")
    settings.require_2fa = str(settings.require_2fa).strip().lower()
    if settings.require_2fa not in REQUIRE_2FA:
        raise SettingsError(f"FEEDBACK_REQUIRE_2FA: {settings.require_2fa!r} is not one of {', '.join(REQUIRE_2FA)}")
    settings.password_hashing = str(settings.password_hashing).strip().lower()
    if settings.password_hashing not in PASSWORD_HASHING:
        choices = ", ".join(PASSWORD_HASHING)
        raise SettingsError(f"FEEDBACK_PASSWORD_HASHING: {settings.password_hashing!r} is not one of {choices}")
    _check_sign_in(settings)
    _check_sms(settings)
    if not settings.secret and keep_secret:
        settings.secret = stored_secret(settings.db)
    return settings


def _check_sign_in(settings: Settings) -> None:
    """The identity provider and directory settings make sense together (a typo stops start-up)."""
    if bool(settings.oidc_issuer) != bool(settings.oidc_client_id):
        missing = "FEEDBACK_OIDC_CLIENT_ID" if settings.oidc_issuer else "FEEDBACK_OIDC_ISSUER"
        raise SettingsError(f"{missing}: must be set with FEEDBACK_OIDC_ISSUER and FEEDBACK_OIDC_CLIENT_ID alike")
    if settings.oidc_issuer and urlsplit(settings.oidc_issuer).scheme not in ("https", "http"):
        raise SettingsError(f"FEEDBACK_OIDC_ISSUER: {settings.oidc_issuer!r} is not an https:// URL")
    if bool(settings.ldap_url) != bool(settings.ldap_user_dn):
        missing = "FEEDBACK_LDAP_USER_DN" if settings.ldap_url else "FEEDBACK_LDAP_URL"
        raise SettingsError(f"{missing}: must be set with FEEDBACK_LDAP_URL and FEEDBACK_LDAP_USER_DN alike")
    if settings.ldap_url and urlsplit(settings.ldap_url).scheme not in ("ldap", "ldaps"):
        raise SettingsError(f"FEEDBACK_LDAP_URL: {settings.ldap_url!r} is not an ldap:// or ldaps:// URL")
    if settings.ldap_url and _plain_ldap_elsewhere(settings.ldap_url) and not settings.ldap_starttls:
        raise SettingsError(
            f"FEEDBACK_LDAP_URL: {settings.ldap_url!r} would send passwords in clear to another host;"
            " use ldaps:// or set FEEDBACK_LDAP_STARTTLS=1"
        )
    if settings.ldap_user_dn and settings.ldap_user_dn.count("{username}") != 1:
        raise SettingsError("FEEDBACK_LDAP_USER_DN: must contain {username} once, e.g. uid={username},ou=people,…")
    for variable, value in (
        ("FEEDBACK_OIDC_AUTOCREATE", settings.oidc_autocreate),
        ("FEEDBACK_LDAP_AUTOCREATE", settings.ldap_autocreate),
    ):
        if value:
            autocreate_role_and_unit(value, variable)


def _check_sms(settings: Settings) -> None:
    """The SMS gateway is reached over http(s) only (it is the operator's setting, but a file:// or other
    scheme is never a gateway), and an invitation stays open between one and 30 days."""
    if settings.sms_url:
        parts = urlsplit(settings.sms_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"FEEDBACK_SMS_URL: {settings.sms_url!r} is not an http:// or https:// URL")
    if not 1 <= settings.sms_invitation_days <= 30:
        raise SettingsError(
            f"FEEDBACK_SMS_INVITATION_DAYS: {settings.sms_invitation_days} is not a whole number from 1 to 30"
        )


def _plain_ldap_elsewhere(url: str) -> bool:
    """Whether `url` is ldap:// (no TLS) to a host other than this one (loopback is never on the wire)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "ldap":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def autocreate_role_and_unit(value: str, variable: str = "FEEDBACK_OIDC_AUTOCREATE") -> tuple[str, str | None]:
    """`role:unit` (`admin` alone for an installation-wide admin) as (role, unit); SettingsError otherwise."""
    role, _, unit = value.strip().partition(":")
    role, unit = role.strip(), unit.strip()
    if role not in ROLES:
        raise SettingsError(f"{variable}: {role!r} is not one of {', '.join(ROLES)} (write role:unit)")
    if role != "admin" and not unit:
        raise SettingsError(f"{variable}: every role but admin needs a unit (write {role}:UNIT)")
    return role, unit or None


def _config_file(environ: dict[str, str]) -> dict[str, object]:
    """The settings of the TOML file FEEDBACK_CONFIG names (none when unset)."""
    path = environ.get("FEEDBACK_CONFIG")
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"FEEDBACK_CONFIG: cannot read {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"FEEDBACK_CONFIG: {path} is not a TOML file: {error}") from None


def _name_the_setting(message: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.min_n`" as "FEEDBACK_MIN_N: expected `int`, got `str`"."""
    text, _, where = message.rpartition(" - at `$.")
    field = where.rstrip("`").split(".")[0].split("[")[0]
    if not text or not field:
        return f"settings: {message}"
    variable = next((name for name, known in _ENV.items() if known == field), f"FEEDBACK_{field.upper()}")
    return f"{variable}: {text[:1].lower()}{text[1:]}"


def _log_level(value: str, variable: str) -> str:
    """A logging level's name in capitals (`info` is INFO); SettingsError for anything else."""
    name = str(value).strip().upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"{variable}: {value!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return name


def named_database(environ: dict[str, str] | None = None) -> str | None:
    """The database the environment names (FEEDBACK_DB, or `db` in the FEEDBACK_CONFIG file); None when
    nothing does and only the built-in default (./feedback.db) would be used."""
    environ = dict(os.environ if environ is None else environ)
    named = environ.get("FEEDBACK_DB") or _config_file(environ).get("db")
    return str(named) if named else None


def proxy_networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The trusted proxies as networks (an address is a network of one); ValueError names a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise SettingsError(f"FEEDBACK_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def secret_path(db: str) -> Path:
    """Where the installation's own secret lives when FEEDBACK_SECRET is not set: beside the database."""
    return Path(f"{db}.secret")


def stored_secret(db: str) -> str:
    """The secret kept beside the database, made on first use (owner-only permissions).

    Signed form ids, case links, CSRF tokens and the hashed rate-limit keys all use the secret, so
    it must outlive a restart and be the same in every worker. The file is written whole under a
    temporary name and linked into place, so a process that reads it never sees half a secret and
    two processes starting at once agree on one. Without a file system to keep it in (an in-memory
    database), the secret lasts as long as the process."""
    path = secret_path(db)
    if db in ("", ":memory:"):
        return secrets.token_hex(32)
    if is_postgres_url(db):
        # No file beside the database, and every node must sign with the same secret.
        raise SettingsError(
            "FEEDBACK_SECRET: must be set when FEEDBACK_DB is a PostgreSQL database (the same on every node)"
        )
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:  # the database's folder is missing or not writable
        raise SettingsError(
            f"FEEDBACK_SECRET: not set, and no secret can be kept beside the database ({path}:"
            f" {error.strerror or error})"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()
