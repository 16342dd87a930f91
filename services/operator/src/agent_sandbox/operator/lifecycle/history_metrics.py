"""Metrics of the durable sandbox history (writes, drops, sweeps), registered on the operator's registry.

A dropped or failed write is invisible to callers until a replica restarts and
misses the record, so it must show up on a dashboard instead.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from agent_sandbox.common.vocabulary import METRICS_PREFIX as P


class HistoryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        #: written | exists (another writer was first) | skipped (not the leader) | dropped (queue full) |
        #: rejected (the API server refused it for good) | failed (transient errors outlasted the retries)
        self.writes = Counter(f"{P}sandbox_history_writes_total", "Finished-sandbox record writes by result",
                              ["result"], registry=registry)
        self.pending = Gauge(f"{P}sandbox_history_pending_writes", "Records waiting to be written",
                             registry=registry)
        #: expired (older than the TTL) | cap (beyond the record cap)
        self.deleted = Counter(f"{P}sandbox_history_deleted_total", "Finished-sandbox records deleted",
                               ["reason"], registry=registry)
