"""Shared pieces of the operator integration tests: the embedded API server with a ``sim`` node, a real
operator talking to it through kubernetes_asyncio, and a fake data-plane gateway for HTTP hooks."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from agent_sandbox.common import vocabulary as v
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.kube.client import KubeClient, pods_path
from agent_sandbox.operator.services.models import Caller, CreatePoolRequest
from agent_sandbox.operator.settings import OperatorSettings

SIM_SETTINGS = {
    "pull_delay": 0.05, "start_delay": 0.05, "crash_after": 0.3, "max_pods": 3000,
    "crash_backoff_base": 0.2, "crash_backoff_cap": 0.8, "pull_backoff_base": 0.2, "pull_backoff_cap": 0.8,
    "err_image_pull_display": 0.2, "heartbeat_interval": 1.0, "max_grace": 0.5, "status_writers": 16,
}
IDLE = "registry.local/idle:1"
WORK = "python:3.11"
CALLER = Caller(namespace="default", team="team-a", user="alice")
ADMIN_KEY = "asb_" + "0123456789" * 4


@dataclass
class Gateway:
    """Stands in for Envoy: records post-start hook calls, fails paths containing 'fail'."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.path, body))
        return web.Response(status=500 if "fail" in request.path else 200)


@contextlib.asynccontextmanager
async def serve_gateway() -> AsyncIterator[Gateway]:
    """A :class:`Gateway` listening on a loopback ephemeral port (its ``url`` set)."""
    gateway = Gateway()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", gateway.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gateway.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield gateway
    finally:
        await runner.cleanup()


@dataclass
class OpEnv:
    cluster: LocalCluster
    operator: Operator
    gateway: Gateway
    kube: KubeClient
    state_dir: pathlib.Path

    async def create_pool(self, name: str, replicas: int = 2, *, image: str = WORK, idle: str = IDLE,
                          **spec: Any) -> dict[str, Any]:
        req = CreatePoolRequest(name=name, replicas=replicas, spec={
            "idleImage": idle, "template": {"spec": {"containers": [{"name": "main", "image": image},
                                                                    {"name": "side", "image": "busybox:1"}]}},
            **spec})
        return await self.operator.pool_service.create(req, CALLER)

    async def pods(self, pool: str) -> list[dict[str, Any]]:
        listing = await self.kube.list(pods_path("default"), label_selector=v.pool_selector(pool))
        return listing.get("items") or []

    def counts(self, pool: str) -> dict[str, int]:
        return self.operator.pool_service.counts("default", pool)

    async def wait_idle(self, pool: str, n: int, within: float = 20.0) -> None:
        await wait_until(lambda: self.counts(pool)["idle"] == n and self.counts(pool)["unavailableIdle"] == 0
                         and sum(self.counts(pool).values()) - self.counts(pool)["unavailableIdle"] == n,
                         within, f"{n} ready idle pods in {pool}")


async def wait_until(cond: Callable[[], bool | Awaitable[bool]], within: float = 15.0, what: str = "condition",
                     interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = cond()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def operator_settings(cluster: LocalCluster, **overrides: Any) -> OperatorSettings:
    base: dict[str, Any] = {
        "kubeconfig": str(cluster.kubeconfig), "metrics_listen": "127.0.0.1:0", "cluster_id": "it",
        "lease_namespace": "default", "reconcile_requeue_s": 1.0, "unhealthy_idle_grace_s": 2.0,
        "idle_check_interval_s": 0.5,
    }
    base.update(overrides)
    return OperatorSettings(**base)


def write_sim_settings(state_dir: pathlib.Path) -> None:
    """The in-process cluster runs its node agent in ``<state_dir>/node``, which reads ``sim.yaml`` there."""
    (state_dir / "node").mkdir(parents=True, exist_ok=True)
    (state_dir / "node" / "sim.yaml").write_text(yaml.safe_dump(SIM_SETTINGS))


@contextlib.asynccontextmanager
async def sim_cluster(state_dir: pathlib.Path, **kwargs: Any) -> AsyncIterator[LocalCluster]:
    write_sim_settings(state_dir)
    async with LocalCluster(state_dir=state_dir, persist=False, node="sim", **kwargs) as cluster:
        yield cluster
