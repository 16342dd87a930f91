"""The node agent keeps working while the API server misbehaves or restarts."""

from __future__ import annotations

import asyncio
import socket

from kubernetes_asyncio import client, config
from nodekit import FAST_BACKOFF, is_running, pod_body, start_node, stop_task, wait_gone, wait_pod, write_settings

from agent_sandbox.localcluster.app import LocalCluster, LocalClusterProcess


async def core_api(kubeconfig) -> tuple[client.ApiClient, client.CoreV1Api]:
    conf = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)
    api = client.ApiClient(conf)
    return api, client.CoreV1Api(api)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_dropped_watches_errors_and_conflicts(tmp_path) -> None:
    write_settings(tmp_path, "sim", {**FAST_BACKOFF, "start_delay": 0.05})
    async with LocalCluster() as cluster:
        api, core = await core_api(cluster.kubeconfig)
        node = start_node("sim", cluster.kubeconfig, "flaky-node", tmp_path)
        try:
            await cluster.set_faults({"watch_drop_after_events": 3, "error_probability": 0.15,
                                      "conflict_probability": 0.1})
            names = [f"flaky-{i}" for i in range(15)]
            for name in names:
                for _ in range(20):  # the test's own writes see the injected faults too
                    try:
                        await core.create_namespaced_pod("default", pod_body(name, "busybox:1"))
                        break
                    except client.ApiException as exc:
                        if "AlreadyExists" in (exc.body or ""):
                            break
                        await asyncio.sleep(0.02)
            await cluster.set_faults({"watch_drop_after_events": 3})
            for name in names:
                await wait_pod(core, name, is_running, within=20)
        finally:
            await stop_task(node)
            await api.close()


async def test_api_server_restart(tmp_path) -> None:
    write_settings(tmp_path / "node", "sim", {**FAST_BACKOFF, "start_delay": 0.05})
    port = free_port()
    # No fixed TLS port: with a state dir the server reuses its previous one, so the kubeconfig the node holds
    # stays valid across the restart.
    server = LocalClusterProcess(state_dir=tmp_path / "cluster", port=port)
    await server.start()
    api, core = await core_api(server.kubeconfig)
    node = start_node("sim", server.kubeconfig, "restart-node", tmp_path / "node")
    try:
        await core.create_namespaced_pod("default", pod_body("before", "busybox:1"))
        await wait_pod(core, "before", is_running)
        await server.kill()
        await asyncio.sleep(0.5)  # the node sees connection errors meanwhile
        server = LocalClusterProcess(state_dir=tmp_path / "cluster", port=port)
        await server.start()
        await core.create_namespaced_pod("default", pod_body("after", "busybox:1"))
        await wait_pod(core, "after", is_running, within=20)
        await core.delete_namespaced_pod("before", "default")
        await wait_gone(core, "before", within=20)
    finally:
        await stop_task(node)
        await api.close()
        await server.stop()


async def test_watch_expiry_relists(tmp_path) -> None:
    """A tiny replay window plus dropped, slow watches make re-watches hit 410 Gone (seen in the node's
    log as "pod watch expired, re-listing"); the node re-lists and still converges."""
    write_settings(tmp_path, "sim", {**FAST_BACKOFF, "start_delay": 0.02})
    async with LocalCluster(event_log_size=5) as cluster:
        api, core = await core_api(cluster.kubeconfig)
        node = start_node("sim", cluster.kubeconfig, "gone-node", tmp_path)
        try:
            await cluster.set_faults({"watch_drop_after_events": 2, "latency_ms": {"watch": 20}})
            await asyncio.gather(*(core.create_namespaced_pod("default", pod_body(f"gone-{i}", "busybox:1"))
                                   for i in range(20)))
            for i in range(20):
                await wait_pod(core, f"gone-{i}", is_running, within=20)
        finally:
            await stop_task(node)
            await api.close()
