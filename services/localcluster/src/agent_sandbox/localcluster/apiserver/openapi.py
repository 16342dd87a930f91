"""The minimum OpenAPI kubectl needs before it will ``apply``.

kubectl downloads ``/openapi/v2`` (protobuf) to build its client-side validator
and asks ``/openapi/v3`` whether each kind's PATCH supports the
``fieldValidation`` query parameter. We answer v2 with an empty document (no
kinds → nothing validated client-side) and v3 with a root listing every
group-version plus, per group-version, one PATCH operation per kind declaring
``fieldValidation`` — so kubectl delegates validation to this server, which
validates custom resources against their CRD schema.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .resources import Registry, ResourceType

V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gv_types(registry: Registry) -> dict[tuple[str, str], list[ResourceType]]:
    out: dict[tuple[str, str], list[ResourceType]] = {}
    for rt in registry.all():
        out.setdefault((rt.group, rt.version), []).append(rt)
    return out


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = _gv_types(registry).get((group, version))
    if not types:
        return None
    paths: dict[str, Any] = {}
    for rt in sorted(types, key=lambda r: r.plural):
        prefix = f"/{_gv_path(group, version)}"
        path = (f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}" if rt.namespaced
                else f"{prefix}/{rt.plural}/{{name}}")
        paths[path] = {"patch": {
            "operationId": f"patch{rt.kind}",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            ],
            "responses": {"200": {"description": "OK"}},
        }}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"}, "paths": paths}


def root_document(registry: Registry) -> dict[str, Any]:
    paths = {}
    for (group, version), types in sorted(_gv_types(registry).items()):
        digest = hashlib.sha256(orjson.dumps(sorted((rt.plural, rt.kind) for rt in types))).hexdigest()[:32]
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest.upper()}"}
    return {"paths": paths}
