"""Readiness of a sandbox as a user sees it (``GET /v1/sandboxes/{id}/is_ready``). Pure.

A sandbox is ready when everything a user needs to use it answers: its pod (the sandbox is Running
and every container runs its target image — the same "settled" rule a claim uses, so an in-place swap
still in flight is not ready) and envd, the daemon every SDK call goes through (its ``/health``
answered). The envd probe is the I/O part and is done by the caller; it is skipped while the pod is
not ready, because envd cannot answer for a sandbox that is not running.
"""

from __future__ import annotations

from typing import Any

from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.api.models.sandboxes import EndpointReadiness, SandboxReadiness
from agent_sandbox.operator.images import same_image
from agent_sandbox.operator.lifecycle.inplace import settled

POD = "pod"
ENVD = "envd"
ENVD_NOT_PROBED = EndpointReadiness(ready=False, message="not checked: the pod is not ready")


def _container_problem(pod: pv.Pod) -> str:
    statuses = pv.container_statuses(pod)
    for name, image in pv.container_images(pod).items():
        status = statuses.get(name)
        if status is None:
            return f"container {name} has not started yet"
        if not pv.is_running(status):
            reason = pv.waiting_reason(status)
            return f"container {name} is not running" + (f" ({reason})" if reason else "")
        if not same_image(status.get("image"), image):
            return f"container {name} is still switching to image {image}"
        if status.get("ready") is False:
            return f"container {name} is not ready"
    return "the pod is not ready"


def pod_readiness(record: dict[str, Any], pod: pv.Pod | None) -> EndpointReadiness:
    """Whether the sandbox's pod runs its target images; the message says what is missing."""
    status = record.get("status")
    if status != "Running":
        return EndpointReadiness(ready=False, message=f"sandbox is {status}")
    if pod is None:
        return EndpointReadiness(ready=False, message="the sandbox has no live pod")
    if pv.kube_phase(pod) != "Running":
        return EndpointReadiness(ready=False, message=f"pod is {pv.kube_phase(pod) or 'Pending'}")
    if not settled(pod):
        return EndpointReadiness(ready=False, message=_container_problem(pod))
    return EndpointReadiness(ready=True, message=f"running {', '.join(pv.container_images(pod).values())}")


def sandbox_readiness(sandbox_id: str, pod: EndpointReadiness, envd: EndpointReadiness) -> SandboxReadiness:
    return SandboxReadiness(sandboxId=sandbox_id, ready=pod.ready and envd.ready,
                            endpoints={POD: pod, ENVD: envd})
