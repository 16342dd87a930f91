"""A bounded map whose entries expire: the one container behind every short-lived server-side store.

Validation caches, idempotency records, exec tokens and namespace lookups all need "remember this for
a while, never grow without bound". Entries expire after their TTL; when the map is full the oldest
entry is evicted first (insertion order), so memory stays bounded under any request pattern.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLMap(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        self._sweep()
        return len(self._data)

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry[1]

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        self._data.pop(key, None)
        self._data[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)
        self._sweep()
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Remove and return a live entry (``None`` when absent or expired): single-use consumption."""
        entry = self._data.pop(key, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def discard(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def _sweep(self) -> None:
        now = self._clock()
        # Entries are in insertion order and share one TTL in practice, so expired ones sit at the front.
        while self._data:
            key, (expiry, _) = next(iter(self._data.items()))
            if expiry > now:
                break
            del self._data[key]
