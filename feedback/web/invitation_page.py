"""The page an SMS invitation's link opens: `GET /i/{code}` shows the survey of the invitation's touchpoint
for its case, `POST /i/{code}` takes the form (JavaScript optional), in the survey page's own way.

Unlike a touchpoint's page, every view of an invitation's page carries the same form id, the invitation's
response id: a second submit (a resend, another tab, a reply by SMS before or after) is the replay or the
conflict of the first, never a second rating. The case reference is the invitation's, verified, whatever
the page posts; the channel is `sms`; the write that stores the answer closes the invitation.
"""

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from feedback import invitations
from feedback.i18n import gettext_for, negotiate
from feedback.models import LANGUAGES, SurveyVersion
from feedback.web.survey_page import (
    MAX_FORM_BODY,
    FormOrigin,
    choose_language,
    fill,
    html,
    message_page,
    render_survey,
    retired_page,
    survey_at,
    take_form,
)


def _reader_lang(request: Request, invitation: dict[str, Any] | None = None) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    if invitation is not None and invitation["lang"] in LANGUAGES:
        return invitation["lang"]
    return negotiate(request.headers.get("accept-language")) or "en"


def not_valid(request: Request) -> Response[str]:
    lang = _reader_lang(request)
    _ = gettext_for(lang)
    return message_page(
        lang, _("Page not found"), _("This invitation link is not valid. Check that the whole link was opened."), 404
    )


def expired(request: Request, invitation: dict[str, Any]) -> Response[str]:
    lang = _reader_lang(request, invitation)
    _ = gettext_for(lang)
    return message_page(
        lang,
        _("This invitation has expired"),
        _("The time to answer this invitation is over. Thank you all the same."),
        410,
    )


def answered(request: Request, invitation: dict[str, Any]) -> Response[str]:
    lang = _reader_lang(request, invitation)
    _ = gettext_for(lang)
    return message_page(lang, _("Thank you!"), _("This invitation has been answered already."), 200)


def page_lang(request: Request, invitation: dict[str, Any], version: SurveyVersion, touchpoint: Any) -> str:
    """?lang= first, then the invitation's language, then as a touchpoint's page chooses."""
    available = version.definition.languages
    asked = request.query_params.get("lang")
    if asked in available:
        return asked
    if invitation["lang"] in available:
        return invitation["lang"]
    return choose_language(request, touchpoint, version)


class InvitationPageController(Controller):
    path = "/i"
    include_in_schema = False

    @get("/{code:str}")
    async def page(self, code: FromPath[str], request: Request, state: State) -> Response[str]:
        invitation = await invitations.find(state.store, state.settings.secret, code)
        if invitation is None:
            return not_valid(request)
        snapshot, touchpoint, version = await survey_at(state, invitation["touchpoint"])
        if touchpoint is None:
            return not_valid(request)
        if touchpoint.token in snapshot.retired:
            return retired_page(request, snapshot, touchpoint, touchpoint.token)
        status = invitations.status_of(invitation, datetime.now(UTC))
        if status == "expired":
            return expired(request, invitation)
        if status == "answered":
            return answered(request, invitation)
        if version is None:
            return not_valid(request)
        lang = page_lang(request, invitation, version, touchpoint)
        case_ref = invitation["case_ref"]
        page = render_survey(snapshot, touchpoint, version, lang, f"/i/{code}", has_case=case_ref is not None)
        return html(fill(page, case_ref, invitation["response_id"]))

    @post("/{code:str}", request_max_body_size=MAX_FORM_BODY, status_code=200)
    async def submit(self, code: FromPath[str], request: Request, state: State) -> Response[str]:
        invitation = await invitations.find(state.store, state.settings.secret, code)
        if invitation is None:
            return not_valid(request)
        if invitations.status_of(invitation, datetime.now(UTC)) == "expired":
            return expired(request, invitation)
        origin = FormOrigin(
            path=f"/i/{code}",
            response_id=invitation["response_id"],
            case_ref=invitation["case_ref"],
            channel="sms",
            policy=invitations.InvitationPolicy(invitation["id"]),
        )
        return await take_form(request, state, invitation["touchpoint"], origin)
