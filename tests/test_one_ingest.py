"""One ingest path for every channel: the JSON API, the survey page and kiosk sync hand their
submissions to `feedback.ingest.ingest`, which answers an outcome per submission; every plugin call
happens before the one write job, so a slow plugin holds up only its own response."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.testing import TestClient

from feedback import organisation
from feedback.catalog import Catalog
from feedback.db import Store
from feedback.ingest import Item, ingest
from feedback.kiosks import KioskPolicy
from feedback.models import Submission
from feedback.web.api import responses_route
from feedback.web.errors import EXCEPTION_HANDLERS
from tests.conftest import (
    BOTH_BACKENDS,
    Org,
    ProcessServer,
    Server,
    auth_header,
    connect,
    default_plugins,
    enrollment_code,
    rows,
)
from tests.test_plugins import write_plugin

pytestmark = BOTH_BACKENDS

SLOW_ASSIGNEE = """
    import time
    from pathlib import Path
    from feedback import hookimpl

    @hookimpl
    def corrective_action_assignee(action, unit, snapshot):
        Path({mark!r}).write_text(action.source_key)
        time.sleep(2.0)  # a directory look-up on a bad day
        return "lan"
"""


def wait_for(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def timed_post(url: str, body: dict) -> tuple[int, float]:
    started = time.monotonic()
    reply = httpx.post(f"{url}/api/v1/responses", json=body, timeout=30)
    return reply.status_code, time.monotonic() - started


@pytest.mark.postgres_covered_elsewhere
def test_a_slow_assignee_plugin_stalls_no_other_write(tmp_path: Path, org: Org, start_server) -> None:
    mark = tmp_path / "asking"
    folder = write_plugin(tmp_path / "p", "slow_assignee", SLOW_ASSIGNEE.format(mark=str(mark)))
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    bad = {"id": str(uuid.uuid4()), "touchpoint": "tp-a1a", "answers": {"overall": 1}}  # opens a work order
    slow: list[tuple[int, float]] = []
    planning = threading.Thread(target=lambda: slow.append(timed_post(srv.url, bad)))
    planning.start()
    wait_for(mark.exists)  # the assignee is being asked now, and takes two seconds to answer
    others = [timed_post(srv.url, {"touchpoint": "tp-a", "answers": {"overall": 5}}) for _ in range(5)]
    healthz = time.monotonic()
    assert httpx.get(f"{srv.url}/healthz", timeout=30).status_code == 200
    healthz = time.monotonic() - healthz
    planning.join(30)
    assert [status for status, _ in others] == [201] * 5
    # Stored while the assignee still thinks: each in well under the two seconds it takes.
    assert max(elapsed for _, elapsed in others) < 1.0, others
    assert healthz < 1.0
    assert slow[0][0] == 201 and slow[0][1] >= 2.0
    assert [(a["response_id"], a["owner"]) for a in rows(org, "SELECT response_id, owner FROM actions")] == [
        (bad["id"], "lan")
    ]


@pytest.mark.postgres_covered_elsewhere
def test_the_ingest_route_documents_every_answer_it_gives(server: Server) -> None:
    doc = httpx.get(f"{server.url}/schema/openapi.json", timeout=30).json()
    operation = doc["paths"]["/api/v1/responses"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Submission"
    }
    answers = {status: r["content"]["application/json"]["schema"] for status, r in operation["responses"].items()}
    assert set(answers) == {"200", "201", "400", "404", "409", "410", "413", "429", "503"}
    assert answers["200"] == answers["201"] == {"$ref": "#/components/schemas/Receipt"}
    error = doc["components"]["schemas"][answers["409"]["$ref"].rsplit("/", 1)[1]]
    assert set(error["properties"]) == {"status_code", "detail", "field"}
    assert set(error["required"]) == {"status_code", "detail"}
    submission = doc["components"]["schemas"]["Submission"]
    assert set(submission["required"]) == {"touchpoint", "answers"} and submission["additionalProperties"] is False
    # A real 409 has that shape.
    body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a", "answers": {"overall": 5}}
    assert httpx.post(f"{server.url}/api/v1/responses", json=body).status_code == 201
    clash = httpx.post(f"{server.url}/api/v1/responses", json={**body, "answers": {"overall": 4}})
    assert clash.status_code == 409 and set(clash.json()) == {"status_code", "detail", "field"}


def test_a_guard_on_the_ingest_route_runs() -> None:
    """The route is a real route, not a handler a middleware answers for: what guards it, runs."""

    def closed(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        raise PermissionDeniedException("closed for maintenance")

    app = Litestar(
        route_handlers=[responses_route],
        guards=[closed],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # this process's logging is pytest's
    )
    with TestClient(app) as client:
        reply = client.post("/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 5}})
    assert reply.status_code == 403 and reply.json()["detail"] == "closed for maintenance"


# -- the same submission through every channel ----------------------------------------------------------------


def enroll_kiosk(server: Server, org: Org, touchpoint: str = "tp-a1a") -> tuple[str, str]:
    code = enrollment_code(org, touchpoint)
    reply = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": code})
    assert reply.status_code == 201, reply.text
    return reply.json()["device_token"], reply.json()["kiosk"]["id"]


def form_fields(answers: dict) -> dict[str, list[str]]:
    """Answers as the survey page's form sends them: `q.<key>`, a value per chosen option."""
    return {
        f"q.{key}": [str(v) for v in (value if isinstance(value, list) else [value])] for key, value in answers.items()
    }


class Channels:
    """One server, and the same answers sent to touchpoint tp-a1a through each channel."""

    def __init__(self, server: Server, org: Org) -> None:
        self.server, self.org = server, org
        self.device, self.kiosk = enroll_kiosk(server, org)

    def api(self, answers: dict) -> httpx.Response:
        body = {"id": str(uuid.uuid4()), "touchpoint": "tp-a1a", "answers": answers, "lang": "en"}
        return httpx.post(f"{self.server.url}/api/v1/responses", json=body, timeout=30)

    def page(self, answers: dict, form_id: str | None = None) -> httpx.Response:
        form = {"form_id": form_id or str(uuid.uuid4()), "lang": "en", **form_fields(answers)}
        return httpx.post(f"{self.server.url}/s/tp-a1a", data=form, timeout=30)

    def kiosk_sync(self, answers: dict) -> dict:
        tap = {"id": str(uuid.uuid4()), "answers": answers, "submitted_at": datetime.now(UTC).isoformat(), "lang": "en"}
        reply = httpx.post(
            f"{self.server.url}/api/v1/kiosk/sync", json={"items": [tap]}, headers=auth_header(self.device), timeout=30
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["results"][0]


@pytest.fixture(scope="module")
def channels(shared_org: Org, server: Server) -> Channels:
    return Channels(server, shared_org)


@pytest.mark.parametrize(
    ("answers", "field", "page_says"),
    [
        ({"overall": 9}, "answers.overall", "This answer is not valid: How do you rate this service overall?"),
        ({"efficiency": 4}, "answers.overall", "Please answer: How do you rate this service overall?"),
        (
            {"overall": 2, "bad_reasons": ["teleport"]},
            "answers.bad_reasons",
            "This answer is not valid: Why are you dissatisfied?",
        ),
    ],
)
def test_each_channel_refuses_the_same_submission_for_the_same_reason(
    channels: Channels, shared_org: Org, answers: dict, field: str, page_says: str
) -> None:
    before = rows(shared_org, "SELECT count(*) AS n FROM responses")[0]["n"]
    api = channels.api(answers)
    assert api.status_code == 400 and api.json()["field"] == field
    tap = channels.kiosk_sync(answers)
    assert (tap["status"], tap["field"], tap["reason"]) == ("rejected", field, api.json()["detail"])
    page = channels.page(answers)
    assert page.status_code == 400 and page_says in page.text
    assert rows(shared_org, "SELECT count(*) AS n FROM responses")[0]["n"] == before


# What differs by channel by design: identity, timing, the channel itself and the device.
PER_CHANNEL = {"id", "receipt", "channel", "client_time", "server_time", "occurred_at", "day", "content_hash", "device"}


def test_each_channel_stores_the_same_row_and_opens_the_same_action(channels: Channels, shared_org: Org) -> None:
    answers = {"overall": 2, "efficiency": 3, "bad_reasons": ["over_time_limit"]}
    form_id = str(uuid.uuid4())
    api = channels.api(answers)
    page = channels.page(answers, form_id)
    tap = channels.kiosk_sync(answers)
    assert (api.status_code, page.status_code, tap["status"]) == (201, 201, "stored")
    ids = {"api": api.json()["id"], "qr": form_id, "kiosk": tap["id"]}
    stored = {
        channel: rows(shared_org, "SELECT * FROM responses WHERE id = ?", (rid,))[0] for channel, rid in ids.items()
    }
    assert {channel: row["channel"] for channel, row in stored.items()} == {"api": "api", "qr": "qr", "kiosk": "kiosk"}
    assert stored["kiosk"]["device"] == channels.kiosk and stored["kiosk"]["client_time"] is not None

    def shape(row: dict) -> dict:
        kept = {k: v for k, v in row.items() if k not in PER_CHANNEL}
        kept["answers"], kept["indicators"] = json.loads(kept["answers"]), json.loads(kept["indicators"])
        return kept

    assert shape(stored["api"]) == shape(stored["qr"]) == shape(stored["kiosk"])
    assert shape(stored["api"])["answers"] == answers and shape(stored["api"])["flags"] == "[]"
    actions = {
        a["response_id"]: (a["kind"], a["unit"], a["owner"], a["due"])
        for a in rows(shared_org, "SELECT * FROM actions WHERE response_id IN (?, ?, ?)", tuple(ids.values()))
    }
    assert len(actions) == 3 and len(set(actions.values())) == 1  # one work order each, alike


def test_two_workers_syncing_one_tablet_at_once_record_every_press(org: Org) -> None:
    """The misuse filter's state is claimed, judged and recorded in the write that stores the taps, so
    syncs of one tablet racing through two server processes lose no press."""
    env = {"FEEDBACK_KIOSK_MIN_INTERVAL": "2", "FEEDBACK_KIOSK_BURST_COUNT": "1000"}
    srv = ProcessServer(org.db, env=env, workers=2).start()
    try:
        device, kiosk = enroll_kiosk(srv, org)
        start = datetime.now(UTC) - timedelta(hours=1)
        taps = [
            {
                "id": str(uuid.uuid4()),
                "answers": {"overall": 4},
                "submitted_at": (start + timedelta(seconds=10 * i)).isoformat(),
            }
            for i in range(40)
        ]

        def sync(tap: dict) -> int:
            url = f"{srv.url}/api/v1/kiosk/sync"
            return httpx.post(url, json={"items": [tap]}, headers=auth_header(device), timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(sync, taps)) == [200] * 40
    finally:
        srv.stop()
    pressed = json.loads(rows(org, "SELECT recent_presses FROM kiosks WHERE id = ?", (kiosk,))[0]["recent_presses"])
    assert sorted(datetime.fromisoformat(t) for t in pressed) == [
        datetime.fromisoformat(t["submitted_at"]) for t in taps
    ]
    assert len(rows(org, "SELECT id FROM responses WHERE device = ?", (kiosk,))) == 40


# -- the one function, in process, over a real database -------------------------------------------------------


def run(coro):
    return asyncio.run(coro)


async def with_store(org: Org, body):
    plugins = default_plugins()
    store = Store(str(org.db), plugins=plugins)
    store.start()
    try:
        snapshot = await store.read(Catalog(plugins=plugins).reload)
        return await body(store, snapshot)
    finally:
        store.close()


def submission(touchpoint: str = "tp-a", **fields) -> Submission:
    return Submission(touchpoint=touchpoint, **{"answers": {"overall": 4}, "id": str(uuid.uuid4()), **fields})


def test_one_batch_answers_an_outcome_per_submission(org: Org) -> None:
    with closing(connect(org.db)) as conn, conn:
        organisation.retire_touchpoint(conn, "tp-a1")
    first = submission()
    batch = [
        Item(first),
        Item(first),  # the same again in the same batch: stored once
        Item(submission(answers={"overall": 6})),
        Item(submission("tp-nowhere")),
        Item(submission(id=first.id, answers={"overall": 1})),
        Item(submission("tp-a1")),
    ]
    outcomes = run(with_store(org, lambda store, snapshot: ingest(batch, store, snapshot)))
    assert [o.status for o in outcomes] == ["stored", "duplicate", "rejected", "rejected", "conflict", "gone"]
    assert outcomes[1].result.receipt == outcomes[0].result.receipt
    assert [(o.error.status_code, o.error.field) for o in outcomes[2:]] == [
        (400, "answers.overall"),
        (404, "touchpoint"),
        (409, "id"),
        (410, "touchpoint"),
    ]
    assert outcomes[2].error.message == "answers.overall: must be a whole number from 1 to 5"
    assert rows(org, "SELECT id FROM responses") == [{"id": first.id}]
    # A retry of the whole batch: the stored one is a duplicate, the rest are refused as before.
    again = run(with_store(org, lambda store, snapshot: ingest(batch, store, snapshot)))
    assert [o.status for o in again] == ["duplicate", "duplicate", "rejected", "rejected", "conflict", "gone"]


def test_a_group_commit_that_took_a_stored_id_for_new_is_replayed_with_the_right_answers(org: Org) -> None:
    """A group commit inserts its new responses together just before it commits, taking each id for
    new; a repeat of a stored id, or two requests racing with one id, prove that wrong and the batch is
    replayed job by job, each answered as if it had been alone."""
    stored_before, racing = submission(), submission()
    fresh = [submission() for _ in range(3)]
    queued = [stored_before, racing, racing, *fresh]

    async def body(store: Store, snapshot) -> list:
        await ingest([Item(stored_before)], store, snapshot)
        entered, release = threading.Event(), threading.Event()
        # Hold the writer so that every request below waits for it, then goes in one group commit.
        holding = asyncio.ensure_future(store.write(lambda conn: (entered.set(), release.wait(10))))
        await asyncio.to_thread(entered.wait, 10)
        waiting = [asyncio.ensure_future(ingest([Item(one)], store, snapshot)) for one in queued]
        for _ in range(200):
            if store.queue_depth == len(queued):
                break
            await asyncio.sleep(0.01)
        assert store.queue_depth == len(queued)
        release.set()
        await holding
        return [outcome for outcomes in await asyncio.gather(*waiting) for outcome in outcomes]

    outcomes = run(with_store(org, body))
    statuses = [o.status for o in outcomes]
    assert statuses[0] == "duplicate"
    assert sorted(statuses[1:3]) == ["duplicate", "stored"]
    assert statuses[3:] == ["stored"] * 3
    assert outcomes[1].result.receipt == outcomes[2].result.receipt
    ids = sorted(s.id for s in [stored_before, racing, *fresh])
    assert [r["id"] for r in rows(org, "SELECT id FROM responses ORDER BY id")] == ids
    assert rows(org, "SELECT sum(n) AS n FROM rollups_unit_day") == [{"n": 5}]
    logged = rows(org, "SELECT id FROM event_log WHERE type = 'response.stored' ORDER BY id")
    assert [r["id"] for r in logged] == ["response.stored:" + i for i in ids]


def test_the_kiosk_policy_judges_presses_across_batches_on_the_device_clock(org: Org) -> None:
    with closing(connect(org.db)) as conn, conn:
        conn.execute(
            "INSERT INTO kiosks (id, touchpoint, name, token_hash, enrolled_at, backlog, dead_letters, recent_presses)"
            " VALUES ('k1', 'tp-a1a', 'tablet', 'x', '2026-01-01', 0, 0, '[]')"
        )
    start = datetime.now(UTC) - timedelta(minutes=30)
    policy = KioskPolicy(device="k1", min_interval=2, burst_count=4, burst_window=60)

    def taps(*seconds: float) -> list[Item]:
        return [
            Item(submission("tp-a1a", submitted_at=(start + timedelta(seconds=s)).isoformat(), channel="kiosk"))
            for s in seconds
        ]

    first, second = taps(1, 0), taps(10, 20, 200)  # the first batch out of order: judged by device time

    async def both(store, snapshot):
        one = await ingest(first, store, snapshot, policy=policy)
        replayed = await ingest(first, store, snapshot, policy=policy)  # a retried batch presses nothing
        two = await ingest(second, store, snapshot, policy=policy)
        return one, replayed, two

    one, replayed, two = run(with_store(org, both))
    assert [o.status for o in (*one, *two)] == ["stored"] * 5 and [o.status for o in replayed] == ["duplicate"] * 2
    flags = [json.loads(r["flags"]) for r in rows(org, "SELECT flags FROM responses ORDER BY occurred_at")]
    assert flags == [[], ["fast_repeat"], [], ["burst"], []]
    assert {r["device"] for r in rows(org, "SELECT device FROM responses")} == {"k1"}
    kiosk = rows(org, "SELECT recent_presses, last_sync FROM kiosks WHERE id = 'k1'")[0]
    assert len(json.loads(kiosk["recent_presses"])) == 4 and kiosk["last_sync"] is not None


def test_an_action_opened_in_a_batch_counts_the_earlier_days_stored_before_it_in_its_baseline(org: Org) -> None:
    """A kiosk's offline queue or a batch of paper forms stores earlier days' responses in the same
    group commit as a bad one of today: the baseline of the action that one opens (the 90 days
    before its opening day) counts them, though the writer still holds their rollups unwritten."""
    now = datetime.now(UTC)
    last_week = [
        Item(submission("tp-a1a", answers={"overall": overall}, submitted_at=(now - timedelta(days=6)).isoformat()))
        for overall in (5, 5, 5, 2)
    ]
    today = [Item(submission("tp-a1a", answers={"overall": 4})) for _ in range(3)]
    bad = Item(submission("tp-a1a", answers={"overall": 1}))  # opens a work order

    outcomes = run(with_store(org, lambda store, snapshot: ingest([*last_week, *today, bad], store, snapshot)))
    assert [o.status for o in outcomes] == ["stored"] * 8
    (opened,) = outcomes[-1].result.actions
    # 3 of last week's 4 were satisfied; today's responses are outside the window, held as before.
    assert rows(org, "SELECT baseline FROM actions WHERE id = ?", (opened["id"],)) == [{"baseline": 0.75}]
    assert rows(org, "SELECT sum(n) AS n FROM rollups_unit_day") == [{"n": 8}]


def test_a_baseline_read_earlier_in_a_group_commit_is_read_again_once_earlier_days_join_it(org: Org) -> None:
    """A group commit reads each baseline once for the bad reviews of one counter, and reads it again
    when earlier days' responses held in the same commit are written before a later opening."""
    now = datetime.now(UTC)

    def bad() -> Item:
        return Item(submission("tp-a1a", answers={"overall": 1}))

    last_week = [
        Item(submission("tp-a1a", answers={"overall": overall}, submitted_at=(now - timedelta(days=6)).isoformat()))
        for overall in (5, 5, 5, 3)  # a 3 opens nothing
    ]
    batch = [bad(), *last_week, bad(), bad()]
    outcomes = run(with_store(org, lambda store, snapshot: ingest(batch, store, snapshot)))
    assert [o.status for o in outcomes] == ["stored"] * 7
    opened = [outcome.result.actions[0]["id"] for outcome in outcomes if outcome.result.actions]
    baselines = [rows(org, "SELECT baseline FROM actions WHERE id = ?", (i,))[0]["baseline"] for i in opened]
    # Nothing in the window for the first; last week's four (3 satisfied) for the two after them.
    assert baselines == [None, 0.75, 0.75]


def test_a_held_first_event_goes_in_before_a_later_event_of_its_aggregate(org: Org) -> None:
    """The first events of new aggregates are held and written just before the commit; a later event of
    the same aggregate in the same transaction writes them first, so the log keeps each aggregate's
    order (and the dispatcher hands them over in it)."""
    from feedback import events
    from feedback.dispatch import Dispatcher
    from feedback.models import Event

    now = datetime.now(UTC).isoformat()
    opened = Event(type="action.opened", id="action.opened:9001", created_at=now, data={"id": 9001})
    changed = Event(type="action.changed", id="action.changed:9001:2", created_at=now, data={"id": 9001})
    other = Event(type="action.opened", id="action.opened:9002", created_at=now, data={"id": 9002})

    def job(conn) -> None:
        events.record(conn, [opened], new_aggregates=True)
        events.record(conn, [other], new_aggregates=True)
        events.record(conn, [changed])

    async def body(store: Store, _snapshot) -> None:
        dispatcher = Dispatcher(store)
        dispatcher.start()
        try:
            await store.write(job)
            for _ in range(500):  # handed over after the commit (none left leased at the stop)
                if dispatcher.dispatched >= 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            await dispatcher.stop()
        assert dispatcher.dispatched == 3

    run(with_store(org, body))
    logged = [r["id"] for r in rows(org, "SELECT id FROM event_log WHERE type LIKE 'action.%' ORDER BY seq")]
    assert logged == [opened.id, other.id, changed.id]
