"""Pod-level status as a kubelet computes it: phase, conditions, IPs, QoS.

Pure functions over the container statuses rendered by
:class:`~agent_sandbox.localcluster.node.container.ContainerMachine`, so the
phase rules (kubelet ``getPhase``) and condition transition times are unit
tested without a node. Init containers are reported as completed without
running: on these nodes the node itself provides ``/mnt/agentsandbox``, which is
what the envd-injector init containers of a real cluster produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_sandbox.localcluster.node.timefmt import rfc3339

TERMINAL_PHASES = ("Succeeded", "Failed")
#: Top-level status keys a node owns; absent ones are sent as null so a merge patch removes them.
STATUS_KEYS = (
    "phase", "conditions", "message", "reason", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
    "initContainerStatuses", "containerStatuses", "qosClass", "observedGeneration",
)


def pod_phase(restart_policy: str, statuses: list[dict[str, Any]]) -> str:
    """Kubelet ``getPhase`` for a pod without init containers still running."""
    waiting = running = stopped = succeeded = 0
    for st in statuses:
        state = st.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif (st.get("lastState") or {}).get("terminated"):
            stopped += 1  # waiting to restart: the pod has run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if restart_policy == "OnFailure":
        return "Succeeded" if stopped == succeeded else "Running"
    return "Succeeded" if stopped == succeeded else "Failed"


def conditions(prev: list[dict[str, Any]] | None, wanted: dict[str, tuple[bool, str | None]], now: float
               ) -> list[dict[str, Any]]:
    """Conditions in ``wanted`` order, keeping ``lastTransitionTime`` while a status does not flip."""
    before = {c.get("type"): c for c in prev or []}
    out = []
    for ctype, (ok, reason) in wanted.items():
        status = "True" if ok else "False"
        old = before.get(ctype)
        since = old["lastTransitionTime"] if old and old.get("status") == status and old.get(
            "lastTransitionTime") else rfc3339(now)
        cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
        if reason:
            cond["reason"] = reason
        out.append(cond)
    return out


def qos_class(spec: dict[str, Any]) -> str:
    any_set, guaranteed = False, True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set |= bool(req or lim)
        for name in ("cpu", "memory"):
            if name not in lim or req.get(name, lim[name]) != lim[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def init_container_statuses(spec: dict[str, Any], started_at: float) -> list[dict[str, Any]]:
    return [
        {
            "name": c.get("name", ""),
            "image": c.get("image", ""),
            "imageID": "",
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": rfc3339(started_at),
                                     "finishedAt": rfc3339(started_at)}},
            "lastState": {},
        }
        for c in spec.get("initContainers") or []
    ]


@dataclass(slots=True)
class Eviction:
    reason: str = "Evicted"
    message: str = "The node was low on resource: memory."


@dataclass(slots=True)
class PodFacts:
    """What the node knows about one pod besides its containers."""

    spec: dict[str, Any]
    host_ip: str
    start_time: float
    pod_ip: str | None = None
    eviction: Eviction | None = None
    terminal_phase: str | None = None
    prev_conditions: list[dict[str, Any]] = field(default_factory=list)
    #: ``metadata.generation`` of the spec the containers were last brought in line with (kubelet
    #: ``status.observedGeneration``): tells a reader that a status was computed after a spec change.
    observed_generation: int | None = None


def build_pod_status(facts: PodFacts, container_statuses: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """The full ``status`` object of a pod bound to this node."""
    restart_policy = facts.spec.get("restartPolicy") or "Always"
    # Like the kubelet's eviction manager: the pod turns Failed once its containers have been killed, so a
    # Failed pod never reports a running container.
    if facts.eviction is not None and not any("running" in (s.get("state") or {}) for s in container_statuses):
        phase = "Failed"
    elif facts.terminal_phase:
        phase = facts.terminal_phase
    else:
        phase = pod_phase(restart_policy, container_statuses)
    all_ready = bool(container_statuses) and all(s.get("ready") for s in container_statuses)
    wanted: dict[str, tuple[bool, str | None]] = {
        "PodReadyToStartContainers": (facts.pod_ip is not None and phase not in TERMINAL_PHASES, None),
        "Initialized": (True, None),
        "Ready": (all_ready, None if all_ready else "ContainersNotReady"),
        "ContainersReady": (all_ready, None if all_ready else "ContainersNotReady"),
        "PodScheduled": (True, None),
    }
    if facts.eviction is not None:
        wanted["DisruptionTarget"] = (True, "TerminationByKubelet")
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions(facts.prev_conditions, wanted, now),
        "hostIP": facts.host_ip,
        "hostIPs": [{"ip": facts.host_ip}],
        "startTime": rfc3339(facts.start_time),
        "containerStatuses": container_statuses,
        "qosClass": qos_class(facts.spec),
    }
    if facts.observed_generation is not None:
        status["observedGeneration"] = facts.observed_generation
    if facts.pod_ip:
        status["podIP"] = facts.pod_ip
        status["podIPs"] = [{"ip": facts.pod_ip}]
    if facts.spec.get("initContainers"):
        status["initContainerStatuses"] = init_container_statuses(facts.spec, facts.start_time)
    if facts.eviction is not None:
        status["reason"] = facts.eviction.reason
        status["message"] = facts.eviction.message
    return status


def status_patch(status: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that makes the stored status equal ``status`` (missing keys → null)."""
    return {"status": {key: status.get(key) for key in STATUS_KEYS}}
