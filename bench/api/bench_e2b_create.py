"""Benchmark: E2B ``POST /v2/sandboxes`` → 201 from a warm pool, sequential and as a burst.

Runs the whole control path in-process: the embedded control plane with a ``sim`` node (simulated
kubelet: 50 ms image pull + 50 ms start per in-place swap, so the figures include a realistic
container-restart stand-in but no real processes), the real operator (scheduler, in-place updater,
post-start hooks to a stand-in gateway) and our E2B server. Same idle/workload images everywhere.

1. ``--sequential`` creates one after another (each sandbox killed after its 201, outside the
   timing): p50/p90/p99 of create → 201.
2. ``--burst`` concurrent creates against a pool with exactly that many idle pods: all must succeed
   (201), total wall time and per-request percentiles.

Prints one JSON object.

    .venv/bin/python bench/api/bench_e2b_create.py --sequential 200 --burst 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

# The API test stack (real operator + servers on a sim node) is reused, not duplicated.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "api"))

from native_stack import NativeStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers
from benchstats import percentiles


async def create(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, float, str]:
    started = time.perf_counter()
    async with http.post(url + "/v2/sandboxes", json={"templateID": "warm", "metadata": {}, "envVars": {"A": "1"}},
                         headers=headers) as resp:
        body = await resp.json()
        return resp.status, time.perf_counter() - started, body.get("sandboxID", "")


async def kill_all(http: aiohttp.ClientSession, url: str, headers: dict[str, str], ids: list[str]) -> None:
    sem = asyncio.Semaphore(32)

    async def kill(sid: str) -> None:
        async with sem, http.delete(f"{url}/sandboxes/{sid}", headers=headers) as resp:
            assert resp.status == 204, await resp.text()

    await asyncio.gather(*(kill(sid) for sid in ids))


async def run(stack: NativeStack, sequential: int, burst: int) -> dict[str, object]:
    headers = {"X-API-KEY": "e2b_" + stack.tenant_key("bench", "bench")[4:]}
    out: dict[str, object] = {"node": "sim", "pool_image_swap": "in place, idle -> workload image"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=0)) as http:
        latencies, ids = [], []
        for _ in range(sequential):
            status, seconds, sid = await create(http, stack.e2b_url, headers)
            assert status == 201, status
            latencies.append(seconds)
            ids.append(sid)
        await kill_all(http, stack.e2b_url, headers, ids)
        out["sequential"] = {"creates": sequential, **percentiles(latencies)}

        await asyncio.to_thread(stack.wait_idle, "warm", burst, 120.0)
        started = time.perf_counter()
        results = await asyncio.gather(*(create(http, stack.e2b_url, headers) for _ in range(burst)))
        total = time.perf_counter() - started
        ok = [r for r in results if r[0] == 201]
        out["burst"] = {"concurrent": burst, "pool_idle": burst, "succeeded": len(ok),
                        "statuses": sorted({r[0] for r in results}), "total_s": round(total, 3),
                        "creates_per_s": round(len(ok) / total, 1), **percentiles([r[1] for r in results])}
        await kill_all(http, stack.e2b_url, headers, [r[2] for r in ok])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    stack = NativeStack().start()
    try:
        stack.create_pool("warm", max(args.burst, min(args.sequential, 1000)))
        result = asyncio.run(run(stack, args.sequential, args.burst))
    finally:
        stack.stop()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
