"""Create/delete expectations per pool (behaviour §6.4).

The informer cache lags the API server. Without bookkeeping, a reconcile that
runs before its own creates are observed sees "too few pods" and creates them
again — the peer failure that turned 20k requested pods into 100k. Before
issuing creates/deletes the reconciler records how many it expects to see;
observed pod add/delete events lower the counters; scaling waits until the
counters are zero or the record is older than the TTL (a lost event must not
freeze a pool forever).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

EXPECTATIONS_TTL_S = 300.0


@dataclass(slots=True)
class _Record:
    adds: int
    deletes: int
    pending_deletes: set[str]
    set_at: float


class Expectations:
    """In-flight creates/deletes per pool key; bounded by the number of pools (deleted with the pool)."""

    def __init__(self, ttl_s: float = EXPECTATIONS_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def expect_creations(self, pool_key: str, count: int) -> None:
        rec = self._records.get(pool_key)
        if rec is None or self._expired(rec):
            self._records[pool_key] = _Record(count, 0, set(), self._clock())
        else:
            rec.adds += count
            rec.set_at = self._clock()

    def expect_deletions(self, pool_key: str, pod_keys: list[str]) -> None:
        rec = self._records.get(pool_key)
        if rec is None or self._expired(rec):
            rec = self._records[pool_key] = _Record(0, 0, set(), self._clock())
        new = set(pod_keys) - rec.pending_deletes
        rec.pending_deletes |= new
        rec.deletes += len(new)
        rec.set_at = self._clock()

    def creation_observed(self, pool_key: str) -> None:
        rec = self._records.get(pool_key)
        if rec is not None and rec.adds > 0:
            rec.adds -= 1

    def deletion_observed(self, pool_key: str, pod_key: str) -> None:
        rec = self._records.get(pool_key)
        if rec is not None and pod_key in rec.pending_deletes:
            rec.pending_deletes.discard(pod_key)
            rec.deletes -= 1

    def satisfied(self, pool_key: str) -> bool:
        rec = self._records.get(pool_key)
        if rec is None:
            return True
        return (rec.adds <= 0 and rec.deletes <= 0) or self._expired(rec)

    def pending(self, pool_key: str) -> tuple[int, int]:
        rec = self._records.get(pool_key)
        if rec is None or self._expired(rec):
            return (0, 0)
        return (max(rec.adds, 0), max(rec.deletes, 0))

    def forget(self, pool_key: str) -> None:
        self._records.pop(pool_key, None)

    def _expired(self, rec: _Record) -> bool:
        return self._clock() - rec.set_at >= self._ttl
