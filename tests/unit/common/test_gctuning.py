"""Collections at quiet moments (``gctuning.collect_due`` / ``IdleCollector``): they free cyclic garbage,
follow the automatic schedule for the older generations, and never run while the process is busy."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from agent_sandbox.common import gctuning


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def manual_gc() -> Iterator[None]:
    """Automatic collections off (they would reset the counts under the test), thresholds restored after."""
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.disable()
    gc.collect()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()


def _cycle() -> weakref.ref[_Node]:
    return weakref.ref(_Node())


def test_collects_young_garbage_only_when_enough_is_waiting(manual_gc: None) -> None:
    dead = _cycle()
    assert gctuning.collect_due(min_young=10_000) is None
    assert dead() is not None  # too little young garbage: left alone
    keep = [[] for _ in range(50)]  # young container objects
    assert gctuning.collect_due(min_young=20) == 0
    assert dead() is None
    assert gc.get_count()[0] < 20
    del keep


def test_older_generations_are_collected_on_the_automatic_schedule(manual_gc: None) -> None:
    gc.set_threshold(700, 1, 1)
    generations, kept = [], []
    for _ in range(7):
        kept.append([[] for _ in range(20)])  # 21 new young objects each time (kept alive: counts stay up)
        generations.append(gctuning.collect_due(min_young=10))
    # As the interpreter decides: a generation is collected once the younger one has been collected
    # more often than its threshold since (here: more than once).
    assert generations == [0, 0, 1, 0, 0, 1, 2]


async def test_idle_collector_waits_for_quiet_and_skips_busy_moments(manual_gc: None) -> None:
    busy = True
    collector = gctuning.IdleCollector(lambda: busy, quiet_s=0.01, min_young=10)
    keep = [[] for _ in range(50)]
    dead = _cycle()
    collector.poke()
    collector.poke()  # one timer at a time
    await asyncio.sleep(0.05)
    assert collector.collections == 0 and dead() is not None  # busy when the timer fired

    busy = False
    collector.poke()
    assert dead() is not None  # not at once: only after quiet_s
    await asyncio.sleep(0.05)
    assert collector.collections == 1 and dead() is None

    collector.poke()
    collector.close()  # a pending collection is dropped on close
    await asyncio.sleep(0.05)
    assert collector.collections == 1
    del keep
