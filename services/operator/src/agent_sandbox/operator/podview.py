"""Read-only accessors over raw pod dicts (as the API server sends them).

The hot path handles JSON dicts, not generated model objects; these helpers
keep the dictionary digging in one place so decision code reads like prose.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.timeutil import parse_time

Pod = dict[str, Any]

#: Container waiting reasons that mean the image cannot be pulled (won't fix itself soon).
IMAGE_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
#: Waiting reasons of an idle pod that must be replaced rather than waited for.
UNHEALTHY_WAITING = IMAGE_PULL_FAILURES | {"CrashLoopBackOff", "CreateContainerError", "RunContainerError"}


def meta(pod: Pod) -> dict[str, Any]:
    return pod.get("metadata") or {}


def name(pod: Pod) -> str:
    return meta(pod).get("name", "")


def namespace(pod: Pod) -> str:
    return meta(pod).get("namespace", "")


def key(obj: Pod) -> str:
    return f"{namespace(obj)}/{name(obj)}"


def labels(pod: Pod) -> dict[str, str]:
    return meta(pod).get("labels") or {}


def annotations(pod: Pod) -> dict[str, str]:
    return meta(pod).get("annotations") or {}


def resource_version(pod: Pod) -> str:
    return meta(pod).get("resourceVersion", "")


def rv_older(rv: str, than: str) -> bool:
    """True when resourceVersion ``rv`` is older than ``than`` (numeric RVs; opaque ones never compare older)."""
    return rv.isdigit() and than.isdigit() and int(rv) < int(than)


def finalizers(pod: Pod) -> list[str]:
    return list(meta(pod).get("finalizers") or [])


def is_deleting(pod: Pod) -> bool:
    return bool(meta(pod).get("deletionTimestamp"))


def created_at(pod: Pod) -> datetime | None:
    return parse_time(meta(pod).get("creationTimestamp"))


def pool_name(pod: Pod) -> str:
    return labels(pod).get(v.LABEL_SANDBOX_POOL, "")


def sandbox_phase(pod: Pod) -> str:
    """The phase label; empty when the pod carries none."""
    return labels(pod).get(v.LABEL_SANDBOX_PHASE, "")


def sandbox_id(pod: Pod) -> str:
    return labels(pod).get(v.LABEL_SANDBOX_ID, "") or annotations(pod).get(v.ANN_SANDBOX_ID, "")


def kube_phase(pod: Pod) -> str:
    return (pod.get("status") or {}).get("phase", "")


def pod_ready(pod: Pod) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def ready_since(pod: Pod) -> datetime | None:
    """When the pod's Ready condition last turned True (None while not ready)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def containers(pod: Pod) -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get("containers") or [])


def container_images(pod: Pod) -> dict[str, str]:
    return {c.get("name", ""): c.get("image", "") for c in containers(pod)}


def container_statuses(pod: Pod) -> dict[str, dict[str, Any]]:
    return {s.get("name", ""): s for s in (pod.get("status") or {}).get("containerStatuses") or []}


def waiting_reason(status: dict[str, Any]) -> str:
    return ((status.get("state") or {}).get("waiting") or {}).get("reason", "")


def waiting_message(status: dict[str, Any]) -> str:
    return ((status.get("state") or {}).get("waiting") or {}).get("message", "")


def is_running(status: dict[str, Any]) -> bool:
    return "running" in (status.get("state") or {})


def json_annotation(pod: Pod, key_: str, default: Any) -> Any:
    raw = annotations(pod).get(key_)
    if not raw:
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return default


def int_annotation(pod: Pod, key_: str) -> int | None:
    raw = annotations(pod).get(key_)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def time_annotation(pod: Pod, key_: str) -> datetime | None:
    return parse_time(annotations(pod).get(key_))


def owned_by(pod: Pod, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in meta(pod).get("ownerReferences") or [])
