"""A pooled keep-alive connection to a recycled sandbox's old envd must not surface as a 503.

A recycled pod keeps its podIP:49983, so Envoy's pool may hand the next request a
connection the previous envd has already dropped. The deterministic stand-in: an upstream
that answers the first request of every connection and closes the connection, without
answering, when a second request arrives on it (the old envd is gone); fresh connections
are served. Envoy must retry a GET once on a new connection. It must not re-send a POST:
from Envoy's side the same reset is what an envd that received the request and then died
looks like, and running a process start or a file write twice is worse than one error.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from extproc_stack import Stack, sandbox_id, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


class OneShotConnections(asyncio.Protocol):
    """HTTP/1.1 upstream: every connection serves exactly one request, then resets on the next."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.buf = b""
        self.served = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buf = rest[length:]
            method = head.split(b" ", 1)[0].decode()
            if self.served:
                self.log.append(f"reset {method}")
                sock = self.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()  # RST, no response byte: what a vanished envd looks like
                return
            self.served += 1
            self.log.append(f"served {method}")
            body = b'{"ok":true}'
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def one_shot() -> AsyncIterator[tuple[int, list[str]]]:
    log: list[str] = []
    server = await asyncio.get_running_loop().create_server(lambda: OneShotConnections(log), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], log
    finally:
        server.close()
        await server.wait_closed()


async def test_reused_connection_closed_by_the_old_envd_is_retried_for_a_get(
    stack: Stack, one_shot: tuple[int, list[str]]
) -> None:
    port, log = one_shot
    request = await _routed(stack, port, "GET")
    log.clear()
    # Sequential requests reuse Envoy's pooled connection; every reuse meets a reset.
    statuses = [await request() for _ in range(5)]
    assert statuses == [200] * 5, (statuses, log)
    assert "reset GET" in log  # the stale connection really was reused, and retried


async def test_a_post_that_met_a_reset_is_never_sent_twice(stack: Stack, one_shot: tuple[int, list[str]]) -> None:
    port, log = one_shot
    request = await _routed(stack, port, "POST")
    log.clear()
    assert await request() == 503  # written to the pooled connection, which the upstream reset
    await asyncio.sleep(0.2)
    assert log == ["reset POST"], log  # delivered once, not re-sent on a fresh connection
    assert await request() == 200  # the dead connection is gone; the next one is fresh


async def _routed(stack: Stack, port: int, method: str) -> Callable[[], Awaitable[int]]:
    """A sandbox on the one-shot upstream; returns a request function once it answered once."""
    sid = sandbox_id()
    await stack.pods.create(ip="127.0.0.1", sandbox_id=sid)
    headers = {"x-sandbox-id": sid, "x-sandbox-port": str(port)}

    async def request() -> int:
        async with stack.http.request(method, stack.envoy.url + "/process.Process/Start", headers=headers,
                                      data=b'{"cmd":"true"}' if method == "POST" else None) as resp:
            await resp.read()
            return resp.status

    await wait_for(lambda: _ok(request))
    return request


async def _ok(request: Callable[[], Awaitable[int]]) -> bool:
    return await request() == 200


async def test_uploads_larger_than_the_retry_buffer_still_pass(stack: Stack) -> None:
    """Retries make Envoy buffer the request body; past its buffer limit it must stream on, not fail."""
    a, _ = stack.upstreams
    sid = sandbox_id()
    await stack.pods.create(ip=a.ip, sandbox_id=sid)
    headers = {"x-sandbox-id": sid, "x-sandbox-port": str(a.port)}
    await wait_for(lambda: _ok(lambda: _status(stack, "GET", headers, None)))
    assert await _status(stack, "POST", headers, b"x" * (8 << 20)) == 200


async def _status(stack: Stack, method: str, headers: dict[str, str], data: bytes | None) -> int:
    async with stack.http.request(method, stack.envoy.url + "/files", headers=headers, data=data) as resp:
        await resp.read()
        return resp.status
