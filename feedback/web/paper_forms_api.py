"""Printing paper forms and the queue of scanned ones, over HTTP: `GET
/api/v1/touchpoints/{token}/paper-forms.pdf` and `GET /api/v1/paper-scans`.

Both take a bearer token or the manager app's session (`TOKEN_OR_SESSION`) of an admin or a manager,
scoped to the unit subtree: a touchpoint of another unit is a 403 naming `unit`. Printing registers
every serial it prints (`feedback.paper_pdf`); the PDF is drawn on a worker thread.
"""

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from msgspec import Struct

from feedback import paper_forms, paper_review
from feedback.catalog import Snapshot
from feedback.web.access import requires_role
from feedback.web.manage.auth import TOKEN_OR_SESSION, WRITER_ROLES
from feedback.web.qr_routes import filename_part, pdf_response
from feedback.web.security import Principal

Lang = Annotated[str | None, QueryParameter(description="The forms' language (default: the touchpoint's)")]
Count = Annotated[
    str | None,
    QueryParameter(description=f"How many forms, 1 to {paper_forms.MAX_FORMS_PER_PRINT} (default 1), one per page"),
]
Paper = Annotated[str | None, QueryParameter(description="A4 (default) or A5")]
Status = Annotated[
    str | None,
    QueryParameter(description="waiting (default), stored, conflict, discarded, or all"),
]


class PaperFormsController(Controller):
    path = "/api/v1/touchpoints"
    tags = ["paper forms"]

    @get(
        "/{token:str}/paper-forms.pdf",
        media_type="application/pdf",
        dependencies={"principal": TOKEN_OR_SESSION},
        guards=[requires_role(*WRITER_ROLES)],
        summary="Printable paper forms of the touchpoint's survey version in force (PDF, one form per page)",
        description="Each form carries its own serial, as text and in a QR code, registered as it is printed: "
        "keyed in (`POST /api/v1/paper-entries`) or scanned (`feedback paper read`, `/manage/entry/scans`), "
        "a form is stored against the survey version it was printed with. A manager's or admin's token (or "
        "session) of the touchpoint's unit or above. 400 naming `lang`, `count` or `paper`, or `touchpoint` "
        "when its survey does not fit on one page; 404 / 410 naming `touchpoint`.",
    )
    async def paper_forms_pdf(
        self,
        state: State,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        token: FromPath[str],
        lang: Lang = None,
        count: Count = None,
        paper: Paper = None,
    ) -> Response[bytes]:
        # fpdf and fontTools (~0.45 s of CPU) load with the first PDF, not with every worker's start
        from feedback import paper_pdf

        touchpoint = snapshot.touchpoint(token)
        if touchpoint is not None:  # scope first: another unit's touchpoint tells nothing of itself
            principal.require_unit(touchpoint.unit, snapshot)
        job = paper_pdf.plan_print(snapshot, token, lang=lang, count=count, paper=paper, printed_by=principal.user)
        content = await asyncio.to_thread(paper_pdf.render_forms, snapshot, job)
        await state.store.write(paper_pdf.register_job(job))
        name = f"paper-forms-{filename_part(job.touchpoint.token)}-{job.lang}-{job.paper}.pdf"
        return pdf_response(content, name)


class ScanProposal(Struct):
    """What was read of a scanned page: answers by question key, the date of service, and per question
    (or `date`) why it is uncertain; `marks` is each box's ink as read; `error` a refusal's message."""

    answers: dict[str, Any]
    occurred_on: str | None
    uncertain: dict[str, str]
    marks: dict[str, dict[str, str]] = {}
    error: str | None = None


class ScanPage(Struct):
    """A scanned page in the review queue."""

    id: int
    source: str
    uploaded_at: str
    uploaded_by: str
    unit: str | None
    serial: str | None
    paper: str | None
    reasons: list[str]
    proposed: ScanProposal
    status: str
    resolved_by: str | None
    resolved_at: str | None
    note: str | None
    response_id: str | None


class PaperScansController(Controller):
    path = "/api/v1/paper-scans"
    tags = ["paper forms"]

    @get(
        "/",
        dependencies={"principal": TOKEN_OR_SESSION},
        guards=[requires_role(*WRITER_ROLES)],
        summary="Scanned pages of paper forms in the review queue (of the caller's unit subtree)",
        description="Each page: `id`, `source`, `uploaded_at`, `uploaded_by`, `unit`, `serial` (null while "
        "unread), `reasons`, `proposed` (`answers`, `occurred_on`, `uncertain`: the reason per question), "
        "`status` and who resolved it. The page images are on `/manage/entry/review/{id}`.",
    )
    async def paper_scans(
        self,
        state: State,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        status: Status = None,
    ) -> list[ScanPage]:
        wanted = paper_review.parse_status(status or "waiting")
        found = await state.store.read(lambda conn: paper_review.listing(conn, principal.unit, snapshot, wanted))
        return msgspec.convert(found, list[ScanPage])


PAPER_FORM_CONTROLLERS = [PaperFormsController, PaperScansController]
