"""Idle pods that will never serve a claim and must be replaced.

Peers kept pods stuck in ImagePullBackOff for ~40 h (full disks) and kept bad
members in rotation. An idle pod whose container has been waiting on an image
pull failure or crash loop for longer than a grace period is deleted; the
normal scale-up then replaces it. Kubernetes ``Failed`` pods (evicted) are
handled separately and at once.
"""

from __future__ import annotations

from datetime import datetime

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv

DEFAULT_UNHEALTHY_GRACE_S = 120.0


def unhealthy_reason(pod: pv.Pod) -> str:
    """The waiting reason that makes this pod unhealthy, or empty."""
    for status in pv.container_statuses(pod).values():
        reason = pv.waiting_reason(status)
        if reason in pv.UNHEALTHY_WAITING:
            return reason
    return ""


def stuck_idle(pod: pv.Pod, now: datetime, grace_s: float = DEFAULT_UNHEALTHY_GRACE_S) -> str:
    """Reason to replace an idle pod stuck unhealthy for longer than ``grace_s`` (empty: keep it)."""
    if pv.is_deleting(pod) or pv.sandbox_phase(pod) not in (v.SandboxPhase.IDLE.value, ""):
        return ""
    reason = unhealthy_reason(pod)
    created = pv.created_at(pod)
    if not reason or created is None or (now - created).total_seconds() < grace_s:
        return ""
    return reason
