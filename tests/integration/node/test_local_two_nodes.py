"""Two ``local`` nodes on one machine share the host's loopback: their pods must never share an address.

Each node allocates from the same default CIDR. Before machine-wide address leases, both nodes gave
their first pods the same IP, so one envd failed to bind (its container "restarted unexpectedly"
right after an in-place swap) and callers of the other stack reached the wrong envd (401/404).
The pods here sleep without listening — like idle pods — so a port probe could not see the clash.
"""

from __future__ import annotations

import contextlib

import pytest
import yaml
from nodekit import is_running, node_env, pod_body, prepare_local_state, wait_pod

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_pods_of_two_local_nodes_get_distinct_addresses(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with contextlib.AsyncExitStack() as stack:
        envs = []
        for name in ("node-a", "node-b"):
            state = prepare_local_state(tmp_path_factory.mktemp(name))
            settings = yaml.safe_load((state / "local.yaml").read_text())
            envs.append(await stack.enter_async_context(node_env("local", state, settings)))
        ips = []
        for i, env in enumerate(envs):
            for j in range(2):
                name = f"quiet-{i}-{j}"
                await env.core.create_namespaced_pod("default", pod_body(
                    name, "host", command=["/bin/sh", "-c", "exec sleep 60"]))
                pod = await wait_pod(env.core, name, is_running, within=30)
                ips.append(pod.status.pod_ip)
        assert len(set(ips)) == len(ips), f"pods of two nodes share addresses: {ips}"
        for i, env in enumerate(envs):
            for j in range(2):
                await env.core.delete_namespaced_pod(f"quiet-{i}-{j}", "default")
