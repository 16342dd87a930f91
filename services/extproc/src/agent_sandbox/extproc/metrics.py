"""Prometheus metrics of the data plane.

With several worker processes, prometheus_client runs in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set by the supervisor before the workers start)
and the supervisor's ``/metrics`` aggregates every worker's files; the metric
objects here are the same in both modes. Counters and histograms only, because
they aggregate across processes without a mode choice.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from agent_sandbox.common.vocabulary import METRICS_PREFIX

from .decision import Outcome

P = METRICS_PREFIX + "extproc_"

REQUESTS = Counter(P + "requests_total", "Data-plane routing decisions", ["decision"])
DECISION_SECONDS = Histogram(
    P + "decision_duration_seconds",
    "Time to decide one request inside extproc (header parsing to response message)",
    buckets=(0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1),
)
CONTROL_REQUESTS = Counter(P + "control_requests_total", "Control-plane RPCs", ["method", "result"])
WATCH_RESTARTS = Counter(P + "watch_restarts_total", "Watch relists after an error or 410 Gone", ["resource"])

#: Pre-bound children so the request path does no label look-up.
REQUESTS_BY_OUTCOME = {outcome: REQUESTS.labels(outcome.value) for outcome in Outcome}


def render() -> bytes:
    """The exposition text: every worker's metrics in multiprocess mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
