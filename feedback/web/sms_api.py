"""The SMS routes of the JSON API: invitations (a manager's or an integration's token) and the gateway's
inbound messages (signed by the gateway). See `feedback.invitations` and `feedback.sms_inbound`."""

from typing import Annotated, Any, Literal

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta, Struct

from feedback import invitations, sms_inbound
from feedback.catalog import Snapshot
from feedback.errors import NotFound
from feedback.qr import MAX_CASE_LENGTH
from feedback.web.access import TOKEN, requires_role
from feedback.web.json_body import decode_json
from feedback.web.schemas import success
from feedback.web.security import Principal


class InvitationRequest(Struct, forbid_unknown_fields=True):
    """Whom to invite, to rate which touchpoint, for which case."""

    touchpoint: Annotated[str, Meta(min_length=1, max_length=64, description="the touchpoint's token or short code")]
    phone: Annotated[str, Meta(min_length=1, max_length=64, description="an international number, e.g. +84912345678")]
    case_ref: Annotated[str, Meta(max_length=MAX_CASE_LENGTH)] | None = None
    lang: Annotated[str | None, Meta(description="vi, ru, zh or en; default the touchpoint's language")] = None


class Invitation(Struct):
    """An invitation sent (its SMS queued): it stays open until `expires_at`."""

    id: str
    touchpoint: str
    lang: str
    case_ref: str | None
    expires_at: str


class InboundAnswer(Struct):
    """What an inbound message did: `stored` (the rating, under `response`), `opted_out` (STOP) or `ignored`
    (with its `reason`). The same message id always gets the same answer."""

    id: str
    status: Literal["stored", "opted_out", "ignored"]
    reason: str | None = None
    response: str | None = None


class InvitationsController(Controller):
    path = "/api/v1/invitations"
    tags = ["sms"]
    dependencies = {"principal": TOKEN}

    @post(
        guards=[requires_role("admin", "manager")],
        status_code=201,
        summary="Invite a citizen by SMS to rate a touchpoint (manager or admin of its unit)",
        description="Sends an SMS with a signed link to the touchpoint's survey for the case (verified) and asks "
        "for a one-digit reply; one response per invitation. 400 naming `phone` for a number not in "
        "international form, 409 naming `phone` for a number that sent STOP, 429 naming `phone` for a "
        "second invitation of a number on one day, 404 for an unknown touchpoint, 403 outside the caller's "
        "subtree, 503 naming `sms` when no gateway is configured or `public_url` when FEEDBACK_PUBLIC_URL is not "
        "set.",
        responses=success(Invitation, 201, "Invited"),
    )
    async def invite(
        self,
        data: JSONBody[InvitationRequest],
        state: State,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
    ) -> dict[str, Any]:
        touchpoint = snapshot.touchpoint(data.touchpoint)
        if touchpoint is None:
            raise NotFound(f"touchpoint: no touchpoint {data.touchpoint!r}", "touchpoint")
        principal.require_unit(touchpoint.unit, snapshot)
        if not state.settings.public_url:
            # The link an official SMS carries is never built from the request's Host header.
            raise invitations.SmsOff(
                "public_url: FEEDBACK_PUBLIC_URL is not set, so no invitation link can be made", "public_url"
            )
        return await invitations.invite(
            state.store,
            snapshot,
            state.settings,
            touchpoint=touchpoint,
            phone=data.phone,
            case_ref=data.case_ref,
            lang=data.lang,
            public_url=state.settings.public_url,
        )


class SmsInboundController(Controller):
    path = "/api/v1/sms/inbound"
    tags = ["sms"]

    @post(
        status_code=200,
        request_max_body_size=sms_inbound.MAX_BODY,
        summary="A message the SMS gateway received (signed by the gateway)",
        description='Body `{"id", "from", "text"}`, signed `X-Feedback-Signature: sha256=<hex HMAC-SHA256 of the '
        "body with FEEDBACK_SMS_SECRET>` (missing: 401, wrong: 403; 404 while no secret is configured). "
        "STOP opts the number out; one digit answers the number's open invitation with the primary rating; "
        "anything else is ignored. A message id given again gets the same answer and changes nothing.",
        responses=success(InboundAnswer),
    )
    async def inbound(self, request: Request, state: State, snapshot: NamedDependency[Snapshot]) -> dict[str, Any]:
        secret = state.settings.sms_secret
        if not secret:
            raise NotFound("sms: inbound SMS is off (FEEDBACK_SMS_SECRET is not set)", "sms")
        body = await request.body()
        sms_inbound.check_signature(secret, body, request.headers.get(sms_inbound.SIGNATURE_HEADER))
        message = sms_inbound.parse(decode_json(body))
        return await sms_inbound.handle(state.store, snapshot, state.settings, message)


SMS_CONTROLLERS = [InvitationsController, SmsInboundController]
