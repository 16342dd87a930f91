"""In-place swap completion races against a slow node (field-lessons §3.4, §3.8; behaviour §7.2).

The sim node is told to take its time stopping a container (``stop-delay``): like a real process
that honours SIGTERM slowly, the old container keeps reporting ``running`` (not ready) meanwhile.
A release that lands while the claim's swap is still in flight must then not mark the pod idle on
the strength of that old container, nor on an intermediate container the kubelet starts for the
superseded claim and kills at once. Every pod version the API server hands out is checked: whenever
the pod is labelled idle its main container is a ready container of the idle image — otherwise the
next tenant gets a pod still running (or about to restart) the previous one's workload.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from operator_stack import CALLER, IDLE, WORK, OpEnv, wait_until

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.kube.client import pods_path
from agent_sandbox.operator.services.models import CreatePoolRequest, CreateSandboxRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")

STOP_DELAY = "0.4"  # below the sim node's max grace (0.5 s)


def main_status(pod: dict[str, Any]) -> dict[str, Any]:
    return next((s for s in (pod.get("status") or {}).get("containerStatuses") or [] if s["name"] == "main"), {})


def phase(pod: dict[str, Any]) -> str:
    return pod["metadata"]["labels"].get(v.LABEL_SANDBOX_PHASE, "")


@contextlib.asynccontextmanager
async def recorded(env: OpEnv, name: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every version of pod ``name`` the API server publishes while the block runs."""
    seen: list[dict[str, Any]] = []
    start = await env.kube.get(pods_path("default", name))
    seen.append(start)

    async def follow() -> None:
        path = pods_path("default")
        async for event in env.kube.watch(path, resource_version=start["metadata"]["resourceVersion"]):
            obj = event.get("object") or {}
            if event.get("type") == "MODIFIED" and obj.get("metadata", {}).get("name") == name:
                seen.append(obj)

    task = asyncio.create_task(follow())
    try:
        yield seen
    finally:
        await asyncio.sleep(0.2)  # let the watch deliver the last writes
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def after_claim(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return seen[next(i for i, p in enumerate(seen) if phase(p) in ("starting", "running")):]


def first_idle_after_claim(seen: list[dict[str, Any]]) -> dict[str, Any]:
    return next(p for p in after_claim(seen) if phase(p) == "idle")


def assert_idle_versions_clean(seen: list[dict[str, Any]], old_ids: set[str]) -> None:
    """Every version labelled idle after the claim shows a ready idle-image container that is new."""
    for pod in after_claim(seen):
        if phase(pod) != "idle":
            continue
        st = main_status(pod)
        assert st.get("image") == IDLE and st.get("ready") is True and "running" in (st.get("state") or {}), (
            f"pod labelled idle while its main container is {st}")
        assert st.get("containerID") not in old_ids, f"pod labelled idle on a container from before: {st}"


async def slow_stopping_pool(env: OpEnv, name: str) -> dict[str, Any]:
    await env.operator.pool_service.create(CreatePoolRequest(
        name=name, replicas=1, annotations={"sim.agentsandbox.io/stop-delay": STOP_DELAY},
        spec={"idleImage": IDLE, "template": {"spec": {"containers": [{"name": "main", "image": WORK}]}}}), CALLER)
    await env.wait_idle(name, 1)
    [pod] = await env.pods(name)
    return pod


async def until(seen: list[dict[str, Any]], cond: Callable[[dict[str, Any]], bool], what: str) -> None:
    await wait_until(lambda: any(cond(p) for p in seen), 10, what, interval=0.01)


async def test_release_while_the_idle_container_is_being_stopped_waits_for_a_new_idle_container(
        env: OpEnv) -> None:
    pod = await slow_stopping_pool(env, "swr-stop")
    before = main_status(pod)["containerID"]
    async with recorded(env, pod["metadata"]["name"]) as seen:
        rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="swr-stop"), CALLER)
        # The node has begun killing the idle container for the claim (running, no longer ready) ...
        await until(seen, lambda p: main_status(p).get("containerID") == before
                    and main_status(p).get("ready") is False, "the idle container being stopped")
        # ... when the caller deletes the sandbox: the release targets the image that container runs.
        await env.operator.sandboxes.delete(rec["sandboxId"])
        await env.wait_idle("swr-stop", 1)
    idle = first_idle_after_claim(seen)
    assert main_status(idle)["containerID"] != before, "recycled on the old, dying container"
    assert_idle_versions_clean(seen, {before})
    ok = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="swr-stop", wait=True), CALLER)
    assert ok["status"] == "Running"
    await env.operator.sandboxes.delete(ok["sandboxId"])


async def test_release_while_the_workload_container_starts_never_idles_on_it(env: OpEnv) -> None:
    pod = await slow_stopping_pool(env, "swr-mid")
    before = main_status(pod)["containerID"]
    async with recorded(env, pod["metadata"]["name"]) as seen:
        rec = await env.operator.sandboxes.create(CreateSandboxRequest(
            poolName="swr-mid", annotations={"sim.agentsandbox.io/pull-delay": "0",
                                             "sim.agentsandbox.io/start-delay": "0.3"}), CALLER)
        # The idle container is gone and the workload container is being created (pulled at once, then
        # 0.3 s to start) ...
        await until(seen, lambda p: "waiting" in (main_status(p).get("state") or {}) and phase(p) == "starting",
                    "the workload container being created")
        # ... when the release arrives: the kubelet starts that container anyway and kills it at once.
        await env.operator.sandboxes.delete(rec["sandboxId"])
        await env.wait_idle("swr-mid", 1)
    workload_ids = {main_status(p).get("containerID") for p in seen if main_status(p).get("image") == WORK}
    assert_idle_versions_clean(seen, {before} | workload_ids)
    assert main_status(first_idle_after_claim(seen))["image"] == IDLE
