"""Benchmark: what the cluster-wide ``Idempotency-Key`` record costs an E2B create, and what a replay costs.

Two real operator replicas with their E2B servers on the embedded control plane with a ``sim`` node
(the stack of ``tests/integration/e2b_idempotency``). Sequential, each sandbox killed after its 201
(outside the timing):

* ``plain``: ``POST /v2/sandboxes`` without a key (the baseline);
* ``keyed``: the same with a fresh key each time (one Lease create + one patch on top of the claim);
* ``replay_other_replica``: the same key again on the other replica (answered from the Lease).

Prints one JSON object (milliseconds).

    .venv/bin/python bench/e2b_idempotency/bench_keyed_create.py --n 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# The idempotency test stack is reused, not duplicated.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "e2b_idempotency"))

from idem_stack import TwoReplicas, two_replicas

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers
from benchstats import percentiles


async def timed(call: Callable[[], Awaitable[tuple[int, dict]]]) -> tuple[float, dict]:
    started = time.perf_counter()
    status, body = await call()
    elapsed = time.perf_counter() - started
    if status != 201:
        raise RuntimeError(f"create answered {status}: {body}")
    return elapsed, body


async def measure(env: TwoReplicas, n: int) -> dict[str, object]:
    plain: list[float] = []
    keyed: list[float] = []
    replay: list[float] = []
    for i in range(n):
        took, body = await timed(lambda: env.create(0, None))
        plain.append(took)
        await env.delete(body["sandboxID"])
        key = f"bench-{i}"
        took, body = await timed(lambda key=key: env.create(0, key))  # type: ignore[misc]
        keyed.append(took)
        took, again = await timed(lambda key=key: env.create(1, key))  # type: ignore[misc]
        replay.append(took)
        if again["sandboxID"] != body["sandboxID"]:
            raise RuntimeError("replay on the other replica returned another sandbox")
        await env.delete(body["sandboxID"])
    return {"benchmark": "e2b_keyed_create", "replicas": 2, "node": "sim",
            "plain_ms": percentiles(plain), "keyed_ms": percentiles(keyed),
            "replay_other_replica_ms": percentiles(replay)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="creates per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-idem-") as state:
        async with two_replicas(Path(state), pool_replicas=4) as env:
            print(json.dumps(await measure(env, args.n)))


if __name__ == "__main__":
    asyncio.run(main())
