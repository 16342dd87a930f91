"""Sandbox records: the caller-facing view of a sandbox, built from its pod.

The same record shape is served for live sandboxes (from the pod) and for
finished ones (from the history store), so get/list can merge both sources.
"""

from __future__ import annotations

from datetime import datetime, timedelta
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


def deletion_requested_at(pod: pv.Pod) -> datetime | None:
    """When the pod's delete was asked for: ``deletionTimestamp`` is that moment plus the grace period."""
    meta = pv.meta(pod)
    deadline = parse_time(meta.get("deletionTimestamp"))
    if deadline is None:
        return None
    grace = meta.get("deletionGracePeriodSeconds")
    return deadline - timedelta(seconds=grace) if isinstance(grace, int) and grace > 0 else deadline


def failed_at(pod: pv.Pod) -> datetime | None:
    """When the node failed the pod: its containers' last finish, else the last condition change."""
    status = pod.get("status") or {}
    finished = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                for c in status.get("containerStatuses") or []]
    changed = [parse_time(c.get("lastTransitionTime")) for c in status.get("conditions") or []]
    for stamps in (finished, changed):
        known = [t for t in stamps if t is not None]
        if known:
            return max(known)
    return None


def ending(pod: pv.Pod, *, gone: bool = False) -> tuple[str, str, str, datetime | None]:
    """``(status, failure reason, failure message, end time)`` of the sandbox ``pod`` held, from the pod alone.

    The stop annotations — written by a release, or with the finalizer removal of a pod the operator
    takes away — say how it ended. Without them, a pod the node failed, or one deleted (``gone``: seen
    deleted) under a starting or running sandbox, ended it as Failed (the pod status says why); anything
    else is a normal end. Every replica reads the same pod versions, so every replica gets the same answer.
    """
    ann = pv.annotations(pod)
    stop = ann.get(v.ANN_STOP_REASON)
    if stop:
        return (stop, ann.get(v.ANN_FAILURE_REASON, ""), ann.get(v.ANN_FAILURE_MESSAGE, ""),
                parse_time(ann.get(v.ANN_TERMINATED_AT)))
    status = pod.get("status") or {}
    if pv.kube_phase(pod) == "Failed":
        return (v.StopReason.FAILED.value, status.get("reason") or "Evicted", status.get("message") or "Pod failed",
                failed_at(pod))
    deleted = gone or pv.is_deleting(pod)
    if deleted and pv.sandbox_phase(pod) in (v.SandboxPhase.RUNNING.value, v.SandboxPhase.STARTING.value):
        return (v.StopReason.FAILED.value, status.get("reason") or "Evicted",
                status.get("message") or "Pod was deleted or evicted", deletion_requested_at(pod))
    return v.StopReason.COMPLETED.value, "", "", deletion_requested_at(pod)


def finished_record(pod: pv.Pod, now: datetime, *, gone: bool = False, recycled_at: str = "") -> dict[str, Any]:
    """History record of the sandbox ``pod`` held, from the pod version that ended it (see :func:`ending`).

    ``now`` only fills an end time the pod does not carry. ``recycled_at``: when the pod was idle again.
    """
    record = sandbox_record(pod, now)
    status, reason, message, ended = ending(pod, gone=gone)
    record["status"] = status
    if reason:
        record["failureReason"] = reason
    if message:
        record["failureMessage"] = message
    record["terminatedAt"] = record.get("terminatedAt") or format_time(ended or now)
    running = pv.json_annotation(pod, v.ANN_RUNNING_IMAGES, None)
    if isinstance(running, dict):
        record["containerImages"] = running
    if recycled_at:
        record["recycledAt"] = recycled_at
    duration = _duration(record, now)
    if duration is not None:
        record["durationSeconds"] = duration
    return record
