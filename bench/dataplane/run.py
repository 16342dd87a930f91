"""Data-plane overhead: the same upstream through Envoy alone and through Envoy + extproc.

One run starts the embedded control plane (one running sandbox pod pointing at the
upstream), an upstream, two real Envoys rendered from deploy/envoy/envoy.yaml (one
as shipped, one with the ext_proc filter removed and a static route to the
upstream) and extproc with each requested worker count. Load comes from `wrk`
(Debian package): latency with one connection (what one request pays), throughput
with many. Prints one JSON document.

    uv run python bench/dataplane/run.py [--workers 1,2] [--upstream envoy|aiohttp] [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from kubernetes_asyncio import client, config

from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.common.logging import configure_logging
from agent_sandbox.common.vocabulary import LABEL_SANDBOX_ID, LABEL_SANDBOX_PHASE
from agent_sandbox.extproc.envoy_config import EnvoyPorts, extproc_token, render
from agent_sandbox.extproc.envoy_process import EnvoyProcess
from agent_sandbox.localcluster.app import LocalCluster

ADMIN_KEY = "bench-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def baseline_config(ports: EnvoyPorts, upstream_port: int) -> str:
    """The shipped config minus ext_proc, routing everything to the upstream."""
    cfg = yaml.safe_load(render(ports))
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_proc"]
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"prefix": "/"}, "route": {"cluster": "bench_upstream", "timeout": "3600s"}}]
    cfg["static_resources"]["clusters"].append(_static_cluster("bench_upstream", upstream_port))
    return yaml.safe_dump(cfg)


def _static_cluster(name: str, port: int) -> dict:
    return {"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def direct_response_config(listen_port: int, admin_port: int) -> str:
    """A C++ upstream (Envoy direct_response) so the upstream is not the bottleneck."""
    return yaml.safe_dump({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
                             "v3.HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]},
                }}]}],
        }]},
    })


async def aiohttp_upstream(port: int) -> web.AppRunner:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


_LAT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


async def wrk(url: str, headers: dict[str, str], *, threads: int, connections: int, duration: int) -> dict:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    proc = await asyncio.create_subprocess_exec(*args, url, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    text = out.decode()
    lat = {f"p{m[0]}_ms": round(float(m[1]) * _UNIT[m[2]], 3) for m in _LAT.findall(text)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    rps = _RPS.search(text)
    if rps is None:
        raise RuntimeError(f"wrk failed: {text}{err.decode()}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result = {"rps": round(float(rps.group(1))), **lat, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
              "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0}
    if result["non_2xx"] or result["socket_errors"]:
        # A failing data plane answers fast: never report its speed as throughput.
        raise RuntimeError(f"requests failed during the benchmark: {result}")
    return result


def _tree(pid: int) -> list[int]:
    """pid and its descendants (extproc workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def start_extproc(kubeconfig: Path, workers: int) -> tuple[asyncio.subprocess.Process, int]:
    listen, control, health = free_port(), free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent_sandbox.extproc", "--kubeconfig", str(kubeconfig),
        "--listen", f"127.0.0.1:{listen}", "--control-listen", f"127.0.0.1:{control}",
        "--health-listen", f"127.0.0.1:{health}", "--workers", str(workers),
        env=dict(os.environ, AGENT_SANDBOX_ADMIN_KEY=ADMIN_KEY, AGENT_SANDBOX_LOG_LEVEL="warning"),
    )
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"http://127.0.0.1:{health}/readyz") as r:
                    if r.status == 200:
                        return proc, listen
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("extproc not ready")


async def _throughput(env: EnvoyProcess, pids: list[int], headers: dict[str, str], args: argparse.Namespace) -> dict:
    """One wrk throughput run, with the CPU the given processes spent per request."""
    cpu0 = cpu_seconds(pids)
    tp = await wrk(env.url + "/", headers, threads=2, connections=args.connections, duration=args.duration)
    tp["cpu_us_per_request"] = round((cpu_seconds(pids) - cpu0) / max(tp["rps"] * args.duration, 1) * 1e6, 1)
    return tp


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def measure_pair(base: EnvoyProcess, kubeconfig: Path, workers: int, headers: dict[str, str],
                       work: Path, args: argparse.Namespace) -> dict:
    """Envoy alone vs Envoy + extproc with ``workers`` processes.

    The machine is shared, so its load drifts between runs: throughput alternates between
    the two set-ups ``--rounds`` times (same wrk settings, same Envoy concurrency, same
    upstream) and the ratio is taken of the medians.
    """
    d = args.duration
    proc, listen = await start_extproc(kubeconfig, workers)
    try:
        ports = EnvoyPorts(listen_port=free_port(), admin_port=free_port(), extproc_port=listen,
                           listen_address="127.0.0.1", extproc_token=extproc_token(ADMIN_KEY),
                           extproc_streams_per_connection=args.streams_per_connection)
        async with EnvoyProcess(ports, work / f"ext{workers}", concurrency=args.envoy_concurrency) as env:
            await wrk(env.url + "/", headers, threads=1, connections=1, duration=1)  # warm-up
            base_lat = await wrk(base.url + "/", headers, threads=1, connections=1, duration=d)
            lat = await wrk(env.url + "/", headers, threads=1, connections=1, duration=d)
            base_pid = base.process.pid if base.process else 0
            envoy_pid = env.process.pid if env.process else 0
            base_runs, ext_runs, extproc_cpu = [], [], []
            for _ in range(args.rounds):
                base_runs.append(await _throughput(base, [base_pid], headers, args))
                extproc_pids = _tree(proc.pid)
                cpu0 = cpu_seconds(extproc_pids)
                ext_runs.append(await _throughput(env, [envoy_pid], headers, args))
                extproc_cpu.append(round((cpu_seconds(extproc_pids) - cpu0)
                                         / max(ext_runs[-1]["rps"] * d, 1) * 1e6, 1))
    finally:
        proc.terminate()
        await proc.wait()
    base_rps = _median([r["rps"] for r in base_runs])
    ext_rps = _median([r["rps"] for r in ext_runs])
    return {
        "extproc_workers": workers,
        "envoy_alone": {"latency": base_lat, "throughput_rps": [r["rps"] for r in base_runs]},
        "envoy_extproc": {"latency": lat, "throughput_rps": [r["rps"] for r in ext_runs]},
        "added_p50_ms": round(lat["p50_ms"] - base_lat["p50_ms"], 3),
        "added_p99_ms": round(lat["p99_ms"] - base_lat["p99_ms"], 3),
        "throughput_ratio": round(ext_rps / base_rps, 3),
        "round_ratios": [round(e["rps"] / b["rps"], 3) for b, e in zip(base_runs, ext_runs, strict=True)],
        # Load-independent view on a shared machine: data-plane CPU per request, with and without.
        "dataplane_cpu_us_per_request": {
            "envoy_alone": _median([r["cpu_us_per_request"] for r in base_runs]),
            "envoy_with_extproc": _median([r["cpu_us_per_request"] for r in ext_runs]),
            "extproc": _median(extproc_cpu),
        },
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2", help="comma-separated extproc worker counts")
    ap.add_argument("--upstream", choices=("envoy", "aiohttp"), default="envoy")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternating throughput runs per set-up (median taken)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--envoy-concurrency", type=int, default=1)
    ap.add_argument("--streams-per-connection", type=int, default=EnvoyPorts().extproc_streams_per_connection,
                    help="Envoy -> extproc HTTP/2 streams per connection")
    args = ap.parse_args()
    configure_logging(level="warning")
    if not shutil.which("wrk"):
        sys.exit("wrk is required (Debian package 'wrk')")
    work = Path(tempfile.mkdtemp(prefix="bench-dataplane-"))
    results: dict = {"upstream": args.upstream, "duration_s": args.duration, "rounds": args.rounds,
                     "connections": args.connections,
                     "envoy_concurrency": args.envoy_concurrency, "cpus": os.cpu_count(), "runs": []}
    up_port = free_port()
    up_envoy = None
    up_runner = None
    try:
        async with LocalCluster() as cluster:
            if args.upstream == "envoy":
                up_admin = free_port()
                up_envoy = EnvoyProcess(EnvoyPorts(listen_port=up_port, admin_port=up_admin), work / "up",
                                        config_text=direct_response_config(up_port, up_admin))
                await up_envoy.start()
            else:
                up_runner = await aiohttp_upstream(up_port)
            conf = client.Configuration()
            await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
            async with client.ApiClient(conf) as api:
                core = client.CoreV1Api(api)
                sid = new_sandbox_id("bench")
                await core.create_namespaced_pod("default", {
                    "metadata": {"name": "bench", "labels": {LABEL_SANDBOX_PHASE: "running", LABEL_SANDBOX_ID: sid}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
                await core.patch_namespaced_pod_status("bench", "default", {
                    "status": {"phase": "Running", "podIP": "127.0.0.1"}},
                    _content_type="application/merge-patch+json")
            base_ports = EnvoyPorts(listen_port=free_port(), admin_port=free_port(), listen_address="127.0.0.1")
            headers = {"x-sandbox-id": sid, "x-sandbox-port": str(up_port)}
            async with EnvoyProcess(base_ports, work / "base", concurrency=args.envoy_concurrency,
                                    config_text=baseline_config(base_ports, up_port)) as base:
                for n in [int(x) for x in args.workers.split(",")]:
                    results["runs"].append(await measure_pair(base, cluster.kubeconfig, n, headers, work, args))
    finally:
        if up_envoy is not None:
            await up_envoy.stop()
        if up_runner is not None:
            await up_runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
