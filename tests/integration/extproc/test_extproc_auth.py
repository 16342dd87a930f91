"""Optional data-plane checks through the real process: tenant API keys (watched Secrets) and
per-sandbox envd access tokens."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from extproc_stack import ADMIN_KEY, Stack, running_stack, sandbox_id, wait_for
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.common.apikeys import generate_api_key, hash_api_key
from agent_sandbox.common.envd_token import derive_envd_token
from agent_sandbox.common.vocabulary import LABEL_TOKEN_HASH, LABEL_TYPE, SYSTEM_NAMESPACE, TYPE_API_KEY

pytestmark = pytest.mark.asyncio(loop_scope="module")
SECRET = "shared-secret-for-envd-tokens"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("auth"), extra_args=("--enable-auth", "--check-envd-token"),
                             extra_env={"AGENT_SANDBOX_SECRET": SECRET}) as s:
        yield s


async def test_tenant_keys_and_envd_tokens(auth_stack: Stack) -> None:
    stack = auth_stack
    a = stack.upstreams[0]
    core = client.CoreV1Api(stack.api)
    with contextlib.suppress(ApiException):  # the embedded control plane may already have it
        await core.create_namespace({"metadata": {"name": SYSTEM_NAMESPACE}})
    key = generate_api_key()
    token_hash = hash_api_key(key)
    await core.create_namespaced_secret(SYSTEM_NAMESPACE, {
        "metadata": {"name": f"agentsandbox-apikey-{token_hash[:16]}",
                     "labels": {LABEL_TYPE: TYPE_API_KEY, LABEL_TOKEN_HASH: token_hash[:16]}},
        "data": {"token": base64.b64encode(token_hash.encode()).decode()},
    })
    sid = sandbox_id()
    await stack.pods.create(ip=a.ip, sandbox_id=sid)
    target = {"x-sandbox-id": sid, "x-sandbox-port": str(a.port)}

    async def with_key() -> bool:
        return (await stack.get("/", {**target, "x-api-key": key}))[0] == 200

    await wait_for(with_key)
    assert await stack.get("/", target) == (401, {"error": "unauthorized"})
    assert (await stack.get("/", {**target, "x-api-key": generate_api_key()}))[0] == 401
    assert (await stack.get("/", {**target, "x-api-key": ADMIN_KEY}))[0] == 200

    # envd (port 49983) traffic needs the sandbox's own token, except the open paths.
    envd = {"E2b-Sandbox-Id": sid, "x-api-key": key}
    status, body = await stack.get("/process.Process/Start", envd)
    assert (status, body) == (401, {"error": "invalid or missing X-Access-Token"})
    other = derive_envd_token(SECRET, sandbox_id())
    assert (await stack.get("/process.Process/Start", {**envd, "X-Access-Token": other}))[0] == 401
    # With the right token the request is routed: it reaches podIP:49983, where nothing listens here,
    # and the client gets E2B's "port is not open" answer.
    status, body = await stack.get("/process.Process/Start",
                                   {**envd, "X-Access-Token": derive_envd_token(SECRET, sid)})
    assert (status, body) == (502, {"sandboxId": sid, "message": "The sandbox is running but port is not open",
                                    "code": 502})
    assert (await stack.get("/health", envd))[0] == 502
