"""Startup and idle timeout decisions (behaviour §10).

Every claimed sandbox must have a server-side deadline: a Starting pod is
bounded by its startup timeout (the reference left this cleanup disabled and
peers got "stuck starting" pods), a Running pod with an idle timeout is
reclaimed once its last activity is older than the timeout. Last activity is
the best of: the data plane's view (ExtProc), the ``last-active`` annotation,
``started-at``, the pod's creation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.lifecycle.inplace import phase_since

DEFAULT_STARTUP_TIMEOUT_S = 120.0


def resolve_timeout(requested_s: float | None, pool_default_s: float | None,
                    fallback_s: float | None) -> float | None:
    """Request beats pool default beats fallback; ``0`` from the request means "none"."""
    if requested_s is not None:
        return requested_s if requested_s > 0 else None
    if pool_default_s is not None:
        return pool_default_s if pool_default_s > 0 else None
    return fallback_s


def startup_expired(pod: pv.Pod, pool_default_s: float | None, now: datetime) -> bool:
    """A Starting pod stuck longer than its startup timeout (annotation > pool default > 2 min)."""
    if pv.sandbox_phase(pod) != v.SandboxPhase.STARTING:
        return False
    timeout = pv.int_annotation(pod, v.ANN_STARTUP_TIMEOUT)
    limit = float(timeout) if timeout and timeout > 0 else (pool_default_s or DEFAULT_STARTUP_TIMEOUT_S)
    since = phase_since(pod)
    return since is not None and (now - since).total_seconds() > limit


@dataclass(frozen=True, slots=True)
class IdleDecision:
    expired: bool
    last_active: datetime | None
    timeout_s: int
    #: A newer activity time to persist on the pod so it survives an ExtProc restart.
    refresh_to: datetime | None = None

    def message(self) -> str:
        seen = self.last_active.isoformat() if self.last_active else "never"
        return f"idle for longer than {self.timeout_s}s (last active {seen})"


def last_active(pod: pv.Pod, observed: datetime | None) -> datetime | None:
    candidates = [observed, pv.time_annotation(pod, v.ANN_LAST_ACTIVE),
                  pv.time_annotation(pod, v.ANN_STARTED_AT), pv.created_at(pod)]
    present = [c for c in candidates if c is not None]
    return max(present) if present else None


def idle_decision(pod: pv.Pod, observed: datetime | None, now: datetime) -> IdleDecision | None:
    """Decision for a Running pod with an idle timeout; ``None`` when no timeout applies."""
    if pv.sandbox_phase(pod) != v.SandboxPhase.RUNNING or pv.is_deleting(pod):
        return None
    timeout = pv.int_annotation(pod, v.ANN_IDLE_TIMEOUT)
    if not timeout or timeout <= 0:
        return None
    seen = last_active(pod, observed)
    expired = seen is not None and (now - seen).total_seconds() > timeout
    annotated = pv.time_annotation(pod, v.ANN_LAST_ACTIVE)
    refresh = observed if observed is not None and (annotated is None or observed > annotated) else None
    return IdleDecision(expired=expired, last_active=seen, timeout_s=timeout,
                        refresh_to=None if expired else refresh)
