"""The chart's pods, run as real processes: does what the chart renders actually start and work together?

Each container runs its image's command with exactly the rendered args, the env the rendered Secret feeds it,
and the pod's volumes where the container mounts them, after the pod's init containers ran (the one that
writes Envoy's config with the extproc token: Envoy only routes if it got the token right). Two things
stand in for the cluster: the embedded control plane replaces the Kubernetes API (``--kubeconfig``
appended through the chart's ``extraArgs``), and the operator dials extproc on loopback instead of through
the Service DNS name.
Listeners bind 127.0.0.1 on free ports (``listenAddress`` and the port values).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from helm_worker import (
    CRD_DIR,
    Rendered,
    container_env,
    container_port,
    load_chart,
    local_args,
    render,
    run_init_containers,
)

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.ctrlplane.client import ControlPlaneClient
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.kube.client import KubeClient, pods_path, pools_path, templates_path

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

BIN = Path(sys.executable).parent  # the image's PATH: agent-sandbox and envoy
POD_CONTAINERS = {"agent-sandbox-data-plane": ("envoy", "extproc"), "agent-sandbox-operator": ("operator",)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    rendered: Rendered
    kube: KubeClient
    logs: Path
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    def port(self, deployment: str, container: str, name: str) -> int:
        return container_port(self.rendered.container(deployment, container), name)

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.logs.glob("*.log")))


async def _start_container(r: Rendered, container: dict[str, Any], workdir: Path,
                           logs: Path) -> asyncio.subprocess.Process:
    argv = local_args(container, workdir)
    command = [str(BIN / argv[0]), *argv[1:]] if container.get("command") else [str(BIN / "agent-sandbox"), *argv]
    env = {k: val for k, val in os.environ.items() if not k.startswith("AGENT_SANDBOX_")}
    env.update(container_env(r, container))
    with (logs / f"{container['name']}.log").open("wb") as out:
        return await asyncio.create_subprocess_exec(*command, stdout=out, stderr=out, env=env,
                                                    start_new_session=True)


async def _probe_ok(container: dict[str, Any]) -> bool:
    probe = container["readinessProbe"]
    if "tcpSocket" in probe:
        port = container_port(container, probe["tcpSocket"]["port"])
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        return False
    get = probe["httpGet"]
    url = f"http://127.0.0.1:{container_port(container, get['port'])}{get['path']}"
    with contextlib.suppress(aiohttp.ClientError, OSError):
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status == 200
    return False


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster(crd_dir=CRD_DIR) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pods(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    control = free_port()
    kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    values = {
        "listenAddress": "127.0.0.1",
        "metrics": {"enabled": True},
        "operator": {"ports": {"api": free_port(), "e2b": free_port(), "metrics": free_port()},
                     "extraArgs": [kubeconfig, f"--extproc-url=127.0.0.1:{control}"]},
        "dataPlane": {"envoy": {"port": free_port(), "adminPort": free_port()},
                      "extproc": {"port": free_port(), "controlPort": control, "healthPort": free_port(),
                                  "extraArgs": [kubeconfig]}},
    }
    with load_chart() as chart:
        rendered = render(chart, values)
    workdir = tmp_path_factory.mktemp("pods")
    running = Running(rendered, await KubeClient.from_kubeconfig(str(cluster.kubeconfig)), workdir)
    try:
        for deployment, names in POD_CONTAINERS.items():
            await asyncio.to_thread(run_init_containers, rendered, deployment, workdir)
            for name in names:
                running.processes[name] = await _start_container(
                    rendered, rendered.container(deployment, name), workdir, workdir)
        containers = [rendered.container(d, n) for d, names in POD_CONTAINERS.items() for n in names]
        for _ in range(300):
            exited = {n: p.returncode for n, p in running.processes.items() if p.returncode is not None}
            assert not exited, f"containers exited {exited}\n{running.log_tail()}"
            if all([await _probe_ok(c) for c in containers]):
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"readiness probes did not pass within 60 s\n{running.log_tail()}")
        yield running
    finally:
        for proc in running.processes.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in running.processes.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        await running.kube.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[int]:
    """A stand-in for a sandbox's envd: answers with the path it saw."""
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


async def test_every_readiness_probe_passes(pods):
    for deployment, names in POD_CONTAINERS.items():
        for name in names:
            assert await _probe_ok(pods.rendered.container(deployment, name)), name


async def test_data_plane_routes_a_sandbox_through_envoy(pods, upstream):
    sandbox_id = new_sandbox_id("local")
    pod = await pods.kube.create(pods_path("default"), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "sbx-", "labels": {
            v.LABEL_SANDBOX_POOL: "routing", v.LABEL_SANDBOX_PHASE: "running", v.LABEL_SANDBOX_ID: sandbox_id}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
    await pods.kube.merge_patch(pods_path("default", pod["metadata"]["name"], "status"),
                                {"status": {"phase": "Running", "podIP": "127.0.0.1"}})
    envoy = pods.port("agent-sandbox-data-plane", "envoy", "http-data")
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(upstream)}
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            async with s.get(f"http://127.0.0.1:{envoy}/files?path=/tmp", headers=headers) as resp:
                if resp.status == 200:
                    assert await resp.json() == {"path": "/files?path=/tmp"}
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"sandbox never became routable (last {resp.status})\n{pods.log_tail()}")
        unknown = {"x-sandbox-id": new_sandbox_id("local"), "x-sandbox-port": "49983"}
        async with s.get(f"http://127.0.0.1:{envoy}/", headers=unknown) as resp:
            assert (resp.status, await resp.json()) == (404, {"error": "sandbox not found"})


async def test_control_plane_takes_the_secrets_admin_key_only(pods):
    target = f"127.0.0.1:{pods.port('agent-sandbox-data-plane', 'extproc', 'grpc-control')}"
    admin_key = pods.rendered.secret_value("agent-sandbox-credentials", "admin-key")
    async with ControlPlaneClient(target, admin_key, timeout=5) as client:
        assert await client.get_last_active() is not None
    async with ControlPlaneClient(target, "asb_" + "0" * 40, timeout=5) as client:
        assert await client.get_last_active() is None


async def test_operator_fills_the_sample_pool(pods):
    template = pods.rendered.get("SandboxTemplate", "base")
    pool = pods.rendered.get("SandboxPool", "base")
    await pods.kube.create(templates_path(), template)
    await pods.kube.create(pools_path(pool["metadata"]["namespace"]), pool)
    for _ in range(150):
        listing = await pods.kube.list(pods_path("default"), label_selector=v.pool_selector("base"))
        if len(listing.get("items") or []) == pool["spec"]["replicas"]:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"the operator did not create the sample pool's pods\n{pods.log_tail()}")
    created = listing["items"][0]["spec"]
    assert created["initContainers"][0]["name"] == "envd-injector"
    assert created["containers"][0]["image"] == pool["spec"]["idleImage"]  # IdleImage policy: idle until claimed


async def test_metrics_answer_the_service_monitor_scrape(pods):
    """Scrape both targets as Prometheus would from the ServiceMonitor: Service port -> container, bearer."""
    (endpoint,) = pods.rendered.get("ServiceMonitor", "agent-sandbox")["spec"]["endpoints"]
    bearer = pods.rendered.secret_value(endpoint["authorization"]["credentials"]["name"],
                                        endpoint["authorization"]["credentials"]["key"])
    targets = {"agent-sandbox-operator-metrics": ("agent-sandbox-operator", "operator", "agentsandbox_"),
               "agent-sandbox-extproc-metrics": ("agent-sandbox-data-plane", "extproc", "agentsandbox_extproc_")}
    async with aiohttp.ClientSession() as s:
        for service, (deployment, container, prefix) in targets.items():
            (svc_port,) = [p for p in pods.rendered.get("Service", service)["spec"]["ports"]
                           if p["name"] == endpoint["port"]]
            url = f"http://127.0.0.1:{pods.port(deployment, container, svc_port['targetPort'])}{endpoint['path']}"
            async with s.get(url) as resp:
                assert resp.status == 401, service  # nobody else reads pod names and sandbox ids
            async with s.get(url, headers={"Authorization": f"Bearer {bearer}"}) as resp:
                assert resp.status == 200, service
                assert prefix in await resp.text()
