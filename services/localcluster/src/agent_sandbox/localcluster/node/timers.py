"""One heap, one task: every delayed action of a node (pull and start delays,
back-offs, injected crashes) is an entry here instead of a sleeping task.

A ``sim`` node holds thousands of pods; a coroutine per pod per delay would
pile up tasks and make cancellation on deletion a chore. Stale entries need no
cancellation because each callback carries a token its container machine
checks. :meth:`TimerQueue.pop_due` is pure so tests can drive time by hand.

Instant steps (a zero-delay stop, the pull of a cached image, a zero-delay
start) schedule each other with no delay; :meth:`TimerQueue.run` fires such a
chain in one turn of the loop, and :meth:`TimerQueue.has_due` lets the status
writers wait for it to land, so an in-place swap is reported once, in its
final state, rather than once per intermediate step nobody could observe.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable

from agent_sandbox.common.logging import get_logger

log = get_logger(__name__)

MAX_PER_TURN = 1000  # callbacks fired before yielding to the loop, however many fall due meanwhile


class TimerQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        deadline = self._clock() + max(0.0, delay)
        first = not self._heap or deadline < self._heap[0][0]
        heapq.heappush(self._heap, (deadline, next(self._seq), callback))
        if first:
            self._changed.set()

    def pop_due(self, now: float) -> list[Callable[[], None]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        return due

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def has_due(self) -> bool:
        """True while some callback is due now (not yet fired)."""
        return bool(self._heap) and self._heap[0][0] <= self._clock()

    async def run(self) -> None:
        """Fire callbacks as they fall due, until cancelled."""
        while True:
            fired = 0
            while fired < MAX_PER_TURN and (due := self.pop_due(self._clock())):
                fired += len(due)
                for callback in due:
                    try:
                        callback()
                    except Exception:  # one bad callback must not stop every other timer
                        log.exception("timer callback failed")
            deadline = self.next_deadline()
            self._changed.clear()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            if timeout == 0.0:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
