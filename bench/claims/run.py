"""Claim benchmark: latency percentiles and throughput of sandbox creates from a warm pool.

Runs the embedded API server with a ``sim`` node (as its own process, like a
real control plane; ``--in-process`` shares the event loop) and a real
operator, fills a pool with N idle pods, then for each concurrency level claims
N sandboxes (``wait=False``: the claim itself; ``wait=True``: until Running
with the in-place image swap done) and releases them again, waiting until the
pool is idle again and the finished sandboxes' history records are stored, so
one burst does not overlap the previous one's clean-up. Prints one JSON
document.

Each level reports its first burst on its own (it pays first-use costs, such
as connections the operator has not opened yet) and, with ``--bursts N``, the
following N-1 bursts pooled with their p99 one by one. ``cpu_ms_per_claim``
is the CPU used during the bursts divided by the claims, for this process
(operator + callers) and the API server + node subprocess: unlike latency it
barely moves when other work shares the machine (``load_average`` says how
busy it was). ``probe_ms`` times a fixed piece of Python work just before each
burst (``benchstats.speed_probe_ms``, ≈ 1 ms on an unloaded core): on a shared
VM the machine itself runs up to twice as slow in some spells, and the later
bursts' probes, CPU per claim and p99 are listed one by one to tell those apart.
This process tunes and freezes its garbage collector as the
operator command does (``agent_sandbox.common.gctuning``). ``--pause-s``
waits that long before every burst (e.g. 70 s: longer than idle API
connections live, to show a burst after a quiet spell).

    uv run python bench/claims/run.py [--pods 100] [--concurrency 1 20 100] [--lag-ms 0] [--api-latency-ms 0]
        [--in-process]
        [--bursts 1] [--until claim|running|both] [--loop uvloop|asyncio] [--pause-s 0]

``--api-latency-ms 5`` makes the API server wait 5 ms before handling each read and write (its fault
injection), as a control plane a network hop away would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
import yaml

from agent_sandbox.common import gctuning
from agent_sandbox.common.logging import configure_logging
from agent_sandbox.localcluster.app import LocalCluster, LocalClusterProcess
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.services.models import Caller, CreatePoolRequest, CreateSandboxRequest
from agent_sandbox.operator.settings import OperatorSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers
from benchstats import speed_probe_ms

CALLER = Caller(namespace="default", team="bench", user="bench")
SIM = {"pull_delay": 0.0, "start_delay": 0.0, "max_pods": 5000, "heartbeat_interval": 5.0, "max_grace": 0.2,
       "status_writers": 16}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[idx] * 1000, 2)


async def wait_idle(op: Operator, n: int, finished: int = 0, within_s: float = 120) -> None:
    """Until the pool is back to ``n`` idle pods and the ``finished`` sandboxes so far have their stored
    history records (the next burst must not overlap the previous one's clean-up)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        c = op.pool_service.counts("default", "bench")
        if (c["idle"] == n and c["unavailableIdle"] == 0 and c["running"] + c["starting"] + c["stopping"] == 0
                and len(op.history_sync.informer.items()) >= finished):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"pool did not return to {n} idle pods")


def cluster_cpu_s(cluster: Any) -> float:
    """CPU seconds used so far by the API server + node subprocess (0 when it shares this process)."""
    process = getattr(cluster, "process", None)
    if process is None:
        return 0.0
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Burst:
    latencies: list[float]
    wall_s: float
    operator_cpu_s: float  # this process: the operator and the bench's callers
    cluster_cpu_s: float
    probe_ms: float  # the machine's speed just before the burst (benchstats.speed_probe_ms)


def summarize(bursts: list[Burst]) -> dict[str, Any]:
    latencies = [lat for b in bursts for lat in b.latencies]
    n = len(latencies)
    return {"claims": n, "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95),
            "p99_ms": pct(latencies, 99), "mean_ms": round(statistics.mean(latencies) * 1000, 2),
            "claims_per_s": round(n / sum(b.wall_s for b in bursts), 1),
            "cpu_ms_per_claim": {"operator": round(sum(b.operator_cpu_s for b in bursts) / n * 1000, 3),
                                 "cluster": round(sum(b.cluster_cpu_s for b in bursts) / n * 1000, 3)}}


async def burst(op: Operator, cluster: Any, pods: int, concurrency: int, wait: bool, pause_s: float) -> Burst:
    """Claim ``pods`` sandboxes, ``concurrency`` at a time; release them and wait for the pool to refill.

    A claim's latency runs from when it is issued: for the first ``concurrency`` claims the start of the
    burst, for each later one the moment the claim before it (on the same caller) answered. Timing each
    claim from when its own coroutine first runs would leave out the time the operator spent on the
    claims taken in before it in the same turn of the loop."""
    await asyncio.sleep(pause_s)
    latencies: list[float] = []
    ids: list[str] = []

    async def caller(count: int, issued: float) -> None:
        for _ in range(count):
            rec = await op.sandboxes.create(CreateSandboxRequest(poolName="bench", wait=wait,
                                                                 startupTimeout="60s"), CALLER)
            answered = time.perf_counter()
            latencies.append(answered - issued)
            ids.append(rec["sandboxId"])
            issued = answered

    callers = min(concurrency, pods)
    counts = [pods // callers + (1 if i < pods % callers else 0) for i in range(callers)]
    probe = speed_probe_ms()
    cpu0, cluster0, t0 = time.process_time(), cluster_cpu_s(cluster), time.perf_counter()
    await asyncio.gather(*(caller(n, t0) for n in counts))
    result = Burst(latencies, time.perf_counter() - t0, time.process_time() - cpu0, cluster_cpu_s(cluster) - cluster0,
                   probe)
    stored = len(op.history_sync.informer.items())
    await asyncio.gather(*(op.sandboxes.delete(i) for i in ids))
    await wait_idle(op, pods, finished=stored + len(ids))
    return result


async def run_level(op: Operator, cluster: Any, pods: int, concurrency: int, wait: bool,
                    bursts: int, pause_s: float) -> dict[str, Any]:
    """One level: the first burst on its own, then (``bursts`` > 1) the following bursts pooled."""
    runs = [await burst(op, cluster, pods, concurrency, wait, pause_s) for _ in range(bursts)]
    result = {"concurrency": concurrency, "wait_running": wait, **summarize(runs[:1]), "probe_ms": runs[0].probe_ms}
    if len(runs) > 1:
        result["later_bursts"] = {"bursts": len(runs) - 1, **summarize(runs[1:]),
                                  "p99_ms_per_burst": [pct(b.latencies, 99) for b in runs[1:]],
                                  "operator_cpu_ms_per_claim_per_burst": [
                                      round(b.operator_cpu_s / len(b.latencies) * 1000, 3) for b in runs[1:]],
                                  "probe_ms_per_burst": [b.probe_ms for b in runs[1:]]}
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bench-claims-"))
    (state / "node").mkdir()
    (state / "node" / "sim.yaml").write_text(yaml.safe_dump(SIM))
    latency = {"read": args.api_latency_ms, "write": args.api_latency_ms}
    cluster_cm: Any = (
        LocalCluster(state_dir=state, persist=False, node="sim", faults={"latency_ms": latency}) if args.in_process
        else LocalClusterProcess(state_dir=state, node="sim", extra_args=[
            "--fault-latency-read-ms", str(args.api_latency_ms), "--fault-latency-write-ms", str(args.api_latency_ms)]))
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
            gctuning.freeze_startup_heap()
            waits = {"claim": (False,), "running": (True,), "both": (False, True)}[args.until]
            results = [await run_level(op, cluster, args.pods, c, wait, args.bursts, args.pause_s) for wait in waits
                       for c in args.concurrency]
    return {"benchmark": "claims", "pods": args.pods, "informer_lag_ms": args.lag_ms,
            "api_latency_ms": args.api_latency_ms, "loop": args.loop,
            "pause_s": args.pause_s,
            "load_average": list(os.getloadavg()),
            "cluster": "in-process" if args.in_process else "subprocess",
            "pool_fill_seconds": round(fill_s, 2), "results": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--lag-ms", type=float, default=0.0, help="artificial informer lag")
    parser.add_argument("--api-latency-ms", type=float, default=0.0,
                        help="latency the API server adds to every read and write (a remote control plane)")
    parser.add_argument("--in-process", action="store_true", help="run the API server in this process")
    parser.add_argument("--bursts", type=int, default=1,
                        help="bursts per level; the first is reported on its own, the rest pooled")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop of this process (the operator command runs on uvloop)")
    parser.add_argument("--until", choices=("claim", "running", "both"), default="both",
                        help="measure the claim only, until Running, or both")
    parser.add_argument("--pause-s", type=float, default=0.0, help="quiet time before every burst")
    configure_logging(level="error")
    logging.getLogger().setLevel(logging.ERROR)
    args = parser.parse_args()
    gctuning.tune()
    runner = uvloop.run if args.loop == "uvloop" else asyncio.run
    print(json.dumps(runner(main(args)), indent=2))
