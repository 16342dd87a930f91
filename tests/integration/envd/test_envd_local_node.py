"""The E2B SDK against envd inside a real ``local``-node sandbox, reached at podIP:49983.

The node builds the envd bundle itself, runs the Pod's container in bubblewrap with
the bundle at /mnt/agentsandbox and the default entrypoint; nothing here starts envd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from envd_harness import run_driver, sdk_env, start_control_plane
from kubernetes_asyncio import client, config

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.localcluster.node import run_node

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="needs root and bubblewrap"),
]


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status in (200, 204)
    except OSError:
        return False


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox_ip(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    state = tmp_path_factory.mktemp("envd-local-node")
    async with LocalCluster() as cluster:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        api = client.ApiClient(conf)
        node = asyncio.get_running_loop().create_task(run_node("local", cluster.kubeconfig, "envd-node", state))
        try:
            core = client.CoreV1Api(api)
            await core.create_namespaced_pod("default", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sdk-target"},
                "spec": {"containers": [{"name": "main", "image": "host"}], "terminationGracePeriodSeconds": 2},
            })
            deadline = time.monotonic() + 90
            ip = None
            while time.monotonic() < deadline:
                pod = await core.read_namespaced_pod("sdk-target", "default")
                ip = pod.status.pod_ip
                if pod.status.phase == "Running" and ip and await asyncio.to_thread(
                        _health, f"http://{ip}:49983/health"):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"envd never answered in the local sandbox (podIP {ip})")
            yield ip
        finally:
            node.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await node
            await api.close()


async def test_sdk_in_local_node_sandbox(sandbox_ip: str, sdk_pythons: dict[str, Path]) -> None:
    envd_url = f"http://{sandbox_ip}:49983"
    cp = await asyncio.to_thread(start_control_plane, envd_url)
    try:
        r = await asyncio.to_thread(run_driver, sdk_pythons["2.63.0"], "commands,pty,files",
                                    sdk_env(cp, envd_url))
    finally:
        cp.close()
    commands, files = r["commands"], r["files"]
    assert commands["echo"] == {"stdout": "hello\n", "stderr": "oops\n", "exit_code": 0}
    assert commands["env"] == "c-r"
    assert (commands["whoami"], commands["whoami_root"]) == ("user", "root")
    assert commands["bg_alive_after_disconnect"] and commands["kill"] and commands["timeout_killed"]
    assert r["pty"]["output_has_result"] and r["pty"]["resized"]
    assert files["read_text"] == "hello file" and files["make_dir"] == [True, False]
    assert files["signed_download"] == "file-like upload"
