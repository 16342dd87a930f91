"""Cold start and in-place image swap on the ``local`` node (bubblewrap sandboxes + real envd).

Measures, through the real Kubernetes client against the embedded control plane
with a ``local`` node in the same process (as ``agent-sandbox up`` runs them):

* ``cold_start``: Pod created → status Running (sandbox process started) →
  envd ``/health`` answering at ``podIP:49983``;
* ``swap_idle_to_host``: the claim path — an idle Pod's image patched to a
  workload image → Running with the new image → envd answering;
* ``swap_host_to_busybox``: a workload-to-workload swap into a busybox root
  filesystem (envd runs from the bundle, with no library of the image).

Usage: ``uv run python bench/envd/local_coldstart.py [--iterations N]``; prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio import client, config

from agent_sandbox.common.logging import configure_logging
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.localcluster.node import run_node


def busybox_rootfs(root: pathlib.Path) -> pathlib.Path:
    for sub in ("bin", "proc", "dev", "tmp", "etc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    busybox = shutil.which("busybox")
    if busybox is None:
        raise SystemExit("busybox-static is required (apt-get install busybox-static)")
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        if not (root / "bin" / applet).exists():
            (root / "bin" / applet).symlink_to("busybox")
    return root


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 1),
        "max": round(ordered[-1], 1),
    }


async def wait_status(core: client.CoreV1Api, name: str, image: str, old_cid: str | None) -> dict[str, Any]:
    while True:
        pod = await core.read_namespaced_pod(name, "default")
        st = (pod.status.container_statuses or [None])[0]
        if st and st.image == image and st.state.running and st.container_id != old_cid:
            return {"ip": pod.status.pod_ip, "cid": st.container_id}
        await asyncio.sleep(0.005)


async def wait_envd(session: aiohttp.ClientSession, ip: str) -> None:
    while True:
        try:
            async with session.get(f"http://{ip}:49983/health") as resp:
                if resp.status < 300:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.005)


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


async def run(iterations: int) -> dict[str, Any]:
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-local-"))
    state = work / "node"
    state.mkdir()
    rootfs = busybox_rootfs(work / "busybox")
    (state / "images.yaml").write_text(yaml.safe_dump({"busybox:bench": {"rootfs": str(rootfs)}}))
    results: dict[str, dict[str, list[float]]] = {
        "cold_start": {"running_ms": [], "envd_ms": []},
        "swap_idle_to_host": {"running_ms": [], "envd_ms": []},
        "swap_host_to_busybox": {"running_ms": [], "envd_ms": []},
    }
    try:
        async with LocalCluster() as cluster:
            conf = client.Configuration()
            await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
            api = client.ApiClient(conf)
            core = client.CoreV1Api(api)
            node = asyncio.create_task(run_node("local", cluster.kubeconfig, "bench-node", state))
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
            try:
                # Warm-up: the node builds the envd bundle on first start.
                await warm(core, session)
                for i in range(iterations):
                    await one_round(core, session, i, results)
            finally:
                await session.close()
                node.cancel()
                await asyncio.gather(node, return_exceptions=True)
                await api.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"iterations": iterations,
            **{k: {m: summary(v) for m, v in d.items()} for k, d in results.items()}}


def pod(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": image}], "terminationGracePeriodSeconds": 5}}


def set_image(image: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "main", "image": image}]}}


async def warm(core: client.CoreV1Api, session: aiohttp.ClientSession) -> None:
    await core.create_namespaced_pod("default", pod("warmup", "host"))
    st = await wait_status(core, "warmup", "host", None)
    await wait_envd(session, st["ip"])
    await core.delete_namespaced_pod("warmup", "default")


async def one_round(core: client.CoreV1Api, session: aiohttp.ClientSession, i: int,
                    results: dict[str, dict[str, list[float]]]) -> None:
    name = f"cold-{i}"
    t0 = time.perf_counter()
    await core.create_namespaced_pod("default", pod(name, "host"))
    st = await wait_status(core, name, "host", None)
    results["cold_start"]["running_ms"].append(ms(t0))
    await wait_envd(session, st["ip"])
    results["cold_start"]["envd_ms"].append(ms(t0))
    await core.delete_namespaced_pod(name, "default")

    name = f"pool-{i}"
    await core.create_namespaced_pod("default", pod(name, "agent-sandbox/idle:latest"))
    idle = await wait_status(core, name, "agent-sandbox/idle:latest", None)
    t0 = time.perf_counter()
    await core.patch_namespaced_pod(name, "default", set_image("host"))
    st = await wait_status(core, name, "host", idle["cid"])
    results["swap_idle_to_host"]["running_ms"].append(ms(t0))
    await wait_envd(session, st["ip"])
    results["swap_idle_to_host"]["envd_ms"].append(ms(t0))

    t0 = time.perf_counter()
    await core.patch_namespaced_pod(name, "default", set_image("busybox:bench"))
    st2 = await wait_status(core, name, "busybox:bench", st["cid"])
    results["swap_host_to_busybox"]["running_ms"].append(ms(t0))
    await wait_envd(session, st2["ip"])
    results["swap_host_to_busybox"]["envd_ms"].append(ms(t0))
    await core.delete_namespaced_pod(name, "default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    configure_logging("warning")  # logs to stderr; stdout carries only the JSON result
    print(json.dumps(asyncio.run(run(args.iterations)), indent=2))


if __name__ == "__main__":
    main()
