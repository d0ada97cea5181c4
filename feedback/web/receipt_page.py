"""The public receipt page `/r/{receipt}`: what became of a rating, for whoever holds its receipt code.

It shows when and where the rating was received and the state of any corrective action it opened
(in words, with its deadline, and for a closed one what was done), in the citizen's language. It
never shows the answers, the comment, the level, the officer or the contact: a receipt is a short
code on a screen or a slip of paper, and whoever reads it over a shoulder learns no more than that.

The holder of the code may have the comment and contact of the rating erased (`/r/{receipt}/erase`:
a confirmation page, then a POST carrying the signed, short-lived confirmation it rendered, so a form
on another site cannot erase anything by itself); the rating stays and keeps counting.

Receipts are random (40 bits), so guessing one is bounded: the rate limit of the public routes covers
`GET /r/…`, and each client may ask for `GUESSES` unknown receipts per `GUESS_WINDOW`, counted
before the look-up (a receipt that is found gives its count back). An unknown receipt and a
malformed one get the same page after the same look-up.
"""

import hashlib
import hmac
import threading
import time
from collections import deque
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from babel.dates import format_time, get_datetime_format
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import __version__, audit, erasure
from feedback.catalog import Snapshot
from feedback.i18n import CATALOGUE, ENDONYMS, HTML_LANG, counter_label, gettext_for, negotiate
from feedback.ingest import normalise_receipt
from feedback.models import LANGUAGES
from feedback.store import Connection
from feedback.store import actions as action_store
from feedback.store import responses as response_store
from feedback.web.api import fresh_snapshot
from feedback.web.client_address import client_key
from feedback.web.survey_page import citizen_day, html, jinja, message_page

PREFIX = "/r"
GUESSES = 10  # unknown receipts one client may ask for within the window
GUESS_WINDOW = 15 * 60.0  # seconds
MAX_RECEIPT = 32  # longer is no receipt, however it is spaced
EXPIRED = "This confirmation has expired or did not come from the receipt page. Open the receipt page and try again."
CONFIRM_SECONDS = 3600  # how long an erasure confirmation page may be sent
MAX_ERASE_BODY = 1024


def N_(message: str) -> str:
    """Marks a message for translation; it is translated where it is shown."""
    return message


# An action's state as the citizen reads it: the steps of the ISO 10.2 workflow in five phases.
PHASES = {
    "new": N_("Received, waiting to be looked into"),
    "verifying": N_("Being looked into"),
    "appealed": N_("Being looked into"),
    "appeal_rejected": N_("Being looked into"),
    "reopened": N_("Being looked into again"),
    "explained": N_("Looked into: the unit has explained the matter"),
    "corrected": N_("Being put right"),
    "action_planned": N_("Being put right"),
    "implemented": N_("Put right: the result is being checked"),
    "effectiveness_review": N_("Put right: the result is being checked"),
    "closed": N_("Closed: the case is settled"),
    "appeal_upheld": N_("Closed: the case is settled"),
}
CLOSED = frozenset({"closed", "appeal_upheld"})


class GuessLedger:
    """Unknown receipts asked for per client (a keyed hash of its address), kept in memory for the window."""

    def __init__(self, limit: int = GUESSES, window: float = GUESS_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._asked: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def reserve(self, client: str) -> bool:
        """Count a look-up against the client before it is made; False when it has had its guesses."""
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            asked = self._asked.setdefault(client, deque())
            while asked and asked[0] <= now - self.window:
                asked.popleft()
            if len(asked) >= self.limit:
                return False
            asked.append(now)
            return True

    def release(self, client: str) -> None:
        """Give back a look-up that found its receipt: only guesses that miss count."""
        with self._lock:
            asked = self._asked.get(client)
            if asked:
                asked.pop()

    def _sweep(self, now: float) -> None:
        """Forget clients whose guesses are all older than the window (once a window)."""
        if now - self._swept < self.window:
            return
        self._swept = now
        for client in [c for c, asked in self._asked.items() if not asked or asked[-1] <= now - self.window]:
            del self._asked[client]


def guesses(state: State) -> GuessLedger:
    return state.store.local("receipt_guesses", GuessLedger)


def page_language(request: Request, touchpoint_lang: str | None = None) -> str:
    """As on the survey page: ?lang= first, then the touchpoint's language, then Accept-Language."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    if touchpoint_lang in LANGUAGES:
        return touchpoint_lang
    return negotiate(request.headers.get("accept-language")) or "en"


def not_found(request: Request) -> Response[str]:
    lang = page_language(request)
    _ = gettext_for(lang)
    return message_page(
        lang,
        _("Receipt not found"),
        _("No feedback has this receipt code. Check the code and try again."),
        404,
    )


def too_many(request: Request) -> Response[str]:
    lang = page_language(request)
    _ = gettext_for(lang)
    return message_page(
        lang,
        _("Too many look-ups"),
        _("Too many receipt codes were looked up from this connection. Please try again later."),
        429,
    )


def read_receipt(conn: Connection, receipt: str) -> list[dict[str, Any]]:
    """The responses with this receipt and the actions each opened, with what was done for closed ones."""
    found = response_store.with_receipt(conn, receipt)
    actions = action_store.opened_for(conn, [row["id"] for row in found])
    for row in found:
        row["actions"] = [action for action in actions if action["response_id"] == row["id"]]
        for action in row["actions"]:
            if action["status"] == "closed":
                action["records"] = action_store.records_newest_first(conn, action["id"])
                action["private"] = private_strings(conn, row["id"])
    return found


def private_strings(conn: Connection, response_id: str) -> list[str]:
    """What must never reach the page, even quoted in a "what we did" note: the officer, the case
    reference and the contact of the response."""
    response = response_store.get(conn, response_id) or {}
    values = [response.get("officer"), response.get("case_ref"), response_store.contact_of(conn, response_id)]
    return [value for value in values if value and len(value) >= 2]


def scrub(text: str | None, secrets: list[str]) -> str:
    if not text:
        return ""
    for secret in secrets:
        text = text.replace(secret, "…")
    return text.strip()


def latest(records: list[dict[str, Any]], *columns: str) -> str | None:
    """The newest non-empty value of the first of `columns` any step recorded (records newest first)."""
    for column in columns:
        for record in records:
            if record.get(column):
                return record[column]
    return None


def moment_in(value: str, tz: str, lang: str) -> str:
    """A stored moment as the unit's local date and time, in the citizen's language."""
    local = datetime.fromisoformat(value).astimezone(ZoneInfo(tz))
    locale = CATALOGUE.get(lang, "en")
    return get_datetime_format("medium", locale=locale).format(
        format_time(local, "short", locale=locale), citizen_day(local.date(), lang)
    )


def action_view(action: dict[str, Any], tz: str, lang: str) -> dict[str, Any]:
    """What the citizen reads of one action: its phase, deadline, and for a closed one what was done."""
    _ = gettext_for(lang)
    closed = action["status"] in CLOSED
    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    due = date.fromisoformat(action["due"]) if action.get("due") else None
    view: dict[str, Any] = {
        "state": _(PHASES.get(action["status"], "Being looked into")),
        "opened": moment_in(action["opened_at"], tz, lang),
        "due": citizen_day(due, lang) if due and not closed else None,
        "overdue": bool(due and not closed and due < today),
        "closed": moment_in(action["closed_at"], tz, lang) if closed and action.get("closed_at") else None,
    }
    if action["status"] == "closed":  # an upheld appeal's decision is the staff's, not the citizen's
        records, secrets = action.get("records", []), action.get("private", [])
        view["done"] = scrub(latest(records, "result", "action_taken", "correction"), secrets)
        view["explanation"] = scrub(latest(records, "explanation"), secrets)
    return view


def confirmation(secret: str, receipt: str, issued: int | None = None) -> str:
    """The signed token an erasure confirmation page carries: when it was issued and an HMAC of that and
    the receipt, so a POST without a page this server rendered for this receipt within the hour is refused."""
    issued = int(time.time()) if issued is None else issued
    mac = hmac.new(secret.encode(), f"receipt-erase:{receipt}:{issued}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{issued}.{mac}"


def confirmed(secret: str, receipt: str, token: str) -> bool:
    issued, _, _mac = token.partition(".")
    if not issued.isdecimal() or not 0 <= time.time() - int(issued) <= CONFIRM_SECONDS:
        return False
    return hmac.compare_digest(confirmation(secret, receipt, int(issued)), token)


def all_erased(found: list[dict[str, Any]]) -> bool:
    """Whether the comment and contact of every response with the receipt are erased already."""
    return all(set(erasure.CITIZEN_FIELDS) <= set(erasure.erased_fields(row)) for row in found)


def page_context(lang: str, key: str, base_path: str) -> dict[str, Any]:
    return {
        "_": gettext_for(lang),
        "lang": lang,
        "html_lang": HTML_LANG.get(lang, lang),
        "asset_version": __version__,
        "switch_langs": [(code, ENDONYMS[code]) for code in LANGUAGES],
        "base_path": base_path,
        "case_query": "",
        "receipt": key,
        "receipt_path": f"{PREFIX}/{quote(key, safe='')}",
    }


def item_view(row: dict[str, Any], snapshot: Snapshot, lang: str) -> dict[str, Any]:
    unit = snapshot.units.get(row["unit"])
    touchpoint = snapshot.touchpoints.get(row["touchpoint"])
    tz = unit.tz if unit else "UTC"
    where = [snapshot.unit_name(row["unit"], lang)]
    if touchpoint is not None:
        where.append(touchpoint.name)
        counter = counter_label(touchpoint.counter, lang)
        if counter and touchpoint.counter not in touchpoint.name:  # "Quầy 1" names its counter already
            where.append(counter)
    return {
        "received": moment_in(row["occurred_at"], tz, lang),
        "where": " · ".join(where),
        "actions": [action_view(action, tz, lang) for action in row["actions"]],
    }


class ReceiptPageController(Controller):
    path = PREFIX
    include_in_schema = False

    @get("/")
    async def look_up(self, request: Request) -> Response:
        """The survey page's "look up a receipt" form: on to the receipt's own page."""
        typed = (request.query_params.get("receipt") or "")[:MAX_RECEIPT]
        receipt = normalise_receipt(typed) or "".join(typed.split()) or "-"
        lang = request.query_params.get("lang")
        query = f"?lang={lang}" if lang in LANGUAGES else ""
        return Redirect(f"{PREFIX}/{quote(receipt, safe='')}{query}", status_code=303)

    @get("/{receipt:str}")
    async def show(self, receipt: FromPath[str], request: Request, state: State) -> Response[str]:
        ledger, client = guesses(state), client_key(request.scope, state.settings)
        if not ledger.reserve(client):  # counted before the look-up, so no guess goes unchecked
            return too_many(request)
        # A malformed code is looked up as typed: the same work and the same page as an unknown one.
        key = normalise_receipt(receipt[:MAX_RECEIPT]) or receipt[:MAX_RECEIPT]
        found = await state.store.read(lambda conn: read_receipt(conn, key))
        if not found:
            return not_found(request)
        ledger.release(client)
        snapshot = await fresh_snapshot(state)
        touchpoint = snapshot.touchpoints.get(found[0]["touchpoint"])
        lang = page_language(request, touchpoint.lang if touchpoint else None)
        context = page_context(lang, key, f"{PREFIX}/{quote(key, safe='')}")
        context["items"] = [item_view(row, snapshot, lang) for row in found]
        context["erased"] = all_erased(found)
        # Private to the one who holds the code: never kept by a shared cache.
        return html(jinja.get_template("receipt.html").render(context), cache_control="private, no-store")

    @get("/{receipt:str}/erase")
    async def confirm_erase(self, receipt: FromPath[str], request: Request, state: State) -> Response[str]:
        """The confirmation step: what erasing means, and the form that does it."""
        found, key = await self._look_up(receipt, request, state)
        if found is None:
            return too_many(request)
        if not found:
            return not_found(request)
        snapshot = await fresh_snapshot(state)
        touchpoint = snapshot.touchpoints.get(found[0]["touchpoint"])
        lang = page_language(request, touchpoint.lang if touchpoint else None)
        context = page_context(lang, key, f"{PREFIX}/{quote(key, safe='')}/erase")
        context["token"] = confirmation(state.settings.secret, key)
        context["erased"] = all_erased(found)
        return html(jinja.get_template("receipt_erase.html").render(context), cache_control="private, no-store")

    @post("/{receipt:str}/erase", request_max_body_size=MAX_ERASE_BODY, status_code=303)
    async def erase(self, receipt: FromPath[str], request: Request, state: State) -> Response:
        """Erase the comment and contact of the receipt's responses, then back to the receipt's page."""
        found, key = await self._look_up(receipt, request, state)
        if found is None:
            return too_many(request)
        if not found:
            return not_found(request)
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        lang = page_language(request)
        if not confirmed(state.settings.secret, key, (form.get("confirm") or [""])[0]):
            _ = gettext_for(lang)
            return message_page(
                lang,
                _("Nothing was erased"),
                _(EXPIRED),
                403,
            )
        snapshot = await fresh_snapshot(state)
        with audit.acting_as(audit.citizen(key)):
            await state.store.write(lambda conn: erasure.erase_receipt(conn, snapshot, key))
        query = f"?lang={lang}" if request.query_params.get("lang") in LANGUAGES else ""
        return Redirect(f"{PREFIX}/{quote(key, safe='')}{query}", status_code=303)

    async def _look_up(self, receipt: str, request: Request, state: State) -> tuple[list[dict[str, Any]] | None, str]:
        """The responses of a receipt (None: the client has had its guesses), counted as `show` counts."""
        ledger, client = guesses(state), client_key(request.scope, state.settings)
        key = normalise_receipt(receipt[:MAX_RECEIPT]) or receipt[:MAX_RECEIPT]
        if not ledger.reserve(client):
            return None, key
        found = await state.store.read(lambda conn: response_store.with_receipt(conn, key))
        if found:
            ledger.release(client)
        return found, key
