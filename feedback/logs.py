"""What the server's log looks like: text or JSON lines (FEEDBACK_LOG_FORMAT), one traceback per distinct
error per minute, and the access lines of `feedback.access`.

JSON lines come from python-json-logger's msgspec formatter, so every record of the process (ours,
Litestar's, granian's, any library's) takes the same shape: `time` (UTC, ISO 8601), `level`, `logger`,
`message`, then the record's extras and, for an error, its traceback as `exc_info`.

Access lines are the one thing logged per request, so they are cheap on the request's path: the request
adds a tuple to its app's `AccessLog`, and a task of the app hands them to logging every tenth of a
second as one record that the formatters below write as one line per request (any other formatter
writes the record's message, the same lines as text).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from pythonjsonlogger.msgspec import MsgspecFormatter

ACCESS_LOGGER = "feedback.access"
# The text format the log had before FEEDBACK_LOG_FORMAT (Litestar's default), kept for `text`.
TEXT_FORMAT = "%(levelname)s - %(asctime)s - %(name)s - %(module)s - %(message)s"
TRACEBACK_WINDOW = 60.0

# method, route template, status, seconds taken, request id, wall-clock time at the end
AccessEntry = tuple[str, str, int, float, str, float]


def access_message(entry: AccessEntry) -> str:
    method, route, status, seconds, request_id, _at = entry
    return f"{method} {route} {status} {seconds * 1000:.1f} ms request_id={request_id}"


class AccessLines:
    """The message of an access record: the entries of one batch, written as text only when a
    formatter other than ours asks for the message."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[AccessEntry]) -> None:
        self.entries = entries

    def __str__(self) -> str:
        return "\n".join(access_message(entry) for entry in self.entries)


class AccessLog:
    """One app's access lines: `add` on the request's path (a list append), `flush` from a task of the
    app (see `write_access_lines`), which logs whatever came meanwhile as one record of `feedback.access`."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self._pending: list[AccessEntry] = []
        self.add = self._pending.append

    def flush(self) -> None:
        if not self._pending:
            return
        entries = self._pending.copy()
        self._pending.clear()  # `add` stays bound to the same list
        if not self.logger.isEnabledFor(logging.INFO):
            return
        record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, AccessLines(entries), None, None)
        record.created = entries[-1][5]
        self.logger.handle(record)


class _Clock:
    """Formatted seconds, made once per second (a batch of access lines shares a few seconds at most)."""

    def __init__(self, convert: Any, pattern: str) -> None:
        self._convert, self._pattern = convert, pattern
        self._second, self._text = -1, ""

    def __call__(self, at: float) -> str:
        second = int(at)
        if second != self._second:
            self._second, self._text = second, time.strftime(self._pattern, self._convert(second))
        return self._text


class TextFormatter(logging.Formatter):
    """The plain text format; a batch of access lines is written one line per request."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._clock = _Clock(time.localtime, "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if not isinstance(record.msg, AccessLines):
            return super().format(record)
        clock = self._clock
        return "\n".join(
            f"INFO - {clock(at)},{int(at % 1 * 1000):03d} - {ACCESS_LOGGER} - access - {access_message(entry)}"
            for entry in record.msg.entries
            for at in (entry[5],)
        )


class JsonFormatter(MsgspecFormatter):
    """One JSON object per line: time, level, logger, message, the record's extras, `exc_info`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "{asctime}{levelname}{name}{message}")
        kwargs.setdefault("style", "{")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)
        self._clock = _Clock(time.gmtime, "%Y-%m-%dT%H:%M:%S")
        self._encode = msgspec.json.Encoder().encode

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return iso_time(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if not isinstance(record.msg, AccessLines):
            return super().format(record)
        clock, encode = self._clock, self._encode
        return "\n".join(
            encode(
                {
                    "time": f"{clock(at)}.{int(at % 1 * 1000):03d}Z",
                    "level": "INFO",
                    "logger": ACCESS_LOGGER,
                    "message": f"{method} {route} {status}",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "request_id": request_id,
                }
            ).decode()
            for method, route, status, seconds, request_id, at in record.msg.entries
        )


def iso_time(at: float) -> str:
    """`at` (seconds since the epoch) as UTC ISO 8601 with milliseconds: 2026-03-01T08:15:02.114Z."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(at % 1 * 1000):03d}Z"


class TracebackLimiter(logging.Filter):
    """One traceback per distinct error per minute: the first record of an error (its exception's type
    and the line that raised it) keeps its traceback; the same error again within `window` seconds is
    logged as one line without it, counting how many came since. A failure on every request (a full
    disk, a database gone) then fills no log with identical tracebacks."""

    def __init__(self, window: float = TRACEBACK_WINDOW) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, str, int], list[float]] = {}  # error -> [first logged at, repeats]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if not exc_info or exc_info[0] is None:
            return True
        key = error_key(exc_info, record)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or now - seen[0] >= self.window:
                if len(self._seen) >= 1000:  # bounded: forget what is older than a window
                    self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
                self._seen[key] = [now, 0]
                return True
            seen[1] += 1
            repeats = int(seen[1])
        kind, filename, line = key
        record.msg = (
            f"{record.getMessage()} ({kind} at {filename}:{line}; traceback logged once a minute:"
            f" {repeats} more like this in the last minute)"
        )
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.repeats = repeats
        return True


def error_key(exc_info: Any, record: logging.LogRecord) -> tuple[str, str, int]:
    """(exception type, file, line) of the place the exception was raised (the innermost frame)."""
    kind, _error, tb = exc_info
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return kind.__qualname__, record.pathname, record.lineno
    return kind.__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno


def drain_queues() -> None:
    """Write out every record the process's queued log handlers still hold, and keep them running.

    The logging configuration queues records for a listener thread, stopped by an atexit hook; a
    worker process of the ASGI server ends without running atexit hooks, so the last lines (the access
    lines of the last requests, an error at shutdown) would be lost with the queue."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in ("feedback", "litestar"))]
    listeners = {id(found): found for found in (getattr(h, "listener", None) for lg in loggers for h in lg.handlers)}
    for listener in listeners.values():
        if listener is not None and getattr(listener, "_thread", None) is not None:
            listener.stop()  # the queue up to here is written out
            listener.start()


def formatter_config(log_format: str) -> dict[str, Any]:
    """The `standard` formatter of the logging configuration for FEEDBACK_LOG_FORMAT."""
    if log_format == "json":
        return {"()": "feedback.logs.JsonFormatter"}
    return {"()": "feedback.logs.TextFormatter"}


def granian_log_config(log_format: str) -> dict[str, Any] | None:
    """granian's own logging (its start, workers, errors) in JSON lines too; None: granian's default."""
    if log_format != "json":
        return None
    return {
        "formatters": {"json": {"()": "feedback.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def json_line(level: int, logger: str, message: str) -> str:
    """One JSON log line, for what a command says before logging is set up (`feedback serve`'s start)."""
    return JsonFormatter().format(logging.LogRecord(logger, level, __file__, 0, message, None, None))
