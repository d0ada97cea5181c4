"""The Litestar app factory: store, catalog, plugins, routes, limits and headers in one place."""

import asyncio
import gc
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.config.csrf import CSRFConfig
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import CacheControlHeader, State
from litestar.logging import LoggingConfig
from litestar.logging.config import default_handlers
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope

from feedback import __version__, callbacks, indicators, logs, outbox, passwords, serving
from feedback.catalog import Catalog
from feedback.db import Store, open_database
from feedback.dispatch import Dispatcher
from feedback.migrations import apply_all
from feedback.plugins import PluginManager, await_me_maybe, build_plugin_manager, flatten
from feedback.scheduler import run_forever
from feedback.settings import Settings, load_settings
from feedback.web import live
from feedback.web.access import SNAPSHOT, actor_slot
from feedback.web.actions_api import ACTION_CONTROLLERS
from feedback.web.api import CONTROLLERS, document_hand_written_routes
from feedback.web.audit_api import AUDIT_CONTROLLERS
from feedback.web.client_address import client_key
from feedback.web.dossiers_api import DOSSIER_CONTROLLERS
from feedback.web.errors import EXCEPTION_HANDLERS
from feedback.web.exports_api import EXPORT_CONTROLLERS, export_routes
from feedback.web.federation_api import FEDERATION_CONTROLLERS
from feedback.web.indicators_api import INDICATOR_CONTROLLERS
from feedback.web.invitation_page import InvitationPageController
from feedback.web.json_body import JSONBodyRequest
from feedback.web.kiosk_api import (
    KIOSK_CONTROLLERS,
    end_long_polls,
    wake_on_other_nodes_invitations,
    watch_for_silent_kiosks,
)
from feedback.web.kiosk_app import kiosk_app_router
from feedback.web.landing import LANDING_ROUTES
from feedback.web.manage import MANAGE_ROUTES, auth
from feedback.web.metrics import Metrics, metrics_route
from feedback.web.objectives_api import OBJECTIVE_CONTROLLERS
from feedback.web.observe import observe, write_access_lines
from feedback.web.paper_api import PAPER_CONTROLLERS
from feedback.web.paper_forms_api import PAPER_FORM_CONTROLLERS
from feedback.web.qr_routes import QR_CONTROLLERS
from feedback.web.readiness import READINESS_CONTROLLERS
from feedback.web.receipt_page import ReceiptPageController
from feedback.web.sms_api import SMS_CONTROLLERS
from feedback.web.survey_page import SurveyPageController
from feedback.web.users_api import USER_CONTROLLERS

log = logging.getLogger("feedback")
STATIC_DIR = Path(__file__).parent / "static"

# Public endpoints that anyone may post to; everything else needs a token or a session.
PUBLIC_WRITE_PREFIXES = ("/api/v1/responses", "/s/", "/i/", "/api/v1/kiosk/enroll", "/r/", "/api/v1/federation/join")
# Public pages limited like the posts: a receipt look-up (`/r?receipt=`, `/r/{receipt}`) is a guess at a code.
RECEIPT_PAGES = "/r"

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


_SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Adds the strict headers to every HTTP response, errors included.

    A `before_send` hook: Litestar runs it from `Litestar.__call__` for every request, so it also
    covers what never reaches a route (404 and 405 for unknown paths, the CSRF 403, the rate
    limiter's 429), which app middleware misses. A new header list, never the sender's own: a
    cached response may hand the same list to every request."""
    if message["type"] != "http.response.start":
        return
    headers = message.get("headers") or ()
    for name, _ in headers:
        if name in _SECURITY_HEADER_NAMES:  # the route set some itself: keep its values, add the rest
            present = {own.lower() for own, _ in headers}
            message["headers"] = [*headers, *(pair for pair in SECURITY_HEADERS if pair[0] not in present)]
            return
    message["headers"] = [*headers, *SECURITY_HEADERS]


def begin_stopping(store: Store) -> None:
    """The server this app runs in begins to stop: it is no longer ready, and each kiosk long-poll and
    manager event stream answers now, so the clients reconnect (to another node behind a load
    balancer) while the requests in flight finish and the writer flushes."""
    serving.stopping(store).set()
    end_long_polls(store)
    live.hub_of(store).close()


def migrate(path: str, plugins: PluginManager) -> None:
    db = open_database(path)
    try:
        apply_all(db, plugins)
    finally:
        db.close()


def rate_limit_config(settings: Settings) -> RateLimitConfig | None:
    if settings.rate_limit <= 0:
        return None

    def client_key_of(request: Request) -> str:
        # A keyed hash of the address (behind a trusted proxy, the one it saw): never the address itself.
        return client_key(request.scope, settings)

    async def is_public_write(request: Request) -> bool:
        path = request.url.path
        if request.method == "GET":
            return path == RECEIPT_PAGES or path.startswith(RECEIPT_PAGES + "/")
        return request.method == "POST" and path.startswith(PUBLIC_WRITE_PREFIXES)

    return RateLimitConfig(
        rate_limit=("minute", settings.rate_limit),
        identifier_for_request=client_key_of,
        check_throttle_handler=is_public_write,
        exclude=["/healthz", "/readyz", "/metrics", "/schema"],
    )


def logging_config(settings: Settings) -> LoggingConfig:
    """The process's logging: the service's own loggers (`feedback.*`, Litestar's) from
    FEEDBACK_LOG_LEVEL, every other library from FEEDBACK_LIBRARY_LOG_LEVEL (WARNING): fontTools alone
    logs about a hundred INFO lines per PDF it subsets, which drowned the log of a busy server."""
    own = {"level": settings.log_level, "handlers": ["queue_listener"], "propagate": False}
    # FEEDBACK_LOG_FORMAT's formatter, applied as a record is queued (Litestar's handler does so on Python
    # 3.11; on 3.12+ its console handler then writes the line as it came); a traceback is written once per
    # error and minute.
    handlers = {
        "queue_listener": {**default_handlers["queue_listener"], "formatter": "standard", "filters": ["tracebacks"]},
        "console": {**default_handlers["console"], "formatter": "message"},
    }
    return LoggingConfig(
        formatters={"standard": logs.formatter_config(settings.log_format), "message": {"format": "%(message)s"}},
        filters={"tracebacks": {"()": "feedback.logs.TracebackLimiter"}},
        handlers=handlers,
        root={"handlers": ["queue_listener"], "level": settings.library_log_level},
        loggers={"feedback": dict(own), "litestar": dict(own)},
    )


def csrf_config(settings: Settings) -> CSRFConfig:
    """CSRF tokens on every form of the manager app (/manage); the public survey form, the API and
    the kiosk have their own protections and are left alone."""
    return CSRFConfig(
        secret=settings.secret,
        cookie_name=auth.CSRF_COOKIE,
        header_name=auth.CSRF_HEADER,
        cookie_path="/",
        cookie_httponly=True,
        cookie_samesite="lax",
        cookie_secure=bool(settings.public_url and settings.public_url.startswith("https")),
        # Everything but /manage; "/" alone stays in (a pattern matching every path makes Litestar warn).
        exclude=[r"^/(?!manage(/|$))."],
    )


# The young generation's threshold, raised from Python's 700: under load some thousand objects of the
# requests in flight (coroutines, scopes, rows) are always young, and every collection of the young
# generation walks them all again. At 20,000 the collector runs a thirtieth as often; the garbage cycles
# a request leaves behind are still collected, a little later. Measured with bench/ingest.py: 7 % less
# of the event loop's processor time per stored response, and 6 % more responses a second.
COLLECTOR_THRESHOLDS = (20_000, 50, 100)


def create_app(settings: Settings | None = None, *, own_process: bool = False) -> Litestar:
    """The app over `settings` (from the environment when None).

    `own_process`: the app has its process to itself, as in each `feedback serve` worker; it then sets
    up the process's logging and freezes its start-up objects out of the garbage collector. Apps that
    share a process (tests, an app embedded in another program) leave both to the process's owner."""
    settings = settings or load_settings()
    # This app's own plugins: another app in the same process may hold a different set.
    plugins = build_plugin_manager(settings)
    store = Store(settings.db, max_batch=settings.max_batch, plugins=plugins)
    callbacks.configure(store, settings)  # FEEDBACK_CALLBACK_TRIES for the call-backs written through it
    passwords.use_hashing(settings.password_hashing)  # process-wide, as the environment it comes from
    catalog = Catalog(plugins=plugins)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, settings.db, plugins)
        store.start()
        await store.read(catalog.reload)
        # Other nodes' changes, as they commit (PostgreSQL): the catalog reloads, kiosks wake.
        store.listen("catalog", lambda _payload: catalog.invalidate())
        wake_on_other_nodes_invitations(store, asyncio.get_running_loop())
        for result in plugins.hook.startup(store=store, settings=settings):
            await await_me_maybe(result)
        # The event bus: every event committed from now on, and whatever the log still holds.
        dispatcher = Dispatcher(store)
        dispatcher.start()
        background = [
            asyncio.create_task(watch_for_silent_kiosks(store, settings)),
            asyncio.create_task(write_access_lines(access)),
        ]
        if settings.jobs:
            background.append(asyncio.create_task(run_forever(store, settings, catalog)))
        if own_process:
            # Everything loaded at start-up lives as long as the process: keep it out of the collector's
            # scans, which would otherwise show up as pauses in the latency tail.
            gc.freeze()
            gc.set_threshold(*COLLECTOR_THRESHOLDS)
            # SIGTERM ends long-polls and event streams at once, before granian waits for every request.
            loop = asyncio.get_running_loop()
            serving.on_stop_signal(lambda: loop.call_soon_threadsafe(begin_stopping, store))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await dispatcher.stop()
            # A mail, webhook or SMS its receiver took is recorded before the store closes.
            await outbox.finish_rounds(outbox.SHUTDOWN_GRACE_SECONDS)
            await asyncio.to_thread(store.close)
            access.flush()
            if own_process:
                logs.drain_queues()  # a worker ends without atexit, where the log queue would be written out

    route_handlers: list = [
        *CONTROLLERS,
        *READINESS_CONTROLLERS,
        SurveyPageController,
        ReceiptPageController,
        InvitationPageController,
        *QR_CONTROLLERS,
        *KIOSK_CONTROLLERS,
        *OBJECTIVE_CONTROLLERS,
        *USER_CONTROLLERS,
        *ACTION_CONTROLLERS,
        *EXPORT_CONTROLLERS,
        *AUDIT_CONTROLLERS,
        *SMS_CONTROLLERS,
        *PAPER_CONTROLLERS,
        *PAPER_FORM_CONTROLLERS,
        *DOSSIER_CONTROLLERS,
        *INDICATOR_CONTROLLERS,
        *FEDERATION_CONTROLLERS,
        *MANAGE_ROUTES,
        *LANDING_ROUTES,
        metrics_route,
        kiosk_app_router(),
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            include_in_schema=False,
            cache_control=CacheControlHeader(max_age=86400, public=True),
        ),
    ]
    route_handlers.extend(export_routes(flatten(plugins.hook.register_exporters())))
    indicators.registered(plugins)  # a plugin's indicator that is not valid stops the start, naming it
    route_handlers.extend(map(route_of, flatten(plugins.hook.register_routes(settings=settings))))
    rate_limit = rate_limit_config(settings)
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        state=State({"settings": settings, "store": store, "catalog": catalog, "plugins": plugins}),
        dependencies={"snapshot": SNAPSHOT},
        exception_handlers=auth.page_exception_handlers(EXCEPTION_HANDLERS),
        csrf_config=csrf_config(settings),
        before_send=[add_security_headers],
        middleware=[actor_slot, *([rate_limit.middleware] if rate_limit else [])],
        openapi_config=OpenAPIConfig(
            title="feedback",
            version=__version__,
            path="/schema",
            # The document's own routes complete it with what Litestar does not describe (ASGI routes).
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, before_request=document_hand_written_routes
            ),
        ),
        response_cache_config=ResponseCacheConfig(default_expiration=60),
        request_max_body_size=1024 * 1024,
        request_class=JSONBodyRequest,
        # Litestar's logging configures the root logger (a queue and its thread): only in a process of our own.
        logging_config=logging_config(settings) if own_process else None,
        debug=False,
    )
    # Every request is counted and logged, whatever answers it; the writer reports each group commit.
    metrics = Metrics.of(store)
    store.on_batch = metrics.observe_batch
    access = observe(app, metrics)
    return app


def route_of(item: Any) -> Any:
    """A plugin's route handler, router or controller, given itself or named as "module:attribute"."""
    if not isinstance(item, str):
        return item
    module, colon, attribute = item.partition(":")
    if not (colon and module and attribute):
        raise ValueError(f'register_routes: {item!r} is not "module:attribute"')
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:  # a plugin author's typo: say which name it was
        raise ValueError(f"register_routes: {item!r} cannot be imported: {error}") from error


def create_app_from_env() -> Litestar:
    """The factory `feedback serve` hands to the ASGI server (settings from FEEDBACK_* variables).

    It runs in each worker process, which must not outlive the `feedback serve` that started it."""
    serving.die_with_parent()
    # Python's warnings go through logging too, so they take the log's format (JSON lines included).
    logging.captureWarnings(True)
    return create_app(load_settings(), own_process=True)
