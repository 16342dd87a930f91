"""Request models refuse what the API refuses, with messages that name the field."""

import pytest
from pydantic import ValidationError

from agent_sandbox.operator.api.models.apikeys import CreateAPIKeyRequest
from agent_sandbox.operator.api.models.sandboxes import SetTimeoutRequest
from agent_sandbox.operator.api.routes import ROUTES_BY_ID
from agent_sandbox.operator.services.models import CreatePoolRequest, CreateSandboxRequest, UpdatePoolRequest


def test_the_api_validates_with_the_service_layers_request_models():
    assert ROUTES_BY_ID["CreateSandbox"].body is CreateSandboxRequest
    assert ROUTES_BY_ID["CreateSandboxPool"].body is CreatePoolRequest
    assert ROUTES_BY_ID["UpdateSandboxPool"].body is UpdatePoolRequest


def test_create_sandbox_accepts_durations():
    req = CreateSandboxRequest.model_validate({"poolName": "python", "idleTimeout": "1h30m"})
    assert req.idleTimeout == "1h30m"


@pytest.mark.parametrize("body", [
    {},
    {"poolName": ""},
    {"poolName": "p", "idleTimeout": "ten minutes"},
    {"poolName": "p", "labels": {"agentsandbox.io/team": "x"}},
    {"poolName": "p", "unknownField": 1},
])
def test_create_sandbox_rejects(body):
    with pytest.raises(ValidationError):
        CreateSandboxRequest.model_validate(body)


def test_timeout_zero_disables():
    assert SetTimeoutRequest.model_validate({"timeout": "0"}).timeout == "0"


def test_pool_needs_a_template_source():
    with pytest.raises(ValidationError, match=r"templateName or spec\.template"):
        CreatePoolRequest.model_validate({"name": "p"})


def test_tenant_key_needs_user_and_team():
    with pytest.raises(ValidationError, match="user and team"):
        CreateAPIKeyRequest.model_validate({"user": "alice"})
    assert CreateAPIKeyRequest.model_validate({"role": "admin"}).role == "admin"


def test_import_hash_prefix_must_match():
    h = "ab" * 32
    assert CreateAPIKeyRequest.model_validate({"user": "u", "team": "t", "tokenHash": h, "hashPrefix": h[:8]})
    with pytest.raises(ValidationError, match="prefix"):
        CreateAPIKeyRequest.model_validate({"user": "u", "team": "t", "tokenHash": h, "hashPrefix": "00000000"})
