"""PoolService: create (from a SandboxTemplate or an inline spec), get, list, update, scale, sync, delete pools.

Validation happens before anything is written (behaviour §4.1); updates are
read-modify-write with the read resourceVersion and retried on conflict, so
a concurrent autoscaler write is never silently overwritten.

A pool created with registry credentials references its Secret ``ips-<pool>`` in the pod template
from the start; the Secret is written right after the pool (it needs the pool's uid to be owned by
it, so the pool's deletion garbage-collects it), and if that write fails the pool is deleted again:
a pool whose pods could not pull is never left behind.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any
from urllib.parse import quote

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.controllers.status import count_pods
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pools_path, templates_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.pooltemplate import apply_overrides, pool_from_template, synced_pool, template_name_of
from agent_sandbox.operator.pullsecrets import pull_secret, pull_secret_name, with_pull_secret
from agent_sandbox.operator.services.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from agent_sandbox.operator.services.models import (
    MAX_POOL_REPLICAS,
    Caller,
    CreatePoolRequest,
    ImagePullSecret,
    UpdatePoolRequest,
)
from agent_sandbox.operator.services.validation import validate_pool_spec

MAX_UPDATE_ATTEMPTS = 5
log = get_logger(__name__)


def _secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"


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
        if req.imagePullSecret is not None:
            pool["spec"]["template"] = with_pull_secret(pool["spec"].get("template") or {},
                                                        pull_secret_name(req.name))
        validate_pool_spec(pool["spec"])
        if req.imagePullSecret is None:
            return await self._create_pool(pool)
        # Shielded: a caller hanging up must not stop anywhere between the pool and its Secret (or rollback).
        return await asyncio.shield(self._create_pool_with_secret(pool, req.imagePullSecret))

    async def _create_pool(self, pool: dict[str, Any]) -> dict[str, Any]:
        meta = pool["metadata"]
        try:
            return await self.client.create(pools_path(meta["namespace"]), pool)
        except KubeError as exc:
            if exc.status == 409:
                raise AlreadyExists(f"sandbox pool {meta['name']!r} already exists") from exc
            if exc.status in (400, 422):
                raise InvalidRequest(f"sandbox pool rejected: {exc.message}") from exc
            raise

    async def _create_pool_with_secret(self, pool: dict[str, Any], credentials: ImagePullSecret) -> dict[str, Any]:
        created = await self._create_pool(pool)
        await self._create_pull_secret(created, credentials)
        return created

    async def _create_pull_secret(self, pool: dict[str, Any], credentials: ImagePullSecret) -> None:
        """Write the pool's image-pull Secret, or delete the pool again and raise."""
        meta = pool["metadata"]
        name = pull_secret_name(meta["name"])
        try:
            await self.client.create(_secrets_path(meta["namespace"]), pull_secret(pool, credentials.registries))
        except Exception as exc:
            log.warning("image pull secret not written, deleting the pool", pool=meta["name"],
                        namespace=meta["namespace"], error=type(exc).__name__,
                        status=exc.status if isinstance(exc, KubeError) else None)
            await self._roll_back(meta["namespace"], meta["name"])
            if isinstance(exc, KubeError) and exc.status == 409:
                raise AlreadyExists(f"secret {name!r} already exists; the pool was not created") from exc
            if isinstance(exc, KubeError) and exc.status in (400, 422):
                # The API server's message is not relayed: it may quote the Secret's data.
                raise InvalidRequest(f"the API server rejected secret {name!r} ({exc.status}); the pool was not "
                                     "created") from exc
            raise
        log.info("image pull secret written", pool=meta["name"], namespace=meta["namespace"], secret=name,
                 registries=[r.registry for r in credentials.registries])

    async def _roll_back(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(pools_path(namespace, name))
        except Exception as exc:  # the Secret's failure is what the caller hears about; this one is logged
            if not (isinstance(exc, KubeError) and exc.not_found):
                log.error("pool left behind after its image pull secret failed", pool=name, namespace=namespace,
                          error=str(exc))

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

    async def sync_template(self, namespace: str, name: str, *, write: bool) -> tuple[dict[str, Any], str | None]:
        """Re-copy the pool's SandboxTemplate with its stored overrides; returns (pool, template version).

        ``write=False`` computes the result without writing (preview). Pods are not touched: running
        sandboxes keep their spec, new pods use the synced one.
        """
        for _ in range(MAX_UPDATE_ATTEMPTS):
            pool = await self.get(namespace, name)
            template_name = template_name_of(pool)
            if not template_name:
                raise InvalidRequest(f"sandbox pool {name!r} was not created from a template; nothing to sync")
            try:
                template = await self.client.get(templates_path(template_name))
            except KubeError as exc:
                if exc.not_found:
                    raise NotFound(f"sandbox template {template_name!r} of pool {name!r} no longer exists") \
                        from exc
                raise
            synced = synced_pool(pool, template)
            validate_pool_spec(synced["spec"])
            version = str((template.get("spec") or {}).get("version") or "") or None
            if not write:
                return synced, version
            try:
                return await self.client.replace(pools_path(namespace, name), synced), version
            except KubeError as exc:
                if exc.conflict:
                    continue
                if exc.not_found:
                    raise NotFound(f"sandbox pool {name!r} not found") from exc
                if exc.status in (400, 422):
                    raise InvalidRequest(f"synced sandbox pool rejected: {exc.message}") from exc
                raise
        raise Conflict(f"sandbox pool {name!r} kept changing; retry the sync")

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
