"""pods/exec as each node agent serves it: the local node enters the image's root, the sim node a scratch dir."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest
from aiohttp import ClientSession
from kubernetes_asyncio import client
from kubernetes_asyncio.stream import WsApiClient
from nodekit import NodeEnv, is_running, main_status, pod_body, wait_gone, wait_pod

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def run(env: NodeEnv, pod: str, script: str) -> str:
    """stdout+stderr of ``sh -c script`` in the pod, through kubernetes_asyncio's WsApiClient."""
    async with WsApiClient(configuration=env.api.configuration) as ws:
        return await client.CoreV1Api(api_client=ws).connect_get_namespaced_pod_exec(
            pod, "default", command=["sh", "-c", script], stdout=True, stderr=True, stdin=False, tty=False)


async def test_sim_exec_has_a_scratch_dir_per_container(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("scratch", "busybox:1.36"))
    await wait_pod(sim.core, "scratch", is_running)
    home = (await run(sim, "scratch", 'echo kept > note; echo "$HOME"; pwd')).split()
    assert home[0] == home[1] and "agent-sandbox-sim-exec-" in home[0]
    assert await run(sim, "scratch", "cat note") == "kept\n", "later execs see the file"
    await sim.core.delete_namespaced_pod("scratch", "default")
    await wait_gone(sim.core, "scratch")
    assert not await asyncio.to_thread(os.path.exists, home[0]), "removed with the pod"


async def test_sim_container_stop_ends_a_running_exec(sim: NodeEnv) -> None:
    await sim.core.create_namespaced_pod("default", pod_body("crashy", "busybox:1.36"))
    first = main_status(await wait_pod(sim.core, "crashy", is_running))
    await run(sim, "crashy", "echo before > note")
    query = [("command", "sh"), ("command", "-c"), ("command", "echo started; exec sleep 60"), ("stdout", "true")]
    status = b""
    async with ClientSession(sim.cluster.url, headers={"Authorization": f"Bearer {sim.cluster.token}"}) as http, \
            http.ws_connect("/api/v1/namespaces/default/pods/crashy/exec", params=query,
                            protocols=("v4.channel.k8s.io",)) as sock:
        assert (await asyncio.wait_for(sock.receive(), 10)).data == b"\x01started\n"
        await sim.core.patch_namespaced_pod("crashy", "default", {"metadata": {"annotations": {
            "sim.agentsandbox.io/crash": "2", "sim.agentsandbox.io/crash-after": "0"}}})
        async with asyncio.timeout(10):
            async for msg in sock:
                if msg.data[:1] == b"\x03":
                    status += msg.data[1:]
    assert "container or node agent stopped" in json.loads(status)["message"]
    await sim.core.patch_namespaced_pod("crashy", "default", {"metadata": {"annotations": {
        "sim.agentsandbox.io/crash": None}}})
    await wait_pod(sim.core, "crashy", lambda p: is_running(p) and main_status(p).restart_count > 0, within=20)
    assert "No such file" in await run(sim, "crashy", "cat note"), "a restarted container starts from scratch"
    assert first.container_id != main_status(await sim.core.read_namespaced_pod("crashy", "default")).container_id
    await sim.core.delete_namespaced_pod("crashy", "default")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the local node needs bubblewrap")
async def test_local_exec_runs_in_the_image_root(local: NodeEnv) -> None:
    await local.core.create_namespaced_pod("default", pod_body(
        "bb", "busybox-test:1", command=["/bin/sh", "-c", "echo $$ > /tmp/main-pid; exec sleep 60"]))
    await wait_pod(local.core, "bb", is_running, within=30)
    out = await run(local, "bb", "cat /etc/image-name; readlink /bin/ls; cat /tmp/main-pid; echo $$")
    lines = out.split()
    assert lines[:2] == ["busybox-root", "busybox"], f"{out}: the exec sees the image's root filesystem, not the host's"
    assert 1 < int(lines[2]) < 10 and int(lines[3]) < 20, "pids are the sandbox's pid namespace"
    await local.core.delete_namespaced_pod("bb", "default")
    await wait_gone(local.core, "bb", within=20)
