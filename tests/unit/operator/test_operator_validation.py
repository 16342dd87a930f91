import pytest
from operator_pods import IDLE_IMAGE, WORK_IMAGE, pool
from pydantic import ValidationError

from agent_sandbox.operator.lifecycle.hooks import parse_hooks
from agent_sandbox.operator.services.errors import InvalidRequest
from agent_sandbox.operator.services.models import CreatePoolRequest, CreateSandboxRequest
from agent_sandbox.operator.services.validation import resolve_images, validate_pool_spec


def test_pool_spec_rules():
    spec = pool()["spec"]
    validate_pool_spec(spec)
    for broken, msg in [
        ({**spec, "idleImage": ""}, "idleImage is required"),
        ({**spec, "idleImage": "docker.io/library/python:3.11"}, "differ"),
        ({**spec, "replicas": -1}, "replicas"),
        ({**spec, "autoscaling": {"enabled": True}}, "minReplicas and maxReplicas"),
        ({**spec, "autoscaling": {"enabled": True}, "minReplicas": 3, "maxReplicas": 2}, "0 <= minReplicas"),
        ({**spec, "autoscaling": {"enabled": True}, "minReplicas": 0, "maxReplicas": 2}, "within"),
        ({**spec, "runtimes": [{"name": "envd", "port": 70000}]}, "port"),
        ({**spec, "template": {"spec": {"containers": []}}}, "at least one container"),
    ]:
        with pytest.raises(InvalidRequest, match=msg):
            validate_pool_spec(broken)


def test_claim_images():
    spec = pool()["spec"]
    assert resolve_images(spec, None, {}) == {"main": WORK_IMAGE, "side": "busybox:1"}
    assert resolve_images(spec, "node:20", {"side": "alpine:3"}) == {"main": "node:20", "side": "alpine:3"}
    assert resolve_images(spec, "node:20", {"main": "ruby:3"})["main"] == "ruby:3"
    with pytest.raises(InvalidRequest, match="unknown container"):
        resolve_images(spec, None, {"nope": "x"})
    with pytest.raises(InvalidRequest, match="idle image"):
        resolve_images(spec, IDLE_IMAGE, {})
    with pytest.raises(InvalidRequest, match="invalid image"):
        resolve_images(spec, "has space", {})


def test_request_models_reject_bad_input_with_clear_messages():
    with pytest.raises(ValidationError, match="reserved prefix"):
        CreateSandboxRequest(poolName="p", labels={"agentsandbox.io/sandbox-id": "x"})
    with pytest.raises(ValidationError, match="not a valid label value"):
        CreateSandboxRequest(poolName="p", labels={"a": "bad value"})
    with pytest.raises(ValidationError, match="startupTimeout"):
        CreateSandboxRequest(poolName="p", startupTimeout="soon")
    with pytest.raises(ValidationError, match="name must match"):
        CreatePoolRequest(name="Bad_Name", templateName="t")
    with pytest.raises(ValidationError, match=r"templateName or spec\.template"):
        CreatePoolRequest(name="ok")
    with pytest.raises(ValidationError):
        CreatePoolRequest(name="ok", templateName="t", replicas=100_000)


def test_hook_parsing():
    hooks = parse_hooks([{"exec": {"command": ["echo", "hi"]}}, {"httpPost": {"port": 49983, "path": "/init"}}])
    assert hooks[0].exec_.command == ["echo", "hi"] and hooks[1].httpPost.port == 49983
    assert parse_hooks(None) == []
    for bad in ({"exec": {}}, [{}], [{"exec": {"command": "x"}, "httpPost": {"port": 1}}],
                [{"httpPost": {"port": 0}}]):
        with pytest.raises(ValueError):
            parse_hooks(bad)
