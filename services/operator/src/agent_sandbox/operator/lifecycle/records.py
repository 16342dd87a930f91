"""Sandbox records: the caller-facing view of a sandbox, built from its pod.

The same record shape is served for live sandboxes (from the pod) and for
finished ones (from the history store), so get/list can merge both sources.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.timeutil import format_time, parse_time

_LIVE_STATUS = {
    v.SandboxPhase.RUNNING.value: "Running",
    v.SandboxPhase.STARTING.value: "Starting",
    v.SandboxPhase.STOPPING.value: "Stopping",
    v.SandboxPhase.FAILED.value: "Failed",
}
FINISHED_STATUSES = ("Completed", "Canceled", "Released", "Failed")


def live_status(pod: pv.Pod) -> str:
    return _LIVE_STATUS.get(pv.sandbox_phase(pod), "Pending")


def _duration(record: dict[str, Any], now: datetime) -> float | None:
    started = parse_time(record.get("startedAt"))
    if started is None:
        return None
    end = parse_time(record.get("terminatedAt")) if record["status"] in FINISHED_STATUSES else now
    return round(max(((end or now) - started).total_seconds(), 0.0), 3)


def sandbox_record(pod: pv.Pod, now: datetime, *, gateway_base_url: str = "",
                   runtimes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Record of the sandbox held by ``pod`` (status from the phase label)."""
    ann = pv.annotations(pod)
    labels = pv.labels(pod)
    sid = pv.sandbox_id(pod)
    record: dict[str, Any] = {
        "sandboxId": sid,
        "namespace": pv.namespace(pod),
        "poolName": pv.pool_name(pod),
        "podName": pv.name(pod),
        "status": live_status(pod),
        "claimedAt": ann.get(v.ANN_CLAIMED_AT, ""),
        "containerImages": pv.container_images(pod),
        "metadata": pv.json_annotation(pod, v.ANN_SANDBOX_METADATA, {}),
        "nodeName": (pod.get("spec") or {}).get("nodeName", ""),
    }
    for field, key in (("startedAt", v.ANN_STARTED_AT), ("terminatedAt", v.ANN_TERMINATED_AT),
                       ("failureReason", v.ANN_FAILURE_REASON), ("failureMessage", v.ANN_FAILURE_MESSAGE),
                       ("containerId", v.ANN_CONTAINER_ID)):
        if ann.get(key):
            record[field] = ann[key]
    if labels.get(v.LABEL_TEAM):
        record["team"] = labels[v.LABEL_TEAM]
    if labels.get(v.LABEL_USER):
        record["user"] = labels[v.LABEL_USER]
    exit_code = pv.int_annotation(pod, v.ANN_EXIT_CODE)
    if exit_code is not None:
        record["exitCode"] = exit_code
    if gateway_base_url and sid:
        base = gateway_base_url.rstrip("/")
        record["endpoints"] = {
            rt["name"]: {"url": f"{base}/sandboxes/{sid}/{rt['port']}", **({"logDir": rt["logDir"]}
                                                                          if rt.get("logDir") else {})}
            for rt in runtimes or [] if rt.get("name") and rt.get("port")
        }
    duration = _duration(record, now)
    if duration is not None:
        record["durationSeconds"] = duration
    return record


def finished_record(pod: pv.Pod, now: datetime, *, default_reason: str = "Completed") -> dict[str, Any]:
    """History record of a sandbox whose pod has stopped (stop reason becomes the status)."""
    record = sandbox_record(pod, now)
    ann = pv.annotations(pod)
    record["status"] = ann.get(v.ANN_STOP_REASON) or default_reason
    record["terminatedAt"] = ann.get(v.ANN_TERMINATED_AT) or format_time(now)
    running = pv.json_annotation(pod, v.ANN_RUNNING_IMAGES, None)
    if isinstance(running, dict):
        record["containerImages"] = running
    duration = _duration(record, now)
    if duration is not None:
        record["durationSeconds"] = duration
    return record
