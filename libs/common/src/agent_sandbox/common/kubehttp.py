"""Lean keep-alive HTTP/1.1 client for request/response calls to a Kubernetes API server.

Every claim is one PATCH, and every in-place swap a few status writes by the
node, so the cost of one API request bounds how many claims a core can carry.
Through aiohttp's client a PATCH at 100 concurrent requests costs 120-150 µs
of client CPU (session and request/response objects, timers, a task per
body), through this client 50-75 µs (``bench/apiserver/client_cpu.py``). It
does only what those calls need: one request at a time per pooled connection
(no pipelining), the body as bytes, the answer read whole (``Content-Length``
or chunked, parsed by httptools, the C parser uvicorn uses; so no ``HEAD``),
TLS from the kubeconfig. A request can also be written at once, without yielding to the
event loop (:meth:`Http1Pool.send_now`). Streams (watches, logs) and requests
through a proxy stay on aiohttp.

A pooled connection the server closed while idle is noticed when it drops; a
request that finds its connection dropping before any byte of an answer
arrived is sent once more on a new connection when repeating it is safe
(``GET``/``PUT``/``DELETE`` and merge patches, which apply the same way
twice), as browsers do. Other failures raise :class:`HttpConnectionError` (an
``OSError``) or ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import httptools

MERGE_PATCH = "application/merge-patch+json"
#: Methods repeated once when a reused connection drops before answering (merge-patch PATCHes too).
_REPEATABLE = frozenset({"GET", "PUT", "DELETE"})


class HttpConnectionError(ConnectionError):
    """The request could not be sent or its answer not read (connection refused, dropped, garbled)."""


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    body: bytes


def ssl_context(cfg: Any) -> ssl.SSLContext:
    """The TLS settings of a ``kubernetes_asyncio`` configuration, as its REST client applies them."""
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.disable_strict_ssl_verification:
        ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return ctx


async def authorization(cfg: Any) -> str | None:
    """The ``Authorization`` header of a ``kubernetes_asyncio`` configuration (runs its token refresh hook)."""
    if "BearerToken" in cfg.api_key:
        return await cfg.get_api_key_with_prefix("BearerToken") or None
    if cfg.username or cfg.password:
        return str(cfg.get_basic_auth_token())
    return None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._reason = ""
        self._chunks: list[bytes] = []
        self.answered = False  # a byte of the current answer arrived
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpConnectionError(f"malformed answer from the API server: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpConnectionError(f"connection to the API server lost: {exc or 'closed by the server'}"))

    # -- httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self._reason += reason.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        response = Response(self._parser.get_status_code(), self._reason, body)
        self._chunks = []
        self._reason = ""
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # -- use
    def send(self, data: bytes, waiter: asyncio.Future[Response]) -> None:
        self._waiter = waiter
        self.answered = False
        assert self._transport is not None
        self._transport.write(data)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


class Http1Pool:
    """Keep-alive connections to one ``http(s)://host:port``: at most ``limit`` requests (and so
    connections) at a time, idle connections closed after ``keepalive_s`` (the most recently used is
    taken first, so a quiet spell lets the rest expire).

    A request's connection and slot are settled by callbacks on its answer's future (back to the pool,
    or aborted on a timeout, failure or cancellation), so :meth:`send_now` can hand out a request in
    flight that nobody has to drive."""

    def __init__(self, base_url: str, *, ssl_context: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, limit: int = 256, keepalive_s: float = 60.0,
                 connect_timeout_s: float = 10.0, user_agent: str = "agent-sandbox") -> None:
        scheme, sep, rest = base_url.rstrip("/").partition("://")
        if not sep or scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        authority, _, prefix = rest.partition("/")
        host, colon, port = authority.rpartition(":")
        if not colon or not port.isdigit():
            host, port = authority, "443" if scheme == "https" else "80"
        self._host = host.strip("[]")
        self._port = int(port)
        self._prefix = f"/{prefix}" if prefix else ""
        self._ssl: ssl.SSLContext | None = (ssl_context or ssl.create_default_context()) if scheme == "https" else None
        self._server_hostname = server_hostname if self._ssl is not None else None
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._idle: deque[_Connection] = deque()  # oldest on the left
        self._expiry: asyncio.TimerHandle | None = None
        self._closed = False
        self._limit = limit
        self._busy = 0  # requests holding a slot
        self._waiters: deque[asyncio.Future[None]] = deque()  # for a slot, first come first served
        self._fixed = f"Host: {authority}\r\nUser-Agent: {user_agent}\r\nAccept: application/json\r\n"

    async def request(self, method: str, target: str, *, body: bytes | None = None,
                      content_type: str = "application/json", authorization: str | None = None,
                      timeout_s: float = 30.0) -> Response:
        """Send one request (``target``: path and query, already encoded) and read its whole answer."""
        data = self._encode(method, target, body, content_type, authorization)
        deadline = time.monotonic() + timeout_s
        await self._acquire()
        conn = self._take_idle()
        if conn is None:
            return await self._send(await self._connect_held(deadline), data, deadline)
        return await self._answer_reused(conn, self._send(conn, data, deadline), data,
                                         _repeatable(method, content_type), deadline)

    def send_now(self, method: str, target: str, *, body: bytes | None = None,
                 content_type: str = "application/json", authorization: str | None = None,
                 timeout_s: float = 30.0) -> Awaitable[Response] | None:
        """Like :meth:`request`, but the request is written before this returns, without yielding to the
        event loop; ``None`` (nothing sent) when that would have to wait for a slot or a new connection.
        The answer is awaited later (or never: the connection is settled either way)."""
        if self._closed or self._busy >= self._limit or self._waiters:
            return None
        conn = self._take_idle()
        if conn is None:
            return None
        self._busy += 1
        data = self._encode(method, target, body, content_type, authorization)
        deadline = time.monotonic() + timeout_s
        return self._answer_reused(conn, self._send(conn, data, deadline), data, _repeatable(method, content_type),
                                   deadline)

    async def close(self) -> None:
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        while self._idle:
            self._idle.pop().close()

    # -- slots
    async def _acquire(self) -> None:
        if self._busy < self._limit and not self._waiters:
            self._busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # a finishing request hands its slot over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()
            else:
                self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._busy -= 1

    # -- connections
    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect_held(self, deadline: float) -> _Connection:
        """A new connection for a request holding a slot (given back if connecting fails)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(self._connect_timeout_s, max(0.0, deadline - time.monotonic()))):
                _, conn = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._server_hostname)
        except OSError as exc:
            self._release()
            raise HttpConnectionError(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        except BaseException:
            self._release()
            raise
        return conn

    # -- exchanges
    def _encode(self, method: str, target: str, body: bytes | None, content_type: str,
                authorization: str | None) -> bytes:
        head = f"{method} {self._prefix}{target} HTTP/1.1\r\n{self._fixed}"
        if authorization:
            head += f"Authorization: {authorization}\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1")
        return data + body if body else data

    def _send(self, conn: _Connection, data: bytes, deadline: float) -> asyncio.Future[Response]:
        """Write a request on ``conn`` (holding a slot); its answer's future settles both."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        timer = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), _time_out, waiter)
        waiter.add_done_callback(functools.partial(self._settle, conn, timer))
        conn.send(data, waiter)
        return waiter

    def _settle(self, conn: _Connection, timer: asyncio.TimerHandle, waiter: asyncio.Future[Response]) -> None:
        timer.cancel()
        self._release()
        if waiter.cancelled() or waiter.exception() is not None:
            conn.abort()  # mid-answer (timeout, cancellation, failure): never reused
        elif conn.closed:
            pass
        elif self._closed:
            conn.close()
        else:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
            if self._expiry is None:
                self._expiry = asyncio.get_running_loop().call_later(self._keepalive_s, self._expire_idle)

    async def _answer_reused(self, conn: _Connection, waiter: asyncio.Future[Response], data: bytes,
                             repeatable: bool, deadline: float) -> Response:
        """The answer to ``data`` sent on a pooled connection; if the server had closed that connection and it
        drops before answering, the request is sent once more on a new one when repeating it is safe."""
        try:
            return await waiter
        except HttpConnectionError:
            if not repeatable or conn.answered:
                raise
        await self._acquire()
        return await self._send(await self._connect_held(deadline), data, deadline)

    def _expire_idle(self) -> None:
        """Close the connections idle for ``keepalive_s``; come back when the next one is due."""
        self._expiry = None
        now = time.monotonic()
        while self._idle and (self._idle[0].closed or now - self._idle[0].idle_since >= self._keepalive_s):
            self._idle.popleft().close()
        if self._idle:
            due = self._idle[0].idle_since + self._keepalive_s - now
            self._expiry = asyncio.get_running_loop().call_later(max(0.0, due), self._expire_idle)


def _repeatable(method: str, content_type: str) -> bool:
    return method in _REPEATABLE or (method == "PATCH" and content_type == MERGE_PATCH)


def _time_out(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the API server did not answer in time"))

