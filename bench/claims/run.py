"""Claim benchmark: latency percentiles and throughput of sandbox creates from a warm pool.

Runs the embedded API server with a ``sim`` node (as its own process, like a
real control plane; ``--in-process`` shares the event loop) and a real
operator, fills a pool with N idle pods, then for each concurrency level claims
N sandboxes (``wait=False``: the claim itself; ``wait=True``: until Running
with the in-place image swap done) and releases them again. Prints one JSON
document.

    uv run python bench/claims/run.py [--pods 100] [--concurrency 1 20 100] [--lag-ms 0] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from agent_sandbox.common.logging import configure_logging
from agent_sandbox.localcluster.app import LocalCluster, LocalClusterProcess
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.services.models import Caller, CreatePoolRequest, CreateSandboxRequest
from agent_sandbox.operator.settings import OperatorSettings

CALLER = Caller(namespace="default", team="bench", user="bench")
SIM = {"pull_delay": 0.0, "start_delay": 0.0, "max_pods": 5000, "heartbeat_interval": 5.0, "max_grace": 0.2,
       "status_writers": 16}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[idx] * 1000, 2)


async def wait_idle(op: Operator, n: int, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        c = op.pool_service.counts("default", "bench")
        if c["idle"] == n and c["unavailableIdle"] == 0 and c["running"] + c["starting"] + c["stopping"] == 0:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"pool did not return to {n} idle pods")


async def run_level(op: Operator, pods: int, concurrency: int, wait: bool) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    ids: list[str] = []

    async def one() -> None:
        async with sem:
            t0 = time.perf_counter()
            rec = await op.sandboxes.create(CreateSandboxRequest(poolName="bench", wait=wait,
                                                                 startupTimeout="60s"), CALLER)
            latencies.append(time.perf_counter() - t0)
            ids.append(rec["sandboxId"])

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(pods)))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(op.sandboxes.delete(i) for i in ids))
    await wait_idle(op, pods)
    return {"concurrency": concurrency, "wait_running": wait, "claims": len(latencies),
            "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95), "p99_ms": pct(latencies, 99),
            "mean_ms": round(statistics.mean(latencies) * 1000, 2), "claims_per_s": round(len(latencies) / wall, 1)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bench-claims-"))
    (state / "node").mkdir()
    (state / "node" / "sim.yaml").write_text(yaml.safe_dump(SIM))
    cluster_cm: Any = (LocalCluster(state_dir=state, persist=False, node="sim") if args.in_process
                       else LocalClusterProcess(state_dir=state, node="sim"))
    async with cluster_cm as cluster:
        settings = OperatorSettings(kubeconfig=str(cluster.kubeconfig), metrics_listen="127.0.0.1:0",
                                    lease_namespace="default", informer_lag_s=args.lag_ms / 1000,
                                    reconcile_requeue_s=1.0)
        async with Operator(settings) as op:
            await op.pool_service.create(CreatePoolRequest(name="bench", replicas=args.pods, spec={
                "idleImage": "bench/idle:1",
                "template": {"spec": {"containers": [{"name": "main", "image": "bench/work:1"}]}}}), CALLER)
            t0 = time.perf_counter()
            await wait_idle(op, args.pods)
            fill_s = time.perf_counter() - t0
            results = [await run_level(op, args.pods, c, wait) for wait in (False, True) for c in args.concurrency]
    return {"benchmark": "claims", "pods": args.pods, "informer_lag_ms": args.lag_ms,
            "cluster": "in-process" if args.in_process else "subprocess",
            "pool_fill_seconds": round(fill_s, 2), "results": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--lag-ms", type=float, default=0.0, help="artificial informer lag")
    parser.add_argument("--in-process", action="store_true", help="run the API server in this process")
    configure_logging(level="error")
    logging.getLogger().setLevel(logging.ERROR)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
