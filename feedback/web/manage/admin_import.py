"""The catalogue import page at /manage/admin/import: upload a workbook or CSV file of units, services and
touchpoints; see every problem by sheet, line and column (nothing written), or what was added and updated.

Admins only. An admin of one unit imports inside that unit's subtree: a line outside it, or a new unit
without a parent, is a problem of the file like any other (`feedback.catalogue_import`, `scope`).
"""

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency

from feedback import catalogue_import
from feedback.catalogue_import import CatalogueRejected, Problem
from feedback.errors import FeedbackError
from feedback.web.access import requires_role
from feedback.web.manage import auth, layout
from feedback.web.manage.admin_common import EXCEPTION_HANDLERS, N_, PREFIX, page
from feedback.web.security import Principal

IMPORT_PATH = f"{PREFIX}/import"
UPLOAD_MB = catalogue_import.MAX_BYTES // (1024 * 1024)
ADMINS = requires_role("admin")
GUARDED: dict[str, Any] = {
    "include_in_schema": False,
    "dependencies": {"principal": auth.SESSION},
    "exception_handlers": EXCEPTION_HANDLERS,
    "guards": [ADMINS],
}
NO_FILE = N_("Choose the catalogue file to upload (.xlsx or .csv).")
TOO_BIG = N_("The file is larger than %(mb)s MB.")


async def _page(
    request: Request,
    principal: Principal,
    *,
    summary: dict[str, Any] | None = None,
    problems: list[Problem] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    _ = layout.translator(request)
    rows = [
        {
            "sheet": problem.sheet,
            "line": problem.line or "",
            "column": problem.column or "",
            "message": problem.translated(_),
        }
        for problem in problems or []
    ]
    context = {
        "summary": summary,
        "problems": rows,
        "notice": notice,
        "upload_mb": UPLOAD_MB,
        "columns": catalogue_import.COLUMNS,
        "scope": principal.unit,
    }
    return await page(request, principal, "admin_import.html", context, status=status)


@get(IMPORT_PATH, **GUARDED)
async def import_form(request: Request, principal: NamedDependency[Principal]) -> Response:
    return await _page(request, principal)


@post(IMPORT_PATH, request_max_body_size=catalogue_import.MAX_BYTES + 64 * 1024, **GUARDED)
async def import_upload(request: Request, state: State, principal: NamedDependency[Principal]) -> Response:
    """Read the uploaded file, check it as a whole, apply it in one write (or, with `dry_run`, only say
    what it would change); the page shows the problems (400) or the summary."""
    _ = layout.translator(request)
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return await _page(request, principal, notice=_(NO_FILE), status=400)
    data = await upload.read()
    if not data:
        return await _page(request, principal, notice=_(NO_FILE), status=400)
    if len(data) > catalogue_import.MAX_BYTES:
        return await _page(request, principal, notice=_(TOO_BIG) % {"mb": UPLOAD_MB}, status=413)
    dry_run = form.get("dry_run") == "1"
    catalogue = await asyncio.to_thread(catalogue_import.read_catalogue, data, upload.filename or "")  # CPU work
    try:
        summary = await catalogue_import.import_catalogue(
            state.store, catalogue, scope=principal.unit, plugins=state.plugins, dry_run=dry_run
        )
    except CatalogueRejected as rejected:
        return await _page(request, principal, problems=rejected.problems, status=400)
    except FeedbackError as error:
        return await _page(request, principal, notice=error.message, status=error.status_code)
    if not dry_run:
        state.catalog.invalidate()
    return await _page(request, principal, summary=summary)


ROUTES: list = [import_form, import_upload]
