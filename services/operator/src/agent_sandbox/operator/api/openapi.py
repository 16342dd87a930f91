"""Render the native API's OpenAPI 3.1 document from the route table and the pydantic models.

The models validate requests at run time and the document is generated from them, so there is one
source: ``services/operator/openapi/native.json`` is this module's output, committed so that clients
and reviewers can read it, and a unit test fails when the committed file is stale
(regenerate with ``python -m agent_sandbox.operator.api.openapi --write``).
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from agent_sandbox.operator.api.models.common import ErrorResponse
from agent_sandbox.operator.api.routes import ROUTES, Access, RouteSpec

TITLE = "Agent Sandbox native API"
API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
#: Where the committed copy lives, relative to the operator distribution's folder.
COMMITTED_PATH = Path("openapi") / "native.json"

_STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad request", 401: "Missing or invalid "
    "credentials", 403: "Not allowed for these credentials", 404: "Not found", 409: "Conflict", 422: "Unprocessable "
    "(business rule)", 413: "Request body too large", 426: "Client version too old",
    429: "No capacity now; retry later", 500: "Internal error",
    502: "Upstream cluster unreachable", 503: "Dependency unavailable",
}
_PATH_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "minLength": 1, "maxLength": 63, "description": "sandbox id <cluster-id>-<26 chars>"},
    "name": {"type": "string", "minLength": 1, "maxLength": 253},
    "team": {"type": "string", "minLength": 1, "maxLength": 63},
}


def _models() -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    requests: dict[str, type[BaseModel]] = {}
    responses: dict[str, type[BaseModel]] = {ErrorResponse.__name__: ErrorResponse}
    for route in ROUTES:
        if route.body is not None:
            requests[route.body.__name__] = route.body
        for model in route.responses.values():
            if model is not None:
                responses[model.__name__] = model
    return list(requests.values()), list(responses.values())


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def _security(access: Access) -> list[dict[str, list[str]]]:
    if access is Access.PUBLIC:
        return []
    if access is Access.ADMIN:
        return [{"AdminKeyAuth": []}]
    return [{"ApiKeyAuth": []}, {"BearerAuth": []}]


def _operation(route: RouteSpec) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": _security(route.access),
    }
    if route.deprecated:
        op["deprecated"] = True
    params = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAM_SCHEMAS.get(name, {"type": "string"})}
        for name in route.path_params
    ]
    if route.query is not None:
        params.extend(_query_parameters(route.query))
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": _json_content(_ref(route.body))}
    responses: dict[str, Any] = {}
    for status, model in route.responses.items():
        entry: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "Success")}
        if model is not None:
            entry["content"] = _json_content(_ref(model))
        elif status != 204:
            entry["content"] = _json_content({"type": "object"})
        responses[str(status)] = entry
    for status in route.error_statuses:
        model = route.responses.get(status)
        if model is None:
            responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
        else:  # the route's own body for this status, or the error any route may answer with it
            responses[str(status)]["content"] = _json_content({"anyOf": [_ref(model), _ref(ErrorResponse)]})
    op["responses"] = responses
    return op


@cache
def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (cached: it is a pure function of the code)."""
    requests, responses = _models()
    pairs = [(m, "validation") for m in requests] + [(m, "serialization") for m in responses]
    _, defs = models_json_schema(pairs, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": API_VERSION,
            "description": "Claim pre-warmed sandboxes, manage pools, templates and API keys. Authenticate with "
            "`X-API-Key: <key>` or `Authorization: Bearer <key or HS256 JWT>`. Errors are "
            "`{error, errorCode?, detail?}`.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "responses": {
                f"Error{status}": {"description": _STATUS_TEXT[status], "content": _json_content(_ref(ErrorResponse))}
                for status in sorted({s for r in ROUTES for s in r.error_statuses})
            },
            "securitySchemes": {
                "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key or an HS256 JWT"},
                "AdminKeyAuth": {
                    "type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "an API key (or JWT) with the admin role",
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="DIR", nargs="?", const=".", help="write <DIR>/openapi/native.json")
    args = parser.parse_args(argv)
    if args.write:
        target = Path(args.write) / COMMITTED_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render())
        print(target)
    else:
        print(render(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
