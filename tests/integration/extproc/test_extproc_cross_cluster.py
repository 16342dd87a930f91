"""Sandboxes of another cluster are forwarded to that cluster's data gateway (behaviour.md §20.3)."""

from __future__ import annotations

import contextlib

import pytest
from extproc_stack import CLUSTER_ID, Stack, start_upstream, wait_for
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.common.vocabulary import SYSTEM_NAMESPACE

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_foreign_sandbox_goes_to_the_gateway(stack: Stack) -> None:
    gateway = await start_upstream("gateway")
    try:
        core = client.CoreV1Api(stack.api)
        with contextlib.suppress(ApiException):
            await core.create_namespace({"metadata": {"name": SYSTEM_NAMESPACE}})
        await core.create_namespaced_config_map(SYSTEM_NAMESPACE, {
            "metadata": {"name": "agentsandbox-clusters"},
            "data": {"clusters.yaml": (
                "clusters:\n"
                f"- id: {CLUSTER_ID}\n  name: here\n"
                "- id: remote\n  name: there\n  gateway:\n"
                f"    dataURL: http://gw.remote.test:{gateway.port}/agent-sandbox/api/data\n"
                "    headers: {X-Gateway-Token: abc}\n"
                "hostAliases:\n- ip: 127.0.0.1\n  hostnames: [gw.remote.test]\n"
            )},
        })
        foreign = new_sandbox_id("remote")
        spoofed = {"x-agentsandbox-upstream-host": "10.0.0.1:1", "x-agentsandbox-dst": "10.0.0.1:1"}

        async def forwarded() -> dict | None:
            status, body = await stack.get(f"/sandboxes/{foreign}/49983/files?path=a", spoofed)
            return body if status == 200 else None

        body = await wait_for(forwarded)
        assert body["upstream"] == "gateway"
        assert body["path"] == f"/agent-sandbox/api/data/sandboxes/{foreign}/49983/files?path=a"
        assert body["headers"]["host"] == f"gw.remote.test:{gateway.port}"
        assert body["headers"]["x-gateway-token"] == "abc"
        assert body["headers"]["x-forwarded-proto"] == "http"
        assert "x-agentsandbox-cross-cluster" not in body["headers"]
        assert body["headers"]["x-agentsandbox-upstream-host"] == f"127.0.0.1:{gateway.port}"

        status, body = await stack.get("/index.html", {"Host": f"8080-{foreign}.example.com"})
        assert status == 200 and body["upstream"] == "gateway"
        assert (body["headers"]["e2b-sandbox-id"], body["headers"]["e2b-sandbox-port"]) == (foreign, "8080")

        unknown = new_sandbox_id("elsewhere")
        status, body = await stack.get("/", {"x-sandbox-id": unknown, "x-sandbox-port": "80"})
        assert (status, body) == (502, {"error": "unknown target cluster 'elsewhere'"})
    finally:
        await gateway.runner.cleanup()
