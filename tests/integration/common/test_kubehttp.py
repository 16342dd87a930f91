"""The lean HTTP/1.1 client against the embedded API server (TLS, token) and against scripted servers
for what a well-behaved API server rarely does (closing idle connections, chunked answers, silence)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from agent_sandbox.common import kubehttp
from agent_sandbox.localcluster.app import LocalCluster

Answer = Callable[[int, int, bytes], Awaitable[bytes | None]]  # (connection no., request no., request) -> reply


class ScriptedServer:
    """A plain TCP server that reads one request head (and body) at a time and replies what ``answer`` says
    (``None``: close the connection without replying). Counts connections and their peak concurrency."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            n = 0
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                n += 1
                reply = await self.answer(conn, n, request)
                if reply is None:
                    return
                writer.write(reply)
                await writer.drain()
        finally:
            self.open -= 1
            writer.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() \
        + body


async def always_ok(conn: int, n: int, request: bytes) -> bytes:
    return ok()


@pytest.fixture
async def cluster(tmp_path: pathlib.Path) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(state_dir=tmp_path, crd_dir=None) as running:
        yield running


async def test_requests_over_tls_with_the_kubeconfigs_credentials(cluster: LocalCluster) -> None:
    cfg = type.__call__(k8s.Configuration)
    await k8s_config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg,
                                      persist_config=False)
    assert str(cfg.host).startswith("https://")
    pool = kubehttp.Http1Pool(str(cfg.host), ssl_context=kubehttp.ssl_context(cfg))
    auth = await kubehttp.authorization(cfg)
    try:
        created = await pool.request("POST", "/api/v1/namespaces/default/configmaps", authorization=auth,
                                     body=orjson.dumps({"metadata": {"name": "lean"}, "data": {"a": "1"}}))
        assert created.status == 201, created.body
        patched = await pool.request("PATCH", "/api/v1/namespaces/default/configmaps/lean", authorization=auth,
                                     body=orjson.dumps({"data": {"a": "2"}}), content_type=kubehttp.MERGE_PATCH)
        assert patched.status == 200
        assert orjson.loads(patched.body)["data"] == {"a": "2"}
        missing = await pool.request("GET", "/api/v1/namespaces/default/configmaps/nope", authorization=auth)
        assert (missing.status, missing.reason) == (404, "Not Found")
        assert orjson.loads(missing.body)["reason"] == "NotFound"
        denied = await pool.request("GET", "/api/v1/namespaces/default/configmaps/lean")
        assert denied.status == 401
    finally:
        await pool.close()


async def test_sequential_requests_share_one_connection() -> None:
    async with ScriptedServer(always_ok) as server:
        pool = kubehttp.Http1Pool(server.url)
        for _ in range(5):
            assert (await pool.request("GET", "/version")).body == b'{"ok": true}'
        await pool.close()
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /version HTTP/1.1\r\n")


async def test_chunked_answers_are_read_whole() -> None:
    async def chunked(conn: int, n: int, request: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")

    async with ScriptedServer(chunked) as server:
        pool = kubehttp.Http1Pool(server.url)
        assert orjson.loads((await pool.request("GET", "/x")).body) == {"a": 1}
        assert orjson.loads((await pool.request("GET", "/x")).body) == {"a": 1}
        await pool.close()
    assert server.connections == 1


async def test_a_connection_the_server_closes_is_not_reused() -> None:
    async def close_after(conn: int, n: int, request: bytes) -> bytes:
        return ok(extra="Connection: close\r\n")

    async with ScriptedServer(close_after) as server:
        pool = kubehttp.Http1Pool(server.url)
        for _ in range(3):
            assert (await pool.request("GET", "/x")).status == 200
        await pool.close()
    assert server.connections == 3


async def test_a_dropped_idle_connection_is_retried_only_when_repeating_is_safe() -> None:
    """The server drops a kept-alive connection as the next request arrives (its idle timeout raced the
    request): a GET or a merge patch is sent again on a new connection, a POST is not (it may have run)."""
    async def drop_second(conn: int, n: int, request: bytes) -> bytes | None:
        return None if n == 2 else ok()

    cases = (("GET", "application/json", True), ("PATCH", kubehttp.MERGE_PATCH, True),
             ("PATCH", "application/json-patch+json", False), ("POST", "application/json", False))
    for method, ctype, retried in cases:
        async with ScriptedServer(drop_second) as server:
            pool = kubehttp.Http1Pool(server.url)
            await pool.request("GET", "/warm")
            body = None if method == "GET" else b"{}"
            if retried:
                assert (await pool.request(method, "/x", body=body, content_type=ctype)).status == 200
                assert server.connections == 2
            else:
                with pytest.raises(kubehttp.HttpConnectionError):
                    await pool.request(method, "/x", body=body, content_type=ctype)
                assert server.connections == 1
                assert (await pool.request("GET", "/x")).status == 200  # the pool recovers
            await pool.close()


async def test_a_silent_server_times_out_and_its_connection_is_dropped() -> None:
    async def silent_first(conn: int, n: int, request: bytes) -> bytes | None:
        if conn == 1:
            await asyncio.sleep(1)
        return ok()

    async with ScriptedServer(silent_first) as server:
        pool = kubehttp.Http1Pool(server.url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/slow", timeout_s=0.2)
        assert loop.time() - started < 1.0
        assert (await pool.request("GET", "/x")).status == 200  # not on the connection still waiting
        await pool.close()
    assert server.connections == 2


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    async def slow_first(conn: int, n: int, request: bytes) -> bytes:
        if conn == 1:
            await asyncio.sleep(0.3)
        return ok()

    async with ScriptedServer(slow_first) as server:
        pool = kubehttp.Http1Pool(server.url)
        task = asyncio.create_task(pool.request("GET", "/slow"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await pool.request("GET", "/x")).body == b'{"ok": true}'
        await pool.close()
    assert server.connections == 2


async def test_the_pool_never_opens_more_connections_than_its_limit() -> None:
    async def slow(conn: int, n: int, request: bytes) -> bytes:
        await asyncio.sleep(0.05)
        return ok()

    async with ScriptedServer(slow) as server:
        pool = kubehttp.Http1Pool(server.url, limit=3)
        answers = await asyncio.gather(*(pool.request("GET", f"/{i}") for i in range(12)))
        await pool.close()
    assert all(a.status == 200 for a in answers)
    assert server.peak_open <= 3
    assert server.connections == 3


async def test_garbage_and_refused_connections_raise_connection_errors() -> None:
    async def garbage(conn: int, n: int, request: bytes) -> bytes:
        return b"SMTP ready\r\n\r\n"

    async with ScriptedServer(garbage) as server:
        pool = kubehttp.Http1Pool(server.url)
        with pytest.raises(kubehttp.HttpConnectionError, match="malformed"):
            await pool.request("GET", "/x")
        await pool.close()
        url = server.url
    with pytest.raises(kubehttp.HttpConnectionError, match="cannot connect"):
        await kubehttp.Http1Pool(url).request("GET", "/x")
    with pytest.raises(OSError):  # callers catch OSError for every transport failure
        await kubehttp.Http1Pool(url).request("GET", "/x")


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an http"):
        kubehttp.Http1Pool("unix:///var/run/kube.sock")


async def test_idle_connections_are_closed_after_the_keepalive() -> None:
    async with ScriptedServer(always_ok) as server:
        pool = kubehttp.Http1Pool(server.url, keepalive_s=0.2)
        await asyncio.gather(*(pool.request("GET", "/x") for _ in range(3)))
        assert server.open == 3
        await asyncio.sleep(0.5)
        assert server.open == 0  # the pool closed them; the server saw each end
        assert (await pool.request("GET", "/x")).status == 200
        await pool.close()
    assert server.connections == 4


async def test_send_now_needs_a_free_pooled_connection_and_settles_unawaited_answers() -> None:
    async with ScriptedServer(always_ok) as server:
        pool = kubehttp.Http1Pool(server.url, limit=2)
        assert pool.send_now("GET", "/x") is None  # nothing pooled: connecting would have to wait
        await asyncio.gather(pool.request("GET", "/warm"), pool.request("GET", "/warm"))
        first, second = pool.send_now("GET", "/a"), pool.send_now("GET", "/b")
        assert first is not None and second is not None
        assert pool.send_now("GET", "/c") is None  # at the limit
        assert (await first).status == 200
        second.close()  # never awaited: its connection still goes back to the pool once answered
        await asyncio.sleep(0.1)
        assert (await asyncio.gather(*(pool.request("GET", "/d") for _ in range(2))))[1].status == 200
        await pool.close()
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/warm", b"/warm", b"/a", b"/b", b"/d", b"/d"]
