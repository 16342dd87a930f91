"""A killed sandbox is unroutable through Envoy at once (e2b-contract.md §3.1).

The operator's kill is a release write (phase label ``running`` -> ``stopping``) plus
``EvictRoute``. Extproc's pod watch sees the write only some milliseconds later, so the
eviction is what closes the window: the request right after it must already get E2B's
"The sandbox was not found", with no polling in between. Without an eviction (another
operator replica, a lost call) the watch alone must refuse the id as soon as it shows
the phase leaving ``running``.
"""

from __future__ import annotations

import asyncio

import pytest
from extproc_stack import ADMIN_KEY, Stack, sandbox_id, wait_for

from agent_sandbox.ctrlplane.client import ControlPlaneClient

pytestmark = pytest.mark.asyncio(loop_scope="module")


def e2b_headers(sid: str, port: int) -> dict[str, str]:
    return {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": str(port)}


def not_found(sid: str) -> tuple[int, dict]:
    return 502, {"sandboxId": sid, "message": "The sandbox was not found", "code": 502}


async def running_sandbox(stack: Stack) -> tuple[str, str, int]:
    a, _ = stack.upstreams
    sid = sandbox_id()
    _, name = await stack.pods.create(ip=a.ip, sandbox_id=sid)
    await wait_for(lambda: _status_is(stack, sid, a.port, 200))
    return sid, name, a.port


async def _status_is(stack: Stack, sid: str, port: int, status: int) -> bool:
    return (await stack.get("/", e2b_headers(sid, port)))[0] == status


async def test_the_request_right_after_a_kill_gets_not_found(stack: Stack) -> None:
    async with ControlPlaneClient(stack.extproc.control_target, ADMIN_KEY) as cp:
        for _ in range(3):  # a race would show up in some rounds
            sid, name, port = await running_sandbox(stack)
            # The operator's kill: the release write, then the eviction, then the next request.
            await stack.pods.relabel(name, phase="stopping", sandbox_id=sid)
            assert await cp.evict_route(sid)
            assert await stack.get("/envd/health", e2b_headers(sid, port)) == not_found(sid)
            status, body = await stack.get("/", {"Host": f"{port}-{sid}.sandbox.example.com"})
            assert (status, body) == not_found(sid)


async def test_eviction_wins_over_a_watch_that_still_shows_running(stack: Stack) -> None:
    sid, _, port = await running_sandbox(stack)
    async with ControlPlaneClient(stack.extproc.control_target, ADMIN_KEY) as cp:
        assert await cp.evict_route(sid)
    # The pod is still labelled running (the release write has not happened yet) and stays so.
    for _ in range(5):
        assert await stack.get("/", e2b_headers(sid, port)) == not_found(sid)
        await asyncio.sleep(0.05)


async def test_the_watch_alone_stops_routing_when_the_phase_leaves_running(stack: Stack) -> None:
    sid, name, port = await running_sandbox(stack)
    await stack.pods.relabel(name, phase="stopping", sandbox_id=sid)
    await wait_for(lambda: _status_is(stack, sid, port, 502), within=2)
    assert await stack.get("/", e2b_headers(sid, port)) == not_found(sid)
