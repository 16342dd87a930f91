"""The API server's HTTP/1.1 front: plain requests on a lean protocol, streams on aiohttp.

Nearly every request the control plane gets is a short JSON exchange: a claim's PATCH, a node's
status write, a GET or a LIST. aiohttp's server spends about as much loop time on one of those as
the handler itself (request, payload-stream and response objects, header preparation, a writer),
and the API server's loop is what a claim burst waits on. So every connection starts on
:class:`_Connection`, an asyncio protocol around httptools (the parser under uvicorn and our own
API client, :mod:`agent_sandbox.common.kubehttp`): it reads a whole request, runs the handler in a
task and writes the answer with one call.

A request that turns into a stream (a watch, an exec upgrade; :meth:`ApiServer.streams
<.server.ApiServer.streams>` decides) is handed, with the raw bytes read so far, to aiohttp's
protocol on the same transport (``transport.set_protocol``), which owns the connection from then
on: chunked streaming, WebSockets and their back-pressure stay aiohttp's. The raw bytes of a
request are known exactly only when it begins a read from the socket; clients send the next request
after the previous answer, so that is where a stream request begins. One pipelined into the middle
of a read is refused with a 400 rather than guessed at.

HTTP/1.1 as clients rely on it: keep-alive unless the client (or HTTP/1.0) says otherwise, pipelined
requests answered in order, ``Expect: 100-continue``, chunked request bodies, HEAD without a body,
413 past the body limit, 431 past the head limit, 400 and a close on a malformed request. Reading
pauses while the transport's write buffer is full or too many pipelined requests wait, and a
connection idle for ``keepalive_s`` is closed. A handler is not cancelled when its client goes away
(aiohttp's default too): a write it began is committed, its answer dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

import httptools
import orjson
from aiohttp import web
from aiohttp.tcp_helpers import tcp_nodelay
from multidict import MultiDict, MultiDictProxy

from agent_sandbox.common.logging import get_logger

from .errors import StatusError, bad_request, internal

log = get_logger(__name__)

KEEPALIVE_S = 75.0  #: idle connections are closed after this long (aiohttp's default keep-alive)
MAX_HEAD_BYTES = 64 * 1024  #: request line + headers
MAX_PIPELINED = 16  #: requests read ahead of their answers before reading pauses
_JOIN_LIMIT = 64 * 1024  # answers up to this size go out as one joined buffer
_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_EMPTY_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Reply:
    """A complete answer (what every handler but a stream's returns)."""

    __slots__ = ("body", "content_type", "status")

    def __init__(self, body: bytes, status: int = 200, content_type: str = "application/json") -> None:
        self.body = body
        self.status = status
        self.content_type = content_type


class Headers(Mapping[str, str]):
    """A request's headers, looked up case-insensitively (the first of repeated ones, as aiohttp's
    ``get``); names and values are decoded only when asked for."""

    __slots__ = ("_raw",)

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        raw: dict[bytes, bytes] = {}
        for name, value in pairs:
            raw.setdefault(name.lower(), value)
        self._raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        value = self._raw.get(name.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower().encode("latin-1") in self._raw

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class HttpRequest(Protocol):
    """What handlers read of a request; aiohttp's request and :class:`PlainRequest` both provide it."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> MultiDictProxy[str]: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_type(self) -> str: ...
    @property
    def can_read_body(self) -> bool: ...
    async def read(self) -> bytes: ...


Handler = Callable[[Any], Awaitable[Reply | web.StreamResponse]]


class PlainRequest:
    """A request read whole by :class:`_Connection`: method, decoded path, lazily parsed query, headers
    and body, with the attribute names of aiohttp's request."""

    __slots__ = ("_query", "_query_string", "body", "headers", "method", "path")

    def __init__(self, method: str, target: str, headers: Headers) -> None:
        if not target.startswith("/"):  # absolute form (through a proxy): keep path and query
            with contextlib.suppress(httptools.HttpParserInvalidURLError):  # else: no route matches it
                parsed = httptools.parse_url(target.encode())
                target = (parsed.path or b"/").decode() + ("?" + parsed.query.decode() if parsed.query else "")
        path, _, self._query_string = target.partition("?")
        self.path = unquote(path) if "%" in path else path
        self.method = method
        self.headers = headers
        self.body = b""
        self._query: MultiDictProxy[str] | None = None

    @property
    def query(self) -> MultiDictProxy[str]:
        query = self._query
        if query is None:
            query = self._query = (MultiDictProxy(MultiDict(parse_qsl(self._query_string, keep_blank_values=True)))
                                   if self._query_string else _EMPTY_QUERY)
        return query

    @property
    def content_type(self) -> str:
        raw = self.headers.get("Content-Type")
        if raw is None:
            return "application/octet-stream"  # as aiohttp reports a missing type
        return raw.partition(";")[0].strip().lower()

    @property
    def can_read_body(self) -> bool:
        return bool(self.body)

    async def read(self) -> bytes:
        return self.body


def status_reply(err: StatusError) -> Reply:
    """``err`` as a Kubernetes ``Status`` answer."""
    return Reply(orjson.dumps(err.body()), err.code)


class _Halt(Exception):
    """Raised in a parser callback to stop parsing: to hand the connection over (``reply`` None) or to
    refuse the request with ``reply`` and close."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply


_date_cache: list[Any] = [0, b""]


def _http_date() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True).encode()
    return _date_cache[1]


class _Connection(asyncio.Protocol):
    """One client connection on the lean path (see the module docstring)."""

    def __init__(self, front: HttpServer) -> None:
        self._front = front
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self.last_active = self._loop.time()
        self._in_message = False
        self._head: list[bytes] | None = None  # raw reads since the current request began, while needed
        self._head_size = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._request: PlainRequest | None = None
        self._queue: deque[tuple[PlainRequest, bool]] = deque()
        self.busy = False  # a handler runs, or its answer is being written
        self._handoff = False  # a stream request was read: aiohttp takes over after the answers before it
        self._fatal: Reply | None = None  # answered last, then the connection closes
        self._write_paused = False
        self._read_paused = False

    # ----- transport events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses
        tcp_nodelay(transport, True)
        self._front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._front.connections.discard(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        self.last_active = self._loop.time()
        if self._fatal is not None:
            return
        if self._handoff:  # the stream's bytes, for aiohttp once the answers before it are out
            assert self._head is not None
            self._head.append(data)
            return
        if not self._in_message:
            self._head = [data]
        elif self._head is not None:
            self._head.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # only stream requests upgrade, and on_headers_complete marked the hand-over
        except httptools.HttpParserCallbackError as exc:
            halt = exc.__context__
            if not isinstance(halt, _Halt):
                log.error("reading a request failed", error=repr(halt))
                self._fail(status_reply(internal(f"internal error: {type(halt).__name__}")))
            elif halt.reply is not None:
                self._fail(halt.reply)
        except httptools.HttpParserError as exc:
            self._fail(status_reply(bad_request(f"malformed HTTP request: {exc}")))
        self._pump()

    # ----- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []
        self._body = []
        self._head_size = self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._count_head(len(name) + len(value))

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD_BYTES:
            raise _Halt(status_reply(StatusError(431, "RequestHeaderFieldsTooLarge",
                                                  f"the request head exceeds {MAX_HEAD_BYTES} bytes")))

    def on_headers_complete(self) -> None:
        headers = Headers(self._headers)
        request = PlainRequest(self._parser.get_method().decode("ascii", "replace"),
                               self._url.decode("utf-8", "surrogateescape"), headers)
        if self._front.streams(request):
            if self._head is None:
                raise _Halt(status_reply(bad_request(
                    "a watch or exec request must not be pipelined into the middle of a read; send it after "
                    "the previous answer")))
            self._handoff = True
            return
        self._head = None
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self._front.max_body:
            raise _Halt(self._too_large())
        if (headers.get("Expect", "").lower() == "100-continue" and not self.busy and not self._queue
                and self._transport is not None):
            self._transport.write(_CONTINUE)
        self._request = request

    def on_body(self, body: bytes) -> None:
        if self._handoff:
            return
        self._body_size += len(body)
        if self._body_size > self._front.max_body:
            raise _Halt(self._too_large())
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._handoff:
            raise _Halt()  # whatever follows is aiohttp's to parse
        self._head = None
        request = self._request
        assert request is not None
        self._request = None
        body = self._body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        self._queue.append((request, self._parser.should_keep_alive()))

    def _too_large(self) -> Reply:
        return status_reply(StatusError(413, "RequestEntityTooLarge",
                                         f"the request body exceeds {self._front.max_body} bytes"))

    # ----- answering -----------------------------------------------------------------------

    def _pump(self) -> None:
        """Start the next request's handler, or finish the connection's business once all are answered;
        then pause or resume reading to match."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # (closing: the client asked for it, and what it sent after that goes unanswered)
        if not self.busy:
            if self._queue:
                request, keep_alive = self._queue.popleft()
                self.busy = True
                self._front.answer(self, request, keep_alive)
            elif self._fatal is not None:
                self._send(self._fatal, False, keep_alive=False)
                return
            elif self._handoff:
                self._hand_off()
                return
        self._update_reading()

    async def run(self, request: PlainRequest, keep_alive: bool) -> None:
        try:
            reply = await self._front.handle(request)
            if not isinstance(reply, Reply):  # streams never reach this path (ApiServer.streams)
                raise TypeError(f"a stream answer on the lean path: {type(reply).__name__}")
        except Exception as exc:
            log.exception("unhandled error", method=request.method, path=request.path)
            reply = status_reply(internal(f"internal error: {type(exc).__name__}"))
        self._send(reply, request.method == "HEAD", keep_alive)
        self.busy = False
        self._pump()

    def _send(self, reply: Reply, head_only: bool, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        body = reply.body
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nDate: %s\r\n%s\r\n" % (
            reply.status, _REASONS.get(reply.status, b"Unknown"), reply.content_type.encode("latin-1"),
            len(body), _http_date(), b"" if keep_alive else b"Connection: close\r\n")
        if head_only or not body:
            transport.write(head)
        elif len(body) <= _JOIN_LIMIT:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        self.last_active = self._loop.time()
        if not keep_alive:
            transport.close()

    def _fail(self, reply: Reply) -> None:
        self._fatal = reply
        self._head = None

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        pause = (self._write_paused or len(self._queue) >= MAX_PIPELINED or self._fatal is not None
                 or self._handoff)  # (a stream's bytes wait for aiohttp in the socket, not here)
        if pause != self._read_paused:
            self._read_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _hand_off(self) -> None:
        transport = self._transport
        assert transport is not None and self._head is not None
        raw = b"".join(self._head)
        self._head = None
        self._transport = None
        self._front.connections.discard(self)
        if self._read_paused:
            transport.resume_reading()
        protocol = self._front.stream_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._write_paused:
            protocol.pause_writing()
        protocol.data_received(raw)

    def close_if_idle(self, idle_since: float) -> None:
        if self._transport is not None and not self.busy and not self._queue and self.last_active < idle_since:
            self._transport.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class HttpServer:
    """Listening sockets whose connections start on the lean path (see the module docstring).

    ``handle(request)`` answers every request, returning a :class:`Reply` or, for a request that
    ``streams(request)`` said is a stream, aiohttp's prepared stream response.
    """

    def __init__(self, handle: Handler, streams: Callable[[PlainRequest], bool], *, max_body: int,
                 keepalive_s: float = KEEPALIVE_S, on_idle: Callable[[], None] | None = None) -> None:
        self.handle = handle
        self.streams = streams
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.on_idle = on_idle  # called when the last plain request in hand has been answered
        self.connections: set[_Connection] = set()
        self._answering: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()

        def aiohttp_request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=max_body)

        self._streams_server = web.Server(self._serve_stream, request_factory=aiohttp_request, access_log=None,
                                          keepalive_timeout=keepalive_s)

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Accept connections on ``host:port`` (0: any free port); returns the port."""
        server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), host, port, backlog=1024, ssl=ssl_context)
        self._servers.append(server)
        if self._sweeper is None:
            self._schedule_sweep()
        return int(server.sockets[0].getsockname()[1])

    def stream_protocol(self) -> asyncio.Protocol:
        return self._streams_server()  # type: ignore[no-any-return]

    @property
    def busy(self) -> bool:
        """Plain requests are being answered."""
        return bool(self._answering)

    def answer(self, connection: _Connection, request: PlainRequest, keep_alive: bool) -> None:
        task = asyncio.get_running_loop().create_task(connection.run(request, keep_alive))
        self._answering.add(task)
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        if not self._answering and self.on_idle is not None:
            self.on_idle()

    async def _serve_stream(self, request: web.BaseRequest) -> web.StreamResponse:
        result = await self.handle(request)
        if isinstance(result, Reply):  # (the type goes in as a header: aiohttp refuses a charset in content_type)
            return web.Response(body=result.body, status=result.status, headers={"Content-Type": result.content_type})
        return result

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(self.keepalive_s / 4, self._sweep)

    def _sweep(self) -> None:
        idle_since = asyncio.get_running_loop().time() - self.keepalive_s
        for connection in list(self.connections):
            connection.close_if_idle(idle_since)
        self._schedule_sweep()

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop listening, let answers in progress finish (up to ``grace_s``), close every connection."""
        for server in self._servers:
            server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._answering:
            await asyncio.wait(set(self._answering), timeout=grace_s)
        for connection in list(self.connections):
            connection.close()
        self._streams_server.pre_shutdown()
        await self._streams_server.shutdown(grace_s)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
