"""Which pods a shrinking pool deletes, and when (behaviour §6.5).

Priority: idle (and unlabelled) first, then stopping, then failed; ties
oldest first. Running and starting pods are never deleted — they hold a
caller's sandbox. With a protection window (pools with autoscaling), idle
pods are first marked ``scale-down-protected`` and deleted only after the
window; the scheduler refuses marked pods and a claim removes the mark, so a
pod can be handed out or deleted, never both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv

_PRIORITY = {
    v.SandboxPhase.IDLE.value: 0,
    "": 0,
    v.SandboxPhase.STOPPING.value: 1,
    v.SandboxPhase.FAILED.value: 2,
}
_NEVER = {v.SandboxPhase.RUNNING.value, v.SandboxPhase.STARTING.value}


def scale_down_priority(pod: pv.Pod) -> int:
    """Lower deletes first; running/starting get the highest (3) and are filtered out anyway."""
    if pv.kube_phase(pod) == "Failed":
        return 2
    phase = pv.sandbox_phase(pod)
    return _PRIORITY.get(phase, 3 if phase in _NEVER else 0)


def deletable(pod: pv.Pod) -> bool:
    return not pv.is_deleting(pod) and pv.sandbox_phase(pod) not in _NEVER


@dataclass(slots=True)
class ScaleDownPlan:
    delete: list[pv.Pod] = field(default_factory=list)
    protect: list[pv.Pod] = field(default_factory=list)
    requeue_after_s: float | None = None


def plan_scale_down(
    pods: list[pv.Pod],
    excess: int,
    now: datetime,
    protection_window_s: float | None,
) -> ScaleDownPlan:
    """Pick up to ``excess`` pods; idle ones go through the protection window when one is set."""
    plan = ScaleDownPlan()
    if excess <= 0:
        return plan
    epoch = datetime.min.replace(tzinfo=now.tzinfo)
    candidates = sorted(
        (p for p in pods if deletable(p)),
        key=lambda p: (scale_down_priority(p), pv.created_at(p) or epoch, pv.name(p)),
    )[:excess]
    waits: list[float] = []
    for pod in candidates:
        idle = scale_down_priority(pod) == 0
        if not idle or protection_window_s is None:
            plan.delete.append(pod)
            continue
        marked = pv.time_annotation(pod, v.ANN_SCALE_DOWN_PROTECTED)
        if marked is None:
            plan.protect.append(pod)
            waits.append(protection_window_s + 1)
            continue
        elapsed = (now - marked).total_seconds()
        if elapsed >= protection_window_s:
            plan.delete.append(pod)
        else:
            waits.append(protection_window_s - elapsed + 1)
    if waits:
        plan.requeue_after_s = min(waits)
    return plan
