"""A deduplicating, delay-capable work queue of object keys (controller-runtime style).

A key is queued at most once; a key re-added while being processed is
processed again afterwards (never concurrently with itself); ``add_after``
keeps only the earliest pending delay per key. ``add_coalesced`` is for
high-rate triggers (pod events during a claim burst): the first one runs at
once, later ones within ``window_s`` of the key's last start are folded into
one delayed run, so a burst of N events costs a few reconciles, not N. Size
is bounded by the number of distinct keys (pools), not by the event rate.
"""

from __future__ import annotations

import asyncio
import time


class WorkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._started_at: dict[str, float] = {}
        self._closed = False

    def add(self, key: str) -> None:
        if self._closed:
            return
        pending = self._delayed.pop(key, None)
        if pending is not None:
            pending[1].cancel()
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay_s: float) -> None:
        if self._closed:
            return
        if delay_s <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay_s
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay_s, self._fire, key)
        self._delayed[key] = (due, handle)

    def add_coalesced(self, key: str, window_s: float) -> None:
        """Queue ``key`` at once unless it started less than ``window_s`` ago; then once the window ends."""
        started = self._started_at.get(key)
        wait = 0.0 if started is None else started + window_s - time.monotonic()
        if wait <= 0:
            self.add(key)
        elif key not in self._queued:
            self.add_after(key, wait)

    def forget(self, key: str) -> None:
        """Drop what is remembered about ``key`` (its object is gone)."""
        self._started_at.pop(key, None)
        pending = self._delayed.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    def _fire(self, key: str) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    async def get(self) -> str:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        self._started_at[key] = time.monotonic()
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        self._closed = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._started_at.clear()

    def __len__(self) -> int:
        return self._queue.qsize()
