"""The daily retention job: each unit's personal data erased once it is older than the unit keeps it.

A unit's retention (`PATCH /api/v1/units/{code}` `retention`, inherited down the tree, defaults and
limits in `feedback.unit_settings`) says how many days it keeps free-text comments, contacts, case
references and officer codes, and the responses themselves. Once a day (`retention.erase`; `feedback
tick --job retention.erase --now …` runs it as of any time) every response of a unit whose local day is
older than that has the data erased (`feedback.erasure`: comments become the marker, contacts are
deleted, case references and officer codes cleared) or, past `responses_days`, is deleted; the rollups
keep counting it. A response whose corrective action is still open keeps its data until the action
closes (the next run after that erases it). Kiosk invitations, which carry a case reference and an
officer code, are deleted once the shorter of those two retentions has passed.

The job reads candidates on a reader and erases them in write jobs of at most BATCH responses, so the
writer is never held for long. For comments, case references and officer codes it keeps a mark per unit
and kind (`retention_marks`): the next run reads only the days after it, less the 30 days an answer may
be dated back. What it did goes into the audit log as counts per unit and kind, never content.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from feedback import audit, erasure
from feedback.catalog import Snapshot
from feedback.jobs import Job, JobContext
from feedback.store import Connection
from feedback.store import kiosks as kiosk_store
from feedback.store import paper_entries as entry_store
from feedback.store import paper_scans as scan_store
from feedback.store import responses as response_store

JOB = "retention.erase"
#: Responses per write job: a batch takes the writer for a few milliseconds.
BATCH = 500
#: How far before its mark a run looks again: a response may be dated up to 30 days before it arrives
#: (`ingest.MAX_AGE`), and local days differ from UTC by a day at most.
LATE_DAYS = 32
#: The kinds erased from the responses' own columns, with the field each erases.
ERASED_FIELDS = {"comments_days": "comment", "case_refs_days": "case_ref", "officers_days": "officer"}
#: What the counts in the log call each kind.
COUNT_NAMES = {
    "comments_days": "comments",
    "contacts_days": "contacts",
    "case_refs_days": "case_refs",
    "officers_days": "officers",
    "responses_days": "responses",
    "invitations": "invitations",  # kiosk invitations (a case reference and an officer code each)
    "paper": "paper_copies",  # decided scanned pages' images and second entries of paper forms
}


def jobs() -> list[Job]:
    return [Job(JOB, every=24 * 3600, run=run)]


def cutoff_day(now: datetime, tz: str, days: int) -> str:
    """The first local day still kept: responses of earlier days are older than `days`."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return (today - timedelta(days=days)).isoformat()


async def run(ctx: JobContext) -> dict[str, dict[str, int]]:
    """One retention run over every unit; returns the counts it logged (unit → kind → responses)."""
    run_id = f"{ctx.now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    counts: dict[str, dict[str, int]] = {}
    with audit.acting_as(audit.Actor("job", JOB)):
        for code in sorted(ctx.snapshot.units):
            unit = ctx.snapshot.units[code]
            found = await _run_unit(ctx, code, unit.tz)
            if any(found.values()):
                counts[code] = found
        if counts:  # a run that found nothing to do leaves its trace in job_runs only
            totals = {name: sum(c.get(name, 0) for c in counts.values()) for name in COUNT_NAMES.values()}
            summary = {"now": ctx.now.isoformat(), "units": counts, "totals": totals}
            await ctx.store.write(lambda conn: audit.record(conn, "retention", run_id, "erase", after=summary))
    return counts


async def _run_unit(ctx: JobContext, code: str, tz: str) -> dict[str, int]:
    rules = ctx.snapshot.retention(code)
    found: dict[str, int] = {}
    # Responses past their end first: what they held goes with them, nothing is erased from them first.
    days = rules["responses_days"]["days"]
    if days is not None:
        found["responses"] = await _delete_responses(ctx, code, cutoff_day(ctx.now, tz, days))
    for kind, field in ERASED_FIELDS.items():
        days = rules[kind]["days"]
        if days is not None:
            found[COUNT_NAMES[kind]] = await _erase_marked(ctx, code, kind, field, cutoff_day(ctx.now, tz, days))
    days = rules["contacts_days"]["days"]
    if days is not None:
        found["contacts"] = await _erase_contacts(ctx, code, cutoff_day(ctx.now, tz, days))
    found["invitations"] = await _delete_invitations(ctx, code, rules)
    days = rules["comments_days"]["days"]
    if days is not None:
        found["paper_copies"] = await _forget_paper_copies(ctx, code, days)
    return {name: n for name, n in found.items() if n}


async def _erase_marked(ctx: JobContext, unit: str, kind: str, field: str, cutoff: str) -> int:
    """Erase `field` from the unit's responses dated before `cutoff`, reading from the kind's mark on,
    then move the mark up to the cutoff, or to the first day a response was held back for its action."""
    mark = await ctx.store.read(lambda conn: response_store.retention_mark(conn, unit, kind))
    start = (date.fromisoformat(mark) - timedelta(days=LATE_DAYS)).isoformat() if mark else ""
    erased, held = await _in_batches(
        ctx,
        lambda conn, after: response_store.retention_candidates(conn, unit, kind, start, cutoff, after, BATCH),
        lambda conn, ids: _erase_batch(conn, ctx.snapshot, ids, field),
        # Only rows with typed text take a write: option keys are strings too.
        keep=(lambda row: _has_text(ctx.snapshot, row)) if field == "comment" else None,
    )
    through = min([cutoff, *held])
    if mark is None or through != mark:
        await ctx.store.write(lambda conn: response_store.set_retention_mark(conn, unit, kind, through))
    return erased


async def _erase_contacts(ctx: JobContext, unit: str, cutoff: str) -> int:
    erased, _held = await _in_batches(
        ctx,
        lambda conn, after: response_store.contact_candidates(conn, unit, cutoff, after[1], BATCH),
        lambda conn, ids: _erase_batch(conn, ctx.snapshot, ids, "contact"),
    )
    return erased


async def _delete_responses(ctx: JobContext, unit: str, cutoff: str) -> int:
    """Delete the unit's responses dated before `cutoff`, a day at a time: a day of at most BATCH
    responses, none held for an open action, goes in one write logged as one purge of the day; a larger
    day, or one with held responses, in batches logged response by response."""
    days = await ctx.store.read(lambda conn: response_store.days_before(conn, unit, cutoff))
    deleted = 0
    for day, count in days:
        if count <= BATCH:
            deleted += await ctx.store.write(lambda conn, day=day: _delete_day(conn, unit, day))
            continue
        following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        done, _held = await _in_batches(
            ctx,
            lambda conn, after, day=day, following=following: response_store.retention_candidates(
                conn, unit, "responses_days", day, following, after, BATCH
            ),
            _delete_batch,
        )
        deleted += done
    return deleted


def _delete_day(conn: Connection, unit: str, day: str) -> int:
    ids = response_store.ids_of_day(conn, unit, day)
    held = erasure.held_by_actions(conn, ids)
    if held or len(ids) > BATCH:  # changed since it was counted: response by response
        return len(erasure.delete(conn, [i for i in ids if i not in held][:BATCH]))
    return erasure.delete_day(conn, unit, day, ids)


async def _in_batches(
    ctx: JobContext,
    read: Callable[[Connection, tuple[str, str]], list[tuple[Any, ...]]],
    write: Callable[[Connection, list[str]], tuple[int, list[str]]],
    keep: Callable[[tuple[Any, ...]], bool] | None = None,
) -> tuple[int, list[str]]:
    """Read candidates (day, id, …) a batch at a time on a reader, those `keep` accepts handled in one
    write job per batch; (responses changed, the days of those held back for an open action)."""
    changed, held_days = 0, []
    after = ("", "")
    while True:
        batch = await ctx.store.read(lambda conn, after=after: read(conn, after))
        if not batch:
            return changed, held_days
        days = {row[1]: row[0] for row in batch if keep is None or keep(row)}
        if days:
            done, held = await ctx.store.write(lambda conn, ids=list(days): write(conn, ids))
            changed += done
            held_days.extend(days[response_id] for response_id in held)
        if len(batch) < BATCH:
            return changed, held_days
        after = (batch[-1][0], batch[-1][1])


def _has_text(snapshot: Snapshot, row: tuple[Any, ...]) -> bool:
    """Whether a candidate (day, id, answers, survey, survey_version) holds typed text."""
    _day, _id, answers, survey, version = row
    found = {"survey": survey, "survey_version": version}
    return bool(erasure.free_text(snapshot, found, erasure.json_answers({"answers": answers})))


async def _delete_invitations(ctx: JobContext, unit: str, rules: dict[str, dict[str, Any]]) -> int:
    """Kiosk invitations carry a case reference and an officer code: they go once the shorter of the two
    retentions has passed (a tap they vouch for arrives within 30 days, far sooner)."""
    kept = [rules[kind]["days"] for kind in ("case_refs_days", "officers_days") if rules[kind]["days"] is not None]
    touchpoints = [tp.token for tp in ctx.snapshot.touchpoints.values() if tp.unit == unit and tp.kind == "kiosk"]
    if not kept or not touchpoints:
        return 0
    before = (ctx.now - timedelta(days=min(kept))).isoformat()
    return await ctx.store.write(lambda conn: kiosk_store.delete_invitations_before(conn, touchpoints, before))


async def _forget_paper_copies(ctx: JobContext, unit: str, days: int) -> int:
    """Once a decision on a scanned page or a second entry is as old as the unit keeps comments, the
    copies it kept (the page's image, the entry's answers) go: the stored response holds what was taken."""
    before = (ctx.now - timedelta(days=days)).isoformat()

    def job(conn: Connection) -> int:
        return scan_store.drop_decided_images(conn, unit, before) + entry_store.delete_decided(conn, unit, before)

    return await ctx.store.write(job)


def _erase_batch(conn: Connection, snapshot: Snapshot, ids: list[str], field: str) -> tuple[int, list[str]]:
    held = erasure.held_by_actions(conn, ids)
    done = erasure.erase(conn, snapshot, [i for i in ids if i not in held], [field], by="retention")
    return len(done), sorted(held)


def _delete_batch(conn: Connection, ids: list[str]) -> tuple[int, list[str]]:
    held = erasure.held_by_actions(conn, ids)
    return len(erasure.delete(conn, [i for i in ids if i not in held])), sorted(held)
