"""Benchmark the embedded API server: Pod PATCH with resourceVersion precondition, and watch fan-out.

Starts ``agent-sandbox localcluster`` as a subprocess (so client and server do not share an event loop),
then measures with a raw aiohttp client over keep-alive connections:

* ``patch``: merge PATCH of a Pod label carrying ``metadata.resourceVersion`` (the claim CAS shape) at
  concurrency 1 and 64 (closed loop) — p50/p99 latency and ops/s; every request must succeed (no 409:
  each worker owns its pods and tracks their versions). With 64 clients always waiting, mean latency is
  64 / throughput (Little's law), so ``patch_paced`` also measures latency at a fixed 2,000 PATCH/s.
* ``watch``: 1 and 10 concurrent watches while 10,000 Pods are created (concurrency 64) — time until every
  watcher has received every ADDED event; plus the initial-state replay of 10,000 Pods to 10 new watches.

Usage: ``uv run python bench/apiserver/run.py [--pods 10000] [--patch-ops 5000] [--sqlite-synchronous full]``;
prints one JSON object. The server persists to SQLite (a temporary state dir), so every write is answered
only once committed: the figures include the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp
import orjson
import uvloop

from agent_sandbox.localcluster.app import LocalClusterProcess

NS = "bench"


def _pod(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "b"}},
                         "spec": {"schedulerName": "none", "containers": [{"name": "c", "image": "img:1"}]}})


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def _create_pods(session: aiohttp.ClientSession, prefix: str, count: int, concurrency: int) -> dict[str, str]:
    versions: dict[str, str] = {}
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            name = f"{prefix}-{i}"
            async with session.post(f"/api/v1/namespaces/{NS}/pods", data=_pod(name),
                                    headers={"Content-Type": "application/json"}) as resp:
                body = await resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"create failed {resp.status}: {body[:200]!r}")
                versions[name] = orjson.loads(body)["metadata"]["resourceVersion"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return versions


async def bench_patch(session: aiohttp.ClientSession, versions: dict[str, str], concurrency: int,
                      ops: int) -> dict[str, Any]:
    names = sorted(versions)
    latencies: list[float] = []
    counter = iter(range(ops))
    headers = {"Content-Type": "application/merge-patch+json"}

    async def worker(index: int) -> None:
        mine = names[index::concurrency]
        for n in counter:
            name = mine[n % len(mine)]
            body = orjson.dumps({"metadata": {"resourceVersion": versions[name], "labels": {"seq": str(n)}}})
            started = time.perf_counter()
            async with session.patch(f"/api/v1/namespaces/{NS}/pods/{name}", data=body, headers=headers) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"patch failed {resp.status}: {payload[:200]!r}")
            latencies.append(time.perf_counter() - started)
            versions[name] = orjson.loads(payload)["metadata"]["resourceVersion"]

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "ops": ops, "ops_per_s": round(ops / elapsed, 1),
            "p50_ms": round(_percentile(latencies, 50) * 1000, 3),
            "p99_ms": round(_percentile(latencies, 99) * 1000, 3),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3)}


async def bench_patch_paced(session: aiohttp.ClientSession, versions: dict[str, str], rate: float,
                            ops: int, max_in_flight: int = 64) -> dict[str, Any]:
    """Open-loop PATCHes at a fixed rate (≤ max_in_flight outstanding); latency counted from the scheduled
    start, so queueing behind a slow server is included (no coordinated omission)."""
    names = sorted(versions)
    latencies: list[float] = []
    counter = iter(range(ops))
    headers = {"Content-Type": "application/merge-patch+json"}
    start = time.perf_counter() + 0.05

    async def worker(index: int) -> None:
        mine = names[index::max_in_flight]
        for n in counter:
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            name = mine[n % len(mine)]
            body = orjson.dumps({"metadata": {"resourceVersion": versions[name], "labels": {"seq": str(n)}}})
            async with session.patch(f"/api/v1/namespaces/{NS}/pods/{name}", data=body, headers=headers) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"patch failed {resp.status}: {payload[:200]!r}")
            latencies.append(time.perf_counter() - scheduled)
            versions[name] = orjson.loads(payload)["metadata"]["resourceVersion"]

    await asyncio.gather(*(worker(i) for i in range(max_in_flight)))
    elapsed = time.perf_counter() - start
    return {"target_rate": rate, "max_in_flight": max_in_flight, "ops": ops,
            "achieved_ops_per_s": round(ops / elapsed, 1),
            "p50_ms": round(_percentile(latencies, 50) * 1000, 3),
            "p99_ms": round(_percentile(latencies, 99) * 1000, 3)}


async def _watch_until(session: aiohttp.ClientSession, params: dict[str, str], expected: int,
                       ready: asyncio.Event | None = None) -> float:
    """Count ADDED events on a raw watch stream; return the monotonic time the last one arrived."""
    seen = 0
    async with session.get(f"/api/v1/namespaces/{NS}/pods", params={"watch": "true", **params},
                           timeout=aiohttp.ClientTimeout(total=600)) as resp:
        if ready is not None:
            ready.set()
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            seen += sum(1 for line in lines if line.startswith(b'{"type":"ADDED"'))
            if seen >= expected:
                return time.perf_counter()
    raise RuntimeError(f"watch ended after {seen}/{expected} events")


async def bench_watch_live(session: aiohttp.ClientSession, watchers: int, pods: int, prefix: str
                           ) -> dict[str, Any]:
    async with session.get(f"/api/v1/namespaces/{NS}/pods", params={"limit": "1"}) as resp:
        rv = (await resp.json())["metadata"]["resourceVersion"]
    readies = [asyncio.Event() for _ in range(watchers)]
    tasks = [asyncio.create_task(_watch_until(session, {"resourceVersion": rv}, pods, readies[i]))
             for i in range(watchers)]
    await asyncio.gather(*(r.wait() for r in readies))
    started = time.perf_counter()
    await _create_pods(session, prefix, pods, 64)
    created = time.perf_counter()
    finished = await asyncio.gather(*tasks)
    return {"watchers": watchers, "pods": pods, "create_s": round(created - started, 3),
            "creates_per_s": round(pods / (created - started), 1),
            "all_delivered_s": round(max(finished) - started, 3),
            "lag_after_last_create_s": round(max(0.0, max(finished) - created), 3)}


async def bench_watch_initial(session: aiohttp.ClientSession, watchers: int, pods: int) -> dict[str, Any]:
    started = time.perf_counter()
    finished = await asyncio.gather(*(_watch_until(session, {"labelSelector": "app=b"}, pods)
                                      for _ in range(watchers)))
    return {"watchers": watchers, "initial_objects": pods, "all_delivered_s": round(max(finished) - started, 3)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-apiserver-") as state:
        async with LocalClusterProcess(state_dir=pathlib.Path(state), crd_dir=None,
                                       extra_args=["--log-level", "warning",
                                                   "--sqlite-synchronous", args.sqlite_synchronous]) as proc:
            connector = aiohttp.TCPConnector(limit=200)
            headers = {"Authorization": f"Bearer {proc.token}"}
            async with aiohttp.ClientSession(proc.url, headers=headers, connector=connector) as session:
                async with session.post("/api/v1/namespaces", json={"metadata": {"name": NS}}) as resp:
                    assert resp.status == 201, await resp.text()
                versions = await _create_pods(session, "patch", args.patch_pods, 64)
                await bench_patch(session, versions, 64, 500)  # warm-up
                results: dict[str, Any] = {"patch": [
                    await bench_patch(session, versions, 1, max(1, args.patch_ops // 5)),
                    await bench_patch(session, versions, 64, args.patch_ops),
                ]}
                results["patch_paced"] = await bench_patch_paced(session, versions, 2000.0, args.patch_ops)
                results["watch_live"] = [await bench_watch_live(session, 1, args.pods, "w1")]
                results["watch_live"].append(await bench_watch_live(session, 10, args.pods, "w10"))
                results["watch_initial"] = await bench_watch_initial(session, 10, args.pods * 2 + args.patch_pods)
    results["sqlite_synchronous"] = args.sqlite_synchronous
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000, help="pods created per watch scenario")
    parser.add_argument("--patch-pods", type=int, default=1_000, help="pods the PATCH scenario cycles over")
    parser.add_argument("--patch-ops", type=int, default=5_000, help="PATCH requests at concurrency 64")
    parser.add_argument("--sqlite-synchronous", choices=("normal", "full"), default="normal",
                        help="durability of the server's state (writes are answered once committed)")
    output = uvloop.run(main(parser.parse_args()))
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
