"""SandboxPool routes of the native API: create, get, list, update (incl. scaling), sync, delete.

Pools are namespaced: a caller manages the pools of its own namespace (admins act in ``default``
unless impersonating). Counts come from the operator's pod cache, the spec from the pool object.
A template sync (and its preview, which writes nothing) re-copies the pool's SandboxTemplate.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.models.common import StringList
from agent_sandbox.operator.api.models.pools import (
    DeletePoolResponse,
    PoolCounts,
    SandboxPool,
    SandboxPoolEnvelope,
    SandboxPoolList,
    SyncPreview,
)
from agent_sandbox.operator.api.sandbox_access import caller_of
from agent_sandbox.operator.services.models import CreatePoolRequest, UpdatePoolRequest
from agent_sandbox.operator.services.pools import PoolService


def pool_view(pool: dict[str, Any], counts: dict[str, int]) -> SandboxPool:
    meta = pool.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    try:
        overrides = orjson.loads(annotations.get(v.ANN_OVERRIDES) or "null")
    except orjson.JSONDecodeError:
        overrides = None
    return SandboxPool(
        name=meta.get("name", ""), namespace=meta.get("namespace", ""), spec=pool.get("spec") or {},
        status=PoolCounts(phase=(pool.get("status") or {}).get("phase"), **counts),
        team=labels.get(v.LABEL_TEAM), user=labels.get(v.LABEL_USER), createdAt=meta.get("creationTimestamp"),
        templateVersion=annotations.get(v.ANN_TEMPLATE_VERSION) or None,
        overrides=overrides if isinstance(overrides, dict) else None)


def handlers(pools: PoolService) -> dict[str, Handler]:
    def envelope(pool: dict[str, Any]) -> SandboxPoolEnvelope:
        meta = pool.get("metadata") or {}
        return SandboxPoolEnvelope(template=pool_view(pool, pools.counts(meta.get("namespace", ""),
                                                                         meta.get("name", ""))))

    async def create(call: Call) -> Reply:
        req: CreatePoolRequest = call.body
        return Reply(201, envelope(await pools.create(req, caller_of(call.identity))))

    async def get(call: Call) -> Reply:
        return Reply(200, envelope(await pools.get(call.identity.namespace, call.path("name"))))

    async def list_(call: Call) -> Reply:
        q = call.query
        items = pools.list(call.identity.namespace)
        views = [envelope(p).template for p in items[q.offset:q.offset + q.limit]]
        return Reply(200, SandboxPoolList(items=views, total=len(items), limit=q.limit, offset=q.offset))

    async def update(call: Call) -> Reply:
        req: UpdatePoolRequest = call.body
        return Reply(200, envelope(await pools.update(call.identity.namespace, call.path("name"), req)))

    async def delete(call: Call) -> Reply:
        return Reply(202, DeletePoolResponse.model_validate(
            await pools.delete(call.identity.namespace, call.path("name"))))

    async def sync_template(call: Call) -> Reply:
        pool, _ = await pools.sync_template(call.identity.namespace, call.path("name"), write=True)
        return Reply(200, envelope(pool))

    async def preview_sync(call: Call) -> Reply:
        pool, version = await pools.sync_template(call.identity.namespace, call.path("name"), write=False)
        return Reply(200, SyncPreview(specYaml=yaml.safe_dump(pool["spec"], sort_keys=False), version=version))

    async def namespaces(call: Call) -> Reply:
        names = sorted({(p.get("metadata") or {}).get("namespace", "") for p in pools.list()} - {""})
        return Reply(200, StringList(items=names, total=len(names)))

    return {
        "CreateSandboxPool": create,
        "GetSandboxPool": get,
        "ListSandboxPools": list_,
        "UpdateSandboxPool": update,
        "DeleteSandboxPool": delete,
        "SyncSandboxPoolTemplate": sync_template,
        "PreviewSyncSandboxPoolTemplate": preview_sync,
        "ListNamespaces": namespaces,
    }
