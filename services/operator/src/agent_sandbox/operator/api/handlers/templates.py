"""SandboxTemplate routes of the native API: reads filtered by visibility, admin writes.

A template without rules is visible to everyone; otherwise a tenant sees it when a rule names its
team and either lists no users or lists the tenant's user. Admins see every template, and create,
replace (guarded by ``resourceVersion`` when given) and delete them; a full ``crdYaml`` object wins
over ``spec``. The API server validates the object against the CRD schema; its refusals become 400.
"""

from __future__ import annotations

from typing import Any

import yaml

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.errors import ApiError, bad_request, conflict, not_found
from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.models.templates import (
    DeleteTemplateResponse,
    SandboxTemplate,
    SandboxTemplateEnvelope,
    SandboxTemplateList,
    SandboxTemplateSummary,
    UpsertSandboxTemplateRequest,
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


def _parse_document(text: str, what: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise bad_request(f"{what} is not valid YAML or JSON") from exc
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be an object")
    return value


def template_object(req: UpsertSandboxTemplateRequest) -> dict[str, Any]:
    """The SandboxTemplate object an upsert request describes (``crdYaml`` wins over ``spec``)."""
    if req.crdYaml:
        obj = _parse_document(req.crdYaml, "crdYaml")
        if obj.get("kind", v.TEMPLATE_KIND) != v.TEMPLATE_KIND:
            raise bad_request(f"crdYaml must be a {v.TEMPLATE_KIND}")
        name = (obj.get("metadata") or {}).get("name")
        if name not in (None, req.name):
            raise bad_request(f"crdYaml names {name!r} but the request names {req.name!r}")
        spec = obj.get("spec") or {}
    else:
        spec = req.spec.model_dump(mode="json", exclude_none=True) if req.spec else {}
        if isinstance(spec.get("template"), str):
            spec["template"] = _parse_document(spec["template"], "spec.template")
    return {"apiVersion": v.API_VERSION, "kind": v.TEMPLATE_KIND, "metadata": {"name": req.name}, "spec": spec}


def _write_error(exc: KubeError, name: str) -> ApiError:
    if exc.conflict:
        return conflict(f"sandbox template {name!r} already exists or changed meanwhile; re-read and retry")
    if exc.not_found:
        return not_found(f"sandbox template {name!r} not found")
    if exc.status in (400, 422):
        return bad_request(f"sandbox template rejected: {exc.message}")
    return ApiError(502, "the Kubernetes API refused the write; retry", code="Upstream")


def _envelope(template: dict[str, Any]) -> SandboxTemplateEnvelope:
    meta = template.get("metadata") or {}
    return SandboxTemplateEnvelope(template=SandboxTemplate(**_common(template),
                                                            resourceVersion=meta.get("resourceVersion")))


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
        return Reply(200, _envelope(template))

    async def admin_create(call: Call) -> Reply:
        req: UpsertSandboxTemplateRequest = call.body
        try:
            return Reply(201, _envelope(await kube.create(templates_path(), template_object(req))))
        except KubeError as exc:
            raise _write_error(exc, req.name) from exc

    async def admin_update(call: Call) -> Reply:
        req: UpsertSandboxTemplateRequest = call.body
        name = call.path("name")
        if req.name != name:
            raise bad_request(f"the body names {req.name!r} but the path names {name!r}")
        try:
            current = await kube.get(templates_path(name))
            rv = (current.get("metadata") or {}).get("resourceVersion")
            if req.resourceVersion and req.resourceVersion != rv:
                raise conflict(f"sandbox template {name!r} is at resourceVersion {rv}, not {req.resourceVersion}")
            obj = template_object(req)
            obj["metadata"] = {**(current.get("metadata") or {}), "name": name, "resourceVersion": rv}
            return Reply(200, _envelope(await kube.replace(templates_path(name), obj)))
        except KubeError as exc:
            raise _write_error(exc, name) from exc

    async def admin_delete(call: Call) -> Reply:
        name = call.path("name")
        try:
            await kube.delete(templates_path(name))
        except KubeError as exc:
            raise _write_error(exc, name) from exc
        return Reply(202, DeleteTemplateResponse(name=name, status="Deleted"))

    return {"ListSandboxTemplates": list_, "GetSandboxTemplate": get, "AdminCreateSandboxTemplate": admin_create,
            "AdminUpdateSandboxTemplate": admin_update, "AdminDeleteSandboxTemplate": admin_delete}
