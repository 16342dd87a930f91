"""Several extproc workers behind one port, and watches that outlive the API server.

Uses `agent-sandbox localcluster` as a child process (so it can be stopped and
restarted on the same port and state) and extproc with two worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from extproc_stack import (
    ADMIN_KEY,
    ENVOY_TOKEN,
    ExtprocProcess,
    Pods,
    Upstream,
    free_port,
    sandbox_id,
    start_upstream,
    wait_for,
)
from kubernetes_asyncio import client, config

from agent_sandbox.ctrlplane.client import ControlPlaneClient
from agent_sandbox.extproc.envoy_config import EnvoyPorts
from agent_sandbox.extproc.envoy_process import EnvoyProcess
from agent_sandbox.localcluster.app import LocalClusterProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Rig:
    cluster: LocalClusterProcess
    extproc: ExtprocProcess
    envoy: EnvoyProcess
    upstream: Upstream
    http: aiohttp.ClientSession

    async def status(self, sid: str) -> int:
        headers = {"x-sandbox-id": sid, "x-sandbox-port": str(self.upstream.port)}
        async with self.http.get(self.envoy.url + "/", headers=headers) as resp:
            return resp.status

    async def pods(self) -> tuple[Pods, client.ApiClient]:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(self.cluster.kubeconfig), client_configuration=conf)
        api = client.ApiClient(conf)
        return Pods(api), api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    work: Path = tmp_path_factory.mktemp("resilience")
    # Both ports fixed: the restarted API server must come back where the kubeconfig points.
    cluster = LocalClusterProcess(state_dir=work / "cluster", port=free_port(),
                                  extra_args=["--listen-tls", f"127.0.0.1:{free_port()}"])
    await cluster.start()
    extproc = ExtprocProcess(cluster.kubeconfig, workers=2)
    await extproc.start()
    # One stream per connection: concurrent requests open many connections, spread over both workers.
    envoy = EnvoyProcess(EnvoyPorts(listen_port=free_port(), admin_port=free_port(), listen_address="127.0.0.1",
                                    extproc_port=extproc.listen_port, extproc_streams_per_connection=1,
                                    extproc_token=ENVOY_TOKEN),
                         work / "envoy")
    await envoy.start()
    upstream = await start_upstream("a")
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        yield Rig(cluster, extproc, envoy, upstream, http)
    finally:
        await http.close()
        await upstream.runner.cleanup()
        await envoy.stop()
        await extproc.stop()
        await cluster.stop()


async def test_push_reaches_every_worker(rig: Rig) -> None:
    pods, api = await rig.pods()
    async with api:
        ns, name = await pods.create(ip=rig.upstream.ip, phase="idle")
        sid = sandbox_id()
        await asyncio.sleep(1.0)  # let both workers' watches see the idle pod
        async with ControlPlaneClient(rig.extproc.control_target, ADMIN_KEY) as cp:
            assert await cp.push_route(sid, ns, name)
            statuses = await asyncio.gather(*(rig.status(sid) for _ in range(40)))
            assert statuses == [200] * 40
            last = await cp.get_last_active()
            assert last is not None and sid in last
            assert await cp.evict_route(sid)
            # Stopped in every worker by the time EvictRoute returned.
            statuses = await asyncio.gather(*(rig.status(sid) for _ in range(20)))
            assert statuses == [502] * 20


async def test_watch_survives_dropped_streams_and_api_server_restart(rig: Rig) -> None:
    pods, api = await rig.pods()
    async with api:
        before = sandbox_id()
        await pods.create(ip=rig.upstream.ip, sandbox_id=before)
        await wait_for(lambda: _all_ok(rig, before))
    # Every watch stream now ends after one event: routing must keep up by resuming.
    await _faults(rig, {"watch_drop_after_events": 1})
    pods, api = await rig.pods()
    async with api:
        dropped = [sandbox_id() for _ in range(3)]
        for sid in dropped:
            await pods.create(ip=rig.upstream.ip, sandbox_id=sid)
        for sid in dropped:
            await wait_for(lambda sid=sid: _all_ok(rig, sid))
    await _faults(rig, {})

    await rig.cluster.stop()  # API server gone: the cache keeps serving
    assert await _all_ok(rig, before)
    await rig.cluster.start()  # same port and state; old resourceVersions may be gone (410)
    pods, api = await rig.pods()
    async with api:
        after = sandbox_id()
        await pods.create(ip=rig.upstream.ip, sandbox_id=after)
        await wait_for(lambda: _all_ok(rig, after), within=20)
    assert await _all_ok(rig, before)
    async with rig.http.get(f"http://127.0.0.1:{rig.extproc.health_port}/metrics") as resp:
        assert resp.status == 401
    async with rig.http.get(f"http://127.0.0.1:{rig.extproc.health_port}/metrics",
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as resp:
        text = await resp.text()
    assert 'agentsandbox_extproc_requests_total{decision="routed"}' in text
    assert 'agentsandbox_extproc_watch_restarts_total{resource="pods"}' in text


async def _all_ok(rig: Rig, sid: str) -> bool:
    return await asyncio.gather(*(rig.status(sid) for _ in range(8))) == [200] * 8


async def _faults(rig: Rig, faults: dict) -> None:
    async with rig.http.put(rig.cluster.url + "/localcluster/v1/faults", json=faults,
                            headers={"Authorization": f"Bearer {rig.cluster.token}"}) as resp:
        assert resp.status == 200, await resp.text()
