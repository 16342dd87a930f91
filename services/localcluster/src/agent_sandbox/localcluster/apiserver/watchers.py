"""Per-watch delivery state: a bounded buffer between the store and one HTTP stream.

The store pushes events synchronously while it commits a write; a watcher only
appends to its buffer and wakes its stream task, so a slow client never blocks
a writer. A buffer that overflows marks the watcher dropped: its stream ends
and the client re-watches from its last resourceVersion, as with kube-apiserver
closing a lagging watch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .selectors import FieldRequirement, Requirement, fields_match, labels_match

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class Watcher:
    __slots__ = ("dropped", "fields", "key", "labels", "limit", "namespace", "pending", "wakeup")

    def __init__(self, key: str, namespace: str | None, labels: tuple[Requirement, ...],
                 fields: tuple[FieldRequirement, ...], limit: int) -> None:
        self.key = key
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.limit = limit
        self.pending: deque[tuple[str, dict[str, Any], bytes]] = deque()
        self.wakeup = asyncio.Event()
        self.dropped = False

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.labels and not labels_match(self.labels, obj["metadata"].get("labels")):
            return False
        return not self.fields or fields_match(self.fields, obj)

    def event_type(self, kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> str | None:
        """The event this watcher sees for a change, given its selectors (None = not visible)."""
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return None
        if not self.labels and not self.fields:
            return kind
        now = self.matches(obj)
        if kind == ADDED:
            return ADDED if now else None
        before = old is not None and self.matches(old)
        if kind == DELETED:
            return DELETED if now or before else None
        if now:
            return MODIFIED if before else ADDED
        return DELETED if before else None

    def push(self, kind: str, obj: dict[str, Any], raw: bytes) -> None:
        if self.dropped:
            return
        if len(self.pending) >= self.limit:
            self.dropped = True
            self.pending.clear()
        else:
            self.pending.append((kind, obj, raw))
        self.wakeup.set()

    def offer(self, kind: str, obj: dict[str, Any], raw: bytes, old: dict[str, Any] | None) -> None:
        seen = self.event_type(kind, obj, old)
        if seen is not None:
            self.push(seen, obj, raw)

    def close(self) -> None:
        self.dropped = True
        self.wakeup.set()
