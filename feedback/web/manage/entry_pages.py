"""`/manage/entry`: keying paper forms in from the keyboard alone, and the hotline (`?channel=hotline`);
`/manage/entry/conflicts`: second entries with other answers, beside the stored ones, for a person to
keep the first or take the second. For admins and managers of the forms' unit subtree.

The screen is static HTML and `/static/entry.js`: it loads a form through `GET /api/v1/paper-forms/{serial}`
and saves through `POST /api/v1/paper-entries` with the page's CSRF token; a hotline call starts with
`POST /api/v1/touchpoints/{token}/call-sheets`. The fixed phrases of the hotline script (greeting, the
call-back question, thanks) come from the catalogues in each of the four languages, so the operator
reads them in the caller's language whatever the page's own.
"""

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from feedback import paper_entry
from feedback.catalog import Snapshot
from feedback.i18n import ENDONYMS, gettext_for, text_in
from feedback.models import LANGUAGES, ChoiceQuestion, RatingQuestion
from feedback.web.access import requires_role
from feedback.web.api import fresh_snapshot
from feedback.web.manage import auth, layout
from feedback.web.security import Principal

ENTRY_PATH = "/manage/entry"
CONFLICTS_PATH = "/manage/entry/conflicts"
MAX_REVIEWS = 100


def N_(message: str) -> str:
    """Marks a message for translation; it is translated where it is shown."""
    return message


#: The hotline script's fixed phrases, read to the caller in their language.
SCRIPT_PHRASES = {
    "greeting": N_(
        "Hello, this is the feedback line of %(unit)s. May I ask you a few short questions about the service"
        " you received? It takes about two minutes."
    ),
    "scale": N_("Please answer with a number from 1 to %(n)s."),
    "callback": N_(
        "Would you like us to call you back about your answers? If so, which number may we call, and do you"
        " agree that we keep it for the call-back only?"
    ),
    "thanks": N_("Thank you for your answers. Goodbye."),
}

#: What the screen's script says, in the page's language.
UI_STRINGS = {
    "loading": N_("Loading form %(serial)s…"),
    "loaded": N_("Form %(serial)s: %(touchpoint)s, survey %(survey)s version %(version)s, %(lang)s."),
    "entered": N_(
        "This form was entered before (receipt %(receipt)s): the same answers again store nothing, other"
        " answers are kept for review."
    ),
    "saved": N_("Saved form %(serial)s. Receipt %(receipt)s."),
    "duplicate": N_("Form %(serial)s was entered before with the same answers. Receipt %(receipt)s."),
    "conflict": N_(
        "Form %(serial)s was entered before with other answers. This entry is kept for review #%(review)s;"
        " nothing stored changed."
    ),
    "saving": N_("Saving form %(serial)s…"),
    "error": N_("Not saved: %(detail)s"),
    "network": N_("The server could not be reached. Nothing was saved; press Enter to try again."),
    "no_answer": N_("no answer"),
    "skip_hint": N_("0: no answer"),
    "choose_hint": N_("Press 1 to %(n)s"),
    "many_hint": N_("Press the numbers of every option ticked, then Enter"),
    "text_hint": N_("Type the text, then Enter (Enter alone: no answer)"),
    "date_hint": N_("Type the date as digits: day, month, year (e.g. 05032026), then Enter to save"),
    "bad_date": N_("Not a date: type day, month and year as digits"),
    "date_range": N_("The date must be between %(first)s and %(last)s"),
    "question_of": N_("Question %(n)s of %(total)s"),
    "stored": N_("Stored"),
    "this_entry": N_("This entry"),
    "question": N_("Question"),
    "review_link": N_("Open the second entries to decide"),
    "call_started": N_("Call sheet %(serial)s started. Read the script to the caller."),
    "call_saved": N_("Call saved. Receipt %(receipt)s."),
    "consent_hint": N_("1: the caller agreed to be called back, 0: not"),
    "date_of_service": N_("Date of service"),
}


#: How the second entries page names the channels a form is entered by.
CHANNEL_LABELS = {"paper": N_("Paper form"), "hotline": N_("Hotline call")}


def _strings(lang: str) -> dict[str, str]:
    _ = gettext_for(lang)
    return {key: _(message) for key, message in UI_STRINGS.items()}


def _script(snapshot: Snapshot, unit: str) -> dict[str, dict[str, str]]:
    """The script's fixed phrases in each language, the unit named in that language."""
    phrases: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        _ = gettext_for(lang)
        phrases[lang] = {key: _(message) for key, message in SCRIPT_PHRASES.items()}
        phrases[lang]["unit"] = snapshot.unit_name(unit, lang)
    return phrases


def hotline_touchpoints(snapshot: Snapshot, principal: Principal, lang: str) -> list[dict[str, Any]]:
    """The live touchpoints of the user's subtree a call can be taken at, with their survey's languages and
    the script in each language."""
    found = []
    for touchpoint in sorted(snapshot.touchpoints.values(), key=lambda t: (t.unit, t.name)):
        if touchpoint.token in snapshot.retired or not principal.may_see(touchpoint.unit, snapshot):
            continue
        version = snapshot.current.get(touchpoint.survey)
        if version is None:
            continue
        found.append(
            {
                "token": touchpoint.token,
                "label": f"{touchpoint.name} · {snapshot.unit_name(touchpoint.unit, lang)}",
                "lang": touchpoint.lang,
                "languages": [code for code in version.definition.languages if code in LANGUAGES],
                "script": _script(snapshot, touchpoint.unit),
            }
        )
    return found


@get(
    ENTRY_PATH,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    include_in_schema=False,
)
async def entry_screen(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    snapshot = await fresh_snapshot(state)
    lang = layout.choose_language(request)
    hotline = request.query_params.get("channel") == "hotline"
    waiting = await state.store.read(lambda conn: paper_entry.waiting_count(conn, _units(principal, snapshot)))
    return layout.render(
        request,
        "entry.html",
        {
            "hotline": hotline,
            "strings": _strings(lang),
            "touchpoints": hotline_touchpoints(snapshot, principal, lang) if hotline else [],
            "endonyms": ENDONYMS,
            "waiting": waiting,
        },
    )


def _units(principal: Principal, snapshot: Snapshot) -> list[str] | None:
    return None if principal.unit is None else snapshot.subtree(principal.unit)


def _question_rows(review: dict[str, Any], snapshot: Snapshot, lang: str) -> list[dict[str, Any]]:
    """Each question of the form's survey version with the stored answer and the second entry's, as read."""
    form = review["form"] or {}
    version = snapshot.versions.get((form.get("survey"), form.get("survey_version")))
    stored = (review["stored"] or {}).get("answers", {})
    second = review["answers"]
    if version is None:
        keys = sorted(set(stored) | set(second))
        return [{"key": k, "text": k, "stored": stored.get(k), "second": second.get(k), "differs": True} for k in keys]
    rows = []
    for question in version.definition.questions:
        if question.key not in stored and question.key not in second:
            continue
        rows.append(
            {
                "key": question.key,
                "text": text_in(question.text, lang, question.key),
                "stored": _shown(question, stored.get(question.key), lang),
                "second": _shown(question, second.get(question.key), lang),
                "differs": stored.get(question.key) != second.get(question.key),
            }
        )
    return rows


def _shown(question: Any, value: Any, lang: str) -> str | None:
    """An answer as a person reads it: a rating with its label, options by their text."""
    if value is None:
        return None
    if isinstance(question, RatingQuestion):
        labels = (question.labels or {}).get(lang) or (question.labels or {}).get("en")
        if labels and isinstance(value, int) and 1 <= value <= len(labels):
            return f"{value} · {labels[value - 1]}"
        return str(value)
    if isinstance(question, ChoiceQuestion):
        texts = {option.key: text_in(option.text, lang, option.key) for option in question.options}
        values = value if isinstance(value, list) else [value]
        return ", ".join(texts.get(v, str(v)) for v in values)
    return str(value)


@get(
    CONFLICTS_PATH,
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    include_in_schema=False,
)
async def conflicts_page(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    snapshot = await fresh_snapshot(state)
    lang = layout.choose_language(request)
    units = _units(principal, snapshot)
    reviews = await state.store.read(lambda conn: paper_entry.waiting_reviews(conn, units, MAX_REVIEWS))
    for review in reviews:
        review["rows"] = _question_rows(review, snapshot, lang)
        touchpoint = snapshot.touchpoints.get((review["form"] or {}).get("touchpoint", ""))
        review["touchpoint_name"] = touchpoint.name if touchpoint else ""
    done = request.query_params.get("done")
    return layout.render(
        request,
        "entry_conflicts.html",
        {
            "reviews": reviews,
            "done": done if done in ("kept_first", "took_second") else None,
            "channel_labels": CHANNEL_LABELS,
        },
    )


def _may_see(principal: Principal, snapshot: Snapshot):
    return lambda unit: principal.may_see(unit, snapshot)


@post(
    CONFLICTS_PATH + "/{review:int}/keep-first",
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    include_in_schema=False,
)
async def keep_first(
    request: Request, state: State, principal: NamedDependency[Principal], review: FromPath[int]
) -> Response:
    snapshot = await fresh_snapshot(state)
    await paper_entry.keep_first(state.store, review, by=principal.user, may_see=_may_see(principal, snapshot))
    return Redirect(f"{CONFLICTS_PATH}?done=kept_first", status_code=303)


@post(
    CONFLICTS_PATH + "/{review:int}/take-second",
    dependencies={"principal": auth.SESSION},
    guards=[requires_role(*auth.WRITER_ROLES)],
    include_in_schema=False,
)
async def take_second(
    request: Request, state: State, principal: NamedDependency[Principal], review: FromPath[int]
) -> Response:
    snapshot = await fresh_snapshot(state)
    await paper_entry.take_second(
        state.store,
        snapshot,
        review,
        by=principal.user,
        may_see=_may_see(principal, snapshot),
        default_action_days=state.settings.default_action_days,
    )
    return Redirect(f"{CONFLICTS_PATH}?done=took_second", status_code=303)


ROUTES: list = [entry_screen, conflicts_page, keep_first, take_second]
