"""`tracked_events`: the dispatcher builds and hands over only the events some plugin wants, and still
records every event as dispatched; a plugin without the hook gets every event."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from feedback.settings import Settings
from tests.conftest import Org, auth_header, make_org, rows, wait_for_dispatch
from tests.test_plugins import write_plugin

PICKY = """
    from pathlib import Path
    from feedback import hookimpl

    LOG = Path(__file__).with_suffix(".log")


    @hookimpl
    def tracked_events():
        return {"action.opened"}


    @hookimpl
    def track_event(event):
        with LOG.open("a") as log:
            log.write(event.type + "\\n")
"""

GREEDY = """
    from pathlib import Path
    from feedback import hookimpl

    LOG = Path(__file__).with_suffix(".log")


    @hookimpl
    def track_event(event):
        with LOG.open("a") as log:
            log.write(event.type + "\\n")
"""


def logged(folder: Path, name: str) -> list[str]:
    path = folder / f"{name}.log"
    return path.read_text().split() if path.exists() else []


def run(org: Org, folder: Path) -> None:
    from feedback.web.app import create_app

    settings = Settings(
        db=str(org.db),
        plugins_dir=str(folder),
        # The built-in webhooks plugin wants every event until it has looked at its table: keep it out.
        block_plugins=["feedback_plugins.webhooks"],
        secret="s" * 32,
        jobs=False,
        rate_limit=0,
    )
    with TestClient(create_app(settings)) as client:
        for rating in (5, 4):
            reply = client.post("/api/v1/responses", json={"touchpoint": "tp-a1", "answers": {"overall": rating}})
            assert reply.status_code == 201, reply.text
        opened = client.post(
            "/api/v1/actions", json={"unit": "A1", "title": "Queue too long"}, headers=auth_header(org.tokens["admin"])
        )
        assert opened.status_code == 201, opened.text
        wait_for_dispatch(org)


def test_hook_tracked_events(tmp_path: Path) -> None:
    # An event no plugin wants is recorded as dispatched without being built or handed over.
    org = make_org(tmp_path / "f.db")
    folder = write_plugin(tmp_path / "p", "picky", PICKY)
    run(org, folder)
    assert logged(folder, "picky") == ["action.opened"]
    # Nothing waits in the log: the two response.stored events count as handed over.
    types = rows(org, "SELECT type, dispatched_at IS NOT NULL AS done FROM event_log ORDER BY seq")
    assert [t["type"] for t in types].count("response.stored") == 2
    assert all(t["done"] for t in types)
    # The writer knew nobody wanted them: logged as dispatched at once, never leased to a dispatcher.
    stored = rows(
        org,
        "SELECT claimed_by, dispatched_at = created_at AS at_once FROM event_log WHERE type = ?",
        ("response.stored",),
    )
    assert stored == [{"claimed_by": "", "at_once": 1}] * 2


def test_a_plugin_without_tracked_events_gets_every_event(tmp_path: Path) -> None:
    org = make_org(tmp_path / "f.db")
    folder = write_plugin(tmp_path / "p", "picky", PICKY)
    write_plugin(folder, "greedy", GREEDY)
    run(org, folder)
    assert sorted(logged(folder, "greedy")) == ["action.opened", "response.stored", "response.stored"]
    # Called together through pluggy: once an event is wanted, every track_event gets it.
    assert sorted(logged(folder, "picky")) == ["action.opened", "response.stored", "response.stored"]
