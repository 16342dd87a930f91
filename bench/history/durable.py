"""Durable sandbox history against the embedded control plane: what a burst of releases costs and how fast
a restarted replica gets its history back.

Measures, for a burst of N finished-sandbox records (default 1,000):

- ``submit_us``: what the leader's pod handler pays per record (queueing only; the claim path never waits),
- ``drain_s`` / ``writes_per_s``: how long the background writers take to store the whole burst,
- ``restart_load_s``: how long a fresh replica's history informer takes to list and load them all,
- ``sweep_s``: how long the leader's TTL sweep takes to delete them once expired (passes of at most 500).

Prints one JSON document.

    uv run python bench/history/durable.py [--records 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta

from prometheus_client import CollectorRegistry

from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.common.logging import configure_logging
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.kube.client import KubeClient
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_metrics import HistoryMetrics
from agent_sandbox.operator.lifecycle.history_objects import HISTORY_SELECTOR, history_path
from agent_sandbox.operator.lifecycle.history_sync import HistorySync
from agent_sandbox.operator.lifecycle.history_writer import HistoryWriter
from agent_sandbox.operator.timeutil import format_time, now_utc

TTL_S = 3600.0


def record(i: int) -> dict:
    ended = format_time(now_utc())
    return {"sandboxId": new_sandbox_id("bench"), "namespace": "default", "poolName": "bench",
            "podName": f"bench-{i % 50}", "status": "Completed", "claimedAt": ended, "startedAt": ended,
            "terminatedAt": ended, "containerImages": {"main": "python:3.11"}, "metadata": {"job": str(i)},
            "nodeName": "n", "durationSeconds": 1.0}


async def settle(cond: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def stored_count(kube: KubeClient) -> int:
    listing = await kube.list(history_path(), label_selector=HISTORY_SELECTOR)
    return len(listing.get("items") or [])


async def run(n: int) -> dict:
    with tempfile.TemporaryDirectory() as state_dir:
        async with LocalCluster(state_dir=state_dir) as cluster:
            kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
            try:
                metrics = HistoryMetrics(CollectorRegistry())
                writer = HistoryWriter(kube, lambda: True, metrics, queue_limit=max(n, 1))
                records = [record(i) for i in range(n)]
                drain = asyncio.create_task(writer.run())
                start = time.perf_counter()
                for rec in records:
                    writer.submit(rec)
                submitted = time.perf_counter() - start
                await settle(lambda: metrics.writes.labels("written")._value.get() >= n, "the burst stored")
                drained = time.perf_counter() - start
                drain.cancel()
                await asyncio.gather(drain, return_exceptions=True)

                store = HistoryStore(ttl_s=TTL_S)
                later = HistorySync(kube, store, writer, metrics, ttl_s=TTL_S)
                start = time.perf_counter()
                informer = asyncio.create_task(later.informer.run())
                await later.informer.synced.wait()
                loaded = time.perf_counter() - start
                assert len(store) == n, f"loaded {len(store)} of {n}"

                sweeper = HistorySync(kube, HistoryStore(ttl_s=TTL_S), writer, metrics, ttl_s=TTL_S,
                                      now=lambda: now_utc() + timedelta(seconds=2 * TTL_S))
                sweeper_informer = asyncio.create_task(sweeper.informer.run())
                await sweeper.informer.synced.wait()
                start = time.perf_counter()
                passes = deleted = 0
                while done := await sweeper.sweep():
                    passes += 1
                    deleted += done
                    # The next plan starts from the watched state.
                    await settle(lambda left=n - deleted: len(sweeper.informer) <= left, "deletions seen")
                swept = time.perf_counter() - start
                remaining = await stored_count(kube)
                for task in (informer, sweeper_informer):
                    task.cancel()
                await asyncio.gather(informer, sweeper_informer, return_exceptions=True)
            finally:
                await kube.close()
    return {
        "benchmark": "history_durable",
        "records": n,
        "submit_us": round(submitted / n * 1e6, 2),
        "drain_s": round(drained, 3),
        "writes_per_s": round(n / drained, 1),
        "restart_load_s": round(loaded, 3),
        "sweep_s": round(swept, 3),
        "sweep_passes": passes,
        "left_after_sweep": remaining,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    configure_logging(level="warning")
    print(json.dumps(asyncio.run(run(args.records)), indent=2))


if __name__ == "__main__":
    main()
