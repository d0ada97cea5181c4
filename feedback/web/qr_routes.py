"""QR images (public) and printable posters (token) for touchpoints and units."""

import asyncio
import re
from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct

from feedback import qr
from feedback.case_links import case_link, case_sig, case_sig_valid
from feedback.catalog import Snapshot
from feedback.errors import Forbidden, Gone, InvalidInput, NotFound
from feedback.models import Touchpoint
from feedback.web.access import TOKEN, fresh_snapshot, requires_role, requires_unit
from feedback.web.security import Principal, current_principal, may_vouch_for_case

IMAGE_CACHE_CONTROL = "public, max-age=86400"
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}

# Optional query parameters, each declared with `= None` where it is used.
Size = Annotated[
    str | None,
    QueryParameter(
        description=f"PNG: width and height in pixels, {qr.MIN_SIZE}..{qr.MAX_SIZE} (default "
        f"{qr.DEFAULT_SIZE}); SVG: its width and height attributes",
    ),
]
Ecc = Annotated[str | None, QueryParameter(description="Error correction level: L, M (default), Q or H")]
Case = Annotated[
    str | None,
    QueryParameter(
        description="A case reference (dossier code, declaration number) to encode as ?case=REF, "
        f"at most {qr.MAX_CASE_LENGTH} characters",
    ),
]
Sig = Annotated[
    str | None,
    QueryParameter(
        description="The signature of `case` from `POST /api/v1/touchpoints/{token}/case-links`; the code "
        "then encodes the signed link (400 when it does not match)",
    ),
]
Paper = Annotated[str | None, QueryParameter(description="A4 (default) or A5")]


def public_base(request: Request, state: State) -> str:
    """The base URL printed in codes: the `public_url` setting, else this server's own address."""
    return (state.settings.public_url or str(request.base_url)).rstrip("/")


def find_touchpoint(snapshot: Snapshot, token: str) -> Touchpoint:
    touchpoint = snapshot.touchpoint(token)
    if touchpoint is None:
        raise NotFound(f"token: no touchpoint {token!r}", "token")
    return touchpoint


def filename_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._") or "touchpoint"


def pdf_response(content: bytes, filename: str) -> Response[bytes]:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"},
    )


async def image_response(
    fmt: str,
    request: Request,
    state: State,
    token: str,
    size: str | None,
    ecc: str | None,
    case: str | None,
    sig: str | None,
) -> Response[bytes]:
    size_px, level, reference = qr.parse_size(size), qr.parse_ecc(ecc), qr.parse_case(case)
    snapshot = await fresh_snapshot(state)
    touchpoint = find_touchpoint(snapshot, token)
    signature, signed_here = await image_signature(request, state, snapshot, touchpoint, reference, sig)
    data = qr.survey_url(public_base(request, state), touchpoint.token, reference, signature)
    content = qr.cache.get((fmt, data, level, size_px))
    if content is None:
        content = await asyncio.to_thread(qr.render, fmt, data, level, size_px)
    # A code signed for a token's holder must not be served from a shared cache to someone without one.
    cache_control = "private, no-store" if signed_here else IMAGE_CACHE_CONTROL
    return Response(content, media_type=MEDIA_TYPES[fmt], headers={"Cache-Control": cache_control})


async def image_signature(
    request: Request, state: State, snapshot: Snapshot, touchpoint: Touchpoint, case_ref: str | None, sig: str | None
) -> tuple[str | None, bool]:
    """(signature to encode, whether it was made for this request's token) for a case QR code.

    The image routes are public, so they never sign on their own (that would sign any case for
    anyone): a `sig` must already match, or a manager or admin token of the touchpoint's unit asks
    for the signed code. Without either, the code carries the case unsigned, as before."""
    if sig:
        if case_ref is None:
            raise InvalidInput("sig: only with case", "sig")
        if not case_sig_valid(state.settings.secret, touchpoint.token, case_ref, sig):
            raise InvalidInput("sig: does not match this touchpoint and case", "sig")
        return sig, False
    if case_ref is None or "authorization" not in request.headers:
        return None, False
    principal = await current_principal(request, state)
    if not may_vouch_for_case(principal, touchpoint.unit, snapshot):
        raise Forbidden(
            f"authorization: {principal.role!r} of {principal.unit!r} may not sign cases of "
            f"touchpoint {touchpoint.token!r}",
            "authorization",
        )
    return case_sig(state.settings.secret, touchpoint.token, case_ref), True


class CaseLinkRequest(Struct, forbid_unknown_fields=True):
    """A case the counter just handled."""

    case_ref: Annotated[str, Meta(min_length=1, max_length=qr.MAX_CASE_LENGTH)]


class CaseLink(Struct):
    """The signed survey link for a case: print it, or encode it in a QR code."""

    url: str
    sig: str


class TouchpointQRController(Controller):
    path = "/api/v1/touchpoints"
    tags = ["touchpoints"]

    @get(
        "/{token:str}/qr.svg",
        media_type=MEDIA_TYPES["svg"],
        summary="The touchpoint's QR code as SVG (public)",
        description="Encodes `{public_url}/s/{token}` (with `?case=REF` when given, signed for a matching `sig` or "
        "a manager's or admin's token of the unit). `token` may be the short code.",
    )
    async def qr_svg(
        self,
        request: Request,
        state: State,
        token: FromPath[str],
        size: Size = None,
        ecc: Ecc = None,
        case: Case = None,
        sig: Sig = None,
    ) -> Response[bytes]:
        return await image_response("svg", request, state, token, size, ecc, case, sig)

    @get(
        "/{token:str}/qr.png",
        media_type=MEDIA_TYPES["png"],
        summary="The touchpoint's QR code as PNG (public)",
        description="Encodes `{public_url}/s/{token}` (with `?case=REF` when given, signed for a matching `sig` or "
        "a manager's or admin's token of the unit). `token` may be the short code.",
    )
    async def qr_png(
        self,
        request: Request,
        state: State,
        token: FromPath[str],
        size: Size = None,
        ecc: Ecc = None,
        case: Case = None,
        sig: Sig = None,
    ) -> Response[bytes]:
        return await image_response("png", request, state, token, size, ecc, case, sig)

    @post(
        "/{token:str}/case-links",
        status_code=200,
        dependencies={"principal": TOKEN},
        guards=[requires_role("admin", "manager")],
        summary="A signed survey link for a case (counter software; manager or admin of the unit)",
        description="`{public_url}/s/{token}?case=REF&sig=…`. A rating given through it has a verified case "
        "reference, and only a verified reference makes a later rating of the same case a duplicate.",
    )
    async def sign_case(
        self,
        token: FromPath[str],
        data: JSONBody[CaseLinkRequest],
        request: Request,
        state: State,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
    ) -> CaseLink:
        touchpoint = find_touchpoint(snapshot, token)
        principal.require_unit(touchpoint.unit, snapshot)
        retired_at = snapshot.retired.get(touchpoint.token)
        if retired_at is not None:  # its link would only show the retired page
            raise Gone(f"token: touchpoint {touchpoint.token!r} was retired at {retired_at.isoformat()}", "token")
        case_ref = qr.parse_case(data.case_ref.strip(), "case_ref")
        if case_ref is None:
            raise InvalidInput("case_ref: must not be blank", "case_ref")
        url, sig = case_link(public_base(request, state), touchpoint.token, case_ref, state.settings.secret)
        return CaseLink(url=url, sig=sig)

    @get(
        "/{token:str}/poster.pdf",
        media_type="application/pdf",
        dependencies={"principal": TOKEN},
        summary="A printable poster for one touchpoint (PDF)",
    )
    async def poster(
        self,
        request: Request,
        state: State,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        token: FromPath[str],
        paper: Paper = None,
    ) -> Response[bytes]:
        # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
        from feedback import posters

        size = posters.parse_paper(paper)
        touchpoint = find_touchpoint(snapshot, token)
        principal.require_unit(touchpoint.unit, snapshot)
        base = public_base(request, state)
        content = await asyncio.to_thread(posters.render_posters, snapshot, [touchpoint.token], base, size)
        return pdf_response(content, f"poster-{filename_part(touchpoint.token)}-{size}.pdf")


class UnitPostersController(Controller):
    path = "/api/v1/units"
    tags = ["units"]
    dependencies = {"principal": TOKEN}

    @get(
        "/{code:str}/posters.pdf",
        guards=[requires_unit("code", source="path")],
        media_type="application/pdf",
        summary="Printable posters for every live touchpoint of a unit's subtree (PDF, one page each)",
    )
    async def unit_posters(
        self,
        request: Request,
        snapshot: NamedDependency[Snapshot],
        state: State,
        code: FromPath[str],
        paper: Paper = None,
    ) -> Response[bytes]:
        # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
        from feedback import posters

        size = posters.parse_paper(paper)
        tokens = posters.unit_tokens(snapshot, code)
        if not tokens:
            raise NotFound(f"code: unit {code!r} has no touchpoints", "code")
        base = public_base(request, state)
        content = await asyncio.to_thread(posters.render_posters, snapshot, tokens, base, size)
        return pdf_response(content, f"posters-{filename_part(code)}-{size}.pdf")


QR_CONTROLLERS = [TouchpointQRController, UnitPostersController]
