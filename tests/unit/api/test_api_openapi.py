"""The committed OpenAPI document is the generated one, and it is internally consistent."""

import json
import re
from pathlib import Path

from agent_sandbox.operator.api.openapi import COMMITTED_PATH, build_document, render
from agent_sandbox.operator.api.routes import ROUTES, Access

OPERATOR_DIR = Path(__file__).resolve().parents[3] / "services" / "operator"


def test_committed_document_is_current():
    committed = (OPERATOR_DIR / COMMITTED_PATH).read_text()
    assert committed == render(), (
        "services/operator/openapi/native.json is stale: run "
        "`.venv/bin/python -m agent_sandbox.operator.api.openapi --write services/operator`"
    )


def test_every_reference_resolves():
    doc = build_document()
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/components/(schemas|responses)/([^"]+)"', text)):
        assert ref[1] in doc["components"][ref[0]], ref


def test_operations_are_unique_and_documented():
    doc = build_document()
    ids = [r.operation_id for r in ROUTES]
    assert len(ids) == len(set(ids))
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["operationId"] == route.operation_id
        if route.access is Access.PUBLIC:
            assert op["security"] == []
            assert "401" not in op["responses"]
        else:
            assert op["security"]
            assert {"400", "401", "403", "404", "500"} <= set(op["responses"])


def test_document_covers_the_native_routes_of_the_reference():
    paths = set(build_document()["paths"])
    for expected in ("/v1/sandboxes", "/v1/sandboxes/{id}", "/v1/sandboxes/{id}/timeout",
                     "/v1/sandboxes/{id}/exec-token", "/v1/sandboxpools/{name}", "/v1/sandbox-templates",
                     "/v1/clusters", "/v1/feature-gates", "/v1/quotas", "/v1/statistics/sandboxes",
                     "/v1/api-keys", "/v1/admin/api-keys", "/ping", "/openapi.json"):
        assert expected in paths


def test_request_schemas_refuse_unknown_fields():
    schemas = build_document()["components"]["schemas"]
    assert schemas["CreateSandboxRequest"]["additionalProperties"] is False
    assert schemas["CreateSandboxRequest"]["required"] == ["poolName"]


def test_is_ready_documents_its_not_ready_body():
    responses = build_document()["paths"]["/v1/sandboxes/{id}/is_ready"]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SandboxReadiness"}
    refs = [s["$ref"] for s in responses["503"]["content"]["application/json"]["schema"]["anyOf"]]
    assert refs == ["#/components/schemas/SandboxReadiness", "#/components/schemas/ErrorResponse"]


def test_pool_credentials_are_write_only():
    schemas = build_document()["components"]["schemas"]
    assert "imagePullSecret" in schemas["CreatePoolRequest"]["properties"]
    assert schemas["RegistryCredential"]["properties"]["password"]["writeOnly"] is True
