"""The operator against the real extproc control-plane server: route push/evict and activity-driven idle timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from operator_stack import CALLER, Gateway, OpEnv, operator_settings, sim_cluster, wait_until

from agent_sandbox.common import vocabulary as v
from agent_sandbox.ctrlplane.client import ControlPlaneClient
from agent_sandbox.extproc.activity import ActivityTracker
from agent_sandbox.extproc.control import LocalBackend, control_server
from agent_sandbox.extproc.routes import RouteTable
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.kube.client import KubeClient, pods_path
from agent_sandbox.operator.services.models import CreateSandboxRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")
ADMIN_KEY = "asb_" + "ab" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Extproc:
    def __init__(self) -> None:
        self.routes = RouteTable()
        self.activity = ActivityTracker()
        self.address = f"127.0.0.1:{free_port()}"
        self.server = control_server(LocalBackend(self.routes, self.activity), self.address, ADMIN_KEY)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[OpEnv, Extproc]]:
    extproc = Extproc()
    await extproc.server.start()
    async with sim_cluster(tmp_path_factory.mktemp("dp")) as cluster:
        client = ControlPlaneClient(extproc.address, ADMIN_KEY)
        operator = Operator(operator_settings(cluster, dataplane_grace_s=2.0), dataplane=client)
        await operator.start()
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        try:
            yield OpEnv(cluster, operator, Gateway(), kube, cluster.state_dir), extproc
        finally:
            await kube.close()
            await operator.stop()
            await extproc.server.stop(0)


async def test_route_pushed_on_claim_and_evicted_on_recycle(dp: tuple[OpEnv, Extproc]) -> None:
    env, extproc = dp
    await env.create_pool("routes", replicas=1)
    await env.wait_idle("routes", 1)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="routes", wait=True), CALLER)
    assert extproc.routes.pushed_count() == 1
    await env.operator.sandboxes.delete(rec["sandboxId"])
    await env.wait_idle("routes", 1)
    await wait_until(lambda: extproc.routes.pushed_count() == 0, 5, "route evicted")


async def test_activity_from_extproc_keeps_a_sandbox_alive_and_is_persisted(dp: tuple[OpEnv, Extproc]) -> None:
    env, extproc = dp
    await env.create_pool("active", replicas=2)
    await env.wait_idle("active", 2)
    busy = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="active", idleTimeout="2s", wait=True),
                                               CALLER)
    quiet = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="active", idleTimeout="2s",
                                                                     wait=True), CALLER)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        extproc.activity.touch(busy["sandboxId"], time.time())
        await asyncio.sleep(0.2)
    assert (await env.operator.sandboxes.get(quiet["sandboxId"]))["status"] in ("Released", "Stopping")
    assert (await env.operator.sandboxes.get(busy["sandboxId"]))["status"] == "Running"
    pod = await env.kube.get(pods_path("default", busy["podName"]))
    assert pod["metadata"]["annotations"].get(v.ANN_LAST_ACTIVE), "activity persisted on the pod"
    await wait_until(lambda: _status_is(env, busy["sandboxId"], "Released"), 10, "released once activity stops")


async def test_unreachable_extproc_does_not_disable_reclamation_forever(dp: tuple[OpEnv, Extproc]) -> None:
    env, extproc = dp
    await env.create_pool("orphan", replicas=1)
    await env.wait_idle("orphan", 1)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="orphan", idleTimeout="1s", wait=True),
                                              CALLER)
    await extproc.server.stop(0)
    await wait_until(lambda: _status_is(env, rec["sandboxId"], "Released"), 15,
                     "released from annotations after the data-plane grace period")


async def _status_is(env: OpEnv, sandbox_id: str, status: str) -> bool:
    return (await env.operator.sandboxes.get(sandbox_id))["status"] == status
