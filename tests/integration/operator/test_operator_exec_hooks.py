"""Post-start exec hooks through the real pods/exec protocol (behaviour §11).

The operator runs an exec hook with kubernetes_asyncio's WsApiClient against the embedded API server, which hands
it to the node agent: on the ``sim`` node (the conftest's stack) the command runs in its container's scratch
directory on the host; on a ``local`` node it runs inside the real bubblewrap sandbox. Either way the effect of the
hook is read back through exec, as a user would check it.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config
from kubernetes_asyncio.stream import WsApiClient
from operator_stack import ADMIN_KEY, CALLER, OpEnv, operator_settings

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.services.errors import SandboxStartFailed
from agent_sandbox.operator.services.models import CreatePoolRequest, CreateSandboxRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def kube_config(cluster: LocalCluster) -> client.Configuration:
    conf = client.Configuration()
    await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
    return conf


async def exec_in(cluster: LocalCluster, pod: str, script: str, container: str = "main") -> str:
    """What ``sh -c script`` prints in the pod's container, through the real exec protocol."""
    async with WsApiClient(configuration=await kube_config(cluster)) as ws:
        return await client.CoreV1Api(api_client=ws).connect_get_namespaced_pod_exec(
            pod, "default", command=["sh", "-c", script], container=container,
            stdout=True, stderr=True, stdin=False, tty=False)


# ----- sim node (the shared operator stack) ---------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(env: OpEnv) -> str:
    await env.create_pool("exechooks", replicas=2)
    return "exechooks"


async def test_exec_hook_runs_once_the_sandbox_is_running(env: OpEnv, pool: str) -> None:
    await env.wait_idle("exechooks", 2)
    hook = {"exec": {"command": ["echo", "hook-ran", ">>", "hook.log"]}}
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="exechooks", postStartHooks=[hook],
                                                                   wait=True), CALLER)
    assert rec["status"] == "Running"
    assert await exec_in(env.cluster, rec["podName"], "cat hook.log") == "hook-ran\n", "ran exactly once"
    await env.operator.sandboxes.delete(rec["sandboxId"])


async def test_failing_exec_hook_fails_the_sandbox_after_retries(env: OpEnv, pool: str,
                                                                 tmp_path: pathlib.Path) -> None:
    await env.wait_idle("exechooks", 2)
    attempts = tmp_path / "attempts"  # the sim node runs exec on the host: count attempts outside the pod
    hook = {"exec": {"command": f"echo attempt >> {attempts}; echo disk is read-only >&2; exit 3"}}
    with pytest.raises(SandboxStartFailed) as err:
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="exechooks", postStartHooks=[hook],
                                                                 wait=True), CALLER)
    assert err.value.reason == "PostStartHookFailed"
    assert "exited with code 3" in str(err.value) and "disk is read-only" in str(err.value)
    assert attempts.read_text() == "attempt\n" * 5, "retried 5 times"


async def test_exec_and_http_hooks_run_in_order(env: OpEnv, pool: str) -> None:
    await env.wait_idle("exechooks", 2)
    hooks = [{"exec": {"command": "date +%s%N > exec-done"}},
             {"httpPost": {"port": 49983, "path": "/init", "body": {"envVars": {"B": "2"}}}}]
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="exechooks", postStartHooks=hooks,
                                                                   wait=True), CALLER)
    assert (f"/sandboxes/{rec['sandboxId']}/49983/init", {"envVars": {"B": "2"}}) in env.gateway.calls
    assert (await exec_in(env.cluster, rec["podName"], "cat exec-done")).strip().isdigit()
    await env.operator.sandboxes.delete(rec["sandboxId"])


# ----- local node: the hook's file lands in the real sandbox ------------------------------------------------


@dataclass
class LocalEnv:
    cluster: LocalCluster
    operator: Operator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalEnv]:
    if shutil.which("bwrap") is None:
        pytest.skip("the local node needs bubblewrap")
    state_dir = tmp_path_factory.mktemp("exec-hooks-local")
    async with LocalCluster(state_dir=state_dir, persist=False, node="local", node_name="hooks-node") as cluster:
        operator = Operator(operator_settings(cluster, admin_key=ADMIN_KEY))
        await operator.start()
        try:
            yield LocalEnv(cluster, operator)
        finally:
            await operator.stop()


async def test_exec_hook_writes_inside_the_local_sandbox(local_env: LocalEnv) -> None:
    await local_env.operator.pool_service.create(CreatePoolRequest(name="real", replicas=1, spec={
        "idleImage": "agent-sandbox/idle:1",
        "template": {"spec": {"containers": [{"name": "main", "image": "host"}]}}}), CALLER)
    deadline = asyncio.get_running_loop().time() + 60
    while local_env.operator.pool_service.counts("default", "real")["idle"] < 1:
        assert asyncio.get_running_loop().time() < deadline, "the local pool never had an idle sandbox"
        await asyncio.sleep(0.1)
    hook = {"exec": {"command": "echo written-by-hook > /tmp/hook-proof; hostname >> /tmp/hook-proof"}}
    rec = await local_env.operator.sandboxes.create(
        CreateSandboxRequest(poolName="real", postStartHooks=[hook], wait=True), CALLER)
    assert await exec_in(local_env.cluster, rec["podName"], "cat /tmp/hook-proof") == \
        f"written-by-hook\n{rec['podName']}\n"
    assert not await asyncio.to_thread(os.path.exists, "/tmp/hook-proof"), "written in the sandbox, not the host"
    await local_env.operator.sandboxes.delete(rec["sandboxId"])
