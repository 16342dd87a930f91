"""Readiness of a sandbox (is_ready): the pod half, which decides whether envd is even probed."""

from operator_pods import IDLE_IMAGE, WORK_IMAGE, pod

from agent_sandbox.operator.api.models.sandboxes import EndpointReadiness
from agent_sandbox.operator.api.readiness import (
    ENVD_NOT_PROBED,
    pod_readiness,
    sandbox_readiness,
)

RUNNING = {"status": "Running"}


def test_a_running_sandbox_on_its_target_image_is_ready():
    state = pod_readiness(RUNNING, pod(phase="running", image=WORK_IMAGE))
    assert state.ready and WORK_IMAGE in (state.message or "")


def test_what_is_missing_is_named():
    assert pod_readiness({"status": "Completed"}, None).message == "sandbox is Completed"
    assert pod_readiness(RUNNING, None).message == "the sandbox has no live pod"
    assert pod_readiness(RUNNING, pod(phase="running", kube_phase="Pending")).message == "pod is Pending"
    swapping = pod_readiness(RUNNING, pod(phase="running", image=WORK_IMAGE, status_image=IDLE_IMAGE))
    assert not swapping.ready and swapping.message == f"container main is still switching to image {WORK_IMAGE}"
    pulling = pod_readiness(RUNNING, pod(phase="running", image=WORK_IMAGE, waiting="ErrImagePull"))
    assert not pulling.ready and pulling.message == "container main is not running (ErrImagePull)"


def test_ready_needs_every_endpoint():
    ok = EndpointReadiness(ready=True)
    assert sandbox_readiness("it-1", ok, ok).ready
    result = sandbox_readiness("it-1", ok, EndpointReadiness(ready=False, message="envd unreachable"))
    assert not result.ready and set(result.endpoints) == {"pod", "envd"}
    assert not sandbox_readiness("it-1", EndpointReadiness(ready=False), ENVD_NOT_PROBED).ready
