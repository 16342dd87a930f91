"""SandboxTemplate read routes of the native API, filtered by each template's visibility rules.

A template without rules is visible to everyone; otherwise a tenant sees it when a rule names its
team and either lists no users or lists the tenant's user. Admins see every template.
"""

from __future__ import annotations

from typing import Any

from agent_sandbox.common.errors import not_found
from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.models.templates import (
    SandboxTemplate,
    SandboxTemplateEnvelope,
    SandboxTemplateList,
    SandboxTemplateSummary,
)
from agent_sandbox.operator.auth.identity import Identity
from agent_sandbox.operator.kube.client import KubeClient, KubeError, templates_path


def visible(template: dict[str, Any], identity: Identity) -> bool:
    rules = ((template.get("spec") or {}).get("visibility") or {}).get("rules") or []
    if identity.is_admin or not rules:
        return True
    return any(r.get("team") == identity.team and (not r.get("users") or identity.user in r["users"])
               for r in rules if isinstance(r, dict))


def _common(template: dict[str, Any]) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    return {"name": meta.get("name", ""), "version": spec.get("version"), "description": spec.get("description"),
            "createdAt": meta.get("creationTimestamp"),
            "syncSource": (meta.get("labels") or {}).get("agentsandbox.io/sync-source")}


def summary(template: dict[str, Any]) -> SandboxTemplateSummary:
    runtimes = (template.get("spec") or {}).get("runtimes") or []
    return SandboxTemplateSummary(**_common(template),
                                  runtimeNames=[r["name"] for r in runtimes if isinstance(r, dict) and r.get("name")])


def handlers(kube: KubeClient) -> dict[str, Handler]:
    async def list_(call: Call) -> Reply:
        q = call.query
        listing = await kube.list(templates_path())
        items = sorted((t for t in listing.get("items") or [] if visible(t, call.identity)),
                       key=lambda t: (t.get("metadata") or {}).get("name", ""))
        return Reply(200, SandboxTemplateList(items=[summary(t) for t in items[q.offset:q.offset + q.limit]],
                                              total=len(items), limit=q.limit, offset=q.offset))

    async def get(call: Call) -> Reply:
        name = call.path("name")
        try:
            template = await kube.get(templates_path(name))
        except KubeError as exc:
            if exc.not_found or exc.status == 400:
                raise not_found(f"sandbox template {name!r} not found") from exc
            raise
        if not visible(template, call.identity):
            raise not_found(f"sandbox template {name!r} not found")
        meta = template.get("metadata") or {}
        return Reply(200, SandboxTemplateEnvelope(template=SandboxTemplate(
            **_common(template), resourceVersion=meta.get("resourceVersion"))))

    return {"ListSandboxTemplates": list_, "GetSandboxTemplate": get}
