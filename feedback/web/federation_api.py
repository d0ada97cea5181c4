"""Reporting upward between installations, the parent's routes: a child pairs with a one-time code and then
sends one signed report per closed day (see `feedback.federation`); an administrator lists the children."""

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Response
from msgspec import Meta, Struct

from feedback import federation
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, Unauthorized
from feedback.store import federation as federation_store
from feedback.web.access import TOKEN, requires_role
from feedback.web.client_address import client_key
from feedback.web.json_body import decode_json
from feedback.web.schemas import success
from feedback.web.security import Principal


class Joined(Struct, kw_only=True):
    child: Annotated[str, Meta(description="the id the parent gave the child: it names the child in every report")]
    unit: Annotated[str, Meta(description="the parent's unit the child's tree hangs under")]
    prefix: Annotated[str, Meta(description='what the parent puts before the child\'s unit codes ("<child>:")')]


class ReportReceipt(Struct, kw_only=True):
    child: str
    day: str
    content_hash: str
    status: Annotated[
        Literal["stored", "replaced", "unchanged"],
        Meta(description="stored (a new day), replaced (other figures for the day), unchanged (the same again)"),
    ]
    units_changed: bool = False


class ChildItem(Struct, kw_only=True):
    child: str
    name: str
    unit: Annotated[str, Meta(description="the parent's unit the child's tree hangs under")]
    as_of: Annotated[str | None, Meta(description="the latest day the child reported; null before its first")]
    joined_at: str
    last_report_at: str | None


class FederationController(Controller):
    path = "/api/v1/federation"
    tags = ["federation"]

    @post(
        "/join",
        status_code=201,
        summary="Pair a child installation with a one-time code (public; the code is the credential)",
        description='Body `{"code", "public_key", "name", "units"}`: the code `feedback federation invite` printed, '
        "the child's Ed25519 public key (the 32 raw bytes in base64), its name and its root unit codes. 404 "
        "naming `code` for a code unknown, expired or used; 429 after ten wrong codes from one client within "
        "15 minutes.",
        responses=success(Joined, 201, "Paired"),
    )
    async def join(self, data: JSONBody[federation.JoinRequest], request: Request, state: State) -> Response[dict]:
        key = client_key(request.scope, state.settings)
        # Reserved before the code is checked, so no more than the limit are checked however many arrive.
        attempt = await state.store.write(lambda conn: federation.reserve_join_attempt(conn, key))
        if attempt is None:
            return Response(
                {"status_code": 429, "detail": "code: too many wrong codes; wait and try again", "field": "code"},
                status_code=429,
            )
        result = await state.store.write(lambda conn: federation.accept_join(conn, attempt, data))
        return Response(result, status_code=201)

    @post(
        "/reports",
        status_code=200,
        request_max_body_size=federation.MAX_REPORT_BODY,
        summary="A child's report of one closed day, signed with its key",
        description="Headers `X-Feedback-Child: <child id>` and `X-Feedback-Signature: ed25519=<base64 signature "
        "over the exact body>` (missing or unknown child: 401; a signature that does not hold: 403; nothing is "
        "read or stored before it holds). The body holds aggregates only (units, rollups by unit and service, "
        "objective statuses, action counts) and is refused (400) with any other key, with units outside the "
        "child's tree, or with a content hash that does not match. The same day again replaces what was stored "
        "for it; the same content again changes nothing; an older report of a day than the one stored is a 409.",
        responses=success(ReportReceipt),
    )
    async def report(self, request: Request, state: State) -> dict[str, Any]:
        child_id = request.headers.get(federation.CHILD_HEADER)
        signature = request.headers.get(federation.SIGNATURE_HEADER)
        if not child_id or not signature:
            raise Unauthorized(
                "signature: the X-Feedback-Child and X-Feedback-Signature headers are required", "signature"
            )
        child = await state.store.read(lambda conn: federation_store.get_child(conn, child_id))
        if child is None:
            raise Unauthorized(f"child: no child installation {child_id!r} is paired here", "child")
        body = await request.body()
        if not federation.signature_holds(body, signature, child["public_key"]):
            raise Forbidden("signature: does not hold for this body and the child's key", "signature")
        report = federation.parse_report(decode_json(body))
        result = await state.store.write(lambda conn: federation.receive_report(conn, child, report, body, signature))
        if result.get("units_changed"):
            state.catalog.invalidate()
        return result

    @get(
        "/children",
        dependencies={"principal": TOKEN},
        guards=[requires_role("admin")],
        summary="The child installations that report here, under the admin's unit",
        responses=success(list[ChildItem]),
    )
    async def children(
        self, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot], state: State
    ) -> list[dict[str, Any]]:
        found = await state.store.read(federation.reported_children)
        return [item for item in found.values() if principal.may_see(item["unit"], snapshot)]


FEDERATION_CONTROLLERS = [FederationController]
