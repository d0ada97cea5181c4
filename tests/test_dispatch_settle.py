"""A hand-over cancelled part-way (the server stopping while plugins take an event) leaves no coroutine
behind for the garbage collector to warn of; the event stays undispatched and is handed over again."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from feedback.dispatch import settle
from feedback.models import Event


@contextmanager
def warnings_after_collecting() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings a block gives, its garbage collected: a coroutine left unclosed warns when collected.
    What existed before is frozen out of the collection, which then walks only the block's objects (a
    full `gc.collect()` walks every object of the hundreds of apps a test worker has built: seconds)."""
    gc.freeze()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
            gc.collect()
    finally:
        gc.unfreeze()


def test_a_cancelled_hand_over_closes_the_hand_overs_it_did_not_reach() -> None:
    reached: list[str] = []

    async def slow(name: str) -> None:
        reached.append(name)
        await asyncio.sleep(3600)

    async def main() -> None:
        event = Event(type="response.stored", id="e1", created_at="2026-12-02T00:00:00Z", data={})
        results = [slow("first"), slow("second"), slow("third")]
        task = asyncio.create_task(settle(event, results, store=None))  # type: ignore[arg-type]
        while not reached:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with warnings_after_collecting() as caught:
        asyncio.run(main())
    assert reached == ["first"]  # one at a time: the others were never started
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_a_plugins_coroutine_not_reached_is_closed_through_its_isolating_wrapper() -> None:
    """What a track_event implementation returns reaches `settle` wrapped by the plugin manager (its
    failure is recorded under its name): closing the wrapper closes the plugin's coroutine too."""
    from feedback.plugins import PluginFailures, _Resolved

    reached: list[str] = []

    async def slow(name: str) -> None:
        reached.append(name)
        await asyncio.sleep(3600)

    async def main() -> None:
        event = Event(type="response.stored", id="e2", created_at="2026-12-02T00:00:00Z", data={})
        failures = PluginFailures()
        results = [_Resolved(slow(name), f"plugin_{name}", "track_event", failures) for name in ("a", "b", "c")]
        task = asyncio.create_task(settle(event, results, store=None))  # type: ignore[arg-type]
        while not reached:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with warnings_after_collecting() as caught:
        asyncio.run(main())
    assert reached == ["a"]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
