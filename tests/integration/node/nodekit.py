"""Helpers for node-agent tests: the embedded API server with a node agent task, pod bodies, polling."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes_asyncio import client, config

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.localcluster.node import run_node

FAST_BACKOFF = {
    "crash_backoff_base": 0.4,
    "crash_backoff_cap": 1.6,
    "pull_backoff_base": 0.4,
    "pull_backoff_cap": 1.6,
    "err_image_pull_display": 0.2,
    "heartbeat_interval": 1.0,
    "max_grace": 5.0,
}


@dataclass
class NodeEnv:
    cluster: LocalCluster
    api: client.ApiClient
    core: client.CoreV1Api
    node_name: str
    state_dir: pathlib.Path
    task: asyncio.Task[None]

    async def restart_node(self, kind: str) -> None:
        await stop_task(self.task)
        self.task = start_node(kind, self.cluster.kubeconfig, self.node_name, self.state_dir, self.cluster)


def start_node(kind: str, kubeconfig: pathlib.Path, node_name: str, state_dir: pathlib.Path,
               cluster: LocalCluster | None = None) -> asyncio.Task[None]:
    """The node agent as a task of this loop; given the in-process ``cluster``, it also serves its pods/exec."""
    register_exec = cluster.server.pod_exec.register if cluster is not None and cluster.server else None
    return asyncio.get_running_loop().create_task(
        run_node(kind, kubeconfig, node_name, state_dir, register_exec=register_exec))


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def write_settings(state_dir: pathlib.Path, kind: str, settings: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / f"{kind}.yaml").write_text(yaml.safe_dump(settings))


@contextlib.asynccontextmanager
async def node_env(kind: str, state_dir: pathlib.Path, settings: dict[str, Any]) -> AsyncIterator[NodeEnv]:
    write_settings(state_dir, kind, settings)
    node_name = f"{kind}-node"
    async with LocalCluster() as cluster:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        api = client.ApiClient(conf)
        env = NodeEnv(cluster, api, client.CoreV1Api(api), node_name, state_dir,
                      start_node(kind, cluster.kubeconfig, node_name, state_dir, cluster))
        try:
            yield env
        finally:
            await stop_task(env.task)
            await api.close()



def pod_body(name: str, image: str, *, annotations: dict[str, str] | None = None, command: list[str] | None = None,
             **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if command:
        container["command"] = command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 2, **spec},
    }


async def wait_pod(core: client.CoreV1Api, name: str, check: Callable[[client.V1Pod], bool], *,
                   namespace: str = "default", within: float = 15.0, seen: list[Any] | None = None,
                   record: Callable[[client.V1Pod], Any] | None = None) -> client.V1Pod:
    """Poll the pod through the real client until ``check`` holds; ``record`` collects observations."""
    deadline = time.monotonic() + within
    pod = None
    while time.monotonic() < deadline:
        pod = await core.read_namespaced_pod(name, namespace)
        if record is not None and seen is not None:
            value = record(pod)
            if not seen or seen[-1] != value:
                seen.append(value)
        if check(pod):
            return pod
        await asyncio.sleep(0.03)
    raise AssertionError(f"pod {name} never satisfied the check; last status: {pod.status if pod else None}")


async def wait_gone(core: client.CoreV1Api, name: str, namespace: str = "default", within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await core.read_namespaced_pod(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        await asyncio.sleep(0.05)
    raise AssertionError(f"pod {name} was never deleted")


def main_status(pod: client.V1Pod) -> client.V1ContainerStatus | None:
    statuses = pod.status.container_statuses or []
    return statuses[0] if statuses else None


def is_running(pod: client.V1Pod) -> bool:
    st = main_status(pod)
    return pod.status.phase == "Running" and st is not None and st.ready and st.state.running is not None


def waiting_reason(pod: client.V1Pod) -> str | None:
    st = main_status(pod)
    return st.state.waiting.reason if st and st.state and st.state.waiting else None


TEST_ENTRYPOINT = """#!/bin/sh
# Test bundle entrypoint: idle images sleep; others serve their root's identity over HTTP on the pod IP.
if [ "$AGENT_SANDBOX_IS_IDLE_IMAGE" = "true" ]; then exec sleep 2147483647; fi
mkdir -p /srv/www
cat /etc/image-name > /srv/www/index.html 2>/dev/null || echo host > /srv/www/index.html
exec busybox httpd -f -p "$AGENT_SANDBOX_POD_IP:8000" -h /srv/www
"""


def make_busybox_rootfs(root: pathlib.Path) -> pathlib.Path:
    """A minimal image: static busybox with relative applet symlinks (tooling.md §8)."""
    import shutil
    import subprocess

    for sub in ("bin", "proc", "dev", "tmp", "etc", "srv"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is required"
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "image-name").write_text("busybox-root\n")
    return root


def prepare_local_state(base: pathlib.Path) -> pathlib.Path:
    state = base / "state"
    bundle = base / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "agent-sandbox-entrypoint.sh").write_text(TEST_ENTRYPOINT)
    rootfs = make_busybox_rootfs(base / "rootfs-busybox")
    state.mkdir()
    (state / "images.yaml").write_text(yaml.safe_dump({"busybox-test:1": {"rootfs": str(rootfs)}}))
    write_settings(state, "local", {**FAST_BACKOFF, "bundle_dir": str(bundle), "pids_limit": 64})
    return state



def pids_in_namespace(ns_inode: int) -> list[int]:
    """Host pids of every process in the pid namespace ``ns_inode``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "ns" / "pid").stat().st_ino == ns_inode:
                    found.append(int(entry.name))
    return found


def process_names(ns_inode: int) -> set[str]:
    names = set()
    for pid in pids_in_namespace(ns_inode):
        with contextlib.suppress(OSError):
            names.add(pathlib.Path(f"/proc/{pid}/comm").read_text().strip())
    return names
