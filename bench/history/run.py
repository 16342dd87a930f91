"""History-feed cost per pod event: what every replica pays to derive sandbox history from its pod watch.

The feed (``agent_sandbox.operator.lifecycle.history_feed``) runs on every pod
event of every replica, claims included. This measures, on realistic pod
dicts, the cost of the events that end nothing (an idle pod claimed, a
running pod's status update) and of the events that end a sandbox (recycle
to idle, pod deleted), and prints one JSON document.

    uv run python bench/history/run.py [--events 200000]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import configure_logging
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_feed import HistoryFeed
from agent_sandbox.operator.lifecycle.release import StopDetails, stop_annotations

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def pod(phase: str, sandbox_id: str = "", **annotations: str) -> dict:
    labels = {v.LABEL_SANDBOX_POOL: "bench", v.LABEL_SANDBOX_PHASE: phase}
    if sandbox_id:
        labels[v.LABEL_SANDBOX_ID] = sandbox_id
        annotations = {v.ANN_SANDBOX_ID: sandbox_id, v.ANN_CLAIMED_AT: "2026-01-01T11:59:00Z",
                       v.ANN_STARTED_AT: "2026-01-01T11:59:01Z", **annotations}
    return {
        "metadata": {"name": "p", "namespace": "default", "labels": labels, "annotations": annotations,
                     "resourceVersion": "7", "finalizers": [v.FINALIZER_SANDBOX_PROTECTION]},
        "spec": {"nodeName": "n", "containers": [{"name": "main", "image": "python:3.11"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "main", "image": "python:3.11", "containerID": "c-1", "state": {"running": {}}}]},
    }


def per_event_ns(events: int, make: Callable[[int], tuple[dict | None, dict | None]]) -> float:
    """Mean cost of ``events`` distinct events (distinct sandbox ids: every ending is a first ending)."""
    feed = HistoryFeed(HistoryStore(max_records=events + 1), now=lambda: NOW)
    pairs = [make(i) for i in range(events)]
    start = time.perf_counter_ns()
    for old, new in pairs:
        feed.on_pod_event("MODIFIED", old, new)
    return (time.perf_counter_ns() - start) / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    configure_logging(level="info")  # as the operator runs: the per-record debug line is off
    n = args.events
    idle = pod("idle")
    running = pod("running", "bench-0")
    status_update = copy.deepcopy(running)
    status_update["metadata"]["resourceVersion"] = "8"

    def stopping(i: int) -> dict:
        p = pod("stopping", f"bench-{i}")
        p["metadata"]["annotations"].update(stop_annotations(p, StopDetails(v.StopReason.COMPLETED), NOW))
        p["metadata"]["annotations"][v.ANN_INPLACE_UPDATE_STATE] = orjson.dumps(
            {"phase": "completed", "updateTimestamp": "2026-01-01T12:00:01Z"}).decode()
        return p

    def deleted(i: int) -> dict:
        p = pod("running", f"bench-{i}")
        p["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:30Z"
        p["metadata"]["deletionGracePeriodSeconds"] = 30
        return p

    result = {
        "benchmark": "history_feed_per_event",
        "events": n,
        "ns_per_event": {
            "claim_idle_to_starting": round(per_event_ns(n, lambda i: (idle, running)), 1),
            "running_status_update": round(per_event_ns(n, lambda i: (running, status_update)), 1),
            "recycle_to_idle_records": round(per_event_ns(n // 10, lambda i: (stopping(i), idle)), 1),
            "delete_of_running_records": round(
                per_event_ns(n // 10, lambda i: (pod("running", f"bench-{i}"), deleted(i))), 1),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
