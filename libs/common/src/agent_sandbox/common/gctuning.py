"""Garbage-collector settings of our long-running servers (tail latency of claims).

The operator's informer cache and the embedded API server's store hold
thousands of long-lived objects, and a claim burst allocates many short-lived
ones (parsed requests and watch events, responses). With the default
thresholds the cyclic collector ran a young collection every ~700 allocations
and, every few seconds, a full one over the whole cache that stalled the event
loop for tens of milliseconds — in the middle of a burst, that is the p99. A
larger young generation makes collections rare, and freezing the heap once
start-up is done (imports, the initial listings or the loaded store) takes
those objects out of every later full collection.

How large is a trade: a young collection's pause grows with the young objects
still alive when it runs. The operator's survivors are few, so its young
collections stay short at 50,000. The embedded API server keeps most of what it
allocates for a while (every write's new object and its event in the event
log): at 50,000 its young collections took 12-20 ms, one of them inside a claim
burst in every 10-20 (the burst's p99); at 10,000 they take 1-6 ms, twice as
often, for a third more collector time in all (20 bursts, both timed).

Even short young collections cost a burst its p99 when one lands inside it: a
claim burst of 100 makes the API server allocate about 3,000 objects that
outlive their request, a whole claim-and-release cycle about 9,000, so with a
10,000 young generation one collection in three fell into a burst. Claim
traffic comes in bursts with quiet moments between them, so the server also
collects while it is idle (:class:`IdleCollector`): a young generation emptied
just before a burst does not fill up inside it. Those collections keep the
automatic schedule for the older generations too (a generation is collected
once the younger one has been collected more often than its threshold since,
as the interpreter decides), so no garbage outlives the thresholds.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

#: Young-generation threshold (allocations minus deallocations) and the two older generations' ratios.
THRESHOLDS = (50_000, 50, 100)
#: The young generation of a process whose young objects mostly survive (the API server; see above).
SHORT_PAUSES_YOUNG = 10_000
#: How long a process must stay idle before :class:`IdleCollector` collects, and the fewest young objects
#: worth a collection then (about 0.3 ms of work).
IDLE_QUIET_S = 0.002
IDLE_MIN_YOUNG = 2_000


def tune(young: int = THRESHOLDS[0]) -> None:
    """Collect less often; call once at process start."""
    gc.set_threshold(young, *THRESHOLDS[1:])


def freeze_startup_heap() -> None:
    """Move everything alive now out of the collector's sight; call once start-up has finished."""
    gc.collect()
    gc.freeze()


def collect_due(min_young: int = IDLE_MIN_YOUNG) -> int | None:
    """Collect the oldest generation that is due, as an automatic collection would (a young collection
    when nothing older is), once at least ``min_young`` young objects wait; the generation collected,
    or None."""
    young, collected_young, collected_middle = gc.get_count()
    if young < min_young:
        return None
    _, middle_every, old_every = gc.get_threshold()
    generation = 2 if collected_middle > old_every else 1 if collected_young > middle_every else 0
    gc.collect(generation)
    return generation


class IdleCollector:
    """Collect garbage at the process's quiet moments instead of inside its busy ones.

    The server calls :meth:`poke` whenever it has just finished all its work in hand; ``quiet_s`` later,
    if ``busy()`` is still false, the due generation is collected (:func:`collect_due`). One timer at a
    time, none while work keeps arriving."""

    def __init__(self, busy: Callable[[], bool], *, quiet_s: float = IDLE_QUIET_S,
                 min_young: int = IDLE_MIN_YOUNG) -> None:
        self._busy = busy
        self._quiet_s = quiet_s
        self._min_young = min_young
        self._timer: asyncio.TimerHandle | None = None
        self.collections = 0

    def poke(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._quiet_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._busy() and collect_due(self._min_young) is not None:
            self.collections += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
