"""Directory watches (``WatchDir`` and the polling ``CreateWatcher`` family) over inotify.

Each watch owns one inotify instance (through ``asyncinotify``; recursive
watches add subdirectories as they appear) and a bounded event buffer: when a
consumer falls behind, the oldest events are dropped rather than memory growing.
The number of live watches is bounded too. Event kinds follow fsnotify, which
upstream envd uses: created/moved-in → CREATE, modified → WRITE, deleted →
REMOVE, moved-away → RENAME, attributes → CHMOD.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from asyncinotify import Inotify, Mask, RecursiveInotify

from agent_sandbox.common.logging import get_logger

log = get_logger(__name__)

MAX_WATCHERS = 64
MAX_BUFFERED_EVENTS = 4096
# A polling watcher nobody has polled for this long is abandoned (its client went away).
POLLING_IDLE_EXPIRY = 600.0

CREATE, WRITE, REMOVE, RENAME, CHMOD = "create", "write", "remove", "rename", "chmod"

_WATCH_MASK = (
    Mask.CREATE | Mask.MOVED_TO | Mask.MODIFY | Mask.DELETE | Mask.DELETE_SELF
    | Mask.MOVED_FROM | Mask.MOVE_SELF | Mask.ATTRIB
)


def classify(mask: int) -> str | None:
    """fsnotify's mapping of an inotify mask to one event kind (None: not reported)."""
    if mask & (Mask.CREATE | Mask.MOVED_TO):
        return CREATE
    if mask & (Mask.DELETE | Mask.DELETE_SELF):
        return REMOVE
    if mask & (Mask.MOVED_FROM | Mask.MOVE_SELF):
        return RENAME
    if mask & Mask.MODIFY:
        return WRITE
    if mask & Mask.ATTRIB:
        return CHMOD
    return None


@dataclass(frozen=True, slots=True)
class FsEvent:
    name: str
    kind: str
    path: str


class WatchError(Exception):
    """A watch cannot be created or found; ``kind`` picks the Connect code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class DirWatch:
    """One inotify watch on a directory, buffering at most :data:`MAX_BUFFERED_EVENTS` events."""

    def __init__(self, root: str, recursive: bool, include_entry: bool = False) -> None:
        self.root = root
        self.include_entry = include_entry
        self.last_used = time.monotonic()
        self._inotify: Inotify = RecursiveInotify() if recursive else Inotify()
        self._events: deque[FsEvent] = deque(maxlen=MAX_BUFFERED_EVENTS)
        self._changed = asyncio.Event()
        self._dropped = 0
        self._failure: str | None = None
        try:
            if recursive:
                assert isinstance(self._inotify, RecursiveInotify)
                self._inotify.add_recursive_watch(Path(root), _WATCH_MASK)
            else:
                self._inotify.add_watch(root, _WATCH_MASK)
        except OSError as exc:
            self._inotify.close()
            raise WatchError("internal", f"cannot watch '{root}': {exc.strerror}") from exc
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        root = Path(self.root)
        try:
            async for event in self._inotify:
                kind = classify(event.mask)
                if kind is None or event.path is None:
                    continue
                try:
                    name = str(event.path.relative_to(root))
                except ValueError:
                    name = str(event.path)
                if len(self._events) == self._events.maxlen:
                    self._dropped += 1
                self._events.append(FsEvent(name=name, kind=kind, path=str(event.path)))
                self._changed.set()
        except OSError as exc:
            log.warning("watch_failed", root=self.root, error=str(exc))
            self._failure = f"watching '{self.root}' failed: {exc.strerror or exc}"
            self._changed.set()

    def drain(self) -> list[FsEvent]:
        """Buffered events; once they are delivered, a failed watch raises so its client learns of it."""
        self.last_used = time.monotonic()
        if not self._events and self._failure is not None:
            raise WatchError("internal", self._failure)
        events = list(self._events)
        self._events.clear()
        self._changed.clear()
        if self._dropped:
            log.warning("watch_events_dropped", root=self.root, dropped=self._dropped)
            self._dropped = 0
        return events

    async def wait(self, max_wait: float) -> list[FsEvent]:
        """Buffered events, waiting up to ``max_wait`` seconds for one (empty list when none came)."""
        if not self._events:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max_wait)
        return self.drain()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self._task
        self._inotify.close()


class WatchRegistry:
    """Live watches: polling ones by id, streaming ones anonymously; at most :data:`MAX_WATCHERS`."""

    def __init__(self) -> None:
        self._polling: dict[str, DirWatch] = {}
        self._streaming = 0

    def _check_capacity(self) -> None:
        if len(self._polling) + self._streaming >= MAX_WATCHERS:
            raise WatchError("resource_exhausted", f"too many watchers (limit {MAX_WATCHERS})")

    async def create(self, root: str, recursive: bool, include_entry: bool) -> str:
        await self._expire_idle()
        self._check_capacity()
        watch_id = secrets.token_hex(8)
        self._polling[watch_id] = DirWatch(root, recursive, include_entry)
        return watch_id

    async def _expire_idle(self) -> None:
        cutoff = time.monotonic() - POLLING_IDLE_EXPIRY
        for watch_id, watch in list(self._polling.items()):
            if watch.last_used < cutoff:
                log.info("watch_expired", root=watch.root)
                await self.remove(watch_id)

    def get(self, watch_id: str) -> DirWatch:
        watch = self._polling.get(watch_id)
        if watch is None:
            raise WatchError("not_found", f"watcher '{watch_id}' not found")
        return watch

    async def remove(self, watch_id: str) -> None:
        watch = self._polling.pop(watch_id, None)
        if watch is None:
            raise WatchError("not_found", f"watcher '{watch_id}' not found")
        await watch.close()

    def open_stream(self, root: str, recursive: bool) -> DirWatch:
        """A watch for one ``WatchDir`` stream; the caller must :meth:`close_stream` it."""
        self._check_capacity()
        watch = DirWatch(root, recursive)
        self._streaming += 1
        return watch

    async def close_stream(self, watch: DirWatch) -> None:
        self._streaming -= 1
        await watch.close()

    async def close_all(self) -> None:
        for watch_id in list(self._polling):
            await self.remove(watch_id)
