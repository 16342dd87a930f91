"""A real native API server over the embedded control plane, on its own event loop in a thread.

Sync clients (schemathesis, requests) and async tests can both talk to it; ``run`` executes a
coroutine on the stack's loop (e.g. to create keys with a chosen expiry directly in the store).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.api.server import build_native_app
from agent_sandbox.operator.api.startup import ApiServerSettings, build_native_deps
from agent_sandbox.operator.auth.keystore import ApiKeyStore
from agent_sandbox.operator.kube.client import KubeClient

T = TypeVar("T")
JWT_SECRET = b"integration-secret-0123456789abcdef"


class NativeStack:
    def __init__(self) -> None:
        self.admin_key = "adm-" + secrets.token_hex(16)
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="native-stack", daemon=True)
        self._cluster: LocalCluster | None = None
        self._kube: KubeClient | None = None
        self._runner: web.AppRunner | None = None
        self.keys: ApiKeyStore | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> NativeStack:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self._cluster = LocalCluster()
        await self._cluster.start()
        self._kube = await KubeClient.from_kubeconfig(str(self._cluster.kubeconfig))
        deps = build_native_deps(self._kube, ApiServerSettings(
            admin_key=self.admin_key, secret=JWT_SECRET.decode(), local_cluster_id="c1", apikey_cache_ttl=1.0))
        self.keys = deps.keys
        self._runner = web.AppRunner(build_native_app(deps), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._kube:
            await self._kube.close()
        if self._cluster:
            await self._cluster.stop()

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
