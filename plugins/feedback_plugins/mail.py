"""Mail over SMTP (FEEDBACK_SMTP_URL): owners hear of their corrective actions, unit managers get a
weekly digest, and a respondent who left an email address hears what was done about their
feedback, after which their contact is purged.

Every mail is a row in the durable outbox (channel "mail"), queued once per event and address, and
sent by the "mail.deliver" job (and at once after queueing, inside the server). Texts are in the
recipient's language: the user's own, else their unit's; the respondent's, for a call-back.
URL forms: smtp://host[:25], smtp+starttls://host[:587], smtps://host[:465], each with an optional
user:password@.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal

from feedback import audit, callbacks, hookimpl
from feedback.db import Store
from feedback.errors import FeedbackError
from feedback.i18n import CATALOGUE, gettext_for, name_in
from feedback.jobs import Job
from feedback.models import LANGUAGES, Event, Unit
from feedback.outbox import GiveUp, Nudger, deliver_due, due_at, enqueue
from feedback.rates import satisfaction
from feedback.settings import Settings, load_settings
from feedback.store import Connection
from feedback.store import actions as action_store
from feedback.store import events as outbox_store
from feedback.store import objectives as objective_store
from feedback.store import organisation as organisation_store
from feedback.store import responses as response_store
from feedback.store import users as user_store
from feedback_plugins import LOCALES

if TYPE_CHECKING:
    from feedback.catalog import Snapshot
    from feedback.jobs import JobContext

log = logging.getLogger("feedback.mail")

CHANNEL = "mail"
SMTP_TIMEOUT = 30.0
SMTP_CONCURRENCY = 4  # connections to the SMTP server at once
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
CLOSED = ("closed", "appeal_upheld")
# Metrics whose values are means on 0-100; every other metric is a share 0-1.
MEAN_METRICS = ("mean_score", "indicator_mean")
COMPARATORS = {">=": "≥", "<=": "≤"}
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


@dataclass
class _State:
    settings: Settings | None = None
    serving: bool = False  # inside the server (not `feedback tick`): deliver promptly after queueing
    said: set[str] = field(default_factory=set)  # log lines written once per app
    nudger: Nudger = field(default_factory=Nudger)


def _state_of(store: Store) -> _State:
    """This app's state (apps sharing a process, as in tests, each have their own settings)."""
    return store.local("feedback_plugins.mail", _State)


def current_settings(store: Store) -> Settings:
    """The app's settings (handed over at start-up); outside the server (`feedback tick`), the environment's."""
    state = _state_of(store)
    if state.settings is None:
        state.settings = load_settings(keep_secret=False)  # mail signs nothing
    return state.settings


def _once(store: Store, key: str, message: str, *args: Any) -> None:
    said = _state_of(store).said
    if key not in said:
        said.add(key)
        log.warning(message, *args)


# -- SMTP --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    user: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://`, `smtp+starttls://` or `smtps://`, optional `user:password@`, optional port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"smtp_url: scheme must be one of {sorted(DEFAULT_PORTS)}")
    if not parts.hostname:
        raise ValueError("smtp_url: has no host")
    return SmtpTarget(
        scheme,
        parts.hostname,
        parts.port or DEFAULT_PORTS[scheme],
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def smtp_target(settings: Settings, store: Store) -> SmtpTarget | None:
    """The configured server, or None (mail is off: said once per app in the log)."""
    if not settings.smtp_url:
        _once(store, "off", "mail is off: FEEDBACK_SMTP_URL is not set, so no mail is queued")
        return None
    try:
        return parse_smtp_url(settings.smtp_url)
    except ValueError as error:
        _once(store, "bad", "mail is off: %s", error)
        return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for mail servers: building one reads the system's CA store (tens of
    milliseconds of CPU, once per message before), and one context serves any number of connections."""
    return ssl.create_default_context()


def send_message(target: SmtpTarget, message: EmailMessage) -> None:
    """Blocking: call in a thread."""
    if target.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=SMTP_TIMEOUT, context=tls_context())
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT)
    with client:
        if target.scheme == "smtp+starttls":
            client.starttls(context=tls_context())
        if target.user:
            client.login(target.user, target.password or "")
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            # A permanent refusal of the address will not change on retry.
            if all(code >= 500 for code, _ in error.recipients.values()):
                raise GiveUp(f"recipient refused: {error.recipients}") from error
            raise


def sender_address(settings: Settings) -> str:
    host = urlsplit(settings.public_url).hostname if settings.public_url else None
    return f"feedback@{host or 'localhost'}"


def build_message(row: dict[str, Any], sender: str) -> EmailMessage:
    mail = json.loads(row["payload"])
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row["target"]
    message["Subject"] = mail["subject"]
    message["Date"] = format_datetime(datetime.now(UTC))
    # The same id on every attempt, so a receiving system can drop a copy it already has.
    digest = hashlib.sha256(row["dedupe_key"].encode()).hexdigest()[:16]
    message["Message-ID"] = f"<outbox.{row['id']}.{digest}@{sender.split('@', 1)[1]}>"
    message["Content-Language"] = mail.get("lang", "en")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail["body"], charset="utf-8")
    return message


def _after_delivery(conn: Connection, row: dict[str, Any]) -> None:
    """A call-back mail went out: the respondent was reached (recorded on the action), and the contact
    has done its job and is purged (with the outbox copy)."""
    payload = json.loads(row["payload"])
    response_id = payload.get("purge_contact")
    if not response_id:
        return
    _record_callback(conn, payload, row, "reached", row.get("delivered_at"))
    purge_contact(conn, response_id, "call-back mail delivered")
    outbox_store.forget_target(conn, row["id"])


def _after_giving_up(conn: Connection, row: dict[str, Any]) -> None:
    """A call-back mail could not be delivered: one attempt that did not reach the respondent."""
    payload = json.loads(row["payload"])
    if payload.get("purge_contact"):
        _record_callback(conn, payload, row, "not_reached", row.get("failed_at"))


def _record_callback(
    conn: Connection,
    payload: dict[str, Any],
    row: dict[str, Any],
    outcome: str,
    at: str | None,
) -> None:
    """The call-back mail's outcome on its action (mails queued before it was named: the response's action).
    No note: the delivery's error may quote the address, and the attempt is kept for good."""
    action_id = payload.get("callback_action")
    if action_id is None:
        action_id = (action_store.opened_by(conn, [payload["purge_contact"]]).get(payload["purge_contact"]) or {}).get(
            "id"
        )
    if action_id is None:
        return
    when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    try:
        callbacks.record_attempt(conn, action_id, via="mail", outcome=outcome, by="system", at=when)
    except FeedbackError as refused:  # settled already (e.g. reached by phone first), or owes none: kept as is
        log.info("call-back mail %s (%s) not recorded on action %s: %s", row["id"], outcome, action_id, refused)


async def deliver(store: Store, now: datetime, settings: Settings) -> int:
    """One delivery round of the mail outbox."""
    target = smtp_target(settings, store)
    if target is None:
        return 0
    sender = sender_address(settings)

    async def send(row: dict[str, Any]) -> None:
        await asyncio.to_thread(send_message, target, build_message(row, sender))

    # Several SMTP steps, each with its own timeout: a lease long enough for all of them.
    return await deliver_due(
        store,
        CHANNEL,
        send,
        now,
        lease_seconds=SMTP_TIMEOUT * 10,
        on_delivered=_after_delivery,
        on_given_up=_after_giving_up,
        concurrency=SMTP_CONCURRENCY,
        batch=SMTP_CONCURRENCY * 4,
    )


def _nudge(store: Store) -> None:
    state = _state_of(store)
    if state.serving:
        state.nudger.nudge(CHANNEL, lambda: deliver(store, datetime.now(UTC), current_settings(store)))


# -- texts -----------------------------------------------------------------------------------------------


def _lang(*candidates: str | None) -> str:
    for lang in candidates:
        if lang in LANGUAGES:
            return lang
    return "en"


def _number(value: float, lang: str) -> str:
    return format_decimal(value, format="0.0", locale=CATALOGUE.get(lang, "en"))


def _measure(value: float | None, metric: str | None, lang: str) -> str:
    if value is None:
        return "–"
    if metric in MEAN_METRICS:
        return _number(value, lang)
    return f"{_number(value * 100, lang)} %"


def _unit_name(unit: dict[str, Any] | None, lang: str) -> str:
    if not unit:
        return ""
    return name_in(unit.get("names"), lang, unit.get("lang"), unit["name"])


def _footer(lang: str) -> str:
    return gettext_for(lang)("This is an automatic message from the feedback service; please do not reply.")


def action_mail(kind: str, action: dict[str, Any], unit: dict[str, Any] | None, lang: str) -> tuple[str, str]:
    """(subject, body) of a mail about a corrective action. `kind`: opened, due_soon, overdue, escalated."""
    _ = gettext_for(lang)
    values = {"id": action["id"], "title": action.get("title") or "", "due": action.get("due") or ""}
    subjects = {
        "opened": _("Corrective action #%(id)s opened: %(title)s"),
        "due_soon": _("Corrective action #%(id)s is due on %(due)s: %(title)s"),
        "overdue": _("Corrective action #%(id)s is overdue: %(title)s"),
        "escalated": _("Corrective action #%(id)s is overdue: %(title)s"),
    }
    intros = {
        "opened": _("A corrective action has been opened and assigned to you."),
        "due_soon": _("This corrective action is due soon. Please record what has been done before the deadline."),
        "overdue": _("This corrective action has passed its deadline and has been escalated."),
        "escalated": _("A corrective action in your area has passed its deadline and has been escalated to you."),
    }
    source = action.get("source") or {}
    if source.get("type") == "objective":
        origin = _("Source: quality objective #%(objective)s, period %(period)s") % {
            "objective": source.get("objective"),
            "period": source.get("period") or "",
        }
    elif source.get("type") == "response" or action.get("response_id"):
        origin = _("Source: a rating given by a citizen or trader")
    else:
        origin = _("Source: opened by hand")
    lines = [
        intros[kind],
        "",
        _("Action: %(title)s") % values,
        _("Unit: %(unit)s") % {"unit": _unit_name(unit, lang) or action.get("unit") or ""},
        _("Owner: %(owner)s") % {"owner": action.get("owner") or "–"},
        _("Due: %(due)s") % {"due": action.get("due") or _("no deadline")},
        origin,
        "",
        _footer(lang),
    ]
    return subjects[kind] % values, "\n".join(lines)


def objective_mail(status: dict[str, Any], unit: dict[str, Any] | None, lang: str) -> tuple[str, str]:
    _ = gettext_for(lang)
    metric = status.get("metric")
    title = status.get("title") or metric or str(status.get("objective"))
    low, high = (status.get("ci95") or (None, None))[:2]
    lines = [
        _("A quality objective of your unit has been breached: the measured value misses its target."),
        "",
        _("Objective: %(title)s") % {"title": title},
        _("Unit: %(unit)s") % {"unit": _unit_name(unit, lang) or status.get("unit") or ""},
        _("Period: %(from)s – %(to)s") % {"from": status.get("from") or "", "to": status.get("to") or ""},
        _("Target: %(comparator)s %(target)s")
        % {
            "comparator": COMPARATORS.get(status.get("comparator"), ""),
            "target": _measure(status.get("target"), metric, lang),
        },
        _("Result: %(value)s (n = %(n)s, 95%% interval %(low)s – %(high)s)")
        % {
            "value": _measure(status.get("value"), metric, lang),
            "n": status.get("n") or 0,
            "low": _measure(low, metric, lang),
            "high": _measure(high, metric, lang),
        },
        "",
        _footer(lang),
    ]
    return _("Quality objective breached: %(title)s") % {"title": title}, "\n".join(lines)


def callback_mail(
    receipt: str, unit: dict[str, Any] | None, events: list[dict[str, Any]], lang: str
) -> tuple[str, str]:
    """The short "what we did" message to a respondent, from the action's latest ISO 10.2 record."""
    _ = gettext_for(lang)

    def latest(*columns: str) -> str | None:
        for column in columns:
            for event in events:  # newest first
                if event.get(column):
                    return event[column]
        return None

    done = latest("result", "action_taken", "correction")
    explanation = latest("explanation")
    lines = [
        _("Thank you for your feedback (receipt %(receipt)s) about %(unit)s.")
        % {"receipt": receipt, "unit": _unit_name(unit, lang)},
        "",
    ]
    lines.append(_("We looked into it and the case is now closed."))
    if done:
        lines.append(_("What we did: %(result)s") % {"result": done})
    if explanation:
        lines.append(_("Our explanation: %(explanation)s") % {"explanation": explanation})
    lines += ["", _("Your contact details will now be deleted from our records."), "", _footer(lang)]
    return _("What we did about your feedback (receipt %(receipt)s)") % {"receipt": receipt}, "\n".join(lines)


# -- reacting to events ----------------------------------------------------------------------------------


def _units(conn: Connection, codes: list[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for unit in organisation_store.units_named(conn, codes):
        unit["names"] = json.loads(unit["names"]) if unit["names"] else {}
        found[unit["code"]] = unit
    return found


def _recipients(conn: Connection, names: list[str]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in user_store.mail_recipients(conn, names)}


async def _notify(event: Event, store: Store) -> None:
    data = event.data
    if event.type == "objective.breached":
        kinds = [(data.get("owner"), "breached")]
    elif event.type == "action.overdue":
        kinds = [(data.get("owner"), "overdue"), (data.get("escalated_to"), "escalated")]
    else:
        kinds = [(data.get("owner"), event.type.split(".", 1)[1])]
    unit_code = data.get("unit")

    def read(conn: Connection) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        units = _units(conn, [unit_code]) if unit_code else {}
        manager = organisation_store.unit_owner(conn, unit_code) if unit_code else None
        names = [name for name, _ in kinds if name] + ([manager] if manager else [])
        return _recipients(conn, names) if names else {}, units, manager

    recipients, units, manager = await store.read(read)
    if not kinds[0][0] and manager:
        kinds[0] = (manager, kinds[0][1])  # no owner named: the unit's manager answers for it
    unit = units.get(unit_code) if unit_code else None
    at = due_at(event.created_at)
    queued: list[dict[str, Any]] = []
    for name, kind in kinds:
        user = recipients.get(name) if name else None
        if user is None:
            continue
        lang = _lang(user["lang"], user["unit_lang"], unit and unit["lang"])
        if kind == "breached":
            subject, body = objective_mail(data, unit, lang)
        else:
            subject, body = action_mail(kind, data, unit, lang)
        queued.append({"to": user["email"], "subject": subject, "body": body, "lang": lang})
    if not queued:
        return

    def queue(conn: Connection) -> None:
        for mail in queued:
            enqueue(
                conn,
                channel=CHANNEL,
                dedupe_key=f"{event.id}|mail:{mail['to']}",
                target=mail["to"],
                payload=json.dumps(mail, ensure_ascii=False),
                event_id=event.id,
                event_type=event.type,
                now=at,
            )

    await store.write(queue)
    _nudge(store)


def purge_contact(conn: Connection, response_id: str, reason: str) -> bool:
    purged = response_store.delete_contact(conn, response_id)
    if purged:
        log.info("contact of response %s purged: %s", response_id, reason)
    return purged


async def _callback(event: Event, store: Store, mail_on: bool) -> None:
    action = event.data
    response_id = action.get("response_id") or (action.get("source") or {}).get("response_id")

    def read(conn: Connection) -> dict[str, Any] | None:
        found = response_store.contact_with_response(conn, response_id)
        if found is None:
            return None
        found["unit"] = _units(conn, [found["unit"]]).get(found["unit"])
        found["events"] = action_store.records_newest_first(conn, action["id"])
        return found

    found = await store.read(read)
    if found is None:
        return
    match = EMAIL.search(found["contact"])
    if match is None:
        # No address: a phone number's message goes by SMS, and the SMS channel (feedback.sms_callbacks)
        # purges whatever contact it cannot use.
        return
    if action.get("status") != "closed" or not mail_on:
        # An upheld appeal needs no message; with mail off nothing more can be done with the address.
        # Either way it goes now.
        reason = f"action {action['id']} {action.get('status')}"
        await store.write(lambda conn: purge_contact(conn, response_id, reason))
        return
    address = match.group(0)
    lang = _lang(found["lang"], found["unit"] and found["unit"]["lang"])
    subject, body = callback_mail(found["receipt"], found["unit"], found["events"], lang)
    payload = json.dumps(
        {
            "to": address,
            "subject": subject,
            "body": body,
            "lang": lang,
            "purge_contact": response_id,
            "callback_action": action["id"],
        },
        ensure_ascii=False,
    )
    at = due_at(event.created_at)
    # One call-back per response; the key holds no address, so nothing of the contact outlives it.
    await store.write(
        lambda conn: enqueue(
            conn,
            channel=CHANNEL,
            dedupe_key=f"callback:{response_id}",
            target=address,
            payload=payload,
            event_id=event.id,
            event_type=event.type,
            now=at,
        )
    )
    _nudge(store)


# The events `track_event` acts on (the dispatcher builds no other for this plugin).
MAILED_EVENTS = frozenset(
    {"action.opened", "action.due_soon", "action.overdue", "objective.breached", "action.changed"}
)


@hookimpl
def tracked_events() -> frozenset[str]:
    return MAILED_EVENTS


@hookimpl
def track_event(event: Event, store: Store):
    if event.type in ("action.opened", "action.due_soon", "action.overdue", "objective.breached"):
        if smtp_target(current_settings(store), store) is None:
            return None
        return _notify(event, store)
    if (
        event.type == "action.changed"
        and event.data.get("status") in CLOSED
        and (event.data.get("response_id") or (event.data.get("source") or {}).get("response_id"))
    ):
        return _callback(event, store, smtp_target(current_settings(store), store) is not None)
    return None


# -- the weekly digest -----------------------------------------------------------------------------------


def digest_sections(
    conn: Connection, snapshot: Snapshot, units: list[Unit], today: date, min_n: int
) -> list[dict[str, Any]]:
    """For each unit (its subtree): last ISO week's satisfaction, objectives at risk or breached, overdue actions."""
    monday = today - timedelta(days=today.weekday())
    week_from, week_to = monday - timedelta(days=7), monday - timedelta(days=1)
    sections = []
    for unit in units:
        subtree = snapshot.subtree(unit.code)
        rate = satisfaction(conn, snapshot, unit.code, week_from.isoformat(), week_to.isoformat(), "unit", min_n)[
            "total"
        ]
        objectives = []
        for code in subtree:
            for version in snapshot.objectives_in_force(code, today.isoformat(), with_ancestors=False):
                state = objective_store.latest_state(conn, version.objective)
                if state and state["status"] in ("at_risk", "breached"):
                    objectives.append(
                        {
                            "title": version.title or version.metric,
                            "metric": version.metric,
                            "comparator": version.comparator,
                            "target": version.target,
                            "status": state["status"],
                            "value": state["value"],
                            "n": state["n"],
                        }
                    )
        overdue = action_store.overdue_of(conn, subtree, today.isoformat())
        sections.append(
            {
                "unit": unit,
                "from": week_from.isoformat(),
                "to": week_to.isoformat(),
                "rate": rate,
                "objectives": objectives,
                "overdue": overdue,
            }
        )
    return sections


def digest_mail(
    sections: list[dict[str, Any]], week: str, lang: str, min_n: int, audit_head: dict[str, Any] | None = None
) -> tuple[str, str]:
    _ = gettext_for(lang)
    first = sections[0]
    lines = [_("Your weekly quality digest for %(from)s – %(to)s.") % {"from": first["from"], "to": first["to"]}]
    for section in sections:
        unit: Unit = section["unit"]
        name = name_in(unit.names, lang, unit.lang, unit.name)
        lines += ["", f"== {name} ({unit.code}) =="]
        rate = section["rate"]
        if rate["n"]:
            low, high = rate["ci95"]
            lines.append(
                _("Satisfaction last week: %(rate)s (n = %(n)s, 95%% interval %(low)s – %(high)s)")
                % {
                    "rate": _measure(rate["rate"], None, lang),
                    "n": rate["n"],
                    "low": _measure(low, None, lang),
                    "high": _measure(high, None, lang),
                }
            )
            if not rate["sufficient"]:
                lines.append(_("Fewer than %(min_n)s responses: too few to judge.") % {"min_n": min_n})
        else:
            lines.append(_("Satisfaction last week: no responses"))
        templates = {
            "at_risk": _("%(title)s: at risk (%(value)s, target %(comparator)s %(target)s, n = %(n)s)"),
            "breached": _("%(title)s: breached (%(value)s, target %(comparator)s %(target)s, n = %(n)s)"),
        }
        if section["objectives"]:
            lines.append(_("Objectives at risk or breached:"))
        else:
            lines.append(_("No objective is at risk or breached."))
        for item in section["objectives"]:
            lines.append(
                "  - "
                + templates[item["status"]]
                % {
                    "title": item["title"],
                    "value": _measure(item["value"], item["metric"], lang),
                    "comparator": COMPARATORS.get(item["comparator"], ""),
                    "target": _measure(item["target"], item["metric"], lang),
                    "n": item["n"] or 0,
                }
            )
        if section["overdue"]:
            lines.append(_("Overdue corrective actions:"))
        else:
            lines.append(_("No corrective action is overdue."))
        for item in section["overdue"]:
            lines.append(
                "  - "
                + _("#%(id)s %(title)s, due %(due)s, owner %(owner)s")
                % {"id": item["id"], "title": item["title"], "due": item["due"], "owner": item["owner"] or "–"}
            )
    if audit_head is not None:
        # A copy of the audit log's newest hash in every owner's mailbox anchors the log (feedback audit verify).
        lines += [
            "",
            _("Audit log: newest entry %(seq)s, SHA-256 %(hash)s. Keep this mail: it shows what the log held.")
            % {"seq": audit_head["seq"], "hash": audit_head["hash"]},
        ]
    lines += ["", _footer(lang)]
    return _("Weekly quality digest, %(week)s") % {"week": week}, "\n".join(lines)


async def run_digest(ctx: JobContext) -> int:
    """Queue this week's digest for each unit owner with an email, on the digest weekday from the digest hour
    (the owner's first unit's local time). Returns how many were queued."""
    settings, snapshot = ctx.settings, ctx.snapshot
    if smtp_target(settings, ctx.store) is None:
        return 0
    owned: dict[str, list[Unit]] = {}
    for unit in sorted(snapshot.units.values(), key=lambda u: u.code):
        if unit.owner:
            owned.setdefault(unit.owner, []).append(unit)
    queued = 0
    for owner, units in owned.items():
        user = snapshot.users.get(owner)
        if user is None or not user.email:
            continue
        local = ctx.now.astimezone(ZoneInfo(units[0].tz))
        if local.weekday() != settings.digest_weekday or local.hour < settings.digest_hour:
            continue
        year, week, _ = local.date().isocalendar()
        week_key = f"{year}-W{week:02d}"
        key = f"digest:{owner}:{week_key}"
        if await ctx.store.read(lambda conn, key=key: outbox_store.has_key(conn, key)):
            continue
        day = local.date()
        sections = await ctx.store.read(
            lambda conn, units=units, day=day: digest_sections(conn, snapshot, units, day, settings.min_n)
        )
        lang = _lang(user.lang, units[0].lang)
        head = await ctx.store.read(audit.head_json)
        subject, body = digest_mail(sections, week_key, lang, settings.min_n, head)
        payload = json.dumps({"to": user.email, "subject": subject, "body": body, "lang": lang}, ensure_ascii=False)
        if await ctx.store.write(
            lambda conn, k=key, to=user.email, p=payload: enqueue(
                conn, channel=CHANNEL, dedupe_key=k, target=to, payload=p, event_type="digest", now=ctx.now
            )
        ):
            queued += 1
    if queued:
        log.info("weekly digest queued for %s owner(s)", queued)
    return queued


# -- contact retention -----------------------------------------------------------------------------------


def purge_expired_contacts(conn: Connection, now: datetime, retention_days: int) -> list[str]:
    """Purge contacts past their retention whose response has no open corrective action; returns the ids."""
    cutoff = (now - timedelta(days=retention_days)).astimezone(UTC).isoformat()
    expired = response_store.expired_contacts(conn, cutoff, now.astimezone(UTC).isoformat())
    purged = [found for found in expired if purge_contact(conn, found, f"older than {retention_days} days")]
    # A call-back mail that never went out keeps no copy of the address beyond the retention either.
    outbox_store.forget_stale_targets(conn, CHANNEL, "callback:", cutoff)
    return purged


async def _purge_job(ctx: JobContext) -> None:
    now, days = ctx.now, ctx.settings.contact_retention_days
    await ctx.store.write(lambda conn: purge_expired_contacts(conn, now, days))


async def _deliver_job(ctx: JobContext) -> None:
    if _state_of(ctx.store).serving:
        # In the server a round runs in the background (one at a time): a backlog being sent must not
        # hold up the other jobs.
        _nudge(ctx.store)
        return
    await deliver(ctx.store, ctx.now, ctx.settings)


@hookimpl
def register_jobs() -> list[Job]:
    # In this order, so one `feedback tick` queues the digest and then delivers it.
    return [
        Job("mail.digest", every=3600, run=run_digest),
        Job("mail.purge_contacts", every=3600, run=_purge_job),
        Job("mail.deliver", every=5, run=_deliver_job),
    ]


@hookimpl
def startup(store: Store, settings: Settings) -> None:
    state = _state_of(store)
    state.settings = settings
    state.serving = True
    smtp_target(settings, store)


@hookimpl
def register_translations() -> Path:
    return LOCALES
