"""The sim node as a user of the Kubernetes API sees it (real client, embedded API server)."""

from __future__ import annotations

import asyncio
import re

import pytest
from nodekit import NodeEnv, is_running, main_status, pod_body, wait_gone, wait_pod, waiting_reason

from agent_sandbox.localcluster.node.images import default_digest

pytestmark = pytest.mark.asyncio(loop_scope="module")

CID = re.compile(r"^containerd://[0-9a-f]{64}$")


async def test_node_registers_ready(sim: NodeEnv) -> None:
    node = None
    for _ in range(200):
        nodes = {n.metadata.name: n for n in (await sim.core.list_node()).items}
        node = nodes.get(sim.node_name)
        if node is not None and node.status and node.status.conditions:
            break
        await asyncio.sleep(0.05)
    assert node is not None
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True" and node.status.capacity["pods"] == "20000"
    assert node.metadata.labels["agentsandbox.io/node-kind"] == "sim"


async def test_pending_pod_is_bound_and_runs(sim: NodeEnv) -> None:
    # A custom schedulerName keeps the API server's built-in scheduler away: the node binds it.
    await sim.core.create_namespaced_pod("default", pod_body("run-1", "busybox:1.36", schedulerName="custom"))
    pod = await wait_pod(sim.core, "run-1", is_running)
    st = main_status(pod)
    assert pod.spec.node_name == sim.node_name
    assert pod.status.pod_ip and pod.status.host_ip == "127.0.0.1"
    assert CID.match(st.container_id) and st.restart_count == 0 and st.image == "busybox:1.36"
    assert st.image_id == f"docker-pullable://docker.io/library/busybox@{default_digest('busybox:1.36')}"
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["Ready"] == conditions["ContainersReady"] == conditions["PodScheduled"] == "True"


async def test_distinct_pod_ips(sim: NodeEnv) -> None:
    for i in range(3):
        await sim.core.create_namespaced_pod("default", pod_body(f"ip-{i}", "busybox:1.36"))
    ips = {(await wait_pod(sim.core, f"ip-{i}", is_running)).status.pod_ip for i in range(3)}
    assert len(ips) == 3


async def test_in_place_image_swap(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body(
        "swap-1", "agent-sandbox/idle:1", annotations={"sim.agentsandbox.io/pull-delay": "0.6"}))
    before = main_status(await wait_pod(sim.core, "swap-1", is_running))
    await sim.core.patch_namespaced_pod(
        "swap-1", "default", {"spec": {"containers": [{"name": "main", "image": "python:3.12"}]}})
    seen: list[tuple] = []
    after = await wait_pod(sim.core, "swap-1", lambda p: main_status(p).image == "python:3.12" and is_running(p),
                           seen=seen, record=lambda p: (main_status(p).image, main_status(p).container_id,
                                                        waiting_reason(p)))
    st = main_status(after)
    # While the new image is pulled the status keeps the old container's identity.
    assert ("agent-sandbox/idle:1", before.container_id, "ContainerCreating") in seen
    assert st.container_id != before.container_id and CID.match(st.container_id)
    assert st.restart_count == before.restart_count + 1
    assert st.image_id.endswith(default_digest("python:3.12")) and st.image_id != before.image_id
    assert after.status.pod_ip and after.metadata.uid


async def test_two_references_one_digest(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("dig-a", "ubuntu:22.04"))
    await sim.core.create_namespaced_pod("default", pod_body("dig-b", "docker.io/library/ubuntu:22.04"))
    a = main_status(await wait_pod(sim.core, "dig-a", is_running))
    b = main_status(await wait_pod(sim.core, "dig-b", is_running))
    assert a.image_id == b.image_id and a.image != b.image


async def test_pull_error_then_backoff(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("pull-1", "registry.example/app:pullerror"))
    seen: list = []
    pod = await wait_pod(sim.core, "pull-1", lambda p: "ImagePullBackOff" in seen and seen[-1] == "ErrImagePull",
                         seen=seen, record=waiting_reason)
    assert pod.status.phase == "Pending"
    assert "ErrImagePull" in seen and seen.index("ErrImagePull") < seen.index("ImagePullBackOff")
    assert "Failed to pull image" in main_status(pod).state.waiting.message


async def test_pull_error_on_swap_keeps_old_container_and_rollback_recovers(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body(
        "pull-2", "app:v1", annotations={"sim.agentsandbox.io/pull-error": "app:v2"}))
    before = main_status(await wait_pod(sim.core, "pull-2", is_running))
    await sim.core.patch_namespaced_pod(
        "pull-2", "default", {"spec": {"containers": [{"name": "main", "image": "app:v2"}]}})
    pod = await wait_pod(sim.core, "pull-2", lambda p: waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"))
    st = main_status(pod)
    assert st.image == "app:v1" and st.container_id == before.container_id and pod.status.phase == "Running"
    await sim.core.patch_namespaced_pod(
        "pull-2", "default", {"spec": {"containers": [{"name": "main", "image": "app:v3"}]}})
    pod = await wait_pod(sim.core, "pull-2", lambda p: is_running(p) and main_status(p).image == "app:v3")
    assert main_status(pod).container_id != before.container_id


async def test_crash_restarts_then_crash_loop_backoff(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("crash-1", "busybox:1.36"))
    first = main_status(await wait_pod(sim.core, "crash-1", is_running))
    await sim.core.patch_namespaced_pod("crash-1", "default", {"metadata": {"annotations": {
        "sim.agentsandbox.io/crash": "137", "sim.agentsandbox.io/crash-after": "0.1"}}})
    seen: list = []
    pod = await wait_pod(sim.core, "crash-1",
                         lambda p: waiting_reason(p) == "CrashLoopBackOff" and main_status(p).restart_count >= 2,
                         seen=seen, record=lambda p: main_status(p).container_id)
    st = main_status(pod)
    assert len(set(seen)) >= 3 and first.container_id in seen
    assert st.last_state.terminated.exit_code == 137 and st.last_state.terminated.reason == "Error"
    assert "back-off" in st.state.waiting.message and pod.status.phase == "Running" and not st.ready


async def test_crash_image_rule(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("crash-2", "worker:crash"))
    pod = await wait_pod(sim.core, "crash-2", lambda p: main_status(p) is not None and main_status(
        p).restart_count >= 1 and main_status(p).last_state.terminated is not None)
    assert main_status(pod).last_state.terminated.exit_code == 1


async def test_eviction(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("evict-1", "busybox:1.36"))
    await wait_pod(sim.core, "evict-1", is_running)
    await sim.core.patch_namespaced_pod("evict-1", "default", {"metadata": {"annotations": {
        "sim.agentsandbox.io/evict": "true"}}})
    pod = await wait_pod(sim.core, "evict-1", lambda p: p.status.phase == "Failed")
    assert pod.status.reason == "Evicted" and pod.status.message
    assert main_status(pod).state.terminated is not None and not main_status(pod).ready


async def test_graceful_delete_completes(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("del-1", "busybox:1.36"))
    await wait_pod(sim.core, "del-1", is_running)
    await sim.core.delete_namespaced_pod("del-1", "default", grace_period_seconds=30)
    await wait_gone(sim.core, "del-1", within=10)


async def test_delete_with_finalizer_reports_terminal_phase(sim: NodeEnv) -> None:
    body = pod_body("del-2", "busybox:1.36")
    body["metadata"]["finalizers"] = ["agentsandbox.io/sandbox-protection"]
    await sim.core.create_namespaced_pod("default", body)
    await wait_pod(sim.core, "del-2", is_running)
    await sim.core.delete_namespaced_pod("del-2", "default")
    pod = await wait_pod(sim.core, "del-2", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert pod.metadata.deletion_timestamp is not None and main_status(pod).state.terminated is not None
    await sim.core.patch_namespaced_pod("del-2", "default", {"metadata": {"finalizers": None}})
    await wait_gone(sim.core, "del-2")


async def test_node_restart_keeps_running_containers(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("restart-1", "busybox:1.36"))
    before = main_status(await wait_pod(sim.core, "restart-1", is_running))
    await sim.restart_node("sim")
    await sim.core.create_namespaced_pod("default", pod_body("restart-2", "busybox:1.36"))
    await wait_pod(sim.core, "restart-2", is_running)
    after = main_status(await sim.core.read_namespaced_pod("restart-1", "default"))
    assert after.container_id == before.container_id and after.restart_count == before.restart_count


async def test_swap_to_same_digest_reference_changes_container(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("same-digest", "ubuntu:24.04"))
    before = main_status(await wait_pod(sim.core, "same-digest", is_running))
    await sim.core.patch_namespaced_pod("same-digest", "default", {
        "spec": {"containers": [{"name": "main", "image": "docker.io/library/ubuntu:24.04"}]}})
    pod = await wait_pod(sim.core, "same-digest", lambda p: is_running(p) and main_status(
        p).image == "docker.io/library/ubuntu:24.04")
    st = main_status(pod)
    assert st.image_id == before.image_id and st.container_id != before.container_id
