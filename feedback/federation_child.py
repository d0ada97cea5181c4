"""Reporting upward, the child's side: joining a parent installation, building each closed day's report and
the job `federation.report` that sends every day the parent has not acknowledged, in order.

A day is closed when it has ended in the time zone of every unit the child reports (its last minute is over
everywhere), so a day's figures are sent once they are whole. Each run sends the days not yet acknowledged,
oldest first, at most REPORT_BATCH of them (after an outage, every missed day goes out over the next runs,
none skipped), and sends again any of the last RECHECK_DAYS days whose figures changed since the parent
acknowledged them (late kiosk syncs, keyed paper forms, an upheld appeal), and any older day a child of this
installation reported (or was removed) after the parent acknowledged it (three tiers: a grandchild catching
up). A run that cannot reach the parent, or that the parent refuses, stops at that day, records the error on
the link and fails (the job's run and `feedback tick` show it); nothing is marked sent that the parent did not
acknowledge.

What a report holds, and nothing else: the unit tree (codes, names in each language, parent, language, time
zone), the day's rollups by unit × service (`ROLLUP_MEASURES`, summed over touchpoints), the status of every
objective in force as judged on the day, and each unit's corrective-action counts on the day. No response,
answer, comment, contact, case reference, officer or user name is read into it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import msgspec

from feedback import actions, audit, federation, objectives, tls
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError, InvalidInput
from feedback.jobs import Job, JobContext
from feedback.store import Connection
from feedback.store import federation as federation_store
from feedback.store import responses as response_store

REPORT_JOB = "federation.report"
#: Seconds between runs in the server.
REPORT_EVERY = 3600
#: Most days one run sends (a month; a long outage is caught up over the next runs).
REPORT_BATCH = 31
#: The latest closed days looked at again each run, sent again when their figures changed.
RECHECK_DAYS = 7
TIMEOUT = 30.0
JOIN_PATH = "/api/v1/federation/join"
REPORTS_PATH = "/api/v1/federation/reports"


class ParentRefused(FeedbackError):
    """The parent could not be reached, or answered with an error (its answer is in the message)."""

    status_code = 502


def check_parent_url(url: str) -> str:
    """The parent's base URL: http or https with a host; without a trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise InvalidInput("parent: an http:// or https:// address of the parent installation", "parent")
    return url.strip().rstrip("/")


def _client() -> httpx.AsyncClient:
    # No redirects (a report goes where the operator said) and no proxy from the environment.
    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=tls.client_context())


def _answer_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"{response.status_code} {detail or response.reason_phrase}"


def _answer_object(response: httpx.Response, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The parent's JSON answer when it is an object with a text at each of `keys`, else None."""
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict) or not all(isinstance(answer.get(key), str) for key in keys):
        return None
    return answer


def _unexpected(response: httpx.Response) -> str:
    """The start of an answer the parent should not have given, for the message that names it."""
    kind = response.headers.get("content-type", "no content type")
    text = " ".join(response.text[:120].split())
    return f"{response.status_code} ({kind}) {text!r}, not the JSON a feedback installation answers"


# -- joining ------------------------------------------------------------------------------------------------------


def root_units(snapshot: Snapshot, units: list[str] | None) -> list[str]:
    """The units the child reports (each with its subtree): those named, or every root of the installation."""
    if not units:
        return sorted(
            (u.code for u in snapshot.units.values() if u.parent is None), key=lambda c: snapshot.units[c].path
        )
    for code in units:
        if code not in snapshot.units:
            raise InvalidInput(f"unit: no unit {code!r}", "unit")
        if federation.REPORTED_MARK in code:
            raise InvalidInput(f"unit: {code!r} was reported by a child; name one of this installation's", "unit")
    return list(dict.fromkeys(units))


def default_name(snapshot: Snapshot, roots: list[str]) -> str:
    return ", ".join(snapshot.units[code].name for code in roots)[: federation.MAX_TEXT]


def join_parent(parent_url: str, code: str, name: str, roots: list[str], secret: str) -> dict[str, Any]:
    """Pair with a parent: make a key pair, send the public key with the code, name and root units, and return
    what to keep on the link (the private key sealed under `secret`) with the parent's answer."""
    url = check_parent_url(parent_url)
    key = federation.new_private_key()
    public = federation.public_key_text(key)
    body = {"code": code, "public_key": public, "name": name, "units": roots}
    try:
        verify = tls.client_context()
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=verify) as client:
            response = client.post(url + JOIN_PATH, json=body)
    except httpx.HTTPError as error:
        raise ParentRefused(f"parent: {url} cannot be reached: {error}", "parent") from None
    if response.status_code != 201:
        raise ParentRefused(f"parent: {url} answered {_answer_text(response)}", "parent")
    answer = _answer_object(response, ("child", "unit"))
    if answer is None:
        raise ParentRefused(f"parent: {url} answered {_unexpected(response)}", "parent")
    return {
        "parent_url": url,
        "child_id": answer["child"],
        "name": name,
        "public_key": public,
        "private_key": federation.seal_private_key(key, secret),
        "units": msgspec.json.encode(roots).decode(),
        "joined_at": datetime.now(UTC).isoformat(),
        "answer": answer,
    }


def save_link(conn: Connection, joined: dict[str, Any]) -> None:
    """Keep the link `join_parent` made (replacing any earlier one and what its parent acknowledged)."""
    values = {key: value for key, value in joined.items() if key != "answer"}
    federation_store.put_link(conn, values)
    after = {
        "parent_url": values["parent_url"],
        "child_id": values["child_id"],
        "units": msgspec.json.decode(values["units"]),
        "public_key": values["public_key"],
    }
    audit.record(conn, "federation_link", values["child_id"], "join", after=after)


def link_status(conn: Connection) -> dict[str, Any] | None:
    """What `feedback federation status` shows of the link: never the private key."""
    found = federation_store.link(conn)
    if found is None:
        return None
    acked = federation_store.acknowledged(conn)
    return {
        "parent_url": found["parent_url"],
        "child": found["child_id"],
        "name": found["name"],
        "units": msgspec.json.decode(found["units"]),
        "public_key": found["public_key"],
        "joined_at": found["joined_at"],
        "acknowledged_days": len(acked),
        "acknowledged_through": max(acked) if acked else None,
        "last_attempt_at": found["last_attempt_at"],
        "last_success_at": found["last_success_at"],
        "last_error": found["last_error"],
    }


# -- one day's report ----------------------------------------------------------------------------------------------


def reported_tree(snapshot: Snapshot, roots: list[str]) -> list[str]:
    """Every unit under the roots (the child's tree), parents first."""
    codes = {code for root in roots if root in snapshot.units for code in snapshot.subtree(root)}
    return sorted(codes, key=lambda code: snapshot.units[code].path)


def closed_through(snapshot: Snapshot, units: list[str], now: datetime) -> date:
    """The last day that has ended in every unit's time zone."""
    zones = {snapshot.units[code].tz for code in units} or {"UTC"}
    return min(now.astimezone(ZoneInfo(tz)).date() for tz in zones) - timedelta(days=1)


_OBJECTIVE_KEYS = (
    "objective",
    "unit",
    "title",
    "metric",
    "indicator",
    "service",
    "comparator",
    "target",
    "period",
    "period_key",
    "from",
    "to",
    "status",
    "n",
    "value",
    "ci95",
)
_ACTION_KEYS = ("opened", "closed", "closed_on_time", "overdue_open", "callbacks", "callbacks_reached")


def report_content(
    conn: Connection, snapshot: Snapshot, child: str, roots: list[str], day: str, now: datetime
) -> dict[str, Any]:
    """A day's report but its content hash and sending time."""
    units = reported_tree(snapshot, roots)
    tree = []
    for code in units:
        unit = snapshot.units[code]
        item: dict[str, Any] = {
            "code": code,
            "name": unit.name,
            "parent": None if code in roots else unit.parent,
            "lang": unit.lang,
            "tz": unit.tz,
        }
        if unit.names:
            item["names"] = dict(unit.names)
        tree.append(item)
    rollups = []
    for row in response_store.day_by_unit_service(conn, units, day):
        if row["n"] or row["suspect"]:
            rollups.append({**row, "service": row["service"] or None, "score_sum": float(row["score_sum"])})
    judged = []
    at = date.fromisoformat(day)
    for code in units:
        for version in sorted(snapshot.objectives_in_force(code, day, with_ancestors=False), key=lambda v: v.objective):
            doc = objectives.evaluate(conn, snapshot, version, at)
            item = {key: doc[key] for key in _OBJECTIVE_KEYS}
            if version.titles:
                item["titles"] = dict(version.titles)
            judged.append(item)
    counts = []
    for root in roots:
        if root not in snapshot.units:
            continue
        for row in actions.kpis(conn, snapshot, root, day, day, 0, now)["rows"]:
            if any(row[key] for key in _ACTION_KEYS):
                counts.append({"unit": row["unit"], **{key: row[key] for key in _ACTION_KEYS}})
    return {
        "version": federation.REPORT_VERSION,
        "child": child,
        "day": day,
        "units": tree,
        "rollups": rollups,
        "objectives": judged,
        "actions": counts,
    }


def signed_body(content: dict[str, Any], key: Any, sent_at: str) -> tuple[bytes, str, str]:
    """(body, its signature header, the content hash) of a report as sent."""
    report = {**content, "sent_at": sent_at}
    report["content_hash"] = federation.content_hash(report)
    body = federation.canonical(report)
    return body, federation.sign(body, key), report["content_hash"]


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def plan(conn: Connection, snapshot: Snapshot, link: dict[str, Any], now: datetime) -> list[tuple[str, dict, str]]:
    """The days to send now, oldest first, with their content and its hash: every closed day since the first
    with figures (or since joining) that the parent has not acknowledged, and those of the last RECHECK_DAYS
    whose content changed since; at most REPORT_BATCH."""
    roots = msgspec.json.decode(link["units"])
    units = reported_tree(snapshot, roots)
    if not units:
        return []
    last = closed_through(snapshot, units, now)
    joined = datetime.fromisoformat(link["joined_at"]).astimezone(ZoneInfo(snapshot.units[units[0]].tz)).date()
    first_figures = response_store.first_rollup_day(conn, units)
    first = min(joined, date.fromisoformat(first_figures)) if first_figures else joined
    acked = federation_store.acknowledged(conn)
    recheck_from = max(first, last - timedelta(days=RECHECK_DAYS - 1))
    # Older days too when a child of this installation reported them (or was removed) since they were
    # acknowledged: a middle tier passes a grandchild's catch-up on, however late it comes.
    reported = federation_store.reported_since_acknowledged(conn) if acked else set()
    due = []
    for day in days_between(first, last):
        if len(due) >= REPORT_BATCH:
            break
        if day in acked and day < recheck_from.isoformat() and day not in reported:
            continue
        content = report_content(conn, snapshot, link["child_id"], roots, day, now)
        digest = federation.content_hash(content)
        if acked.get(day) != digest:
            due.append((day, content, digest))
    return due


# -- the job ---------------------------------------------------------------------------------------------------------


async def send_reports(ctx: JobContext) -> dict[str, Any]:
    """`federation.report`: send the days due (see the module's docstring); raise when a day did not go."""
    link = await ctx.store.read(federation_store.link)
    if link is None:
        return {"sent": 0}
    key = federation.unseal_private_key(link["private_key"], ctx.settings.secret)
    if key is None:
        failure = "the key of the link to the parent cannot be read with this installation's secret (FEEDBACK_SECRET)"
        await ctx.store.write(lambda conn: federation_store.note_attempt(conn, ctx.now.isoformat(), failure))
        raise ParentRefused(failure, "secret")
    snapshot = ctx.snapshot
    days = await ctx.store.read(lambda conn: plan(conn, snapshot, link, ctx.now))
    url = link["parent_url"] + REPORTS_PATH
    sent, failure = 0, None
    async with _client() as client:
        for day, content, _digest in days:
            body, signature, report_hash = signed_body(content, key, datetime.now(UTC).isoformat())
            headers = {
                "content-type": "application/json",
                federation.CHILD_HEADER: link["child_id"],
                federation.SIGNATURE_HEADER: signature,
            }
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                failure = f"{day}: {link['parent_url']} cannot be reached: {type(error).__name__}: {error}"
                break
            if response.status_code != 200:
                failure = f"{day}: {link['parent_url']} answered {_answer_text(response)}"
                break
            answer = _answer_object(response, ("status",))
            if answer is None:
                failure = f"{day}: {link['parent_url']} answered {_unexpected(response)}"
                break
            status = answer["status"]
            await ctx.store.write(lambda conn, d=day, h=report_hash, s=status: _acknowledged(conn, link, d, h, s))
            sent += 1
    await ctx.store.write(lambda conn: federation_store.note_attempt(conn, datetime.now(UTC).isoformat(), failure))
    if failure is not None:
        raise ParentRefused(f"federation.report: sent {sent} day(s), then {failure}", "parent")
    return {"sent": sent, "days": [day for day, _, _ in days]}


def _acknowledged(conn: Connection, link: dict[str, Any], day: str, content_hash: str, status: str | None) -> None:
    federation_store.acknowledge(conn, day, content_hash, datetime.now(UTC).isoformat())
    after = {"parent_url": link["parent_url"], "day": day, "content_hash": content_hash, "status": status}
    audit.record(conn, "federation_report", day, "sent", after=after)


def jobs() -> list[Job]:
    return [Job(REPORT_JOB, every=REPORT_EVERY, run=send_reports)]
