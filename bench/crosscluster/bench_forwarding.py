"""Benchmark: the cost of cross-cluster API forwarding (behaviour.md §20.2).

Two in-process stacks (embedded control plane + ``sim`` node + real operator + both APIs), ``c1``
configured to forward to ``c2``. Compares the same requests sent straight to ``c2`` and sent to
``c1`` naming ``c2`` (sequential, one client, keep-alive):

1. ``GET /v1/sandboxes/{id}`` of one running sandbox (``--reads``);
2. E2B ``POST /v2/sandboxes`` → 201 with ``templateID`` ``xpool`` (direct) or ``c2::xpool`` (forwarded),
   each sandbox killed after its 201, outside the timing (``--creates``).

Prints one JSON object (percentiles in ms, and the forwarding overhead at p50).

    .venv/bin/python bench/crosscluster/bench_forwarding.py --reads 300 --creates 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import requests

# The cross-cluster test rig is reused, not duplicated.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "e2b_api"))

from native_stack import V
from two_clusters import copy_keys, gateway_of, start_pair, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers
from benchstats import percentiles


async def timed_reads(http: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append(time.perf_counter() - started)
    return out


async def timed_creates(http: aiohttp.ClientSession, api: str, template: str, headers: dict[str, str],
                        n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with http.post(api + "/v2/sandboxes", json={"templateID": template, "metadata": {}, "envVars": {}},
                             headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 201, body
        out.append(time.perf_counter() - started)
        async with http.delete(f"{api}/sandboxes/{body['sandboxID']}", headers=headers) as resp:
            assert resp.status == 204, await resp.text()
    return out


async def measure(one_url: str, one_e2b: str, two_url: str, two_e2b: str, key: str, sid: str,
                  reads: int, creates: int) -> dict[str, object]:
    native = {"X-API-Key": key, **V}
    e2b = {"X-API-Key": "e2b_" + key[4:]}
    async with aiohttp.ClientSession() as http:
        await timed_reads(http, f"{one_url}/v1/sandboxes/{sid}", native, 20)  # warm connections
        direct_reads = await timed_reads(http, f"{two_url}/v1/sandboxes/{sid}", native, reads)
        fwd_reads = await timed_reads(http, f"{one_url}/v1/sandboxes/{sid}", native, reads)
        direct_creates = await timed_creates(http, two_e2b, "xpool", e2b, creates)
        fwd_creates = await timed_creates(http, one_e2b, "c2::xpool", e2b, creates)
    result: dict[str, object] = {
        "native_get_direct": percentiles(direct_reads), "native_get_forwarded": percentiles(fwd_reads),
        "e2b_create_direct": percentiles(direct_creates), "e2b_create_forwarded": percentiles(fwd_creates),
    }
    result["forwarding_overhead_p50_ms"] = {
        "native_get": round(percentiles(fwd_reads)["p50_ms"] - percentiles(direct_reads)["p50_ms"], 2),
        "e2b_create": round(percentiles(fwd_creates)["p50_ms"] - percentiles(direct_creates)["p50_ms"], 2),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--creates", type=int, default=60)
    args = parser.parse_args()
    one, two = start_pair()
    try:
        two.create_pool("xpool", 6)
        key = one.tenant_key("bench", "red")
        copy_keys(one, two)
        write_config(one, [{"id": "c1", "name": "one"}, gateway_of(two, "two")])
        deadline = time.monotonic() + 15
        assert one.operator is not None
        while one.operator.clusters.gateway("c2", "native") is None:
            assert time.monotonic() < deadline, "cluster configuration never arrived"
            time.sleep(0.05)
        r = requests.post(f"{two.url}/v1/sandboxes", json={"poolName": "xpool", "wait": True},
                          headers={"X-API-Key": key, **V}, timeout=30)
        assert r.status_code == 201, r.text
        sid = r.json()["sandbox"]["sandboxId"]
        two.wait_idle("xpool", 5)
        result = asyncio.run(measure(one.url, one.e2b_url, two.url, two.e2b_url, key, sid, args.reads,
                                     args.creates))
        result["config"] = {"reads": args.reads, "creates": args.creates, "node": "sim"}
        print(json.dumps(result), flush=True)
    finally:
        one.stop()
        two.stop()


if __name__ == "__main__":
    main()
