"""What a release writes (behaviour §9): stop details, cleanup of caller keys, swap back to idle images.

Pure: produces the :class:`UpdateOptions` of the Stopping transition. The
history record is derived later, by every replica, when it sees the sandbox id
leave the pod (Stopping→Idle), from the annotations set here — so the stop
annotations must say everything the record shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.lifecycle.inplace import UpdateOptions
from agent_sandbox.operator.timeutil import format_time


@dataclass(frozen=True, slots=True)
class StopDetails:
    reason: v.StopReason
    failure_reason: str = ""
    failure_message: str = ""
    exit_code: int | None = None


def idle_images(pool: dict[str, Any]) -> dict[str, str]:
    """Container → image of an idle pod of ``pool``: container[0] runs the idle image, the rest the template's."""
    spec = pool.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    images = {c.get("name", ""): c.get("image", "") for c in containers}
    if containers and spec.get("idleImage"):
        images[containers[0].get("name", "")] = spec["idleImage"]
    return images


def stop_annotations(pod: pv.Pod, stop: StopDetails, now: datetime) -> dict[str, str]:
    """How the sandbox of ``pod`` ended, as annotations: every replica's history record is read from them."""
    statuses = pv.container_statuses(pod)
    containers = pv.containers(pod)
    first = containers[0].get("name", "") if containers else ""
    annotations = {
        v.ANN_STOP_REASON: stop.reason.value,
        v.ANN_TERMINATED_AT: format_time(now),
        v.ANN_RUNNING_IMAGES: orjson.dumps(pv.container_images(pod)).decode(),
        v.ANN_CONTAINER_ID: (statuses.get(first) or {}).get("containerID", ""),
    }
    if stop.failure_reason:
        annotations[v.ANN_FAILURE_REASON] = stop.failure_reason
    if stop.failure_message:
        annotations[v.ANN_FAILURE_MESSAGE] = stop.failure_message[:1024]
    if stop.exit_code is not None:
        annotations[v.ANN_EXIT_CODE] = str(stop.exit_code)
    return annotations


def release_options(pod: pv.Pod, pool: dict[str, Any], stop: StopDetails, now: datetime) -> UpdateOptions:
    managed_labels = [k for k in pv.json_annotation(pod, v.ANN_MANAGED_LABEL_KEYS, []) if isinstance(k, str)]
    managed_anns = [k for k in pv.json_annotation(pod, v.ANN_MANAGED_ANNOTATION_KEYS, []) if isinstance(k, str)]
    annotations = stop_annotations(pod, stop, now)
    present = pv.annotations(pod)
    remove_anns = [k for k in (v.ANN_IDLE_TIMEOUT, v.ANN_LAST_ACTIVE, v.ANN_MANAGED_LABEL_KEYS,
                               v.ANN_MANAGED_ANNOTATION_KEYS, *managed_anns) if k in present]
    targets = idle_images(pool)
    images = {n: img for n, img in targets.items() if n in pv.container_images(pod)}
    return UpdateOptions(
        target_phase=v.SandboxPhase.IDLE.value,
        images=images,
        remove_labels=[k for k in (v.LABEL_MANAGED_BY, *managed_labels) if k in pv.labels(pod)],
        annotations=annotations,
        remove_annotations=[k for k in remove_anns if k not in annotations],
        expected_phase=pv.sandbox_phase(pod),
    )


def delete_stop_reason(pod: pv.Pod) -> v.StopReason:
    """Stop reason of a caller's delete: Canceled when it never started, else Completed."""
    if pv.sandbox_phase(pod) == v.SandboxPhase.STARTING and not pv.annotations(pod).get(v.ANN_STARTED_AT):
        return v.StopReason.CANCELED
    return v.StopReason.COMPLETED
