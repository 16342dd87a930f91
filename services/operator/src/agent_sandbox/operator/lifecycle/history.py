"""History of finished sandboxes (behaviour §14).

Pods are recycled, so once a sandbox stops its pod no longer says anything
about it; callers still expect ``get``/``list`` to show how it ended. Every
replica fills its own store from the pod stream (:mod:`.history_feed`) and from
the durable copies the leader keeps in the API server (:mod:`.history_sync`),
so a restarted replica still knows how earlier sandboxes ended. Records live
in memory with a TTL (24 h by default) and a hard entry cap so a burst of
short sandboxes cannot grow the process without bound; the oldest record goes
first when the cap is hit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_MAX_RECORDS = 100_000


class HistoryStore:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_records: int = DEFAULT_MAX_RECORDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._max = max_records
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._by_id: dict[str, str] = {}

    @staticmethod
    def key(namespace: str, sandbox_id: str) -> str:
        return f"{namespace}/{sandbox_id}"

    @property
    def max_records(self) -> int:
        return self._max

    def put(self, record: dict[str, Any], ttl_s: float | None = None) -> None:
        """Keep ``record`` for ``ttl_s`` (default: the store's TTL; less for a record read back from the
        API server, which ended earlier)."""
        key = self.key(record.get("namespace", ""), record.get("sandboxId", ""))
        self._records.pop(key, None)
        self._records[key] = (self._clock() + (self._ttl if ttl_s is None else min(ttl_s, self._ttl)), record)
        self._by_id[record.get("sandboxId", "")] = key
        while len(self._records) > self._max:
            self._drop(next(iter(self._records)))

    def discard(self, namespace: str, sandbox_id: str) -> None:
        if self.key(namespace, sandbox_id) in self._records:
            self._drop(self.key(namespace, sandbox_id))

    def _drop(self, key: str) -> None:
        _expiry, rec = self._records.pop(key)
        if self._by_id.get(rec.get("sandboxId", "")) == key:
            del self._by_id[rec.get("sandboxId", "")]

    def get(self, namespace: str, sandbox_id: str) -> dict[str, Any] | None:
        entry = self._records.get(self.key(namespace, sandbox_id))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def find(self, sandbox_id: str) -> dict[str, Any] | None:
        """Record of ``sandbox_id`` in any namespace."""
        key = self._by_id.get(sandbox_id)
        entry = self._records.get(key) if key else None
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def records(self) -> Iterator[dict[str, Any]]:
        self.sweep()
        for _expiry, rec in self._records.values():
            yield rec

    def sweep(self) -> int:
        now = self._clock()
        expired = [k for k, (expiry, _) in self._records.items() if expiry <= now]
        for k in expired:
            self._drop(k)
        return len(expired)

    def __len__(self) -> int:
        return len(self._records)


def merge_records(live: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live and finished records, sorted by claimedAt desc, then id.

    A record exists only once its sandbox ended, so for an id in both the history wins: the pod still
    holding it is on its way out (being deleted, failed by its node) and no longer runs the sandbox.
    """
    by_id = {(r.get("namespace"), r.get("sandboxId")): r for r in live}
    by_id.update({(r.get("namespace"), r.get("sandboxId")): r for r in history})
    out = list(by_id.values())
    out.sort(key=lambda r: r.get("sandboxId", ""))
    out.sort(key=lambda r: r.get("claimedAt", ""), reverse=True)
    return out
