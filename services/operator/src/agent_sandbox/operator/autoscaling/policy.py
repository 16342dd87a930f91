"""Autoscaler decision for one pool (behaviour §12).

Scale-up is evaluated first: reactively when the scheduler marked the pool
``scale-up-pending`` (a claim found no idle pod), proactively when the pool has
had no idle pod for ``idleThresholdSeconds``; both wait out the cooldown since
the last scale-up and scale-down. Scale-down removes one pod at a time, only
when the oldest idle pod has been idle long enough, after a stabilisation gap
and never while claims are pending. Pure: returns what to write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.timeutil import format_time, parse_time

MIN_REQUEUE_S = 5.0
PENDING_MIN_WINDOW_S = 120.0


@dataclass(frozen=True, slots=True)
class Policy:
    enabled: bool = False
    min_replicas: int = 0
    max_replicas: int | None = None
    mode: str = "Default"
    cooldown_s: float = 30.0
    idle_threshold_s: float = 30.0
    idle_timeout_s: float = 300.0
    stabilization_s: float = 60.0
    protection_window_s: float = 10.0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Policy:
        auto = spec.get("autoscaling") or {}
        up = auto.get("scaleUpPolicy") or {}
        down = auto.get("scaleDownPolicy") or {}

        def num(d: dict[str, Any], k: str, default: float) -> float:
            val = d.get(k)
            return float(val) if isinstance(val, int | float) and val >= 0 else default

        max_r = spec.get("maxReplicas")
        return cls(
            enabled=bool(auto.get("enabled")),
            min_replicas=int(spec.get("minReplicas") or 0),
            max_replicas=int(max_r) if isinstance(max_r, int) else None,
            mode=str(up.get("mode") or "Default"),
            cooldown_s=num(up, "cooldownSeconds", 30.0),
            idle_threshold_s=num(up, "idleThresholdSeconds", 30.0),
            idle_timeout_s=num(down, "idleTimeoutSeconds", 300.0),
            stabilization_s=num(down, "stabilizationSeconds", 60.0),
            protection_window_s=num(down, "protectionWindowSeconds", 10.0),
        )


def scale_up_target(mode: str, replicas: int, max_replicas: int | None) -> int:
    if mode == "Conservative":
        target = replicas + 1
    elif mode == "Aggressive":
        target = max(1, replicas * 2)
    else:
        target = replicas + max(1, math.ceil(replicas / 2))
    return min(target, max_replicas) if max_replicas is not None else target


@dataclass(slots=True)
class Decision:
    replicas: int | None = None
    status: dict[str, Any] = field(default_factory=dict)
    clear_pending: bool = False
    event: tuple[str, str] | None = None
    requeue_after_s: float | None = None


def _since(now: datetime, stamp: Any) -> float:
    when = parse_time(stamp)
    return math.inf if when is None else (now - when).total_seconds()


def decide(pool: dict[str, Any], idle: int, oldest_idle_since: datetime | None, now: datetime) -> Decision:
    spec = pool.get("spec") or {}
    status = pool.get("status") or {}
    annotations = (pool.get("metadata") or {}).get("annotations") or {}
    policy = Policy.from_spec(spec)
    replicas = int(spec.get("replicas") or 0)
    out = Decision()
    if idle == 0 and not status.get("idleZeroSince"):
        out.status["idleZeroSince"] = format_time(now)
    elif idle > 0 and status.get("idleZeroSince"):
        out.status["idleZeroSince"] = None
    if not policy.enabled:
        return out
    idle_zero_since = out.status.get("idleZeroSince", status.get("idleZeroSince"))

    pending_age = _since(now, annotations.get(v.ANN_SCALE_UP_PENDING))
    pending = pending_age < max(2 * policy.cooldown_s, PENDING_MIN_WINDOW_S)
    since_up = _since(now, status.get("lastScaleUpTime"))
    since_down = _since(now, status.get("lastScaleDownTime"))
    below_max = policy.max_replicas is None or replicas < policy.max_replicas
    proactive = (policy.idle_threshold_s > 0 and idle_zero_since is not None
                 and _since(now, idle_zero_since) >= policy.idle_threshold_s)
    if below_max and (pending or proactive):
        wait = policy.cooldown_s - min(since_up, since_down)
        if wait > 0:
            out.requeue_after_s = max(wait, MIN_REQUEUE_S)
            return out
        target = scale_up_target(policy.mode, replicas, policy.max_replicas)
        trigger = "createPending" if pending else "idleZero"
        out.replicas = target
        out.status["lastScaleUpTime"] = format_time(now)
        out.clear_pending = pending
        out.event = ("AutoscalerScaleUp", f"scaled up from {replicas} to {target} (trigger {trigger})")
        out.requeue_after_s = max(policy.cooldown_s, MIN_REQUEUE_S)
        return out
    if pending and not below_max:
        out.clear_pending = pending_age > policy.cooldown_s
    if idle <= 0 or replicas <= policy.min_replicas or pending:
        return out
    if since_down < policy.stabilization_s:
        out.requeue_after_s = max(policy.stabilization_s - since_down, MIN_REQUEUE_S)
        return out
    idle_for = math.inf if oldest_idle_since is None else (now - oldest_idle_since).total_seconds()
    if idle_for < policy.idle_timeout_s:
        out.requeue_after_s = max(policy.idle_timeout_s - idle_for, MIN_REQUEUE_S)
        return out
    out.replicas = replicas - 1
    out.status["lastScaleDownTime"] = format_time(now)
    out.event = ("AutoscalerScaleDown", f"scaled down from {replicas} to {replicas - 1} (idle pods unused)")
    out.requeue_after_s = max(policy.stabilization_s, MIN_REQUEUE_S)
    return out
