"""Property-based conformance: generated requests against our OpenAPI document on a running server.

For every operation, schemathesis generates valid and invalid input; the server must never
answer 5xx, must answer only documented statuses and content types, and its bodies must match the
documented schemas. Examples per operation are bounded so the whole run stays well under 2 minutes.
"""

import schemathesis
from hypothesis import HealthCheck, settings
from native_stack import NativeStack

from agent_sandbox.operator.api.openapi import build_document

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# The stack serves the service-backed handlers too, so every operation of the document is exercised.
schema = schemathesis.openapi.from_dict(build_document())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_conform(case, stack: NativeStack):
    case.call_and_validate(base_url=stack.url, checks=CHECKS,
                           headers={"X-API-Key": stack.admin_key, "X-Agent-Sandbox-Client-Version": "1.0.0"})
