"""Latency summary shared by the benchmark scripts, so every JSON result reads the same way, and a probe of
the machine's speed at a given moment.

Scripts run by path (``python bench/<area>/<script>.py``) put ``bench/`` on ``sys.path`` to import it.
"""

from __future__ import annotations

import time


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of ``samples`` given in seconds (nearest-rank)."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99), "max_ms": round(ordered[-1] * 1000, 2),
            "n": len(ordered)}


def speed_probe_ms(rounds: int = 3) -> float:
    """Milliseconds a fixed piece of pure-Python work (building and walking small dicts, as request handling
    does) takes now: the best of ``rounds``, about 1 ms on an unloaded core of the build machine.

    On a shared VM the same work takes up to twice as long in a slow spell, and a latency measured then
    says more about the host than about the code; a probe taken next to a measurement tells the two apart."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        table = {str(i): [i, {"i": i}] for i in range(5000)}
        sum(len(value) for value in table.values())
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 3)
