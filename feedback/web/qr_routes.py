"""QR images (public) and printable posters (token) for touchpoints and units."""

from __future__ import annotations

import asyncio
import re

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import QueryParameter

from feedback import posters, qr
from feedback.catalog import Snapshot
from feedback.errors import NotFound
from feedback.models import Touchpoint
from feedback.web.api import fresh_snapshot
from feedback.web.security import Principal, current_principal

IMAGE_CACHE_CONTROL = "public, max-age=86400"
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}

SIZE = QueryParameter(name="size", default=None, required=False,
                 description=f"PNG: width and height in pixels, {qr.MIN_SIZE}..{qr.MAX_SIZE} (default "
                 f"{qr.DEFAULT_SIZE}); SVG: its width and height attributes")
ECC = QueryParameter(name="ecc", default=None, required=False,
                description="Error correction level: L, M (default), Q or H")
CASE = QueryParameter(name="case", default=None, required=False,
                 description="A case reference (dossier code, declaration number) to encode as ?case=REF, "
                 f"at most {qr.MAX_CASE_LENGTH} characters")
PAPER = QueryParameter(name="paper", default=None, required=False, description="A4 (default) or A5")


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
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"})


async def image_response(fmt: str, request: Request, state: State, token: str, size: str | None, ecc: str | None,
                         case: str | None) -> Response[bytes]:
    size_px, level, reference = qr.parse_size(size), qr.parse_ecc(ecc), qr.parse_case(case)
    touchpoint = find_touchpoint(await fresh_snapshot(state), token)
    data = qr.survey_url(public_base(request, state), touchpoint.token, reference)
    content = qr.cache.get((fmt, data, level, size_px))
    if content is None:
        content = await asyncio.to_thread(qr.render, fmt, data, level, size_px)
    return Response(content, media_type=MEDIA_TYPES[fmt], headers={"Cache-Control": IMAGE_CACHE_CONTROL})


class TouchpointQRController(Controller):
    path = "/api/v1/touchpoints"
    tags = ["touchpoints"]

    @get("/{token:str}/qr.svg", media_type=MEDIA_TYPES["svg"], summary="The touchpoint's QR code as SVG (public)",
         description="Encodes `{public_url}/s/{token}` (with `?case=REF` when given). `token` may be the short code.")
    async def qr_svg(self, request: Request, state: State, token: str, size: str | None = SIZE,
                     ecc: str | None = ECC, case: str | None = CASE) -> Response[bytes]:
        return await image_response("svg", request, state, token, size, ecc, case)

    @get("/{token:str}/qr.png", media_type=MEDIA_TYPES["png"], summary="The touchpoint's QR code as PNG (public)",
         description="Encodes `{public_url}/s/{token}` (with `?case=REF` when given). `token` may be the short code.")
    async def qr_png(self, request: Request, state: State, token: str, size: str | None = SIZE,
                     ecc: str | None = ECC, case: str | None = CASE) -> Response[bytes]:
        return await image_response("png", request, state, token, size, ecc, case)

    @get("/{token:str}/poster.pdf", media_type="application/pdf",
         dependencies={"principal": Provide(current_principal)}, summary="A printable poster for one touchpoint (PDF)")
    async def poster(self, request: Request, state: State, principal: Principal, token: str,
                     paper: str | None = PAPER) -> Response[bytes]:
        size = posters.parse_paper(paper)
        snapshot = await fresh_snapshot(state)
        touchpoint = find_touchpoint(snapshot, token)
        principal.require_unit(touchpoint.unit, snapshot)
        base = public_base(request, state)
        content = await asyncio.to_thread(posters.render_posters, snapshot, [touchpoint.token], base, size)
        return pdf_response(content, f"poster-{filename_part(touchpoint.token)}-{size}.pdf")


class UnitPostersController(Controller):
    path = "/api/v1/units"
    tags = ["units"]
    dependencies = {"principal": Provide(current_principal)}

    @get("/{code:str}/posters.pdf", media_type="application/pdf",
         summary="Printable posters for every live touchpoint of a unit's subtree (PDF, one page each)")
    async def unit_posters(self, request: Request, state: State, principal: Principal, code: str,
                      paper: str | None = PAPER) -> Response[bytes]:
        size = posters.parse_paper(paper)
        snapshot = await fresh_snapshot(state)
        if code not in snapshot.units:
            raise NotFound(f"code: no unit {code!r}", "code")
        principal.require_unit(code, snapshot)
        tokens = posters.unit_tokens(snapshot, code)
        if not tokens:
            raise NotFound(f"code: unit {code!r} has no touchpoints", "code")
        base = public_base(request, state)
        content = await asyncio.to_thread(posters.render_posters, snapshot, tokens, base, size)
        return pdf_response(content, f"posters-{filename_part(code)}-{size}.pdf")


QR_CONTROLLERS = [TouchpointQRController, UnitPostersController]
