"""SandboxPool status: per-phase counts, phase, conditions and selectors (behaviour §4.1).

Pure: given the pool and its pods, produce the status dict the reconciler
writes through the status subresource. Condition transition times are kept
when a condition's status does not change, so an unchanged pool produces an
identical status and the reconciler skips the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.timeutil import format_time

#: Status fields owned by the autoscaler and the scheduler; status computation carries them over.
CARRIED_FIELDS = ("lastScaleUpTime", "lastScaleDownTime", "idleZeroSince", "pendingRequests")


@dataclass(frozen=True, slots=True)
class PhaseCounts:
    total: int = 0
    idle: int = 0
    unavailable_idle: int = 0
    running: int = 0
    starting: int = 0
    stopping: int = 0
    failed: int = 0

    @property
    def available_idle(self) -> int:
        return self.idle - self.unavailable_idle


def count_pods(pods: list[pv.Pod]) -> PhaseCounts:
    """Counts over live pods (pods being deleted no longer count towards the pool)."""
    idle = unavailable = running = starting = stopping = failed = total = 0
    for pod in pods:
        if pv.is_deleting(pod):
            continue
        total += 1
        phase = pv.sandbox_phase(pod)
        if pv.kube_phase(pod) == "Failed" or phase == v.SandboxPhase.FAILED:
            failed += 1
        elif phase == v.SandboxPhase.RUNNING:
            running += 1
        elif phase == v.SandboxPhase.STARTING:
            starting += 1
        elif phase == v.SandboxPhase.STOPPING:
            stopping += 1
        else:
            idle += 1
            if not pv.pod_ready(pod):
                unavailable += 1
    return PhaseCounts(total, idle, unavailable, running, starting, stopping, failed)


def pool_phase(deleting: bool, replicas: int, counts: PhaseCounts) -> v.PoolPhase:
    if deleting:
        return v.PoolPhase.TERMINATING
    if replicas == 0 and counts.total == 0:
        return v.PoolPhase.PENDING
    if counts.total < replicas:
        return v.PoolPhase.SCALING_UP
    if counts.total > replicas:
        return v.PoolPhase.SCALING_DOWN
    if counts.unavailable_idle > 0 or counts.failed > 0:
        return v.PoolPhase.DEGRADED
    return v.PoolPhase.READY


def _conditions(replicas: int, counts: PhaseCounts) -> list[tuple[str, str, str, str]]:
    available = counts.available_idle > 0
    if counts.total < replicas:
        scaling = ("True", "ScalingUp", f"{counts.total} of {replicas} pods exist")
    elif counts.total > replicas:
        scaling = ("True", "ScalingDown", f"{counts.total} pods exist, {replicas} desired")
    else:
        scaling = ("False", "ReplicasReady", f"{replicas} pods exist")
    unhealthy, failed = counts.unavailable_idle > 0, counts.failed > 0
    if unhealthy and failed:
        degraded = ("True", "UnhealthyAndFailedPods", "idle pods not ready and failed pods present")
    elif unhealthy:
        degraded = ("True", "UnhealthyIdlePods", f"{counts.unavailable_idle} idle pods are not ready")
    elif failed:
        degraded = ("True", "FailedPodsPresent", f"{counts.failed} pods failed")
    else:
        degraded = ("False", "AllPodsHealthy", "all pods healthy")
    return [
        (
            "Available",
            "True" if available else "False",
            "IdlePodsAvailable" if available else "NoIdlePodsAvailable",
            f"{counts.available_idle} idle pods ready",
        ),
        ("Scaling", *scaling),
        ("Degraded", *degraded),
    ]


def phase_selectors(pool_name: str) -> dict[str, str]:
    out = {"all": v.pool_selector(pool_name)}
    for phase in (v.SandboxPhase.IDLE, v.SandboxPhase.RUNNING, v.SandboxPhase.STARTING,
                  v.SandboxPhase.STOPPING, v.SandboxPhase.FAILED):
        out[phase.value] = v.phase_selector(pool_name, phase)
    return out


def compute_status(pool: dict[str, Any], pods: list[pv.Pod], now: datetime) -> dict[str, Any]:
    """The full status of ``pool`` given its current pods."""
    meta = pool.get("metadata") or {}
    name = meta.get("name", "")
    replicas = int((pool.get("spec") or {}).get("replicas") or 0)
    old = pool.get("status") or {}
    counts = count_pods(pods)
    old_conds = {c.get("type"): c for c in old.get("conditions") or []}
    conditions = []
    for ctype, status, reason, message in _conditions(replicas, counts):
        prev = old_conds.get(ctype) or {}
        since = prev.get("lastTransitionTime") if prev.get("status") == status else None
        conditions.append({
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since or format_time(now),
        })
    status: dict[str, Any] = {
        "phase": pool_phase(bool(meta.get("deletionTimestamp")), replicas, counts).value,
        "idleReplicas": counts.idle,
        "unavailableIdleReplicas": counts.unavailable_idle,
        "runningReplicas": counts.running,
        "startingReplicas": counts.starting,
        "stoppingReplicas": counts.stopping,
        "failedReplicas": counts.failed,
        "selector": v.pool_selector(name),
        "labelSelector": {"matchLabels": {v.LABEL_SANDBOX_POOL: name}},
        "phaseSelectors": phase_selectors(name),
        "conditions": conditions,
        "observedGeneration": meta.get("generation", 0),
    }
    for field in CARRIED_FIELDS:
        if field in old:
            status[field] = old[field]
    return status
