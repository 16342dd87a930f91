"""A WebSocket client drives a PTY in the sandbox through ``/v1/sandboxes/{id}/terminal`` and envd."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import requests
from envd_harness import Envd, connect_call
from native_stack import NativeStack, V

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sandbox(stack: NativeStack, pool: str) -> tuple[str, dict[str, str]]:
    headers = {"X-API-Key": stack.tenant_key("term-user", "red"), **V}
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": pool, "wait": True}, headers=headers,
                      timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["sandbox"]["sandboxId"], headers


def _token(stack: NativeStack, sid: str, headers: dict[str, str]) -> str:
    r = requests.post(f"{stack.url}/v1/sandboxes/{sid}/exec-token", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]


async def _read_until(ws: aiohttp.ClientWebSocketResponse, needle: str, within: float = 10.0) -> str:
    seen = ""
    deadline = time.monotonic() + within
    while needle not in seen:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        seen += msg.data.decode(errors="replace")
    return seen


def _shells(envd: Envd) -> list[int]:
    status, [(_, body)] = connect_call(envd.url, "process.Process/List", {})
    assert status == 200
    return [p["pid"] for p in body.get("processes", []) if p["config"]["cmd"] == "/bin/sh"]


async def test_typing_resize_and_close(stack: NativeStack, envd: Envd, sandbox):
    sid, headers = sandbox
    url = f"{stack.url}/v1/sandboxes/{sid}/terminal?token={_token(stack, sid, headers)}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_bytes(b"echo typed-$((6*7))\n")
        assert "typed-42" in await _read_until(ws, "typed-42")
        assert len(_shells(envd)) == 1
        await ws.send_json({"op": "resize", "cols": 101, "rows": 33})
        await ws.send_json({"op": "stdin", "data": "stty size\n"})
        assert "33 101" in await _read_until(ws, "33 101")
        await ws.send_str("not json")
        msg = await ws.receive(timeout=5)
        while msg.type == aiohttp.WSMsgType.BINARY:  # terminal output may arrive first
            msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT and "unknown op" not in msg.data and "error" in msg.json()
    # Closing the socket ends the shell (EOT, then kill).
    for _ in range(100):
        if not _shells(envd):
            break
        await asyncio.sleep(0.1)
    assert _shells(envd) == []


async def test_tokens_are_single_use_and_bound_to_their_sandbox(stack: NativeStack, sandbox):
    sid, headers = sandbox
    token = _token(stack, sid, headers)
    base = f"{stack.url}/v1/sandboxes"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as wrong:
            await http.ws_connect(f"{base}/it-01m8bg7w60y2z49adahj8arsqn/terminal?token={token}")
        assert wrong.value.status == 401
        # The failed attempt consumed it: a token is worth one try.
        with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
            await http.ws_connect(f"{base}/{sid}/terminal?token={token}")
        assert reused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
            await http.ws_connect(f"{base}/{sid}/terminal")
        assert missing.value.status == 401


def test_exec_runs_a_command_through_envd(stack: NativeStack, sandbox):
    sid, headers = sandbox
    r = requests.post(f"{stack.url}/v1/sandboxes/{sid}/exec", headers=headers, timeout=30,
                      json={"command": "echo out-$((40+2)); echo err >&2; exit 3"})
    assert r.status_code == 200, r.text
    assert r.json() == {"exitCode": 3, "stdout": "out-42\n", "stderr": "err\n"}
    started = time.monotonic()
    r = requests.post(f"{stack.url}/v1/sandboxes/{sid}/exec", headers=headers, timeout=30,
                      json={"command": "echo before; sleep 20", "timeoutSeconds": 1})
    assert r.json()["exitCode"] == 124 and r.json()["stdout"] == "before\n"
    assert time.monotonic() - started < 8
