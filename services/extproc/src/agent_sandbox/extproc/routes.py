"""The in-memory route table: which pod serves which sandbox id, and may it be routed to.

Two sources feed it. A Pod watch gives every sandbox pod's labels and IP and an
index from sandbox id to pod. ``PushRoute`` from the operator names the pod of a
freshly claimed sandbox before the watch has seen the claim; such a pushed
route is trusted only while the watched pod carries *no* sandbox id (the watch
lags) and the watch has not yet confirmed it, and only until its TTL runs out.
A pod whose sandbox-id label names another sandbox is never routed for the old
id, so a recycled pod's next tenant never receives an earlier tenant's traffic.

Only a ``running`` sandbox is routable: E2B clients expect a killed sandbox to be
gone at once (e2b-contract.md §3.1), not to keep answering while its pod swaps
back to idle. Whichever source learns of the stop first wins: the watch showing
the phase label leave ``running``, or ``EvictRoute``, which marks the id
*stopped* even while the watch still shows it running (the watch lags the
operator's release write). Sandbox ids are never reused, so a stopped mark can
only ever hide a dead sandbox; it is dropped once the watch has caught up, or
after a long TTL for ids the watch never showed, and the marks are bounded.

Pure data structure, no I/O; the request path does two dict look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from agent_sandbox.common.vocabulary import (
    ANN_LAST_ACTIVE,
    ANN_STARTED_AT,
    LABEL_SANDBOX_ID,
    LABEL_SANDBOX_PHASE,
    SandboxPhase,
)

PodKey = tuple[str, str]
ROUTABLE_PHASES = frozenset({SandboxPhase.RUNNING.value})
DEFAULT_PUSH_TTL = 60.0
DEFAULT_MAX_PUSHED = 65536
#: How long an evicted id stays marked stopped when the watch never shows it leaving
#: ``running`` (it never saw the claim, or it is disconnected): far beyond any watch lag.
DEFAULT_STOPPED_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class PodView:
    """What routing needs of a pod, extracted once per watch event."""

    namespace: str
    name: str
    ip: str | None
    phase: str | None
    sandbox_id: str | None
    #: ``status.phase == "Running"`` (used to seed and GC activity).
    running: bool = False
    #: Last known activity (epoch seconds): max of the last-active and started-at annotations,
    #: else the pod's creation time; seeds the activity tracker after a restart.
    activity_seed: float | None = None

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.name)


def pod_view(obj: dict[str, Any]) -> PodView:
    """Build a :class:`PodView` from a raw Pod JSON object."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = obj.get("status") or {}
    return PodView(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        ip=status.get("podIP") or None,
        phase=labels.get(LABEL_SANDBOX_PHASE),
        sandbox_id=labels.get(LABEL_SANDBOX_ID) or None,
        running=status.get("phase") == "Running",
        activity_seed=_activity_seed(meta),
    )


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _activity_seed(meta: dict[str, Any]) -> float | None:
    annotations = meta.get("annotations") or {}
    marks = [t for t in (_epoch(annotations.get(ANN_LAST_ACTIVE)), _epoch(annotations.get(ANN_STARTED_AT)))
             if t is not None]
    if marks:
        return max(marks)
    return _epoch(meta.get("creationTimestamp"))


class Resolution(Enum):
    ROUTABLE = "routable"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class _Pushed:
    key: PodKey
    expires_at: float
    confirmed: bool = False


class RouteTable:
    def __init__(self, *, push_ttl: float = DEFAULT_PUSH_TTL, max_pushed: int = DEFAULT_MAX_PUSHED,
                 stopped_ttl: float = DEFAULT_STOPPED_TTL) -> None:
        self.push_ttl = push_ttl
        self.max_pushed = max_pushed
        self.stopped_ttl = stopped_ttl
        self._pods: dict[PodKey, PodView] = {}
        self._by_id: dict[str, PodKey] = {}
        self._pushed: dict[str, _Pushed] = {}
        #: Evicted sandbox ids -> when the mark may be forgotten (insertion order = age).
        self._stopped: dict[str, float] = {}

    # ---- watch side -------------------------------------------------------------------------
    def upsert_pod(self, view: PodView) -> None:
        key = view.key
        old = self._pods.get(key)
        if (old is not None and old.sandbox_id and old.sandbox_id != view.sandbox_id
                and self._by_id.get(old.sandbox_id) == key):
            del self._by_id[old.sandbox_id]
        self._pods[key] = view
        sid = view.sandbox_id
        if sid:
            self._by_id[sid] = key
            pushed = self._pushed.get(sid)
            if pushed is not None and pushed.key == key:
                pushed.confirmed = True
            if view.phase not in ROUTABLE_PHASES:
                # The watch has caught up with the eviction: the phase alone now refuses the id.
                self._stopped.pop(sid, None)

    def delete_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        old = self._pods.pop(key, None)
        if old is not None and old.sandbox_id and self._by_id.get(old.sandbox_id) == key:
            del self._by_id[old.sandbox_id]

    def replace_pods(self, views: list[PodView]) -> None:
        """Swap in a full relist (after a watch restart or 410 Gone)."""
        self._pods = {}
        self._by_id = {}
        for view in views:
            self.upsert_pod(view)

    def pods(self) -> list[PodView]:
        return list(self._pods.values())

    def pod(self, namespace: str, name: str) -> PodView | None:
        return self._pods.get((namespace, name))

    # ---- control-plane side -----------------------------------------------------------------
    def push(self, sandbox_id: str, namespace: str, pod_name: str, now: float) -> None:
        key = (namespace, pod_name)
        self._pushed.pop(sandbox_id, None)
        if len(self._pushed) >= self.max_pushed:
            self.gc(now)
            while len(self._pushed) >= self.max_pushed:
                del self._pushed[next(iter(self._pushed))]
        pod = self._pods.get(key)
        confirmed = pod is not None and pod.sandbox_id == sandbox_id
        self._pushed[sandbox_id] = _Pushed(key, now + self.push_ttl, confirmed)

    def evict(self, sandbox_id: str, now: float) -> None:
        """The sandbox stopped: refuse it from now on, whatever the watch still shows."""
        self._pushed.pop(sandbox_id, None)
        key = self._by_id.get(sandbox_id)
        if key is not None and self._pods[key].phase not in ROUTABLE_PHASES:
            return  # the watch already refuses it
        self._stopped.pop(sandbox_id, None)
        if len(self._stopped) >= self.max_pushed:
            self.gc(now)
            while len(self._stopped) >= self.max_pushed:
                del self._stopped[next(iter(self._stopped))]
        self._stopped[sandbox_id] = now + self.stopped_ttl

    def gc(self, now: float) -> int:
        """Drop expired pushed routes and stopped marks; returns how many were dropped."""
        expired = [sid for sid, p in self._pushed.items() if p.expires_at <= now]
        for sid in expired:
            del self._pushed[sid]
        forgotten = [sid for sid, until in self._stopped.items() if until <= now]
        for sid in forgotten:
            del self._stopped[sid]
        return len(expired) + len(forgotten)

    def pushed_count(self) -> int:
        return len(self._pushed)

    def stopped_count(self) -> int:
        return len(self._stopped)

    # ---- request side -----------------------------------------------------------------------
    def resolve(self, sandbox_id: str, now: float) -> tuple[Resolution, str | None]:
        """Whether ``sandbox_id`` is routable now, and the pod IP if so."""
        if sandbox_id in self._stopped:
            return Resolution.UNHEALTHY, None
        pushed = self._pushed.get(sandbox_id)
        if pushed is not None and pushed.expires_at > now:
            pod = self._pods.get(pushed.key)
            if pod is None:
                return Resolution.UNHEALTHY, None
            if pod.sandbox_id is None and not pushed.confirmed:
                # The watch has not seen the claim yet: the push is the newer truth.
                return (Resolution.ROUTABLE, pod.ip) if pod.ip else (Resolution.UNHEALTHY, None)
            return _check(pod, sandbox_id)
        key = self._by_id.get(sandbox_id)
        if key is None:
            return Resolution.UNKNOWN, None
        return _check(self._pods[key], sandbox_id)

    def is_running(self, sandbox_id: str) -> bool:
        """True while a pod carries ``sandbox_id`` in a routable phase (activity GC)."""
        if sandbox_id in self._stopped:
            return False
        key = self._by_id.get(sandbox_id)
        if key is None:
            pushed = self._pushed.get(sandbox_id)
            return pushed is not None and not pushed.confirmed
        pod = self._pods[key]
        return pod.phase in ROUTABLE_PHASES


def _check(pod: PodView, sandbox_id: str) -> tuple[Resolution, str | None]:
    if pod.sandbox_id == sandbox_id and pod.phase in ROUTABLE_PHASES and pod.ip:
        return Resolution.ROUTABLE, pod.ip
    return Resolution.UNHEALTHY, None
