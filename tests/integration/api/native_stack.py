"""The real API servers over a real operator, on the embedded control plane with a ``sim`` node.

Everything runs on one event loop in a background thread, so sync clients (schemathesis, requests,
E2B SDK subprocesses) and async tests can all talk to it; ``run`` executes a coroutine on the
stack's loop (e.g. to create keys with a chosen expiry directly in the store). The cluster and
operator come from the operator tests' fixtures module (imported, not copied). Pools built by
:meth:`NativeStack.pool_body` swap ``IDLE`` → ``WORK`` images in place like real pools.

Used by ``tests/integration/api``, ``tests/integration/e2b_api`` and ``tests/integration/terminal``
(they put this folder on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import requests
from aiohttp import web

from agent_sandbox.ctrlplane.client import ControlPlaneClient
from agent_sandbox.extproc.envoy_config import EnvoyPorts
from agent_sandbox.extproc.envoy_process import EnvoyProcess
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.api.envd_access import DEFAULT_URL_TEMPLATE
from agent_sandbox.operator.api.startup import ApiServers, ApiServerSettings, start_api_servers
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.auth.keystore import ApiKeyStore
from agent_sandbox.operator.kube.client import KubeClient


def _load(name: str, relative: str) -> Any:
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


OPS = _load("operator_it_stack", "operator/operator_stack.py")
T = TypeVar("T")
JWT_SECRET = b"integration-secret-0123456789abcdef"
CLUSTER_ID = "it"
V = {"X-Agent-Sandbox-Client-Version": "1.0.0"}


class NativeStack:
    def __init__(self, *, envd_url_template: str = DEFAULT_URL_TEMPLATE, envd_secret: str = "",
                 node: str = "sim", data_plane: bool = False) -> None:
        """``node="local"`` runs real sandboxes (bubblewrap, envd inside); ``data_plane`` adds real extproc +
        Envoy in front of them (the gateway of hooks and of E2B SDK envd traffic) instead of the fake gateway."""
        self.admin_key = "adm-" + secrets.token_hex(16)
        self.envd_secret = envd_secret
        self.node = node
        #: (idle, workload) images of the pools this stack creates: real root filesystems on a local node.
        self.images = (OPS.IDLE, OPS.WORK) if node == "sim" else ("agent-sandbox/idle:1", "host")
        self.data_plane = data_plane
        self.cluster_id = CLUSTER_ID
        self.gateway_url = ""
        self.envd_url_template = envd_url_template
        self.url = ""
        self.e2b_url = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="native-stack", daemon=True)
        self._exit = contextlib.AsyncExitStack()
        self._state = Path(tempfile.mkdtemp(prefix="api-stack-"))
        self.operator: Operator | None = None
        self.kube: KubeClient | None = None
        self.servers: ApiServers | None = None
        self.gateway: Any = None
        self.cluster: LocalCluster | None = None
        self.keys: ApiKeyStore | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> NativeStack:
        self._thread.start()
        try:
            self.run(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        if self.node == "sim":
            cluster = await self._exit.enter_async_context(OPS.sim_cluster(self._state))
        else:
            cluster = await self._exit.enter_async_context(
                LocalCluster(state_dir=self._state, persist=False, node=self.node))
        self.cluster = cluster
        dataplane = None
        if self.data_plane:
            dataplane = await self._start_data_plane(cluster.kubeconfig)
        else:
            await self._start_fake_gateway()
        self.operator = Operator(OPS.operator_settings(cluster, gateway_base_url=self.gateway_url,
                                                       admin_key=self.admin_key, cluster_id=self.cluster_id,
                                                       secret=self.envd_secret or None),
                                 dataplane=dataplane)
        await self.operator.start()
        self._exit.push_async_callback(self.operator.stop)
        assert self.operator.client is not None
        self.kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        self._exit.push_async_callback(self.kube.close)
        self.servers = await start_api_servers(self.operator.client, ApiServerSettings(
            admin_key=self.admin_key, secret=JWT_SECRET.decode(), envd_secret=self.envd_secret,
            local_cluster_id=self.cluster_id, apikey_cache_ttl=1.0, api_host="127.0.0.1", api_port=0,
            e2b_host="127.0.0.1", e2b_port=0,
            envd_url_template=self.envd_url_template.replace("{gateway}", self.gateway_url)),
            sandboxes=self.operator.sandboxes, pools=self.operator.pool_service, clusters=self.operator.clusters)
        self._exit.push_async_callback(self.servers.stop)
        self.keys = self.servers.native.keys if self.servers.native else None
        self.url = self.servers.address(0)
        self.e2b_url = self.servers.address(1)

    async def _start_fake_gateway(self) -> None:
        self.gateway = OPS.Gateway()
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.gateway.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._exit.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.gateway_url = self.gateway.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def _start_data_plane(self, kubeconfig: Path) -> Any:
        xp = _load("extproc_it_stack", "extproc/extproc_stack.py")
        self.cluster_id = xp.CLUSTER_ID
        env = {"AGENT_SANDBOX_SECRET": self.envd_secret} if self.envd_secret else {}
        extproc = xp.ExtprocProcess(kubeconfig, extra=["--check-envd-token"] if self.envd_secret else [], env=env)
        await extproc.start()
        self._exit.push_async_callback(extproc.stop)
        envoy = EnvoyProcess(EnvoyPorts(listen_port=xp.free_port(), admin_port=xp.free_port(),
                                        extproc_port=extproc.listen_port, listen_address="127.0.0.1",
                                        extproc_token=xp.ENVOY_TOKEN),
                             self._state / "envoy")
        await envoy.start()
        self._exit.push_async_callback(envoy.stop)
        self.gateway_url = envoy.url
        return ControlPlaneClient(extproc.control_target, xp.ADMIN_KEY)

    def stop(self) -> None:
        try:
            if self._thread.is_alive():
                self.run(self._exit.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            shutil.rmtree(self._state, ignore_errors=True)

    # ---- helpers for tests -------------------------------------------------------------------
    def admin(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key, **V}

    def tenant_key(self, user: str, team: str) -> str:
        r = requests.post(f"{self.url}/v1/admin/api-keys", json={"user": user, "team": team},
                          headers=self.admin(), timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["apiKey"]

    def pool_body(self, name: str, replicas: int, **spec: Any) -> dict[str, Any]:
        idle, work = self.images
        return {"name": name, "replicas": replicas, "spec": {
            "idleImage": idle, "template": {"spec": {"containers": [
                {"name": "main", "image": work, "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]}},
            **spec}}

    def create_pool(self, name: str, replicas: int, headers: dict[str, str] | None = None, **spec: Any) -> None:
        r = requests.post(f"{self.url}/v1/sandboxpools", json=self.pool_body(name, replicas, **spec),
                          headers=headers or self.admin(), timeout=10)
        assert r.status_code == 201, r.text
        self.wait_idle(name, replicas)

    def wait_idle(self, pool: str, n: int, within: float = 60.0) -> None:
        assert self.operator is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            counts = self.operator.pool_service.counts("default", pool)
            if counts["idle"] >= n and counts["unavailableIdle"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"pool {pool} did not reach {n} idle pods: {counts}")
