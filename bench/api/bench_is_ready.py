"""Benchmark: ``GET /v1/sandboxes/{id}/is_ready`` — the poll of clients that create without waiting.

Runs the API test stack in-process (embedded control plane with a ``sim`` node, the real operator and
native API) with a real envd standing in for every sandbox's envd, so each ready answer includes a
real ``/health`` round trip. Two figures:

1. ``time_to_ready``: ``POST /v1/sandboxes`` with ``wait: false``, then poll ``is_ready`` every
   ``--poll-ms`` until 200 (in-place swap on the sim node: 50 ms pull + 50 ms start), per sandbox.
2. ``poll``: ``--requests`` is_ready calls on a ready sandbox with ``--concurrency`` in flight:
   throughput and latency percentiles.

Prints one JSON object.

    .venv/bin/python bench/api/bench_is_ready.py --sandboxes 20 --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

# The API test stack and the envd harness are reused, not duplicated.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "envd"))

from envd_harness import start_envd
from native_stack import NativeStack, V

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers
from benchstats import percentiles


async def time_to_ready(http: aiohttp.ClientSession, url: str, headers: dict[str, str], poll_s: float) -> float:
    started = time.perf_counter()
    async with http.post(f"{url}/v1/sandboxes", json={"poolName": "bench-ready"}, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        sid = (await resp.json())["sandbox"]["sandboxId"]
    deadline = started + 30
    while time.perf_counter() < deadline:
        async with http.get(f"{url}/v1/sandboxes/{sid}/is_ready", headers=headers) as resp:
            await resp.read()
            if resp.status == 200:
                return time.perf_counter() - started
            assert resp.status == 503, resp.status
        await asyncio.sleep(poll_s)
    raise TimeoutError(f"sandbox {sid} not ready within 30 s")


async def run(url: str, headers: dict[str, str], sandboxes: int, requests: int, concurrency: int,
              poll_s: float) -> dict[str, object]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(concurrency, sandboxes))) as http:
        ready = [await time_to_ready(http, url, headers, poll_s) for _ in range(sandboxes)]
        async with http.get(f"{url}/v1/sandboxes?status=Running&limit=1", headers=headers) as resp:
            sid = (await resp.json())["items"][0]["sandboxId"]
        latencies: list[float] = []
        remaining = iter(range(requests))

        async def worker() -> None:
            for _ in remaining:
                start = time.perf_counter()
                async with http.get(f"{url}/v1/sandboxes/{sid}/is_ready", headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - start)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {
        "time_to_ready": {"sandboxes": sandboxes, "poll_ms": poll_s * 1000, **percentiles(ready)},
        "poll": {"requests": requests, "concurrency": concurrency, "rps": round(requests / elapsed, 1),
                 **percentiles(latencies)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandboxes", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--poll-ms", type=float, default=10.0)
    args = parser.parse_args()
    envd = start_envd()
    stack = NativeStack(envd_url_template=envd.url)
    try:
        stack.start()
        stack.create_pool("bench-ready", args.sandboxes)
        headers = {"X-API-Key": stack.tenant_key("bench", "bench"), **V}
        result = asyncio.run(run(stack.url, headers, args.sandboxes, args.requests, args.concurrency,
                                 args.poll_ms / 1000))
    finally:
        stack.stop()
        envd.close()
    print(json.dumps({"benchmark": "native_is_ready", **result}))


if __name__ == "__main__":
    main()
