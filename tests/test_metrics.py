"""GET /metrics: every family an operator watches, scraped from a real server after real traffic and read
with Prometheus' own text parser; open to this host, to anyone else only with the metrics token."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from feedback import __version__
from feedback.settings import load_settings
from feedback.web.app import create_app
from feedback.web.metrics import from_this_host
from tests.conftest import Org, auth_header, enrollment_code, poll_until, prepare_database, rows

# A site plugin (loaded from FEEDBACK_PLUGINS_DIR, as an operator would): it holds each response.stored
# event until the gate file exists, so events wait in the log for as long as the test wants, and it
# brings a job that always fails.
GATED_PLUGIN = """
import asyncio
from pathlib import Path

from feedback import hookimpl
from feedback.jobs import Job

GATE = Path({gate!r})


@hookimpl
def tracked_events(store):
    return ["response.stored"]


@hookimpl
def track_event(event, store):
    if event.type != "response.stored":
        return None

    async def held():
        while not GATE.exists():
            await asyncio.sleep(0.02)

    return held()


def fail(context):
    raise RuntimeError("the site's job failed")


@hookimpl
def register_jobs(settings):
    return [Job("site.always_fails", 3600, fail)]
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **headers: str) -> tuple[dict[str, object], Samples]:
    """The families (by name) and every sample (by name and labels) of one scrape."""
    reply = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(reply.text)}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def pending_in_log(org: Org) -> int:
    return rows(org, "SELECT count(*) AS n FROM event_log WHERE dispatched_at IS NULL")[0]["n"]


def webhook(url: str, admin: str, path: str) -> int:
    reply = httpx.post(
        f"{url}/api/v1/webhooks",
        json={"url": f"http://127.0.0.1:9/{path}", "secret": "s" * 24, "events": ["response.stored"]},
        headers=auth_header(admin),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def test_every_family_after_real_traffic(org: Org, start_server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    plugins = tmp_path / "site-plugins"
    plugins.mkdir()
    (plugins / "site_gate.py").write_text(GATED_PLUGIN.format(gate=str(gate)), encoding="utf-8")
    server = start_server(
        org.db,
        feedback_plugins_dir=str(plugins),
        feedback_webhook_allow_private="1",
        feedback_kiosk_silent_after="1",
    )
    admin = org.tokens["admin"]
    # Two webhooks nothing listens for: deliveries to one are retried, the other's are given up once
    # it is disabled.
    webhook(server.url, admin, "retried")
    given_up_hook = webhook(server.url, admin, "given-up")

    post = f"{server.url}/api/v1/responses"
    stored = [str(uuid.uuid4()) for _ in range(5)]
    for response_id in stored:
        reply = httpx.post(post, json={"id": response_id, "touchpoint": "tp-a", "answers": {"overall": 5}})
        assert reply.status_code == 201, reply.text
    assert httpx.post(post, json={"id": stored[0], "touchpoint": "tp-a", "answers": {"overall": 5}}).status_code == 200
    assert httpx.post(post, json={"touchpoint": "tp-a", "answers": {"overall": 9}}).status_code == 400
    for path in ("/no/such/page", f"/no/such/page/{uuid.uuid4()}"):
        assert httpx.get(f"{server.url}{path}").status_code == 404

    # A kiosk syncs two taps, then falls silent (FEEDBACK_KIOSK_SILENT_AFTER=1).
    enrolled = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": enrollment_code(org)})
    assert enrolled.status_code == 201, enrolled.text
    taken = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    taps = [{"id": str(uuid.uuid4()), "answers": {"overall": 5}, "submitted_at": taken} for _ in range(2)]
    synced = httpx.post(
        f"{server.url}/api/v1/kiosk/sync",
        json={"items": taps},
        headers=auth_header(enrolled.json()["device_token"]),
    )
    assert synced.status_code == 200 and [r["status"] for r in synced.json()["results"]] == ["stored", "stored"]

    # Events not yet dispatched: every response's response.stored is held by the gate.
    def held() -> Samples | None:
        _, samples = scrape(server.url)
        found = value(samples, "feedback_events_pending")
        return samples if found == 7 and pending_in_log(org) == 7 else None

    samples = poll_until(held, what="7 events held in the log and counted by /metrics")
    assert value(samples, "feedback_events_oldest_pending_age_seconds") > 0
    gate.touch()
    samples = poll_until(
        lambda: (s := scrape(server.url)[1]) and value(s, "feedback_events_pending") == 0 and s,
        what="the held events dispatched",
    )
    assert pending_in_log(org) == 0
    assert value(samples, "feedback_events_oldest_pending_age_seconds") == 0

    # Requests by route template and status; unknown paths share one label.
    requests = "feedback_http_requests_total"
    assert value(samples, requests, method="POST", route="/api/v1/responses", status="201") == 5
    assert value(samples, requests, method="POST", route="/api/v1/responses", status="200") == 1
    assert value(samples, requests, method="POST", route="/api/v1/responses", status="400") == 1
    assert value(samples, requests, method="GET", route="(unmatched)", status="404") == 2
    assert value(samples, requests, method="POST", route="/api/v1/kiosk/sync", status="200") == 1
    assert value(samples, requests, method="POST", route="/api/v1/webhooks", status="201") == 2
    assert not [key for key in samples if key[0] == requests and "/no/such" in str(key[1])]

    # Ingest latency per channel: every ingest request, whatever its answer.
    assert value(samples, "feedback_ingest_seconds_count", channel="api") == 7
    assert value(samples, "feedback_ingest_seconds_count", channel="kiosk") == 1
    assert 0 < value(samples, "feedback_ingest_seconds_sum", channel="api") < 7 * 5
    assert value(samples, "feedback_ingest_seconds_bucket", channel="api", le="+Inf") == 7

    # The writer: group commits, the jobs in them (at least the 7 stored responses), COMMIT's time.
    batches = value(samples, "feedback_writer_batch_jobs_count")
    assert batches >= 1 and value(samples, "feedback_writer_batch_jobs_sum") >= 7
    assert value(samples, "feedback_writer_commit_seconds_count") == batches
    assert value(samples, "feedback_writer_commit_seconds_sum") > 0
    assert value(samples, "feedback_write_queue_depth") >= 0
    assert value(samples, "feedback_build_info", version=__version__) == 1

    # The outbox by channel: the retried webhook's deliveries wait, the disabled one's are given up.
    reply = httpx.delete(f"{server.url}/api/v1/webhooks/{given_up_hook}", headers=auth_header(admin))
    assert reply.status_code in (200, 204), reply.text

    def outbox_settled() -> Samples | None:
        _, found = scrape(server.url)
        retrying = value(found, "feedback_outbox_retrying", channel="webhook")
        return found if retrying == 7 and value(found, "feedback_outbox_given_up", channel="webhook") == 7 else None

    samples = poll_until(outbox_settled, timeout=30, what="7 deliveries retried and 7 given up")
    waiting = rows(
        org,
        "SELECT count(*) AS n FROM outbox WHERE channel = 'webhook' AND delivered_at IS NULL AND failed_at IS NULL",
    )[0]["n"]
    assert value(samples, "feedback_outbox_pending", channel="webhook") == waiting == 7
    assert value(samples, "feedback_outbox_oldest_pending_age_seconds", channel="webhook") > 0

    # Each job's last success and failure (Unix time; 0 for never).
    now = datetime.now(UTC).timestamp()
    succeeded = value(samples, "feedback_job_last_success_timestamp_seconds", job="objectives.evaluate")
    assert now - 120 < succeeded <= now
    assert value(samples, "feedback_job_last_failure_timestamp_seconds", job="objectives.evaluate") == 0
    failed = value(samples, "feedback_job_last_failure_timestamp_seconds", job="site.always_fails")
    assert now - 120 < failed <= now
    assert value(samples, "feedback_job_last_success_timestamp_seconds", job="site.always_fails") == 0

    # The kiosk has not been heard from for more than a second.
    poll_until(lambda: value(scrape(server.url)[1], "feedback_kiosks_silent") == 1, what="one silent kiosk")

    families, _ = scrape(server.url)
    for name in (
        "feedback_http_requests",
        "feedback_ingest_seconds",
        "feedback_writer_batch_jobs",
        "feedback_writer_commit_seconds",
        "feedback_write_queue_depth",
        "feedback_events_pending",
        "feedback_outbox_pending",
        "feedback_outbox_oldest_pending_age_seconds",
        "feedback_outbox_retrying",
        "feedback_outbox_given_up",
        "feedback_job_last_success_timestamp_seconds",
        "feedback_job_last_failure_timestamp_seconds",
        "feedback_kiosks_silent",
        "feedback_build_info",
    ):
        assert families[name].documentation, name  # every family has its HELP text


def test_metrics_are_per_app(tmp_path: Path, start_server) -> None:
    """Two apps in one process count their own requests."""
    from tests.conftest import make_org

    first = start_server(make_org(tmp_path / "first.db").db)
    second = start_server(make_org(tmp_path / "second.db").db)
    for _ in range(3):
        assert httpx.get(f"{first.url}/no/such/page").status_code == 404
    requests = {"method": "GET", "route": "(unmatched)", "status": "404"}
    # A request is counted once its answer has gone out: the third may be counted a moment after.
    poll_until(
        lambda: value(scrape(first.url)[1], "feedback_http_requests_total", **requests) == 3,
        what="the first app counting its three requests",
    )
    assert value(scrape(second.url)[1], "feedback_http_requests_total", **requests) is None


def test_a_request_through_a_proxy_is_not_from_this_host(org: Org, start_server) -> None:
    """nginx on this host connects from loopback for every client: its forwarding header says so."""
    server = start_server(org.db)
    reply = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert reply.status_code == 403
    assert reply.json()["field"] == "authorization" and reply.json()["detail"].startswith("authorization")
    assert httpx.get(f"{server.url}/metrics").status_code == 200


@pytest.fixture
def remote_client(org: Org):
    """A client that is not on this host: Litestar's test client, whose peer address is "testclient"."""

    def client(**env: str) -> TestClient:
        settings = load_settings({"FEEDBACK_DB": str(org.db), "FEEDBACK_SECRET": "test-secret", **env})
        prepare_database(settings)
        return TestClient(create_app(settings))

    return client


def test_another_host_needs_the_metrics_token(remote_client) -> None:
    with remote_client() as client:
        refused = client.get("/metrics")
        assert refused.status_code == 403, refused.text
        assert refused.json()["field"] == "authorization"
        assert "FEEDBACK_METRICS_TOKEN" in refused.json()["detail"]
        # Even a bearer token is refused while none is set.
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403

    with remote_client(FEEDBACK_METRICS_TOKEN="scrape-me-7f3a") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-me-7f3a"}):
            reply = client.get("/metrics", headers=headers)
            assert reply.status_code == 401, (headers, reply.text)
            assert reply.json()["field"] == "authorization"
        reply = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-7f3a"})
        assert reply.status_code == 200, reply.text
        names = {family.name for family in text_string_to_metric_families(reply.text)}
        assert {"feedback_http_requests", "feedback_events_pending", "feedback_build_info"} <= names


@pytest.mark.parametrize(
    ("peer", "headers", "local"),
    [
        ("127.0.0.1", [], True),
        ("127.3.4.5", [], True),
        ("::1", [], True),
        ("::ffff:127.0.0.1", [], True),
        ("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.4")], False),
        ("127.0.0.1", [(b"forwarded", b"for=198.51.100.4")], False),
        ("192.0.2.10", [], False),
        ("::ffff:192.0.2.10", [], False),
        ("testclient", [], False),
    ],
)
def test_which_peers_are_this_host(peer: str, headers: list, local: bool) -> None:
    assert from_this_host({"client": (peer, 40000), "headers": headers}) is local


def test_job_outcomes_keep_both_times(org: Org) -> None:
    """job_runs keeps the last success beside the last failure (the latest run's error alone would lose
    one of them)."""
    from feedback.store import jobs as job_store

    conn = sqlite3.connect(org.db)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            job_store.claim_run(conn, "site.job", "2026-01-01T00:00:00+00:00", None)
            job_store.finish_run(conn, "site.job", "2026-01-01T00:00:05+00:00", None)
            job_store.claim_run(conn, "site.job", "2026-01-01T01:00:00+00:00", None)
            job_store.finish_run(conn, "site.job", "2026-01-01T01:00:05+00:00", "RuntimeError: no")
        [found] = [row for row in job_store.outcomes(conn) if row["name"] == "site.job"]
    finally:
        conn.close()
    assert found["last_success_at"] == "2026-01-01T00:00:05+00:00"
    assert found["last_failure_at"] == "2026-01-01T01:00:05+00:00"
