"""Benchmark: ``pods/exec`` through the embedded API server, as the operator's exec hooks use it.

Starts the embedded control plane in-process with one node agent (``local``: a real bubblewrap sandbox on the
host image; ``sim``: a host process in a scratch directory), one running pod, and measures with
kubernetes_asyncio's ``WsApiClient`` over the kubeconfig's TLS URL (the operator's path):

1. ``--round-trips N``: sequential ``sh -c true`` execs, connect → exit Status; p50/p90/p99.
2. ``--concurrent C``: C execs at once, total wall time.
3. ``--stream-mb M``: M MiB of stdout from ``head -c`` streamed to the client; MiB/s.

Prints one JSON object per node kind.

    .venv/bin/python bench/exec/run.py --node local --node sim --round-trips 100 --concurrent 20 --stream-mb 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.stream import WsApiClient

from agent_sandbox.localcluster.app import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers
from benchstats import percentiles

IMAGE = {"local": "host", "sim": "bench:1"}


async def exec_once(conf: client.Configuration, command: list[str]) -> tuple[int, float]:
    """Bytes of stdout and seconds from connect to the exit Status."""
    started = time.perf_counter()
    received = 0
    async with WsApiClient(configuration=conf) as ws:
        connect = await client.CoreV1Api(api_client=ws).connect_get_namespaced_pod_exec(
            "bench", "default", command=command, stdout=True, stderr=True, stdin=False, tty=False,
            _preload_content=False)
        async with connect as sock:
            async for msg in sock:
                if msg.data[:1] == b"\x01":
                    received += len(msg.data) - 1
                elif msg.data[:1] == b"\x03":
                    assert json.loads(msg.data[1:])["status"] == "Success", msg.data
    return received, time.perf_counter() - started


async def bench(kind: str, round_trips: int, concurrent: int, stream_mb: int) -> dict[str, Any]:
    async with LocalCluster(node=kind, node_name=f"bench-{kind}") as cluster:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        async with client.ApiClient(conf) as api:
            core = client.CoreV1Api(api)
            await core.create_namespaced_pod("default", {"metadata": {"name": "bench"}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": IMAGE[kind], "command": ["sleep", "3600"]}]}})
            deadline = time.monotonic() + 60
            while (await core.read_namespaced_pod("bench", "default")).status.phase != "Running":
                if time.monotonic() > deadline:
                    raise RuntimeError("the bench pod never ran")
                await asyncio.sleep(0.05)
            await exec_once(conf, ["true"])  # warm-up
            trips = [(await exec_once(conf, ["sh", "-c", "true"]))[1] for _ in range(round_trips)]
            started = time.perf_counter()
            await asyncio.gather(*(exec_once(conf, ["sh", "-c", "true"]) for _ in range(concurrent)))
            burst = time.perf_counter() - started
            size = stream_mb * 1024 * 1024
            received, elapsed = await exec_once(conf, ["head", "-c", str(size), "/dev/zero"])
            assert received == size, (received, size)
    return {"node": kind, "round_trip": {"count": round_trips, **percentiles(trips)},
            "concurrent": {"count": concurrent, "wall_ms": round(burst * 1000, 1)},
            "stream": {"mib": stream_mb, "seconds": round(elapsed, 3), "mib_per_s": round(stream_mb / elapsed, 1)}}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node", action="append", choices=("local", "sim"))
    parser.add_argument("--round-trips", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--stream-mb", type=int, default=64)
    args = parser.parse_args()
    for kind in args.node or ["local", "sim"]:
        if kind == "local" and shutil.which("bwrap") is None:
            print(json.dumps({"node": kind, "skipped": "bubblewrap is not installed"}))
            continue
        print(json.dumps(await bench(kind, args.round_trips, args.concurrent, args.stream_mb)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
