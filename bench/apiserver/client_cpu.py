"""Client-side CPU per API request: aiohttp's client against our lean HTTP/1.1 pool (``kubehttp``).

Against the embedded API server in a subprocess (TLS, bearer token, durable writes), both clients send the
same merge PATCH of one ConfigMap (no resourceVersion, so none conflicts) at the given concurrency, taking
turns, after a warm-up that opens their connections. Reports this process's CPU per request and the wall
time per request for each; the server's work is the same for both, so the difference is the client's.

    uv run python bench/apiserver/client_cpu.py [--requests 3000] [--concurrency 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from agent_sandbox.common import kubehttp
from agent_sandbox.localcluster.app import LocalClusterProcess

PATH = "/api/v1/namespaces/default/configmaps/bench"


async def measure(send: Callable[[int], Awaitable[Any]], requests: int, concurrency: int) -> dict[str, float]:
    await asyncio.gather(*(send(i) for i in range(concurrency)))  # warm: one connection per concurrent request
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await send(i)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return {"cpu_us_per_request": round((time.process_time() - cpu0) / requests * 1e6, 1),
            "wall_us_per_request": round((time.perf_counter() - wall0) / requests * 1e6, 1)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with LocalClusterProcess(state_dir=Path(tempfile.mkdtemp(prefix="bench-client-")), node="none") as cluster:
        cfg = type.__call__(k8s.Configuration)
        await k8s_config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg,
                                          persist_config=False)
        auth = await kubehttp.authorization(cfg)
        lean = kubehttp.Http1Pool(str(cfg.host), ssl_context=kubehttp.ssl_context(cfg))
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, ssl=kubehttp.ssl_context(cfg)),
                                        trust_env=False)
        headers = {"Authorization": auth or "", "Content-Type": kubehttp.MERGE_PATCH, "Accept": "application/json"}
        created = await lean.request("POST", "/api/v1/namespaces/default/configmaps", authorization=auth,
                                     body=orjson.dumps({"metadata": {"name": "bench"}, "data": {"n": "0"}}))
        assert created.status == 201, created.body

        async def via_lean(i: int) -> None:
            resp = await lean.request("PATCH", PATH, body=orjson.dumps({"data": {"n": str(i)}}),
                                      content_type=kubehttp.MERGE_PATCH, authorization=auth)
            assert resp.status == 200, resp.body
            orjson.loads(resp.body)

        async def via_aiohttp(i: int) -> None:
            async with session.patch(str(cfg.host) + PATH, data=orjson.dumps({"data": {"n": str(i)}}),
                                     headers=headers) as resp:
                assert resp.status == 200
                orjson.loads(await resp.read())

        results: dict[str, list[dict[str, float]]] = {"aiohttp": [], "kubehttp": []}
        try:
            for _ in range(args.rounds):
                results["aiohttp"].append(await measure(via_aiohttp, args.requests, args.concurrency))
                results["kubehttp"].append(await measure(via_lean, args.requests, args.concurrency))
        finally:
            await session.close()
            await lean.close()
    return {"benchmark": "apiserver-client-cpu", "requests": args.requests, "concurrency": args.concurrency,
            "results": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    print(json.dumps(uvloop.run(main(parser.parse_args())), indent=2))
