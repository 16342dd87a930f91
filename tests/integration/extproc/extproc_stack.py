"""Helpers of the data-plane tests: the embedded control plane, real aiohttp upstreams
standing in for sandbox pods, the extproc process and a real Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from kubernetes_asyncio import client, config

from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.common.subprocesses import terminate
from agent_sandbox.common.vocabulary import LABEL_SANDBOX_ID, LABEL_SANDBOX_PHASE, LABEL_SANDBOX_POOL
from agent_sandbox.extproc.envoy_config import EnvoyPorts, extproc_token
from agent_sandbox.extproc.envoy_process import EnvoyProcess
from agent_sandbox.localcluster.app import LocalCluster

ADMIN_KEY = "test-admin-key-0123456789"
#: What Envoy presents to extproc (derived from the admin key).
ENVOY_TOKEN = extproc_token(ADMIN_KEY)
CLUSTER_ID = "test1"
NAMESPACE = "default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- upstream: a stand-in for a sandbox pod -------------------------------------------------------
def upstream_app(name: str) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({
            "upstream": name,
            "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
        })

    async def stream(request: web.Request) -> web.StreamResponse:
        chunks = int(request.query.get("chunks", "3"))
        gap = float(request.query.get("gap", "1"))
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for i in range(chunks):
            await resp.write(f"chunk {i}\n".encode())
            await asyncio.sleep(gap)
        await resp.write(b"done\n")
        await resp.write_eof()
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await sock.send_str(f"{name}:{msg.data}")
        return sock

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@dataclass
class Upstream:
    name: str
    ip: str
    port: int
    runner: web.AppRunner


async def start_upstream(name: str, ip: str = "127.0.0.1") -> Upstream:
    runner = web.AppRunner(upstream_app(name), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, ip, port).start()
    return Upstream(name, ip, port, runner)


# ---- extproc ----------------------------------------------------------------------------------------
@dataclass
class ExtprocProcess:
    kubeconfig: Path
    listen_port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    workers: int = 1
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None

    @property
    def control_target(self) -> str:
        return f"127.0.0.1:{self.control_port}"

    async def start(self, ready_within: float = 30.0, *, wait_ready: bool = True) -> None:
        env = dict(os.environ, AGENT_SANDBOX_ADMIN_KEY=ADMIN_KEY, AGENT_SANDBOX_LOG_LEVEL="warning", **self.env)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_sandbox.extproc",
            "--kubeconfig", str(self.kubeconfig),
            "--listen", f"127.0.0.1:{self.listen_port}",
            "--control-listen", self.control_target,
            "--health-listen", f"127.0.0.1:{self.health_port}",
            "--workers", str(self.workers), "--cluster-id", CLUSTER_ID, *self.extra,
            env=env,
        )
        if not wait_ready:
            return
        deadline = time.monotonic() + ready_within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.returncode is None, "extproc exited during start-up"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{self.health_port}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError("extproc did not become ready")

    async def stop(self) -> None:
        proc, self.process = self.process, None
        await terminate(proc, 10.0)

    async def kill(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---- pods ---------------------------------------------------------------------------------------------
class Pods:
    """Creates sandbox pods through the real Kubernetes client and sets their status like a kubelet."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    async def create(self, *, ip: str | None, phase: str = "running", sandbox_id: str | None = None,
                     pod_running: bool = True, annotations: dict[str, str] | None = None) -> tuple[str, str]:
        name = f"sbx-{secrets.token_hex(5)}"
        labels = {LABEL_SANDBOX_POOL: "pool", LABEL_SANDBOX_PHASE: phase}
        if sandbox_id:
            labels[LABEL_SANDBOX_ID] = sandbox_id
        await self.core.create_namespaced_pod(NAMESPACE, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        })
        if ip:
            await self.set_status(name, ip, pod_running)
        return NAMESPACE, name

    async def set_status(self, name: str, ip: str, running: bool = True) -> None:
        await self.core.patch_namespaced_pod_status(
            name, NAMESPACE, {"status": {"phase": "Running" if running else "Pending", "podIP": ip}},
            _content_type="application/merge-patch+json",
        )

    async def relabel(self, name: str, *, phase: str, sandbox_id: str | None) -> None:
        await self.core.patch_namespaced_pod(
            name, NAMESPACE,
            {"metadata": {"labels": {LABEL_SANDBOX_PHASE: phase, LABEL_SANDBOX_ID: sandbox_id}}},
            _content_type="application/merge-patch+json",
        )


def sandbox_id() -> str:
    return new_sandbox_id(CLUSTER_ID)


async def wait_for(predicate, within: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns a truthy value."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s (last: {last!r})")


@dataclass
class Stack:
    cluster: LocalCluster
    api: client.ApiClient
    pods: Pods
    extproc: ExtprocProcess
    envoy: EnvoyProcess
    upstreams: list[Upstream]
    http: aiohttp.ClientSession

    async def get(self, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict | str]:
        async with self.http.get(self.envoy.url + path, headers=headers or {}) as resp:
            text = await resp.text()
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, text


@contextlib.asynccontextmanager
async def running_stack(workdir: Path, *, extra_args: tuple[str, ...] = (),
                        extra_env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    """Embedded control plane, two upstreams, extproc (as a process) and a real Envoy."""
    async with LocalCluster() as cluster:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        api = client.ApiClient(conf)
        upstreams = [await start_upstream("a"), await start_upstream("b", "127.0.0.2")]
        extproc = ExtprocProcess(cluster.kubeconfig, extra=list(extra_args), env=dict(extra_env or {}))
        await extproc.start()
        envoy = EnvoyProcess(
            EnvoyPorts(listen_port=free_port(), admin_port=free_port(), extproc_port=extproc.listen_port,
                       extproc_token=ENVOY_TOKEN, listen_address="127.0.0.1"),
            workdir / "envoy",
        )
        await envoy.start()
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            yield Stack(cluster, api, Pods(api), extproc, envoy, upstreams, http)
        finally:
            await http.close()
            await envoy.stop()
            await extproc.stop()
            for u in upstreams:
                await u.runner.cleanup()
            await api.close()
