"""Every error leaves as JSON whose message names the offending field; never a 500 for bad input."""

import logging
import re

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from feedback.errors import FeedbackError, InvalidInput, NotFound, StorageUnavailable
from feedback.store import health
from feedback.web.json_body import TOO_DEEP

log = logging.getLogger("feedback.web")
_PATH = re.compile(r"at `\$\.?([^`]*)`")
SQLITE_MIN_INT, SQLITE_MAX_INT = -(2**63), 2**63 - 1


def error_body(status: int, detail: str, field: str | None = None) -> dict:
    body: dict = {"status_code": status, "detail": detail}
    if field:
        body["field"] = field
    return body


def feedback_error(_: Request, exc: FeedbackError) -> Response:
    return Response(
        error_body(exc.status_code, exc.message, exc.field),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=retry_after(exc),
    )


def retry_after(exc: FeedbackError) -> dict[str, str] | None:
    """`Retry-After` for an error that a later try may not meet (the database cannot take writes now)."""
    if isinstance(exc, StorageUnavailable):
        return {"Retry-After": str(exc.retry_after)}
    return None


def validation_error(_: Request, exc: ValidationException) -> Response:
    """Litestar/msgspec decode errors: lift the field name into the message."""
    field = None
    message = exc.detail
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra and isinstance(extra[0], dict):
        first = extra[0]
        field = first.get("key") or None
        text = str(first.get("message", ""))
        match = _PATH.search(text)
        if match and match.group(1):
            field = match.group(1)
            text = _PATH.sub("", text).rstrip(" -")
        named = re.search(r"(?:unknown|required) field `([^`]*)`", text)
        if named:
            name = named.group(1)
            field = name if field in (None, "data", name) else f"{field}.{name}"
        if field in (None, "data"):
            field = "body"
        message = f"{field}: {text}" if field else text or message
    elif "JSON" in (message or "") or "decode" in (message or "").lower():
        message = f"body: {message}"
        field = "body"
    return Response(error_body(400, message, field), status_code=400, media_type=MediaType.JSON)


def http_error(request: Request, exc: HTTPException) -> Response:
    if request.url.path.startswith("/s/") and exc.status_code == 429:
        from feedback.web.survey_page import too_many

        return too_many(request)
    if (request.url.path == "/r" or request.url.path.startswith("/r/")) and exc.status_code == 429:
        from feedback.web import receipt_page

        return receipt_page.too_many(request)
    field = "body" if exc.status_code in (400, 413) else None
    detail = f"body: {exc.detail}" if field and not exc.detail.startswith("body") else exc.detail
    return Response(
        error_body(exc.status_code, detail, field),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


def server_error(request: Request, exc: Exception) -> Response:
    unavailable = health.as_unavailable(exc)
    if isinstance(unavailable, StorageUnavailable):  # the storage failed (e.g. on a read): 503, no traceback
        health.log_unavailable(log, "requests", "requests fail on the database", exc)
        return answer_as(request, unavailable)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(error_body(500, "internal error"), status_code=500, media_type=MediaType.JSON)


def answer_as(request: Request, error: FeedbackError) -> Response:
    """Answer `error` through whichever handler the route resolves for it (pages get their HTML)."""
    handlers = request.route_handler.resolve_exception_handlers()
    for kind in type(error).__mro__:
        if kind in handlers:
            return handlers[kind](request, error)
    return feedback_error(request, error)


def path_id_overflow(request: Request, exc: OverflowError) -> Response:
    """An integer path id outside SQLite's 64-bit range names nothing: 404, not the OverflowError
    the database driver raises when handed one. Any other OverflowError stays a 500."""
    for name, value in request.path_params.items():
        if isinstance(value, int) and not SQLITE_MIN_INT <= value <= SQLITE_MAX_INT:
            return answer_as(request, NotFound(f"{name}: no such id {value}", name))
    return server_error(request, exc)


def body_too_deep(request: Request, exc: RecursionError) -> Response:
    """A body nested deeper than the decoders' recursion limit, wherever it is decoded: 400 naming
    `body`. Requests without a body have no such excuse, so theirs stays a 500."""
    if request.method in ("POST", "PUT", "PATCH"):
        return answer_as(request, InvalidInput(TOO_DEEP, "body"))
    return server_error(request, exc)


EXCEPTION_HANDLERS = {
    FeedbackError: feedback_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    OverflowError: path_id_overflow,
    RecursionError: body_too_deep,
    Exception: server_error,
}
