"""Two real operator replicas (each with its native and E2B API servers) on one embedded control plane.

Both replicas serve creates, as in a deployment with leader election; the leader also runs the pool
controller. A replica can be restarted (stopped and replaced by a fresh process state) to show what
survives in the cluster rather than in memory.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from native_stack import OPS, V

from agent_sandbox.common import vocabulary as v
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.api.startup import ApiServers, ApiServerSettings, start_api_servers
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.e2b.key_reservations import LABEL_IDEMPOTENCY
from agent_sandbox.operator.kube.client import KubeClient, leases_path, pods_path

ADMIN_KEY = "adm-" + "7" * 32
SECRET = "idempotency-it-secret-0123456789abcdef"
NAMESPACE = "default"
POOL = "idem"
TIMEOUT = aiohttp.ClientTimeout(total=60)
#: Headers of admin calls on the native API.
ADMIN = {"X-API-Key": ADMIN_KEY, **V}


@dataclass
class Replica:
    operator: Operator
    servers: ApiServers

    @property
    def api_url(self) -> str:
        return self.servers.address(0)

    @property
    def e2b_url(self) -> str:
        return self.servers.address(1)

    async def stop(self) -> None:
        await self.servers.stop()
        await self.operator.stop()


async def start_replica(cluster: LocalCluster, gateway_url: str, identity: str) -> Replica:
    operator = Operator(OPS.operator_settings(cluster, gateway_base_url=gateway_url, admin_key=ADMIN_KEY,
                                              cluster_id="it", secret=SECRET, identity=identity,
                                              lease_duration_s=2.0, lease_renew_s=0.5))
    await operator.start()
    assert operator.client is not None
    try:
        servers = await start_api_servers(operator.client, ApiServerSettings(
            admin_key=ADMIN_KEY, secret=SECRET, envd_secret=SECRET, local_cluster_id="it", apikey_cache_ttl=1.0,
            api_host="127.0.0.1", api_port=0, e2b_host="127.0.0.1", e2b_port=0,
            idempotency_namespace=NAMESPACE),
            sandboxes=operator.sandboxes, pools=operator.pool_service, clusters=operator.clusters,
            is_leader=lambda: operator.is_leader)
    except BaseException:
        await operator.stop()
        raise
    return Replica(operator, servers)


@dataclass
class TwoReplicas:
    cluster: LocalCluster
    gateway_url: str
    kube: KubeClient
    http: aiohttp.ClientSession
    replicas: list[Replica] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    team: str = "red"
    user: str = "idem-user"
    pool_replicas: int = 4

    async def create(self, replica: int, key: str | None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        payload = {"templateID": POOL, "metadata": {}, "envVars": {}, **(body or {})}
        headers = {**self.headers, **({"Idempotency-Key": key} if key is not None else {})}
        async with self.http.post(f"{self.replicas[replica].e2b_url}/v2/sandboxes", json=payload,
                                  headers=headers) as r:
            return r.status, await r.json()

    async def delete(self, sandbox_id: str) -> None:
        async with self.http.delete(f"{self.replicas[0].e2b_url}/sandboxes/{sandbox_id}",
                                    headers=self.headers) as r:
            assert r.status in (204, 404), await r.text()

    async def claimed_pods(self) -> dict[str, int]:
        """Sandbox id → number of starting or running pods holding it, read from the apiserver (no cache)."""
        listing = await self.kube.list(pods_path(NAMESPACE), label_selector=v.pool_selector(POOL))
        out: dict[str, int] = {}
        for pod in listing.get("items") or []:
            labels = pod["metadata"].get("labels") or {}
            sid = labels.get(v.LABEL_SANDBOX_ID)
            if sid and labels.get(v.LABEL_SANDBOX_PHASE) in ("starting", "running"):
                out[sid] = out.get(sid, 0) + 1
        return out

    async def key_records(self) -> list[dict[str, Any]]:
        listing = await self.kube.list(leases_path(NAMESPACE), label_selector=f"{LABEL_IDEMPOTENCY}=true")
        return listing.get("items") or []

    async def restart(self, index: int, identity: str) -> None:
        await self.replicas[index].stop()
        self.replicas[index] = await start_replica(self.cluster, self.gateway_url, identity)

    async def settle(self) -> None:
        """Every sandbox deleted, the pool back to all-idle (each test starts from a full pool)."""
        for sid in list(await self.claimed_pods()):
            await self.delete(sid)
        counts = self.replicas[0].operator.pool_service.counts
        n = self.pool_replicas
        await OPS.wait_until(lambda: counts(NAMESPACE, POOL)["idle"] == n and counts(NAMESPACE, POOL)["running"] == 0,
                             30, f"pool back to {n} idle pods")


async def fake_gateway() -> tuple[web.AppRunner, str]:
    gateway = OPS.Gateway()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", gateway.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@contextlib.asynccontextmanager
async def two_replicas(state_dir: Path, pool_replicas: int = 4) -> AsyncIterator[TwoReplicas]:
    """Cluster, gateway, two replicas, a tenant E2B key and pool ``POOL`` with all pods idle."""
    runner, gateway_url = await fake_gateway()
    try:
        async with OPS.sim_cluster(state_dir) as cluster:
            kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
            http = aiohttp.ClientSession(timeout=TIMEOUT)
            env = TwoReplicas(cluster, gateway_url, kube, http, pool_replicas=pool_replicas)
            try:
                env.replicas.append(await start_replica(cluster, gateway_url, "op-one"))
                env.replicas.append(await start_replica(cluster, gateway_url, "op-two"))
                async with http.post(f"{env.replicas[0].api_url}/v1/admin/api-keys", headers=ADMIN,
                                     json={"user": env.user, "team": env.team}) as r:
                    assert r.status == 201, await r.text()
                    env.headers = {"X-API-KEY": "e2b_" + (await r.json())["apiKey"][4:]}
                async with http.post(f"{env.replicas[0].api_url}/v1/sandboxpools", headers=ADMIN, json={
                        "name": POOL, "replicas": pool_replicas, "spec": {"idleImage": OPS.IDLE, "template": {
                            "spec": {"containers": [{"name": "main", "image": OPS.WORK}]}}}}) as r:
                    assert r.status == 201, await r.text()
                await env.settle()
                yield env
            finally:
                for replica in reversed(env.replicas):
                    await replica.stop()
                await http.close()
                await kube.close()
    finally:
        await runner.cleanup()
