"""Scanned paper forms: the pages read with confidence are stored, the others wait for a person.

`read_scans` takes pages (from `feedback paper read` or the upload at `/manage/entry/scans`), reads
them (`feedback.paper_scan`) a few at a time on a worker thread, stores every confident page through
`paper_entry.enter` (source `scanned`: the one ingest path, the form's own survey version and date)
and keeps every other page in the review queue (`paper_scans`): its image at about 100 dpi, what was
read (proposed answers, each question's reason when uncertain) and why it is there. A page whose form
belongs to a unit outside the uploader's subtree is refused and named in the summary; a form's page
scanned again while its page waits is kept once (by its serial; a page without a known serial by its image,
within the uploader's unit); once decided or discarded, a new scan of the form waits anew.

A person then confirms (correcting what needs it, typing the serial when the QR code could not be
read) or discards each queued page: `confirm` stores it through `enter` like a keyed form,
`discard` closes it with a reason, and both are in the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from feedback import audit, paper_entry, paper_forms
from feedback.catalog import Snapshot
from feedback.db import Store
from feedback.errors import Conflict, FeedbackError, InvalidInput, NotFound
from feedback.paper_layout import PAPER_MM
from feedback.store import Connection
from feedback.store import paper as paper_store
from feedback.store import paper_scans as scan_store

#: The largest upload the manager app takes at once.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: Pages read between two looks at the database (bounds the memory an upload holds).
CHUNK = 8
STATUSES = ("waiting", "stored", "conflict", "discarded")
MAX_REASON = 500
MAX_LIST = 500

Page = tuple[str, Any]  # (its name, a greyscale image as a numpy array)
MaySee = Callable[[str], bool]


@dataclass
class Summary:
    """What became of an upload's pages."""

    pages: int = 0
    stored: int = 0
    duplicates: int = 0
    queued: list[dict[str, Any]] = field(default_factory=list)  # {"source", "serial", "reasons", "review"}
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # {"source", "serial", "review", "message"}
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"source", "serial", "message"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "queued": self.queued,
            "conflicts": self.conflicts,
            "refused": self.refused,
        }


def days_of(form: dict[str, Any], snapshot: Snapshot) -> tuple[date, date]:
    """The first and last possible date of service of a form: its print day and today, in its unit's zone."""
    return (
        date.fromisoformat(paper_entry.printed_day(form, snapshot)),
        date.fromisoformat(paper_entry.local_today(form["unit"], snapshot)),
    )


def _definition(snapshot: Snapshot, form: dict[str, Any] | None):
    if form is None:
        return None
    version = snapshot.versions.get((form["survey"], form["survey_version"]))
    return version.definition if version is not None else None


def _read_chunk(pages: Iterator[Page]) -> list:
    """The next pages, each located (its marks and QR code): on a worker thread."""
    from feedback import paper_scan

    return [paper_scan.locate(image, source) for source, image in itertools.islice(pages, CHUNK)]


def _key(reading: Any, unit: str | None) -> str:
    """What keeps a page waiting once (`paper_scans.digest`): its form's serial, however often it is scanned;
    a page whose serial is unknown by its image within the uploader's unit (another unit's upload of the
    same image is a page of its own, which it can see)."""
    if reading.form:
        return f"serial:{reading.serial}"
    return f"image:{unit or '*'}:{hashlib.sha256(reading.image).hexdigest()}"


def _queue_row(reading: Any, *, by: str, unit: str | None, at: str, error: FeedbackError | None = None) -> dict:
    proposed: dict[str, Any] = {
        "answers": reading.proposed(),
        "occurred_on": reading.occurred_on,
        "uncertain": reading.uncertain(),
        "marks": {key: found.marks for key, found in reading.answers.items() if found.marks},
    }
    if error is not None:
        proposed["error"] = error.message
    return {
        "digest": _key(reading, unit),
        "source": reading.source[:300],
        "uploaded_at": at,
        "uploaded_by": by,
        "unit": reading.form["unit"] if reading.form else unit,
        "serial": reading.serial,
        "paper": reading.aligned,
        "image": reading.image,
        "proposed": msgspec.json.encode(proposed).decode(),
        "reasons": msgspec.json.encode(reading.reasons).decode(),
    }


async def read_scans(
    store: Store,
    snapshot: Snapshot,
    pages: Iterator[Page],
    *,
    by: str,
    unit: str | None,
    secret: str,
    may_enter: MaySee | None = None,
) -> Summary:
    """Read every page: store the confident ones, queue the rest, refuse forms outside `may_enter`
    (None: any unit). `by` names who uploaded them; `unit` is the uploader's (the queue scope of pages
    whose serial is unknown). `pages` may raise `paper_pages.UnreadableInput` (a file that is no PDF or
    image): the pages before it are handled, and it propagates."""
    from feedback import paper_scan

    summary = Summary()
    while True:
        located = await asyncio.to_thread(_read_chunk, pages)
        if not located:
            return summary
        summary.pages += len(located)
        serials = sorted({page.serial for page in located if page.serial})
        forms = await store.read(lambda conn, wanted=serials: paper_store.forms(conn, wanted)) if serials else {}

        def read_all(located=located, forms=forms) -> list:
            readings = []
            for page in located:
                form = forms.get(page.serial) if page.serial else None
                days = days_of(form, snapshot) if form else (date.min, date.max)
                readings.append(paper_scan.read_located(page, form, _definition(snapshot, form), days))
            return readings

        readings = await asyncio.to_thread(read_all)
        at = datetime.now(UTC).isoformat()
        to_store, to_queue = [], []
        for reading in readings:
            if reading.form is not None and may_enter is not None and not may_enter(reading.form["unit"]):
                message = f"serial: form {reading.serial} belongs to a unit outside yours"
                summary.refused.append({"source": reading.source, "serial": reading.serial, "message": message})
            elif reading.confident:
                to_store.append(reading)
            else:
                to_queue.append((reading, None))
        entries = [
            paper_entry.PaperEntry(
                serial=reading.serial, answers=reading.proposed(), occurred_on=reading.occurred_on, source="scanned"
            )
            for reading in to_store
        ]
        outcomes = await paper_entry.enter(store, snapshot, entries, entered_by=by, secret=secret, may_enter=may_enter)
        for reading, outcome in zip(to_store, outcomes, strict=True):
            if outcome.status == "stored":
                summary.stored += 1
            elif outcome.status == "duplicate":
                summary.duplicates += 1
            elif outcome.status == "conflict":
                review = getattr(outcome.error, "review", None)
                message = outcome.error.message if outcome.error else ""
                summary.conflicts.append(
                    {"source": reading.source, "serial": reading.serial, "review": review, "message": message}
                )
            else:
                reading.add_reason(paper_scan.REJECTED)
                to_queue.append((reading, outcome.error))
        if to_queue:
            rows = [_queue_row(reading, by=by, unit=unit, at=at, error=error) for reading, error in to_queue]
            kept = await store.write(lambda conn, rows=rows: [scan_store.add(conn, row) for row in rows])
            for (reading, _error), (review, _new) in zip(to_queue, kept, strict=True):
                summary.queued.append(
                    {"source": reading.source, "serial": reading.serial, "reasons": reading.reasons, "review": review}
                )


# -- the queue ------------------------------------------------------------------------------------------


def view(row: dict[str, Any]) -> dict[str, Any]:
    """A queued page as the API and the pages show it (without its image)."""
    return {
        "id": row["id"],
        "source": row["source"],
        "uploaded_at": row["uploaded_at"],
        "uploaded_by": row["uploaded_by"],
        "unit": row["unit"],
        "serial": row["serial"],
        "paper": row["paper"],
        "reasons": msgspec.json.decode(row["reasons"]),
        "proposed": msgspec.json.decode(row["proposed"]),
        "status": row["status"],
        "resolved_by": row["resolved_by"],
        "resolved_at": row["resolved_at"],
        "note": row["note"],
        "response_id": row["response_id"],
    }


def scope_of(unit: str | None, snapshot: Snapshot) -> tuple[list[str] | None, bool]:
    """(the units whose pages a user of `unit` sees, whether also those of no unit); None: every unit."""
    if unit is None:
        return None, True
    return (snapshot.subtree(unit) if unit in snapshot.units else []), False


def parse_status(value: str | None) -> str | None:
    if value is None or value == "" or value == "all":
        return None
    if value not in STATUSES:
        raise InvalidInput(f"status: must be one of {[*STATUSES, 'all']}", "status")
    return value


def listing(conn: Connection, unit: str | None, snapshot: Snapshot, status: str | None) -> list[dict[str, Any]]:
    """The queued pages a user of `unit` sees, oldest first (at most MAX_LIST)."""
    units, unitless = scope_of(unit, snapshot)
    return [view(row) for row in scan_store.listed(conn, units, status=status, limit=MAX_LIST, unitless=unitless)]


def waiting_count(conn: Connection, unit: str | None, snapshot: Snapshot) -> int:
    units, unitless = scope_of(unit, snapshot)
    return scan_store.count_waiting(conn, units, unitless)


def visible(row: dict[str, Any] | None, may_see: MaySee, whole: bool) -> bool:
    """Whether a queued page is the user's: its unit in their subtree (a page of no unit: `whole`, a user
    of the whole installation)."""
    if row is None:
        return False
    return whole if row["unit"] is None else may_see(row["unit"])


def item(conn: Connection, scan_id: int, may_see: MaySee, whole: bool) -> dict[str, Any]:
    """A queued page of the user's, or NotFound naming `review`."""
    row = scan_store.get(conn, scan_id)
    if not visible(row, may_see, whole):
        raise NotFound(f"review: no scanned page #{scan_id}", "review")
    assert row is not None
    return view(row)


def image_of(conn: Connection, scan_id: int, may_see: MaySee, whole: bool) -> bytes:
    found = scan_store.image(conn, scan_id)
    if found is None or not visible({"unit": found[0]}, may_see, whole):
        raise NotFound(f"review: no scanned page #{scan_id}", "review")
    return found[1]


def _waiting(conn: Connection, scan_id: int, may_see: MaySee, whole: bool) -> dict[str, Any]:
    found = item(conn, scan_id, may_see, whole)
    if found["status"] != "waiting":
        raise Conflict(f"review: page #{scan_id} was decided already ({found['status']})", "review")
    return found


async def read_with_serial(
    store: Store, snapshot: Snapshot, scan_id: int, typed: str, *, may_see: MaySee, whole: bool
) -> dict[str, Any]:
    """A person typed the serial of a page whose QR code could not be read: the page is read again with
    that form's layout, and what is read is proposed. InvalidInput / NotFound naming `serial` (a form of a
    unit outside the user's subtree is unknown), NotFound / Conflict naming `review`."""
    from feedback import paper_scan

    def load(conn: Connection) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        found = _waiting(conn, scan_id, may_see, whole)
        form = paper_forms.find_form(conn, typed)
        if not may_see(form["unit"]):
            raise paper_entry.unknown_form(form["serial"])
        if form["paper"] not in PAPER_MM:  # a hotline call sheet: no printed page has its serial
            raise InvalidInput(f"serial: {form['serial']} is a call sheet, not a printed form", "serial")
        return found, form, image_of(conn, scan_id, may_see, whole)

    found, form, image = await store.read(load)
    definition = _definition(snapshot, form)
    if definition is None:
        raise NotFound(f"serial: survey {form['survey']!r} has no version {form['survey_version']}", "serial")
    if found["paper"] is not None and found["paper"] != form["paper"]:  # aligned to the other paper size
        reading = paper_scan.PageReading("review", serial=form["serial"], form=form)
        reading.add_reason(paper_scan.MISALIGNED)
    else:
        reading = await asyncio.to_thread(paper_scan.reread, image, form, definition, days_of(form, snapshot))
    proposed = {
        "answers": reading.proposed(),
        "occurred_on": reading.occurred_on,
        "uncertain": reading.uncertain(),
        "marks": {key: a.marks for key, a in reading.answers.items() if a.marks},
    }
    reasons = [*[r for r in found["reasons"] if r in (paper_scan.NO_QR, paper_scan.UNKNOWN_SERIAL)], *reading.reasons]

    def save(conn: Connection) -> None:
        if not scan_store.set_reading(
            conn,
            scan_id,
            serial=form["serial"],
            unit=form["unit"],
            proposed=msgspec.json.encode(proposed).decode(),
            reasons=msgspec.json.encode(reasons).decode(),
        ):
            raise Conflict(f"review: page #{scan_id} was decided meanwhile", "review")

    await store.write(save)
    return {**found, "serial": form["serial"], "unit": form["unit"], "proposed": proposed, "reasons": reasons}


async def confirm(
    store: Store,
    snapshot: Snapshot,
    scan_id: int,
    entry: paper_entry.PaperEntry,
    *,
    by: str,
    may_see: MaySee,
    whole: bool,
    secret: str,
) -> dict[str, Any]:
    """Store a queued page as a person confirmed or corrected it (`entry`, source `scanned`), and close it
    with who and when. The entry's error (naming its field) when it is refused; a second entry with other
    answers than a stored one closes the page as `conflict` (it waits on the entry conflicts page)."""
    found = await store.read(lambda conn: _waiting(conn, scan_id, may_see, whole))
    if not entry.serial:
        raise InvalidInput("serial: type the form's serial (printed under its title)", "serial")
    [outcome] = await paper_entry.enter(store, snapshot, [entry], entered_by=by, secret=secret, may_enter=may_see)
    if outcome.status == "rejected":
        assert outcome.error is not None
        raise outcome.error
    status = "conflict" if outcome.status == "conflict" else "stored"
    note = outcome.error.message if outcome.error is not None else outcome.receipt
    at = datetime.now(UTC).isoformat()

    def close(conn: Connection) -> None:
        if not scan_store.resolve(
            conn, scan_id, status, by=by, at=at, note=note, serial=outcome.serial, response_id=outcome.id
        ):
            raise Conflict(f"review: page #{scan_id} was decided meanwhile", "review")
        form = paper_store.form(conn, outcome.serial) if outcome.serial else None
        audit.record(
            conn,
            "paper_scan",
            scan_id,
            "confirm",
            before={"status": "waiting", "serial": found["serial"], "reasons": found["reasons"]},
            after={"status": status, "serial": outcome.serial, "response": outcome.id},
            unit=form["unit"] if form else found["unit"],
        )

    await store.write(close)
    return {"review": scan_id, "status": status, "id": outcome.id, "receipt": outcome.receipt, "note": note}


async def discard(store: Store, scan_id: int, reason: str, *, by: str, may_see: MaySee, whole: bool) -> None:
    """Close a queued page without storing it (a blank page, a form of another office, a test print), with
    the reason in the audit log. InvalidInput naming `reason`; NotFound / Conflict naming `review`."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason: say why the page is discarded", "reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason: at most {MAX_REASON} characters", "reason")
    at = datetime.now(UTC).isoformat()

    def close(conn: Connection) -> None:
        found = _waiting(conn, scan_id, may_see, whole)
        if not scan_store.resolve(conn, scan_id, "discarded", by=by, at=at, note=reason):
            raise Conflict(f"review: page #{scan_id} was decided meanwhile", "review")
        audit.record(
            conn,
            "paper_scan",
            scan_id,
            "discard",
            before={"status": "waiting", "serial": found["serial"], "reasons": found["reasons"]},
            after={"status": "discarded", "reason": reason},
            unit=found["unit"],
        )

    await store.write(close)
