"""The API server's HTTP/1.1 front on raw sockets: keep-alive, pipelining, hand-over of watches to aiohttp,
limits, malformed requests, idle connections and clients that go away (``apiserver.httpserver``)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes_asyncio import client

from agent_sandbox.localcluster.apiserver.httpserver import MAX_HEAD_BYTES, HttpServer, PlainRequest, Reply
from agent_sandbox.localcluster.app import LocalCluster

pytestmark = pytest.mark.asyncio(loop_scope="module")

NS_PATH = "/api/v1/namespaces/default/configmaps"


class Conn:
    """One raw client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str) -> None:
        self.reader, self.writer, self.token = reader, writer, token

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                version: str = "1.1") -> bytes:
        fields = {"Host": "localcluster", "Authorization": f"Bearer {self.token}", **(headers or {})}
        if body and "Transfer-Encoding" not in fields:
            fields["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        return head.encode() + b"\r\n" + body

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def head(self) -> tuple[int, dict[str, str]]:
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        return int(lines[0].split()[1]), headers

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = await self.head()
        if headers.get("transfer-encoding") == "chunked" or status == 100:
            return status, headers, b""
        async with asyncio.timeout(10):
            return status, headers, await self.reader.readexactly(int(headers.get("content-length", "0")))

    async def chunk(self) -> bytes:
        async with asyncio.timeout(10):
            size = int((await self.reader.readline()).strip(), 16)
            data = await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            return data

    async def closed(self) -> bool:
        async with asyncio.timeout(10):
            return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


async def connect(cluster: LocalCluster, tls: bool = False) -> Conn:
    url = cluster.tls_url if tls else cluster.url
    host, port = url.split("//")[1].split(":")
    context = ssl.create_default_context(cafile=str(cluster.ca_file)) if tls else None
    reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
    return Conn(reader, writer, cluster.token)


@pytest_asyncio.fixture(loop_scope="module")
async def conn(cluster: LocalCluster) -> AsyncIterator[Conn]:
    connection = await connect(cluster)
    yield connection
    connection.close()


async def test_keep_alive_answers_requests_in_turn(conn: Conn) -> None:
    for path in ("/version", "/api", "/healthz"):
        conn.send(conn.request("GET", path))
        status, headers, body = await conn.response()
        assert status == 200 and "connection" not in headers
    assert body == b"ok"
    assert headers["content-type"].startswith("text/plain")


async def test_pipelined_requests_answered_in_order(conn: Conn) -> None:
    names = [f"pipe-{i}" for i in range(20)]  # more than are read ahead before reading pauses
    conn.send(b"".join(conn.request("POST", NS_PATH, orjson.dumps({"metadata": {"name": n}}),
                                    {"Content-Type": "application/json"}) for n in names))
    answered = []
    for _ in names:
        status, _, body = await conn.response()
        assert status == 201
        answered.append(orjson.loads(body)["metadata"]["name"])
    assert answered == names


@pytest.mark.parametrize("tls", [False, True])
async def test_watch_after_plain_requests_streams_on_the_same_connection(cluster: LocalCluster, api: client.ApiClient,
                                                                         tls: bool) -> None:
    conn = await connect(cluster, tls)
    try:
        conn.send(conn.request("GET", NS_PATH))
        status, _, body = await conn.response()
        assert status == 200
        rv = orjson.loads(body)["metadata"]["resourceVersion"]
        conn.send(conn.request("GET", f"{NS_PATH}?watch=true&resourceVersion={rv}"))
        status, headers, _ = await conn.response()
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        name = f"watched-{'tls' if tls else 'plain'}"
        await client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": name}})
        event = orjson.loads(await conn.chunk())
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", name)
    finally:
        conn.close()


async def test_connection_keeps_serving_after_its_watch_ends(conn: Conn) -> None:
    """Once aiohttp owns a connection (a watch was handed over), later requests on it are still answered,
    health checks included."""
    conn.send(conn.request("GET", f"{NS_PATH}?watch=true&timeoutSeconds=1"))
    status, headers, _ = await conn.response()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    while await conn.chunk():  # events, if any, then the end of the stream after a second
        pass
    conn.send(conn.request("GET", "/healthz") + conn.request("GET", "/version"))
    status, headers, body = await conn.response()
    assert (status, body) == (200, b"ok") and headers["content-type"].startswith("text/plain")
    status, _, body = await conn.response()
    assert status == 200 and orjson.loads(body)["major"]


async def test_watch_pipelined_into_a_read_is_refused(conn: Conn) -> None:
    conn.send(conn.request("GET", "/version") + conn.request("GET", f"{NS_PATH}?watch=1"))
    assert (await conn.response())[0] == 200
    status, headers, body = await conn.response()
    assert status == 400 and headers["content-type"] == "application/json"
    assert "pipelined" in orjson.loads(body)["message"]
    assert await conn.closed()


async def test_malformed_request_gets_400_and_close(conn: Conn) -> None:
    conn.send(b"GET /version HTTP/1.1\r\nBad Header Without Colon\r\n\r\n")
    status, _, body = await conn.response()
    assert status == 400 and orjson.loads(body)["kind"] == "Status"
    assert await conn.closed()


async def test_body_over_the_limit_gets_413(conn: Conn, cluster: LocalCluster) -> None:
    limit = 32 * 1024 * 1024
    conn.send(conn.request("POST", NS_PATH, headers={"Content-Length": str(limit + 1),
                                                     "Content-Type": "application/json"}))
    status, _, body = await conn.response()
    assert status == 413 and orjson.loads(body)["reason"] == "RequestEntityTooLarge"
    assert await conn.closed()


async def test_head_over_the_limit_gets_431(conn: Conn) -> None:
    conn.send(conn.request("GET", "/version", headers={"X-Filler": "x" * (MAX_HEAD_BYTES + 1)}))
    assert (await conn.response())[0] == 431
    assert await conn.closed()


async def test_expect_continue_then_chunked_body(conn: Conn) -> None:
    body = orjson.dumps({"metadata": {"name": "chunked"}, "data": {"k": "v"}})
    conn.send(conn.request("POST", NS_PATH, headers={"Expect": "100-continue", "Transfer-Encoding": "chunked",
                                                     "Content-Type": "application/json"}))
    assert (await conn.response())[0] == 100
    half = len(body) // 2
    for part in (body[:half], body[half:], b""):
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    status, _, answer = await conn.response()
    assert status == 201 and orjson.loads(answer)["data"] == {"k": "v"}


async def test_head_request_has_length_but_no_body(conn: Conn) -> None:
    conn.send(conn.request("HEAD", "/version") + conn.request("GET", "/healthz"))
    status, headers = await conn.head()  # no body follows, though Content-Length says what a GET would get
    assert status == 200 and int(headers["content-length"]) > 0
    status, _, body = await conn.response()
    assert (status, body) == (200, b"ok")


async def test_http10_without_keep_alive_is_closed_after_the_answer(conn: Conn) -> None:
    conn.send(conn.request("GET", "/version", version="1.0"))
    status, headers, body = await conn.response()
    assert status == 200 and headers["connection"] == "close" and orjson.loads(body)["major"]
    assert await conn.closed()


async def test_missing_token_is_401_but_health_is_open(cluster: LocalCluster) -> None:
    conn = await connect(cluster)
    try:
        conn.send(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await conn.response())[0] == 401
        assert (await conn.response())[0] == 200
    finally:
        conn.close()


async def test_write_of_a_client_that_went_away_is_still_applied(cluster: LocalCluster,
                                                                 api: client.ApiClient) -> None:
    conn = await connect(cluster)
    conn.send(conn.request("POST", NS_PATH, orjson.dumps({"metadata": {"name": "orphan"}}),
                           {"Content-Type": "application/json"}))
    await conn.writer.drain()
    conn.writer.transport.abort()
    async with asyncio.timeout(10):
        while True:
            listed = await client.CoreV1Api(api).list_namespaced_config_map("default")
            if "orphan" in {cm.metadata.name for cm in listed.items}:
                break
            await asyncio.sleep(0.02)


# ----- the front on its own: idle connections, handler failures ------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def front() -> AsyncIterator[tuple[HttpServer, int]]:
    async def handle(request: PlainRequest) -> Reply:
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        return Reply(request.method.encode() + b" " + request.path.encode() + b" " + await request.read())

    server = HttpServer(handle, lambda _request: False, max_body=1024, keepalive_s=0.4)
    port = await server.listen("127.0.0.1", 0)
    yield server, port
    await server.close()


async def test_idle_connection_is_closed_after_keepalive(front: tuple[HttpServer, int]) -> None:
    server, port = front
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Conn(reader, writer, "")
    conn.send(conn.request("PUT", "/a%20b?x=1", b"data"))
    status, _, body = await conn.response()
    assert (status, body) == (200, b"PUT /a b data")
    start = asyncio.get_running_loop().time()
    assert await conn.closed()
    assert asyncio.get_running_loop().time() - start >= 0.3
    assert not server.connections


async def test_handler_failure_is_a_500_status_and_the_connection_lives(front: tuple[HttpServer, int]) -> None:
    _, port = front
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Conn(reader, writer, "")
    try:
        conn.send(conn.request("GET", "/boom") + conn.request("POST", "/echo", b"x"))
        status, headers, body = await conn.response()
        assert status == 500 and headers["content-type"] == "application/json"
        assert orjson.loads(body)["message"] == "internal error: RuntimeError"
        status, _, body = await conn.response()
        assert (status, body) == (200, b"POST /echo x")
    finally:
        conn.close()


async def test_stream_sent_behind_an_unanswered_request_is_handed_over_after_its_answer() -> None:
    """A stream request that arrives while the answer before it is still being worked on waits for that
    answer (HTTP/1.1 answers in order), then aiohttp streams it on the same connection."""
    release = asyncio.Event()

    async def handle(request: Any) -> Reply | web.StreamResponse:
        if request.path == "/slow":
            await release.wait()
            return Reply(b"slow")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"streamed " + request.path.encode())
        await response.write_eof()
        return response

    server = HttpServer(handle, lambda request: request.path.startswith("/stream"), max_body=1024)
    port = await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Conn(reader, writer, "")
    try:
        conn.send(conn.request("GET", "/slow"))
        await asyncio.sleep(0.05)
        conn.send(conn.request("GET", "/stream/1"))
        await asyncio.sleep(0.05)
        release.set()
        status, _, body = await conn.response()
        assert (status, body) == (200, b"slow")
        status, headers, _ = await conn.response()
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert await conn.chunk() == b"streamed /stream/1"
    finally:
        conn.close()
        await server.close()


async def test_idle_hook_runs_once_the_last_request_in_hand_is_answered() -> None:
    """``on_idle`` (the server's garbage collection at quiet moments) is called when no plain request is
    left being answered: not while one is still being worked on, even if others were answered meanwhile."""
    release = asyncio.Event()
    idle_while: list[bool] = []

    async def handle(request: PlainRequest) -> Reply:
        if request.path == "/slow":
            await release.wait()
        return Reply(request.path.encode())

    server = HttpServer(handle, lambda _request: False, max_body=1024,
                        on_idle=lambda: idle_while.append(server.busy))
    port = await server.listen("127.0.0.1", 0)
    slow = Conn(*await asyncio.open_connection("127.0.0.1", port), "")
    fast = Conn(*await asyncio.open_connection("127.0.0.1", port), "")
    try:
        slow.send(slow.request("GET", "/slow"))
        await asyncio.sleep(0.05)
        fast.send(fast.request("GET", "/fast"))
        assert (await fast.response())[2] == b"/fast"
        await asyncio.sleep(0.05)
        assert server.busy and idle_while == []  # /slow is still in hand
        release.set()
        assert (await slow.response())[2] == b"/slow"
        await asyncio.sleep(0.05)
        assert idle_while == [False] and not server.busy
    finally:
        slow.close()
        fast.close()
        await server.close()
