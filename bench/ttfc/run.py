"""Time to first command through the whole single-machine stack, with the unmodified E2B SDK.

Measures ``Sandbox.create(template)`` + ``commands.run("true")`` (sequential; the kill after it is
not timed) against a stack started with ``agent-sandbox up`` (its own state dir, free ports):

* ``warm_same_image`` — pool ``ttfc-same`` with ``podCreationImagePolicy: PoolDefaultImage``: the
  idle pods already run the pool's image with envd up, so a claim is one write + ``/init``;
* ``warm_idle_swap`` — the default pool ``base`` (idle pods run the idle image): every claim swaps
  the container in place to the pool's image (``host``);
* ``different_image`` — template ``base//ttfc/other:1`` (an image-map entry of the ``local`` node):
  the container is swapped in place to an image the pool does not name.

Prints one JSON object: p50/p90/p99/max in milliseconds per scenario, plus how long ``up`` took to
print READY. Target: warm_same_image p50 ≤ 150 ms.

    .venv/bin/python bench/ttfc/run.py [--count 20] [--sdk 2.63.0] [--keep-state DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "stack"))

from stack_harness import AGENT_SANDBOX, UpProcess, envd_harness, run_sdk_driver, write_config  # noqa: E402

OTHER_IMAGE = "ttfc/other:1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(seconds: list[float]) -> dict[str, float | int]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p90_ms": round(percentile(ms, 0.9), 1),
            "p99_ms": round(percentile(ms, 0.99), 1), "max_ms": round(max(ms), 1), "min_ms": round(min(ms), 1)}


def kubectl_apply(up: UpProcess, body: dict) -> None:
    env = {**os.environ, "KUBECONFIG": up.exports["KUBECONFIG"]}
    subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(body), env=env, text=True, check=True,
                   capture_output=True, timeout=30)


def wait_warm(up: UpProcess, pool: str, replicas: int) -> None:
    env = {**os.environ, "KUBECONFIG": up.exports["KUBECONFIG"]}
    subprocess.run(["kubectl", "wait", f"sbp/{pool}", f"--for=jsonpath={{.status.idleReplicas}}={replicas}",
                    "--timeout=180s"], env=env, check=True, capture_output=True, timeout=200)


def same_image_pool(replicas: int) -> dict:
    return {"apiVersion": "agentsandbox.io/v1alpha1", "kind": "SandboxPool",
            "metadata": {"name": "ttfc-same", "namespace": "default"},
            "spec": {"replicas": replicas, "idleImage": "agent-sandbox/idle:latest",
                     "podCreationImagePolicy": "PoolDefaultImage",
                     "template": {"spec": {"containers": [{"name": "main", "image": "host"}],
                                           "terminationGracePeriodSeconds": 5}}}}


def measure(up: UpProcess, python: Path, template: str, count: int) -> dict:
    """Figures for ``template``, or the error that stopped the run (the other scenarios still run)."""
    env = {**up.sdk_env(), "TTFC_TEMPLATE": template, "TTFC_COUNT": str(count)}
    try:
        result = run_sdk_driver(python, "first_command", env, timeout=60 + count * 30)["first_command"]
    except AssertionError as exc:
        return {"template": template, "error": str(exc).strip().splitlines()[-1][:500]}
    if any(code != 0 for code in result["exit_codes"]):
        return {"template": template, "error": f"a first command failed: exit codes {result['exit_codes']}"}
    return {"template": template, "ttfc": summary(result["ttfc_s"]), "create": summary(result["create_s"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="sandboxes per scenario")
    parser.add_argument("--sdk", default="2.63.0", help="E2B SDK version (a pinned one)")
    parser.add_argument("--keep-state", type=Path, help="state directory to use and keep (default: temporary)")
    args = parser.parse_args()
    python = envd_harness().sdk_python(args.sdk)  # type: ignore[attr-defined]
    base = args.keep_state or Path(tempfile.mkdtemp(prefix="bench-ttfc-"))
    base.mkdir(parents=True, exist_ok=True)
    up = UpProcess(base / "state", write_config(base / "stack.json", replicas=2),
                   command=(str(AGENT_SANDBOX), "up")).start()
    try:
        node_dir = up.state_dir / "cluster" / "node"
        (node_dir / "images.yaml").write_text(json.dumps({OTHER_IMAGE: {"rootfs": "host"}}))
        kubectl_apply(up, same_image_pool(args.count + 1))
        wait_warm(up, "ttfc-same", args.count + 1)
        results = {
            "sdk": args.sdk, "count": args.count, "up_ready_s": round(up.ready_s, 1),
            "warm_same_image": measure(up, python, "ttfc-same", args.count),
            "warm_idle_swap": measure(up, python, "base", args.count),
            "different_image": measure(up, python, f"base//{OTHER_IMAGE}", args.count),
        }
    finally:
        code = up.stop()
    results["up_exit_code"] = code
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
