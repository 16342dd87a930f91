"""The service layer accepts a sandbox id chosen by its caller (the E2B layer derives the envd token
from it before the claim) — only a well-formed, unused id of this cluster."""

from __future__ import annotations

import pytest
from native_stack import NativeStack

from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.operator.services.errors import AlreadyExists, InvalidRequest
from agent_sandbox.operator.services.models import Caller, CreateSandboxRequest

CALLER = Caller(namespace="default", team="red", user="ids")


def test_chosen_sandbox_ids(stack: NativeStack):
    stack.create_pool("ids", 2)
    assert stack.operator is not None
    service = stack.operator.sandboxes
    chosen = new_sandbox_id(stack.cluster_id)
    rec = stack.run(service.create(CreateSandboxRequest(poolName="ids", wait=True), CALLER, sandbox_id=chosen))
    assert rec["sandboxId"] == chosen and rec["status"] == "Running"
    with pytest.raises(AlreadyExists):
        stack.run(service.create(CreateSandboxRequest(poolName="ids"), CALLER, sandbox_id=chosen))
    with pytest.raises(InvalidRequest, match="belongs to cluster 'other'"):
        stack.run(service.create(CreateSandboxRequest(poolName="ids"), CALLER, sandbox_id=new_sandbox_id("other")))
    with pytest.raises(InvalidRequest, match="sandboxId"):
        stack.run(service.create(CreateSandboxRequest(poolName="ids"), CALLER, sandbox_id="Not_An_Id"))
    stack.run(service.delete(chosen))
    with pytest.raises(AlreadyExists):  # ended sandboxes keep their id (history)
        stack.run(service.create(CreateSandboxRequest(poolName="ids"), CALLER, sandbox_id=chosen))
    stack.wait_idle("ids", 2)
    assert stack.operator.pool_service.counts("default", "ids")["running"] == 0, "refused creates claimed nothing"
