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
"""

from __future__ import annotations

import gc

#: Young-generation threshold (allocations minus deallocations) and the two older generations' ratios.
THRESHOLDS = (50_000, 50, 100)
#: The young generation of a process whose young objects mostly survive (the API server; see above).
SHORT_PAUSES_YOUNG = 10_000


def tune(young: int = THRESHOLDS[0]) -> None:
    """Collect less often; call once at process start."""
    gc.set_threshold(young, *THRESHOLDS[1:])


def freeze_startup_heap() -> None:
    """Move everything alive now out of the collector's sight; call once start-up has finished."""
    gc.collect()
    gc.freeze()
