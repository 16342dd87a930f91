"""Operator memory benchmark: RSS/PSS of a real operator process with N idle pods in its cache.

The claim path depends on the operator keeping every pool Pod in its informer
cache (no List on the hot path), so its memory grows with the fleet. This
starts the embedded API server with a ``sim`` node as its own process, runs
``agent-sandbox operator`` as a second process (no leader election, no API
listener), creates ``--pools`` pools of ``--replicas`` pods, waits until the
operator reports every pod idle (the sum of its per-pool ``idle`` gauges, read
from ``/metrics``; ready queues are built on a pool's first claim, so with no
claims they stay empty and are reported only for information), and then reads the operator's ``VmRSS``/``VmHWM``
(``/proc/PID/status``) and ``Pss`` (``/proc/PID/smaps_rollup``). Prints one
JSON document; exits non-zero if the fleet is not idle within ``--timeout``.

    uv run python bench/claims/memory.py [--pools 10] [--replicas 1000] [--timeout 360]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from agent_sandbox.common import vocabulary as v
from agent_sandbox.localcluster.app import LocalClusterProcess
from agent_sandbox.operator.kube.client import KubeClient, pools_path
from agent_sandbox.operator.services.validation import validate_pool_spec

NAMESPACE = "default"
SIM = {"pull_delay": 0.0, "start_delay": 0.0, "heartbeat_interval": 5.0, "max_grace": 0.2, "status_writers": 16}
SETTLE_S = 5.0
_SERIES = re.compile(r'^agentsandbox_(sandboxpool_replicas_idle|schedule_ready_queue_size)\{([^}]*)\} (\S+)$',
                     re.MULTILINE)
_POOL_LABEL = re.compile(r'pool="([^"]*)"')


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS) and Pss of ``pid`` in MiB."""
    out: dict[str, float] = {}
    for path, keys in ((f"/proc/{pid}/status", ("VmRSS", "VmHWM")), (f"/proc/{pid}/smaps_rollup", ("Pss",))):
        for line in Path(path).read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in keys:
                out[f"{name.lower()}_mib"] = round(int(rest.split()[0]) / 1024, 1)
    return out


def pool_body(name: str, replicas: int) -> dict[str, Any]:
    spec = {"replicas": replicas, "idleImage": "bench/idle:1",
            "template": {"spec": {"containers": [{"name": "main", "image": "bench/work:1"}]}}}
    validate_pool_spec(spec)
    return {"apiVersion": v.API_VERSION, "kind": v.POOL_KIND,
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def idle_totals(metrics: str) -> tuple[int, int]:
    """Sum of the pools' idle gauges and of their ready-queue lengths."""
    totals = {"sandboxpool_replicas_idle": 0.0, "schedule_ready_queue_size": 0.0}
    for series, labels, value in _SERIES.findall(metrics):
        if _POOL_LABEL.search(labels):
            totals[series] += float(value)
    return int(totals["sandboxpool_replicas_idle"]), int(totals["schedule_ready_queue_size"])


def _started_line(log_file: Path) -> str | None:
    for line in log_file.read_text(errors="replace").splitlines():
        if '"operator started"' in line:
            return str(json.loads(line)["metrics"])
    return None


async def metrics_address(log_file: Path, proc: asyncio.subprocess.Process, within_s: float) -> str:
    """The operator's ``/metrics`` HOST:PORT from its "operator started" log line."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"operator exited with {proc.returncode}; see {log_file}")
        address = _started_line(log_file)
        if address:
            return address
        await asyncio.sleep(0.2)
    raise RuntimeError(f"operator did not start within {within_s}s; see {log_file}")


async def wait_idle(url: str, key: str, want: int, deadline: float) -> tuple[int, int]:
    idle = ready = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        while time.monotonic() < deadline:
            async with session.get(url) as resp:
                idle, ready = idle_totals(await resp.text())
            if idle >= want:
                return idle, ready
            await asyncio.sleep(1.0)
    raise TimeoutError(f"only {idle} idle / {ready} queued of {want} pods before the deadline")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the measurement; the state dir (SQLite of 10,000 pods, logs) is removed unless it fails."""
    state = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        result = await measure(args, state)
    except BaseException:
        print(f"benchmark failed; logs kept in {state}", file=sys.stderr)
        raise
    shutil.rmtree(state, ignore_errors=True)
    return result


async def measure(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    want = args.pools * args.replicas
    deadline = time.monotonic() + args.timeout
    (state / "node").mkdir()
    (state / "node" / "sim.yaml").write_text(yaml.safe_dump({**SIM, "max_pods": want + 100}))
    key = secrets.token_urlsafe(24)
    async with LocalClusterProcess(state_dir=state, node="sim") as cluster:
        assert cluster.process is not None
        log_file = state / "operator.log"
        with log_file.open("wb") as log_out:
            operator = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent_sandbox.common.cli", "operator", "--kubeconfig", str(cluster.kubeconfig),
                "--no-leader-elect", "--metrics-listen", "127.0.0.1:0",
                stdout=asyncio.subprocess.DEVNULL, stderr=log_out,
                env={**os.environ, "AGENT_SANDBOX_ADMIN_KEY": key})
        try:
            started = time.monotonic()
            url = f"http://{await metrics_address(log_file, operator, 60)}/metrics"
            baseline = proc_memory(operator.pid)
            client = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
            try:
                t0 = time.monotonic()
                for i in range(args.pools):
                    await client.create(pools_path(NAMESPACE), pool_body(f"mem-{i}", args.replicas))
            finally:
                await client.close()
            idle, ready = await wait_idle(url, key, want, deadline)
            fill_s = time.monotonic() - t0
            at_idle = proc_memory(operator.pid)
            await asyncio.sleep(SETTLE_S)
            settled = proc_memory(operator.pid)
            return {"benchmark": "operator-memory", "pools": args.pools, "replicas_per_pool": args.replicas,
                    "pods": want, "idle_reported": idle, "ready_queue_total": ready,
                    "operator_start_s": round(t0 - started, 2), "fill_to_idle_s": round(fill_s, 2),
                    "operator_baseline": baseline, "operator_at_idle": at_idle,
                    f"operator_after_{SETTLE_S:g}s": settled,
                    "apiserver_and_sim_node": proc_memory(cluster.process.pid),
                    "target_rss_mib": 300, "within_target": settled["vmrss_mib"] <= 300}
        finally:
            if operator.returncode is None:
                operator.terminate()
                try:
                    await asyncio.wait_for(operator.wait(), 15)
                except TimeoutError:
                    operator.kill()
                    await operator.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=1000, help="pods per pool (at most 1000)")
    parser.add_argument("--timeout", type=float, default=360.0, help="give up after this many seconds")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
