"""Benchmark: authenticated native-API requests per second (tenant key, cached validation).

Starts the embedded control plane and the native API in-process, creates one tenant key, then
fires ``--requests`` ``GET /v1/auth/whoami`` calls with ``--concurrency`` in flight and prints one
JSON line: throughput and latency percentiles. Also measures the first (uncached) validation.

    .venv/bin/python bench/api/bench_native_auth.py --requests 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time

import aiohttp
from aiohttp import web

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.api.server import build_native_app
from agent_sandbox.operator.api.startup import ApiServerSettings, build_native_deps
from agent_sandbox.operator.auth.identity import Role
from agent_sandbox.operator.kube.client import KubeClient


async def main(requests: int, concurrency: int) -> dict[str, float]:
    async with LocalCluster() as cluster:
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        deps = build_native_deps(kube, ApiServerSettings(admin_key=secrets.token_hex(16), local_cluster_id="b1"))
        runner = web.AppRunner(build_native_app(deps), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/auth/whoami"
        key, _ = await deps.keys.create(role=Role.TENANT, namespace="", user="bench", team="bench")
        headers = {"X-API-Key": key}
        latencies: list[float] = []
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
                t0 = time.perf_counter()
                async with session.get(url, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                first_ms = (time.perf_counter() - t0) * 1000
                remaining = iter(range(requests))

                async def worker() -> None:
                    for _ in remaining:
                        start = time.perf_counter()
                        async with session.get(url, headers=headers) as resp:
                            await resp.read()
                            assert resp.status == 200
                        latencies.append(time.perf_counter() - start)

                t1 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                elapsed = time.perf_counter() - t1
        finally:
            await runner.cleanup()
            await kube.close()
    q = statistics.quantiles(latencies, n=100)
    return {"benchmark": "native_auth_whoami", "requests": requests, "concurrency": concurrency,
            "seconds": round(elapsed, 3), "requests_per_s": round(requests / elapsed, 1),
            "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
            "first_uncached_ms": round(first_ms, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.requests, args.concurrency))))
