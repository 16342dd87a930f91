"""Request models refuse what the API refuses, with messages that name the field."""

import pytest
from pydantic import ValidationError

from agent_sandbox.operator.api.models.apikeys import CreateAPIKeyRequest
from agent_sandbox.operator.api.models.pools import CreateSandboxPoolRequest
from agent_sandbox.operator.api.models.sandboxes import CreateSandboxRequest, SetTimeoutRequest


def test_create_sandbox_accepts_foreign_pool_refs_and_durations():
    req = CreateSandboxRequest.model_validate({"poolName": "c1::python", "idleTimeout": "1h30m"})
    assert req.poolName == "c1::python"
    assert req.idleTimeout == "1h30m"


@pytest.mark.parametrize("body", [
    {},
    {"poolName": "Bad_Name"},
    {"poolName": "p", "idleTimeout": "ten minutes"},
    {"poolName": "p", "unknownField": 1},
])
def test_create_sandbox_rejects(body):
    with pytest.raises(ValidationError):
        CreateSandboxRequest.model_validate(body)


def test_timeout_zero_disables():
    assert SetTimeoutRequest.model_validate({"timeout": "0"}).timeout == "0"


def test_pool_needs_a_template_source():
    with pytest.raises(ValidationError, match=r"templateName or spec\.template"):
        CreateSandboxPoolRequest.model_validate({"name": "p"})


def test_autoscaling_bounds_are_checked():
    with pytest.raises(ValidationError, match="between minReplicas and maxReplicas"):
        CreateSandboxPoolRequest.model_validate({
            "name": "p", "templateName": "t",
            "spec": {"replicas": 9, "minReplicas": 1, "maxReplicas": 3, "autoscaling": {"enabled": True}},
        })


def test_tenant_key_needs_user_and_team():
    with pytest.raises(ValidationError, match="user and team"):
        CreateAPIKeyRequest.model_validate({"user": "alice"})
    assert CreateAPIKeyRequest.model_validate({"role": "admin"}).role == "admin"


def test_import_hash_prefix_must_match():
    h = "ab" * 32
    assert CreateAPIKeyRequest.model_validate({"user": "u", "team": "t", "tokenHash": h, "hashPrefix": h[:8]})
    with pytest.raises(ValidationError, match="prefix"):
        CreateAPIKeyRequest.model_validate({"user": "u", "team": "t", "tokenHash": h, "hashPrefix": "00000000"})
