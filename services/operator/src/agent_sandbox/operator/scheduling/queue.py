"""Scheduler bookkeeping: the ready queue of idle pods and the reservations (behaviour §8.3).

The ready queue is FIFO in the order pods were first seen idle ("prefer the
oldest idle pod") with a dedup set. A reservation marks a pod as being
claimed for ~2 s — long enough for the claim write to come back through the
watch — so a second request never picks the same pod while the cache still
says "idle". Pure and clock-injected; the scheduler task owns one of each.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

RESERVATION_TTL_S = 2.0


class Reservations:
    def __init__(self, ttl_s: float = RESERVATION_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._until: dict[str, float] = {}

    def reserve(self, pod_key: str) -> None:
        self._until[pod_key] = self._clock() + self._ttl

    def release(self, pod_key: str) -> None:
        self._until.pop(pod_key, None)

    def is_reserved(self, pod_key: str) -> bool:
        until = self._until.get(pod_key)
        return until is not None and until > self._clock()

    def sweep(self) -> int:
        now = self._clock()
        expired = [k for k, until in self._until.items() if until <= now]
        for k in expired:
            del self._until[k]
        return len(expired)

    def __len__(self) -> int:
        return len(self._until)


class ReadyQueue:
    """FIFO of pod keys with O(1) membership; a key is queued at most once."""

    def __init__(self) -> None:
        self._queue: deque[str] = deque()
        self._members: set[str] = set()

    def push(self, pod_key: str) -> bool:
        if pod_key in self._members:
            return False
        self._members.add(pod_key)
        self._queue.append(pod_key)
        return True

    def extend(self, pod_keys: Iterable[str]) -> int:
        return sum(1 for k in pod_keys if self.push(k))

    def pop(self) -> str | None:
        if not self._queue:
            return None
        pod_key = self._queue.popleft()
        self._members.discard(pod_key)
        return pod_key

    def discard(self, pod_key: str) -> None:
        if pod_key in self._members:
            self._members.discard(pod_key)
            self._queue.remove(pod_key)

    def __contains__(self, pod_key: object) -> bool:
        return pod_key in self._members

    def __len__(self) -> int:
        return len(self._queue)


def pop_unreserved(
    ready: ReadyQueue,
    reservations: Reservations,
    still_claimable: Callable[[str], bool],
) -> tuple[str | None, int]:
    """Pop the first pod that is neither reserved nor stale, and reserve it.

    Returns the pod key (or ``None``) and how many stale entries were dropped
    (pods gone, no longer idle, or protected from scale-down since queued).
    """
    evicted = 0
    while True:
        pod_key = ready.pop()
        if pod_key is None:
            return None, evicted
        if reservations.is_reserved(pod_key):
            continue
        if not still_claimable(pod_key):
            evicted += 1
            continue
        reservations.reserve(pod_key)
        return pod_key, evicted
