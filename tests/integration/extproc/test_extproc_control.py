"""The operator-facing control plane: PushRoute/EvictRoute/GetLastActive, its auth, and fail-closed Envoy."""

from __future__ import annotations

import time

import grpc
import pytest
from extproc_stack import ADMIN_KEY, Stack, sandbox_id, wait_for

from agent_sandbox.common.vocabulary import ANN_LAST_ACTIVE
from agent_sandbox.ctrlplane._gen import ctrlplane_pb2 as pb
from agent_sandbox.ctrlplane._gen import ctrlplane_pb2_grpc as pb_grpc
from agent_sandbox.ctrlplane.client import ControlPlaneClient

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_push_route_routes_before_the_watch_sees_the_claim(stack: Stack) -> None:
    a, _ = stack.upstreams
    # An idle pod: extproc's watch knows it, but no sandbox id yet (the claim's write is "in flight").
    ns, name = await stack.pods.create(ip=a.ip, phase="idle")
    sid = sandbox_id()
    headers = {"x-sandbox-id": sid, "x-sandbox-port": str(a.port)}
    assert (await stack.get("/", headers))[0] == 404
    async with ControlPlaneClient(stack.extproc.control_target, ADMIN_KEY) as cp:
        assert await cp.push_route(sid, ns, name)
        status, body = await stack.get("/", headers)
        assert (status, body["upstream"]) == (200, "a")
        last = await cp.get_last_active()
        assert last is not None and sid in last
        assert abs(time.time() - _epoch(last[sid])) < 30
        assert await cp.evict_route(sid)
        assert await stack.get("/", headers) == (502, {"error": "sandbox is not in a healthy state"})


async def test_pushed_route_never_overrides_another_tenant(stack: Stack) -> None:
    a, _ = stack.upstreams
    tenant = sandbox_id()
    ns, name = await stack.pods.create(ip=a.ip, sandbox_id=tenant)
    await wait_for(lambda: _ok(stack, tenant, a.port))
    stale = sandbox_id()
    async with ControlPlaneClient(stack.extproc.control_target, ADMIN_KEY) as cp:
        assert await cp.push_route(stale, ns, name)
    status, _ = await stack.get("/", {"x-sandbox-id": stale, "x-sandbox-port": str(a.port)})
    assert status == 502


async def test_control_plane_requires_the_admin_key(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.extproc.control_target) as channel:
        stub = pb_grpc.ControlPlaneServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetLastActive(pb.GetLastActiveRequest(), metadata=metadata, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PushRoute(pb.PushRouteRequest(sandbox_id="Bad Id", namespace="default", pod_name="p"),
                                 metadata=(("authorization", f"Bearer {ADMIN_KEY}"),), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with ControlPlaneClient(stack.extproc.control_target, "wrong") as cp:
        assert not await cp.push_route(sandbox_id(), "default", "p")
        assert cp.degraded


async def test_envoy_fails_closed_and_recovers_when_extproc_restarts(stack: Stack) -> None:
    a, _ = stack.upstreams
    sid = sandbox_id()
    await stack.pods.create(ip=a.ip, sandbox_id=sid)
    quiet = sandbox_id()  # no traffic: its activity must come back from the pod after the restart
    await stack.pods.create(ip=a.ip, sandbox_id=quiet, annotations={ANN_LAST_ACTIVE: "2026-01-02T03:04:05Z"})
    await wait_for(lambda: _ok(stack, sid, a.port))
    await stack.extproc.kill()
    status, _ = await stack.get("/", {"x-sandbox-id": sid, "x-sandbox-port": str(a.port)})
    assert status >= 500  # no routing decision, no traffic
    async with ControlPlaneClient(stack.extproc.control_target, ADMIN_KEY, timeout=0.5) as cp:
        started = time.monotonic()
        assert await cp.get_last_active() is None  # degraded, not raising
        assert time.monotonic() - started < 3
        await stack.extproc.start()
        # Same Envoy, no restart: routes come back from the fresh watch.
        await wait_for(lambda: _ok(stack, sid, a.port))
        # The client reconnects by itself (backoff <= 1 s); the idle loop simply calls again.
        await wait_for(_reachable(cp), within=5)
        last = await cp.get_last_active()
        assert last is not None and last[quiet] == "2026-01-02T03:04:05.000Z"


def _reachable(cp: ControlPlaneClient):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return await cp.get_last_active() is not None

    return check


async def _ok(stack: Stack, sid: str, port: int) -> bool:
    return (await stack.get("/", {"x-sandbox-id": sid, "x-sandbox-port": str(port)}))[0] == 200


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
