"""Several apps in one process, as the tests run them: each keeps its own settings, caches and clients,
and an in-process server stops without leaving a thread, a frozen heap or a logging set-up behind.

Two databases made as copies of one another hold the same tokens, touchpoints and survey versions, so
anything one app kept for the whole process would show up in the other."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from feedback.settings import load_settings
from feedback.web.app import COLLECTOR_THRESHOLDS, create_app
from tests.conftest import Org, Server, auth_header, make_org, rows, source_env, wait_for_dispatch
from tests.manage_helpers import add_user, sign_in
from tests.test_mail import Sink, smtp, staffed_org  # noqa: F401 - smtp is a fixture
from tests.test_manage_actions import Stream
from tests.test_webhooks import Receiver, register, respond, settled

PASSWORD = "correct horse 1"


def twin(org: Org, path: Path) -> Org:
    """A copy of an organisation's database file: the same tokens, touchpoints and surveys."""
    shutil.copyfile(org.db, path)
    return Org(db=path, touchpoints=dict(org.touchpoints), tokens=dict(org.tokens))


def change(db: Path, statement: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Org, Org]:
    first = make_org(tmp_path / "first.db")
    return first, twin(first, tmp_path / "second.db")


def test_a_token_revoked_in_one_app_is_refused_there_while_another_app_accepts_its_own(
    twins: tuple[Org, Org], start_server
) -> None:
    first, second = twins
    change(second.db, "UPDATE api_tokens SET revoked_at = '2026-01-01T00:00:00+00:00' WHERE user = 'root'")
    one, two = start_server(first.db), start_server(second.db)
    admin = auth_header(first.tokens["admin"])
    assert httpx.get(f"{one.url}/api/v1/units", headers=admin).status_code == 200  # looked up, and kept, by one
    refused = httpx.get(f"{two.url}/api/v1/units", headers=admin)
    assert refused.status_code == 401 and refused.json()["field"] == "authorization"


def test_each_app_renders_its_own_survey_under_the_same_version(twins: tuple[Org, Org], start_server) -> None:
    first, second = twins
    # Another survey under the same slug and version (published versions are immutable: lift that here).
    change(second.db, "DROP TRIGGER survey_versions_immutable")
    change(
        second.db,
        "UPDATE survey_versions SET definition = json_set(definition, '$.title.en', 'Second office survey')"
        " WHERE slug = 'csat'",
    )
    one, two = start_server(first.db), start_server(second.db)
    assert "Customer satisfaction" in httpx.get(f"{one.url}/s/tp-a?lang=en").text
    page = httpx.get(f"{two.url}/s/tp-a?lang=en").text
    assert "Second office survey" in page and "Customer satisfaction" not in page


def test_mail_settings_belong_to_each_app(tmp_path: Path, start_server, smtp: Sink) -> None:  # noqa: F811
    with_mail = staffed_org(tmp_path / "mail.db")
    without = staffed_org(tmp_path / "nomail.db")
    sending = start_server(with_mail.db, feedback_smtp_url=smtp.url, feedback_jobs="0")
    silent = start_server(without.db, feedback_jobs="0")  # started last: its settings must not win
    for server, org in ((sending, with_mail), (silent, without)):
        reply = httpx.post(
            f"{server.url}/api/v1/actions",
            json={"unit": "A1", "title": "Queue display broken", "owner": "lan"},
            headers=auth_header(org.tokens["admin"]),
        )
        assert reply.status_code == 201, reply.text
    [mail] = smtp.wait_for("lan@example.org")
    assert "Queue display broken" in mail["Subject"]
    wait_for_dispatch(without)
    assert rows(without, "SELECT count(*) AS n FROM outbox WHERE channel = 'mail'") == [{"n": 0}]
    assert "mail is off" in silent.log.read_text(encoding="utf-8")
    assert "mail is off" not in sending.log.read_text(encoding="utf-8")


def test_webhook_settings_and_hooks_belong_to_each_app(twins: tuple[Org, Org], start_server) -> None:
    first, second = twins
    receiver = Receiver().start()
    try:
        one = start_server(first.db, feedback_webhook_allow_private="1")
        two = start_server(second.db)  # started last, private targets refused: its settings must not win
        assert register(one, first, receiver.url).status_code == 201
        stored = respond(one)
        [request] = receiver.wait_for(1)
        assert request["headers"]["x-feedback-event"] == "response.stored"
        respond(two)  # the second app has no webhook
        wait_for_dispatch(second)
        assert rows(second, "SELECT count(*) AS n FROM outbox WHERE channel = 'webhook'") == [{"n": 0}]
        settled(first)  # the first app's delivery recorded: a copy of it could not come later
        assert [r["body"] for r in receiver.requests] == [request["body"]]
        assert stored["id"].encode() in request["body"]
    finally:
        receiver.stop()


def test_live_updates_reach_only_the_app_that_made_the_change(twins: tuple[Org, Org], start_server) -> None:
    first, second = twins
    for org in (first, second):
        add_user(org.db, "boss", PASSWORD, "admin")
    one, two = start_server(first.db), start_server(second.db)
    with httpx.Client(base_url=two.url, timeout=20) as client:
        sign_in(client, two, "boss", PASSWORD)
        listener = Stream(client)
        admin = auth_header(first.tokens["admin"])
        for server, title in ((one, "Opened in the first"), (two, "Opened in the second")):
            reply = httpx.post(f"{server.url}/api/v1/actions", json={"unit": "A", "title": title}, headers=admin)
            assert reply.status_code == 201, reply.text
        heard = listener.next()
        assert heard["title"] == "Opened in the second", heard


def test_an_in_process_server_stops_clean_and_cannot_be_killed(org: Org) -> None:
    before = set(threading.enumerate())
    server = Server(org.db).start()
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    with pytest.raises(RuntimeError, match="ProcessServer"):
        server.kill()
    server.stop()
    left: list[Any] = [thread for thread in threading.enumerate() if thread not in before]
    assert left == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz")


def test_an_app_sharing_the_process_leaves_its_logging_and_collector_alone(org: Org) -> None:
    """Litestar's logging set-up and the collector freeze are for a process of the app's own."""
    handlers, frozen, thresholds = list(logging.getLogger().handlers), gc.get_freeze_count(), gc.get_threshold()
    app = create_app(load_settings({"FEEDBACK_DB": str(org.db), "FEEDBACK_SECRET": "s", "FEEDBACK_JOBS": "0"}))
    with TestClient(app) as client:  # the lifespan runs: start-up done, serving
        assert client.get("/healthz").status_code == 200
        assert logging.getLogger().handlers == handlers
        assert gc.get_freeze_count() == frozen
        assert gc.get_threshold() == thresholds


OWN_PROCESS_PROBE = """
import gc, json, sys
from litestar.testing import TestClient
from feedback.settings import load_settings
from feedback.web.app import create_app
before = gc.get_threshold()
settings = load_settings({"FEEDBACK_DB": sys.argv[1], "FEEDBACK_SECRET": "s", "FEEDBACK_JOBS": "0"})
with TestClient(create_app(settings, own_process=True)) as client:
    status = client.get("/healthz").status_code
    during, frozen = gc.get_threshold(), gc.get_freeze_count()
    print(json.dumps({"status": status, "before": before, "during": during, "frozen": frozen}))
"""


def test_an_app_with_a_process_of_its_own_freezes_its_start_up_and_collects_young_objects_less_often(
    org: Org,
) -> None:
    """What `feedback serve` does in each worker: the start-up objects frozen, and the young generation's
    threshold raised (bench/ingest.py measured the difference in the README)."""
    probe = subprocess.run(
        [sys.executable, "-c", OWN_PROCESS_PROBE, str(org.db)],
        env=source_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["status"] == 200
    assert tuple(found["before"]) == (700, 10, 10)  # Python's own, until the app has started
    assert tuple(found["during"]) == COLLECTOR_THRESHOLDS
    assert found["frozen"] > 10_000  # the app, its plugins and the catalog, out of the collector's scans


def test_several_workers_need_a_process(org: Org) -> None:
    with pytest.raises(ValueError, match="ProcessServer"):
        Server(org.db, workers=2)
