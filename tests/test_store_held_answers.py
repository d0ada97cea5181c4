"""A committed batch's answers are held while the next batch's quick jobs run, and given out just
before that batch commits (`Store._run_batch`): never before their own commit, never behind a job that
does not say it is quick (ingest's of a few responses does), never for longer than
`HOLD_ANSWERS_SECONDS` of the next batch's jobs, and never left unanswered when nothing follows, when
the next batch fails or when the store closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from feedback.db import HOLD_ANSWERS_SECONDS, Store
from feedback.ingest import DEFAULT_POLICY, QUICK_JOB_RESPONSES, write_job
from feedback.store import Connection
from tests.conftest import BOTH_BACKENDS, connect, new_postgres_database

pytestmark = BOTH_BACKENDS


def started_store(tmp_path: Path, backend: str) -> Store:
    """A running store over a new database holding one table, `t`."""
    path = new_postgres_database() if backend == "postgresql" else str(tmp_path / "s.db")
    setup = connect(path)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    setup.commit()
    setup.close()
    made = Store(path)
    made.start()
    return made


@pytest.fixture
def store(tmp_path: Path, backend: str) -> Iterator[Store]:
    made = started_store(tmp_path, backend)
    yield made
    made.close()


def stored(store: Store) -> list[str]:
    conn = connect(store.path)
    try:
        return sorted(row[0] for row in conn.execute("SELECT k FROM t"))
    finally:
        conn.close()


class First:
    """A job that holds the writer until told to go on: what is queued meanwhile makes the next batch."""

    def __init__(self) -> None:
        self.running, self.go_on = threading.Event(), threading.Event()

    def __call__(self, conn: Connection) -> str:
        self.running.set()
        assert self.go_on.wait(10)
        conn.execute("INSERT INTO t (k) VALUES ('first')")
        return "first"


def running_first(store: Store) -> tuple[First, Future]:
    """A `First` queued and running: what is queued next makes the writer's next batch."""
    first = First()
    queued = store.submit_write(first)
    assert first.running.wait(10)
    return first, queued


def job(key: str, *, quick: bool, look: Callable[[], None] = lambda: None, pause: float = 0.0):
    def run(conn: Connection) -> str:
        look()
        time.sleep(pause)
        conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
        if key == "bad":
            raise ValueError("refused")
        return key

    run.quick = quick  # type: ignore[attr-defined]  # as ingest's job of a few responses says it
    return run


def answered_in_order(futures: dict[str, Future]) -> list[str]:
    order: list[str] = []
    for name, future in futures.items():
        future.add_done_callback(lambda _f, name=name: order.append(name))
    return order


def test_answers_wait_while_the_next_batch_of_ingest_jobs_runs_and_go_out_before_its_commit(store: Store) -> None:
    first, a = running_first(store)
    seen: dict[str, bool] = {}
    b = store.submit_write(job("b", quick=True, look=lambda: seen.setdefault("first answered", a.done())))
    order = answered_in_order({"first": a, "b": b})
    first.go_on.set()
    assert a.result(10) == "first" and b.result(10) == "b"
    assert seen == {"first answered": False}  # held while b ran
    assert order == ["first", "b"]  # and answered before b's commit, which answered b
    assert stored(store) == ["b", "first"]


def test_a_job_of_another_kind_finds_the_answers_given(store: Store) -> None:
    first, a = running_first(store)
    seen: dict[str, bool] = {}
    b = store.submit_write(job("b", quick=False, look=lambda: seen.setdefault("first answered", a.done())))
    first.go_on.set()
    assert b.result(10) == "b" and a.result(10) == "first"
    assert seen == {"first answered": True}


def test_answers_are_held_for_no_longer_than_the_limit_of_the_next_batchs_jobs(store: Store) -> None:
    first, a = running_first(store)
    seen: dict[str, bool] = {}
    slow = store.submit_write(
        job("slow", quick=True, look=lambda: seen.setdefault("before slow", a.done()), pause=3 * HOLD_ANSWERS_SECONDS)
    )
    later = store.submit_write(job("later", quick=True, look=lambda: seen.setdefault("before later", a.done())))
    first.go_on.set()
    assert [f.result(10) for f in (a, slow, later)] == ["first", "slow", "later"]
    assert seen == {"before slow": False, "before later": True}


def test_nothing_following_means_answered_at_once(store: Store) -> None:
    started = time.monotonic()
    assert store.submit_write(job("alone", quick=True)).result(10) == "alone"
    assert time.monotonic() - started < 5


def test_a_next_batch_that_fails_still_lets_the_held_answers_out(store: Store) -> None:
    first, a = running_first(store)
    bad = store.submit_write(job("bad", quick=True))
    good = store.submit_write(job("good", quick=True))
    first.go_on.set()
    assert a.result(10) == "first" and good.result(10) == "good"
    with pytest.raises(ValueError, match="refused"):
        bad.result(10)
    assert stored(store) == ["first", "good"]


def test_closing_the_store_gives_the_held_answers(tmp_path: Path, backend: str) -> None:
    store = started_store(tmp_path, backend)
    first, a = running_first(store)
    closing = threading.Thread(target=store.close)
    closing.start()
    deadline = time.monotonic() + 10
    while store.queue_depth == 0 and time.monotonic() < deadline:  # the stop, queued behind the running job
        time.sleep(0.005)
    assert store.queue_depth == 1
    first.go_on.set()
    closing.join(30)
    assert not closing.is_alive()
    assert a.result(0) == "first"


@pytest.mark.parametrize(
    ("responses", "quick"), [(1, True), (QUICK_JOB_RESPONSES, True), (QUICK_JOB_RESPONSES + 1, False)]
)
def test_ingests_job_is_quick_for_a_few_responses_only(responses: int, quick: bool) -> None:
    """A kiosk's queue of hundreds is one job: answers held behind it would wait for all of them."""
    planned = [(index, None) for index in range(responses)]  # counted only until the job runs
    made = write_job(planned, [], DEFAULT_POLICY, 10)  # type: ignore[arg-type]
    assert made.quick is quick and made.defers is True
