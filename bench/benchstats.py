"""Latency summary shared by the benchmark scripts, so every JSON result reads the same way.

Scripts run by path (``python bench/<area>/<script>.py``) put ``bench/`` on ``sys.path`` to import it.
"""

from __future__ import annotations


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of ``samples`` given in seconds (nearest-rank)."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99), "max_ms": round(ordered[-1] * 1000, 2),
            "n": len(ordered)}
