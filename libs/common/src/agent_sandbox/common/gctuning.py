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
"""

from __future__ import annotations

import gc

#: Young-generation threshold (allocations minus deallocations) and the two older generations' ratios.
THRESHOLDS = (50_000, 50, 100)


def tune() -> None:
    """Collect less often; call once at process start."""
    gc.set_threshold(*THRESHOLDS)


def freeze_startup_heap() -> None:
    """Move everything alive now out of the collector's sight; call once start-up has finished."""
    gc.collect()
    gc.freeze()
