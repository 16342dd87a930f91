"""The local node with the real envd bundle: envd answers at podIP:49983, as on a cluster Pod."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from nodekit import FAST_BACKOFF, NodeEnv, is_running, main_status, make_busybox_rootfs, node_env, pod_body, wait_pod

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def envd_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodeEnv]:
    base = tmp_path_factory.mktemp("envdnode")
    rootfs = make_busybox_rootfs(base / "rootfs")
    (base / "state").mkdir()
    (base / "state" / "images.yaml").write_text(f"busybox:1:\n  rootfs: {rootfs}\n")
    # No bundle_dir: the node builds /mnt/agentsandbox with agent_sandbox.envd.bundle.
    async with node_env("local", base / "state", dict(FAST_BACKOFF)) as env:
        yield env


async def envd_health(ip: str, within: float = 20.0) -> int:
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(f"http://{ip}:49983/health") as resp:
                    return resp.status
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"envd never answered at {ip}:49983")


async def test_idle_pod_swapped_to_workload_serves_envd(envd_node: NodeEnv) -> None:
    core = envd_node.core
    await core.create_namespaced_pod("default", pod_body("claimable", "agent-sandbox/idle:latest"))
    idle = await wait_pod(core, "claimable", is_running, within=30)
    ip = idle.status.pod_ip
    await core.patch_namespaced_pod(
        "claimable", "default", {"spec": {"containers": [{"name": "main", "image": "host"}]}})
    pod = await wait_pod(core, "claimable", lambda p: is_running(p) and main_status(p).image == "host")
    assert pod.status.pod_ip == ip
    assert await envd_health(ip) in (200, 204)
    # Any image with /bin/sh works: the bundle carries its own interpreter and libraries.
    await core.patch_namespaced_pod(
        "claimable", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:1"}]}})
    await wait_pod(core, "claimable", lambda p: is_running(p) and main_status(p).image == "busybox:1")
    assert await envd_health(ip) in (200, 204)
