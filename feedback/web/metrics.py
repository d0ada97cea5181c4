"""`GET /metrics`: the figures an operator watches, in Prometheus' text format (prometheus-client).

Each app keeps its own registry (`Metrics.of(store)`), never the process's default one, so apps that
share a process (tests, an embedding program) count apart. What the requests and the writer do is
counted as it happens, at the cost of a dict look-up and an increment per request (the labelled
children are made once and kept); what the database holds (events waiting, the outbox, job outcomes,
silent kiosks) is read through the store when a scrape comes. With several worker processes each keeps
its own counters and a scrape reaches one of them (see the README's Operations section).

Open to clients on this host (the connection's own peer address on loopback, not sent through a
proxy); from anywhere else only with `Authorization: Bearer <FEEDBACK_METRICS_TOKEN>`.
"""

import hmac
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from litestar import Request, Response, get
from litestar.datastructures import State
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from feedback import __version__
from feedback.db import Store
from feedback.errors import Forbidden, Unauthorized
from feedback.scheduler import collect_jobs
from feedback.settings import Settings
from feedback.store import Connection
from feedback.store import events as event_store
from feedback.store import jobs as job_store
from feedback.store import kiosks as kiosk_store

METRICS_PATH = "/metrics"
# Requests no route matched (unknown paths, and methods a path does not take) share one label, so
# nobody can grow the label set by asking for made-up paths.
UNMATCHED = "(unmatched)"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The ingest channels, by the route that takes each: what the latency histogram is labelled with.
INGEST_ROUTES = {
    ("POST", "/api/v1/responses"): "api",
    ("POST", "/s/{token}"): "survey_page",
    ("POST", "/api/v1/kiosk/sync"): "kiosk",
}
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# The classic text format (Litestar adds the charset).
CONTENT_TYPE = "text/plain; version=0.0.4"
# Headers a reverse proxy adds: a request that carries one came through a proxy, not from this host.
PROXY_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


@dataclass
class DatabaseFigures:
    """What the database holds, read at each scrape."""

    events_pending: int = 0
    oldest_event: str | None = None
    outbox: list[dict] = field(default_factory=list)
    jobs: dict[str, dict] = field(default_factory=dict)
    silent_kiosks: int = 0


class DatabaseCollector:
    """A prometheus-client collector over the figures the last scrape read (`latest`)."""

    def __init__(self) -> None:
        self.latest: DatabaseFigures | None = None
        self.now: datetime = datetime.now(UTC)
        self.job_names: list[str] = []

    def collect(self) -> Iterator[Metric]:
        figures = self.latest
        if figures is None:
            return
        now = self.now.timestamp()
        yield GaugeMetricFamily(
            "feedback_events_pending", "Events in the event log not yet dispatched", value=figures.events_pending
        )
        yield GaugeMetricFamily(
            "feedback_events_oldest_pending_age_seconds",
            "Age of the oldest event not yet dispatched (0 when none waits)",
            value=_age(figures.oldest_event, now),
        )
        pending = GaugeMetricFamily(
            "feedback_outbox_pending", "Deliveries waiting to be sent (not delivered, not given up)", labels=["channel"]
        )
        oldest = GaugeMetricFamily(
            "feedback_outbox_oldest_pending_age_seconds",
            "Age of the oldest delivery waiting to be sent (0 when none waits)",
            labels=["channel"],
        )
        retrying = GaugeMetricFamily(
            "feedback_outbox_retrying", "Deliveries waiting for another attempt after a failed one", labels=["channel"]
        )
        given_up = GaugeMetricFamily(
            "feedback_outbox_given_up",
            "Deliveries given up after their last attempt (until pruned)",
            labels=["channel"],
        )
        for row in figures.outbox:
            pending.add_metric([row["channel"]], row["pending"])
            oldest.add_metric([row["channel"]], _age(row["oldest_pending"], now))
            retrying.add_metric([row["channel"]], row["retrying"])
            given_up.add_metric([row["channel"]], row["given_up"])
        yield from (pending, oldest, retrying, given_up)
        success = GaugeMetricFamily(
            "feedback_job_last_success_timestamp_seconds",
            "When each job last finished without an error (Unix time; 0: never)",
            labels=["job"],
        )
        failure = GaugeMetricFamily(
            "feedback_job_last_failure_timestamp_seconds",
            "When each job last failed (Unix time; 0: never)",
            labels=["job"],
        )
        for name in self.job_names:
            row = figures.jobs.get(name, {})
            success.add_metric([name], _timestamp(row.get("last_success_at")))
            failure.add_metric([name], _timestamp(row.get("last_failure_at")))
        yield from (success, failure)
        yield GaugeMetricFamily(
            "feedback_kiosks_silent",
            "Live kiosks not heard from for FEEDBACK_KIOSK_SILENT_AFTER seconds",
            value=figures.silent_kiosks,
        )


def _timestamp(stamp: str | datetime | None) -> float:
    """Unix time of a stored stamp (ISO text, or a datetime where the backend hands one); 0 for none."""
    if not stamp:
        return 0.0
    return (stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)).timestamp()


def _age(stamp: str | datetime | None, now: float) -> float:
    return max(0.0, now - _timestamp(stamp)) if stamp else 0.0


class Metrics:
    """One app's registry and the families it counts as requests and commits happen."""

    def __init__(self, store: Store) -> None:
        # No `_created` series beside each counter and histogram (library-wide; they double the output
        # and nothing here reads them).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "feedback_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.ingest_seconds = Histogram(
            "feedback_ingest_seconds",
            "Time to answer an ingest request (validation, scoring and the durable commit), by channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_jobs = Histogram(
            "feedback_writer_batch_jobs",
            "Write jobs committed together in one group commit",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "feedback_writer_commit_seconds",
            "Time the writer's COMMIT takes (the fsync on SQLite)",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        Gauge("feedback_write_queue_depth", "Write jobs waiting for the writer", registry=registry).set_function(
            lambda: store.queue_depth
        )
        Info("feedback_build", "The version of feedback serving", registry=registry).info({"version": __version__})
        self.database = DatabaseCollector()
        registry.register(self.database)
        # (method, route, status) -> (its counter child, its channel's histogram child or None)
        self._children: dict[tuple[str, str, int], tuple] = {}

    @staticmethod
    def of(store: Store) -> "Metrics":
        """The app's metrics (made on first use, kept with the app's store)."""
        return store.local("feedback.metrics", lambda: Metrics(store))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (the request's path: a dict look-up and an increment or two)."""
        if method not in METHODS:
            method = "OTHER"
        children = self._children.get((method, route, status))
        if children is None:
            children = self._children[(method, route, status)] = self._make_children(method, route, status)
        children[0].inc()
        if children[1] is not None:
            children[1].observe(seconds)

    def _make_children(self, method: str, route: str, status: int) -> tuple:
        channel = INGEST_ROUTES.get((method, route))
        histogram = self.ingest_seconds.labels(channel) if channel else None
        return self.requests.labels(method, route, str(status)), histogram

    def observe_batch(self, jobs: int, commit_seconds: float) -> None:
        """The writer's report of one group commit (called on the writer thread)."""
        self.batch_jobs.observe(jobs)
        self.commit_seconds.observe(commit_seconds)

    async def render(self, store: Store, settings: Settings) -> bytes:
        """The text exposition, with the database's figures read now."""
        now = datetime.now(UTC)
        cutoff = (now - timedelta(seconds=settings.kiosk_silent_after)).isoformat()
        figures = await store.read(lambda conn: read_figures(conn, cutoff))
        if not self.database.job_names and store.plugins is not None:
            self.database.job_names = [job.name for job in collect_jobs(settings, store.plugins)]
        self.database.latest, self.database.now = figures, now
        return generate_latest(self.registry)


def read_figures(conn: Connection, silent_cutoff: str) -> DatabaseFigures:
    """The database's figures for one scrape, through the store's functions (on a reader)."""
    return DatabaseFigures(
        events_pending=event_store.pending_count(conn),
        oldest_event=event_store.oldest_pending(conn),
        outbox=event_store.outbox_figures(conn),
        jobs={row["name"]: row for row in job_store.outcomes(conn)},
        silent_kiosks=kiosk_store.silent_count(conn, silent_cutoff),
    )


def from_this_host(scope: dict) -> bool:
    """Whether the connection's own peer is a loopback address and no proxy forwarded the request.

    Only the peer of the TCP connection counts, never a forwarding header; but a reverse proxy on this
    host (the shipped nginx) connects from loopback for every client, so a request carrying a proxy's
    forwarding header is taken as coming from elsewhere."""
    client = scope.get("client")
    try:
        peer = ipaddress.ip_address(client[0]) if client else None
    except ValueError:  # not an address at all (a Unix socket, a test client)
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if peer is None or not peer.is_loopback:
        return False
    return not any(name in PROXY_HEADERS for name, _ in scope["headers"])


def check_access(scope: dict, settings: Settings) -> None:
    """Let loopback clients in; anyone else needs the metrics token (Forbidden when none is set)."""
    if from_this_host(scope):
        return
    if not settings.metrics_token:
        raise Forbidden(
            "authorization: /metrics answers this host only; set FEEDBACK_METRICS_TOKEN to open it to others",
            "authorization",
        )
    sent = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    scheme, _, token = sent.partition(b" ")
    expected = settings.metrics_token.encode()
    if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), expected):
        raise Unauthorized("authorization: the metrics bearer token is missing or wrong", "authorization")


@get(METRICS_PATH, include_in_schema=False)
async def metrics_route(request: Request, state: State) -> Response[bytes]:
    """The Prometheus exposition of this app (left out of the OpenAPI document: it is for monitoring,
    not for API clients)."""
    check_access(request.scope, state.settings)
    body = await Metrics.of(state.store).render(state.store, state.settings)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
