"""envd benchmark: SDK ``commands.run("true")`` round trip and envd's idle memory.

Runs the bundled envd (exactly what sandboxes run, from ``build_bundle``) on
loopback, the fake control plane from the envd tests, and the pinned latest E2B
SDK. Prints one JSON object:

* ``roundtrip_ms``: p50/p90/p99/mean of ``commands.run("true")`` (``/bin/bash -l -c true``:
  Connect stream, fork/exec of a login shell, end event) after a warm-up;
* ``memory``: envd PSS (``/proc/PID/smaps_rollup``) idle before any RPC, after the
  round trips, and the average over several idle envds sharing one bundle (how a
  node with many sandboxes sees it: bundle file pages are shared).

Usage: ``python bench/envd/sdk_roundtrip.py [--count 300] [--warmup 30] [--sharing 4]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "envd"))

from envd_harness import sdk_env, sdk_python, start_control_plane, start_envd  # noqa: E402

from agent_sandbox.envd.bundle import build_bundle  # noqa: E402

SDK_VERSION = "2.63.0"


def pss_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
                values[key] = int(rest.split()[0])
    return values


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--sharing", type=int, default=4, help="idle envds sharing one bundle for the PSS average")
    args = parser.parse_args()

    bundle = Path(tempfile.gettempdir()) / "agent-sandbox-bench" / "envd-bundle"
    started = time.perf_counter()
    build_bundle(bundle)
    build_s = time.perf_counter() - started
    bundle_mb = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20
    launcher = [str(bundle / "envd")]

    envd = start_envd(command=launcher)
    try:
        time.sleep(1.0)
        idle = pss_kib(envd.proc.pid)
        cp = start_control_plane(envd.url)
        try:
            python = sdk_python(SDK_VERSION)
            result = subprocess.run(
                [str(python), str(Path(__file__).with_name("sdk_roundtrip_driver.py")), str(args.warmup),
                 str(args.count)],
                env=sdk_env(cp, envd.url), capture_output=True, text=True, timeout=600, check=True,
            )
            samples = json.loads(result.stdout.strip().splitlines()[-1])["samples_ms"]
        finally:
            cp.close()
        time.sleep(0.5)
        busy = pss_kib(envd.proc.pid)
    finally:
        envd.close()

    shared = [start_envd(command=launcher) for _ in range(args.sharing)]
    try:
        time.sleep(1.0)
        shared_pss = [pss_kib(e.proc.pid)["Pss"] for e in shared]
    finally:
        for server in shared:
            server.close()

    print(json.dumps({
        "benchmark": "envd_sdk_roundtrip",
        "sdk": SDK_VERSION,
        "count": len(samples),
        "roundtrip_ms": {
            "p50": percentile(samples, 50), "p90": percentile(samples, 90), "p99": percentile(samples, 99),
            "mean": round(statistics.fmean(samples), 3),
        },
        "memory_kib": {
            "idle_single": idle,
            "after_roundtrips": busy,
            f"idle_avg_pss_{args.sharing}_sharing_bundle": round(statistics.fmean(shared_pss)),
        },
        "bundle": {"size_mib": round(bundle_mb, 1), "build_or_check_s": round(build_s, 2)},
    }))


if __name__ == "__main__":
    main()
