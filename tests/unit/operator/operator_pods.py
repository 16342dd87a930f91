"""Builders of raw pod and pool dicts shaped like the API server's, for the operator's pure-logic tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
IDLE_IMAGE = "registry.local/idle:1"
WORK_IMAGE = "python:3.11"


def ts(offset_s: float = 0) -> str:
    return (T0 + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def pod(
    name: str = "p-1",
    phase: str = "idle",
    *,
    pool: str = "pool",
    image: str = IDLE_IMAGE,
    ready: bool = True,
    created: float = 0,
    kube_phase: str = "Running",
    container_id: str = "cid-1",
    status_image: str | None = None,
    state: dict[str, Any] | None = None,
    waiting: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    rv: str = "10",
) -> dict[str, Any]:
    ann = dict(annotations or {})
    if state is not None:
        ann[v.ANN_INPLACE_UPDATE_STATE] = orjson.dumps(state).decode()
    lab = {v.LABEL_SANDBOX_POOL: pool, v.LABEL_SANDBOX_PHASE: phase, **(labels or {})}
    cstate: dict[str, Any] = {"waiting": {"reason": waiting, "message": f"{waiting} happened"}} if waiting else {
        "running": {"startedAt": ts(created)}}
    meta: dict[str, Any] = {
        "name": name, "namespace": "ns", "labels": lab, "annotations": ann,
        "creationTimestamp": ts(created), "resourceVersion": rv, "uid": f"uid-{name}",
        "finalizers": [v.FINALIZER_SANDBOX_PROTECTION],
    }
    if deleting:
        meta["deletionTimestamp"] = ts(created + 1)
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "main", "image": image, "resources": {}},
                                {"name": "side", "image": "busybox:1"}]},
        "status": {
            "phase": kube_phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "main", "image": status_image or image, "imageID": f"docker-pullable://x@sha256:{name}",
                 "containerID": container_id, "restartCount": 0, "state": cstate},
                {"name": "side", "image": "busybox:1", "imageID": "sha256:side", "containerID": "side-1",
                 "restartCount": 0, "state": {"running": {}}},
            ],
        },
    }


def pool(name: str = "pool", replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": v.API_VERSION, "kind": v.POOL_KIND,
        "metadata": {"name": name, "namespace": "ns", "uid": "pool-uid", "generation": 1,
                     "labels": {v.LABEL_TEAM: "t1"}, "annotations": {}},
        "spec": {
            "replicas": replicas, "idleImage": IDLE_IMAGE,
            "template": {"metadata": {"labels": {"app": "x"}},
                         "spec": {"containers": [{"name": "main", "image": WORK_IMAGE},
                                                 {"name": "side", "image": "busybox:1"}]}},
            **spec,
        },
        "status": {},
    }


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, so tests can see the pod a patch produces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out
