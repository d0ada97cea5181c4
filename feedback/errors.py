"""Our own exception types; the web layer maps each to one HTTP status, once."""


class FeedbackError(Exception):
    """Base class. `field` names the offending input so clients can point at it."""

    status_code = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(FeedbackError):
    status_code = 400


class NotFound(FeedbackError):
    status_code = 404


class Conflict(FeedbackError):
    status_code = 409


class Unauthorized(FeedbackError):
    status_code = 401


class Forbidden(FeedbackError):
    status_code = 403


class Gone(FeedbackError):
    """The thing named exists but no longer takes anything new (a retired touchpoint)."""

    status_code = 410


class StorageUnavailable(FeedbackError):
    """The database cannot take writes now (a full disk, an I/O error): nothing was stored, and the same
    request may be sent again once it recovers (`retry_after` seconds is a fair first wait)."""

    status_code = 503
    retry_after = 30
