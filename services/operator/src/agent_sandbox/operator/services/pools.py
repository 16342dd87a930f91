"""PoolService: create (from a SandboxTemplate or an inline spec), get, list, update, scale, delete pools.

Validation happens before anything is written (behaviour §4.1); updates are
read-modify-write with the read resourceVersion and retried on conflict, so
a concurrent autoscaler write is never silently overwritten.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.controllers.status import count_pods
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pools_path, templates_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.pooltemplate import apply_overrides, pool_from_template
from agent_sandbox.operator.services.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from agent_sandbox.operator.services.models import (
    MAX_POOL_REPLICAS,
    Caller,
    CreatePoolRequest,
    UpdatePoolRequest,
)
from agent_sandbox.operator.services.validation import validate_pool_spec

MAX_UPDATE_ATTEMPTS = 5


def _spec_fields(req: CreatePoolRequest) -> dict[str, Any]:
    fields = req.spec.model_dump(exclude_none=True, exclude={"template", "idleImage", "runtimes"})
    for name in ("replicas", "minReplicas", "maxReplicas"):
        value = getattr(req, name)
        if value is not None:
            fields[name] = value
    fields.setdefault("replicas", fields.get("minReplicas", 1) if fields.get("autoscaling", {}).get("enabled")
                      else 1)
    auto = fields.get("autoscaling")
    if auto is not None and not auto.get("enabled"):
        fields.pop("minReplicas", None)
        fields.pop("maxReplicas", None)
    return fields


class PoolService:
    def __init__(self, client: KubeClient, pools: Informer, pods: Informer) -> None:
        self.client = client
        self.pools = pools
        self.pods = pods

    async def create(self, req: CreatePoolRequest, caller: Caller) -> dict[str, Any]:
        labels = dict(req.labels)
        if caller.team:
            labels[v.LABEL_TEAM] = caller.team
        if caller.user:
            labels[v.LABEL_USER] = caller.user
        overrides = req.overrides
        if req.templateName:
            try:
                template = await self.client.get(templates_path(req.templateName))
            except KubeError as exc:
                if exc.not_found:
                    raise NotFound(f"sandbox template {req.templateName!r} not found") from exc
                raise
            pool = pool_from_template(template, req.name, caller.namespace, _spec_fields(req), labels,
                                      dict(req.annotations), overrides.image if overrides else None,
                                      overrides.resourceMultiplier if overrides else None)
            if req.spec.idleImage:
                pool["spec"]["idleImage"] = req.spec.idleImage
        else:
            spec = {**_spec_fields(req), "template": apply_overrides(
                req.spec.template or {}, overrides.image if overrides else None,
                overrides.resourceMultiplier if overrides else None)}
            if req.spec.idleImage:
                spec["idleImage"] = req.spec.idleImage
            if req.spec.runtimes:
                spec["runtimes"] = req.spec.runtimes
            annotations = dict(req.annotations)
            if overrides:
                annotations[v.ANN_OVERRIDES] = orjson.dumps(overrides.model_dump(exclude_none=True)).decode()
            pool = {"apiVersion": v.API_VERSION, "kind": v.POOL_KIND,
                    "metadata": {"name": req.name, "namespace": caller.namespace, "labels": labels,
                                 "annotations": annotations},
                    "spec": spec}
        validate_pool_spec(pool["spec"])
        try:
            return await self.client.create(pools_path(caller.namespace), pool)
        except KubeError as exc:
            if exc.status == 409:
                raise AlreadyExists(f"sandbox pool {req.name!r} already exists") from exc
            if exc.status in (400, 422):
                raise InvalidRequest(f"sandbox pool rejected: {exc.message}") from exc
            raise

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await self.client.get(pools_path(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                raise NotFound(f"sandbox pool {name!r} not found") from exc
            raise

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        pools = [p for p in self.pools.items()
                 if namespace is None or (p.get("metadata") or {}).get("namespace") == namespace]
        return sorted(pools, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"].get("name", "")))

    def counts(self, namespace: str, name: str) -> dict[str, int]:
        c = count_pods(self.pods.by_index("pool", f"{namespace}/{name}"))
        return {"idle": c.idle, "unavailableIdle": c.unavailable_idle, "running": c.running,
                "starting": c.starting, "stopping": c.stopping, "failed": c.failed}

    async def update(self, namespace: str, name: str, req: UpdatePoolRequest) -> dict[str, Any]:
        for _ in range(MAX_UPDATE_ATTEMPTS):
            pool = await self.get(namespace, name)
            spec = copy.deepcopy(pool.get("spec") or {})
            for field in ("replicas", "minReplicas", "maxReplicas", "podCreationImagePolicy"):
                value = getattr(req, field)
                if value is not None:
                    spec[field] = value
            if req.autoscaling is not None:
                spec["autoscaling"] = req.autoscaling.model_dump()
                if not req.autoscaling.enabled:
                    spec.pop("minReplicas", None)
                    spec.pop("maxReplicas", None)
            meta = pool["metadata"]
            annotations: dict[str, Any] = {}
            if req.overrides is not None and req.overrides.image:
                containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
                if containers:
                    containers[0]["image"] = req.overrides.image
                stored = orjson.loads((meta.get("annotations") or {}).get(v.ANN_OVERRIDES) or "{}")
                stored["image"] = req.overrides.image
                annotations[v.ANN_OVERRIDES] = orjson.dumps(stored).decode()
            validate_pool_spec(spec)
            body: dict[str, Any] = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": spec}
            if annotations:
                body["metadata"]["annotations"] = annotations
            try:
                return await self.client.merge_patch(pools_path(namespace, name), body)
            except KubeError as exc:
                if exc.conflict:
                    continue
                if exc.not_found:
                    raise NotFound(f"sandbox pool {name!r} not found") from exc
                raise
        raise Conflict(f"sandbox pool {name!r} kept changing; retry the update")

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        if not 0 <= replicas <= MAX_POOL_REPLICAS:
            raise InvalidRequest(f"replicas must be between 0 and {MAX_POOL_REPLICAS}")
        return await self.update(namespace, name, UpdatePoolRequest(replicas=replicas))

    async def delete(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            await self.client.delete(pools_path(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                raise NotFound(f"sandbox pool {name!r} not found") from exc
            raise
        return {"name": name, "namespace": namespace, "status": "Terminating"}
