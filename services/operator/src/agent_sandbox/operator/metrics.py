"""Prometheus metrics of the operator (behaviour §25).

One :class:`OperatorMetrics` per operator instance with its own registry, so
several operators in one test process never share series. Pool series carry
``namespace, pool, team, user`` and are deleted with the pool.
"""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent_sandbox.common.vocabulary import METRICS_PREFIX as P


def _exp(start: float, factor: float, count: int) -> list[float]:
    return [start * factor**i for i in range(count)]


POOL_LABELS = ("namespace", "pool", "team", "user")
PHASE_GAUGES = ("desired", "idle", "running", "starting", "stopping", "failed")


class OperatorMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.replicas = {
            phase: Gauge(f"{P}sandboxpool_replicas_{phase}", f"Pool pods ({phase})", POOL_LABELS, registry=r)
            for phase in PHASE_GAUGES
        }
        self.claim_duration = Histogram(f"{P}sandbox_claim_duration_seconds", "Create claim time",
                                        ["outcome"], buckets=_exp(0.01, 2, 18), registry=r)
        self.starting_duration = Histogram(f"{P}sandbox_starting_duration_seconds", "claimedAt to startedAt",
                                           ["outcome"], buckets=_exp(0.01, 2, 20), registry=r)
        self.running_duration = Histogram(f"{P}sandbox_running_duration_seconds", "startedAt to terminatedAt",
                                          ["stop_reason"], buckets=_exp(0.1, 2, 20), registry=r)
        self.recycle_duration = Histogram(f"{P}sandbox_recycle_duration_seconds", "terminatedAt to recycledAt",
                                          buckets=_exp(0.01, 2, 18), registry=r)
        self.running_info = Gauge(f"{P}sandbox_running_info", "1 while a sandbox is Running",
                                  ["namespace", "pod", "sandbox_id"], registry=r)
        self.create_total = Counter(f"{P}sandbox_create_total", "Create attempts", ["result"], registry=r)
        self.delete_total = Counter(f"{P}sandbox_delete_total", "Sandbox deletions", ["stop_reason"], registry=r)
        self.inplace_total = Counter(f"{P}inplace_update_total", "In-place update attempts",
                                     ["target", "result"], registry=r)
        self.ready_queue = Gauge(f"{P}schedule_ready_queue_size", "Ready queue length",
                                 ["namespace", "pool"], registry=r)
        self.reservations = Gauge(f"{P}schedule_reservations_size", "Active reservations",
                                  ["namespace", "pool"], registry=r)
        self.cas_outcome = Counter(f"{P}schedule_cas_outcome_total", "Claim write outcomes", ["outcome"],
                                   registry=r)
        self.dispatch_latency = Histogram(f"{P}schedule_dispatch_latency_seconds", "Enqueue to claim write",
                                          buckets=_exp(0.005, 2, 17), registry=r)
        self.refresh_total = Counter(f"{P}schedule_refresh_total", "Ready-queue refreshes", ["outcome"],
                                     registry=r)
        self.reservation_expired = Counter(f"{P}schedule_reservation_ttl_expired_total",
                                           "Reservations expired by sweep", registry=r)
        self.skipped_protected = Counter(f"{P}schedule_skipped_scale_down_protected_total",
                                         "Protected pods skipped", registry=r)
        self.ready_evicted = Counter(f"{P}schedule_ready_queue_evicted_total", "Stale ready entries dropped",
                                     registry=r)

    def set_pool_counts(self, labels: tuple[str, str, str, str], counts: dict[str, int]) -> None:
        for phase, value in counts.items():
            self.replicas[phase].labels(*labels).set(value)

    def forget_pool(self, labels: tuple[str, str, str, str]) -> None:
        for gauge in self.replicas.values():
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        for gauge in (self.ready_queue, self.reservations):
            with contextlib.suppress(KeyError):
                gauge.remove(labels[0], labels[1])

    def render(self) -> bytes:
        """This operator's series plus the process-wide registry (HTTP API metrics, process collectors)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
