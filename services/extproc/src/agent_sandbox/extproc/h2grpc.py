"""A minimal HTTP/2 (h2c) gRPC server for the one ExtProc method Envoy calls.

Why not grpcio: its per-RPC machinery (call objects, completion-queue events,
an asyncio task per stream) costs ~300 us of CPU per Envoy request, ten times
our routing decision, and made extproc the data plane's bottleneck. Envoy's
ExtProc traffic is narrow: one long-lived h2c connection per Envoy worker, one
short stream per HTTP request carrying one message each way. This protocol
parses frames in ``data_received`` and answers synchronously, with no task,
future or coroutine per request; response header blocks are constant bytes, and
the answers to everything one read delivered leave in a single write.

What it implements of RFC 9113 / gRPC-over-HTTP/2: the connection preface,
SETTINGS (+ACK), PING (+ACK), WINDOW_UPDATE, RST_STREAM, GOAWAY, HEADERS with
CONTINUATION, padding and priority, DATA; HPACK decoding of every header block
(the ``hpack`` library; the dynamic table must stay in sync) and stateless
HPACK encoding (static-table references and literals without indexing). Flow control: we grant Envoy a
large connection window and replenish it; our own sends honour the connection
window Envoy grants (queued when exhausted). Each response is a few hundred
bytes, far below any stream's initial window. Only
``/envoy.service.ext_proc.v3.ExternalProcessor/Process`` is served; other
methods get grpc-status 12 (UNIMPLEMENTED). Like every service of ours it needs
a credential: Envoy sends ``authorization: Bearer <token>`` as gRPC initial
metadata (the token is derived from the admin key, see
:func:`agent_sandbox.extproc.envoy_config.extproc_token`); streams without it
get grpc-status 16 (UNAUTHENTICATED), which Envoy turns into a failed request.
"""

from __future__ import annotations

import asyncio
import hmac
import struct
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import hpack

from agent_sandbox.common.logging import get_logger

log = get_logger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
METHOD_PATH = b"/envoy.service.ext_proc.v3.ExternalProcessor/Process"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
PROTOCOL_ERROR, REFUSED_STREAM = 0x1, 0x7

_DECODE_CACHE_SIZE = 64

MAX_STREAMS = 4096
MAX_FRAME_SIZE = 16384  # the RFC 9113 default; we never advertise more
MAX_HEADER_BLOCK = 256 * 1024
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 1 << 30
MAX_MESSAGE = STREAM_WINDOW
DEFAULT_SEND_WINDOW = 65535

def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """HPACK literal header field without indexing, new name, no Huffman (stateless)."""
    return b"\x00" + _hpack_int(len(name)) + name + _hpack_int(len(value)) + value


def _hpack_int(n: int) -> bytes:
    if n < 127:
        return bytes((n,))
    out = bytearray((127,))
    n -= 127
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: ``:status: 200`` is static-table entry 8 (one byte); ``content-type`` reuses static entry 31's
#: name (literal without indexing): Envoy decodes them without parsing or validating names.
STATUS_200 = b"\x88"
CONTENT_TYPE_GRPC = b"\x0f\x10" + _hpack_int(len(b"application/grpc")) + b"application/grpc"
RESPONSE_HEADERS = STATUS_200 + CONTENT_TYPE_GRPC
TRAILERS_OK = _literal(b"grpc-status", b"0")
UNIMPLEMENTED = RESPONSE_HEADERS + _literal(b"grpc-status", b"12") + _literal(b"grpc-message", b"unknown method")
UNAUTHENTICATED = RESPONSE_HEADERS + _literal(b"grpc-status", b"16") + _literal(
    b"grpc-message", b"missing or invalid extproc bearer token")
INTERNAL_ERROR = _literal(b"grpc-status", b"13") + _literal(b"grpc-message", b"internal error")


class MessageHandler(Protocol):
    def handle(self, message: bytes) -> tuple[bytes, bool] | Awaitable[tuple[bytes, bool]]: ...


class _Stream:
    __slots__ = ("buffer", "end_stream", "header_block", "ok", "rejection", "response_started")

    def __init__(self) -> None:
        self.header_block = bytearray()
        self.buffer = bytearray()
        self.ok = False
        self.response_started = False
        self.end_stream = False
        #: Error answer, sent once the client has sent its message (or ended the stream), so a
        #: client still writing its request sees the status rather than a failed send.
        self.rejection: bytes | None = None


class ExtProcProtocol(asyncio.Protocol):
    def __init__(self, handler: MessageHandler, connections: set[ExtProcProtocol],
                 token: bytes | None = None) -> None:
        self.handler = handler
        #: Expected ``authorization`` value (``Bearer <token>``); ``None`` = dev mode, no check.
        self.token = token
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.decoder = hpack.Decoder()
        self._decoded: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._table_generation = 0
        self._table_add = self.decoder.header_table.add
        self.decoder.header_table.add = self._count_table_insert  # type: ignore[method-assign]
        self.buf = bytearray()
        self.preface_seen = False
        self.streams: dict[int, _Stream] = {}
        self.continuation_of = 0
        self.received = 0
        self.send_window = DEFAULT_SEND_WINDOW
        #: Writes waiting for Envoy to grant connection window: (bytes, flow-controlled size).
        self.pending: list[tuple[bytes, int]] = []
        #: Frames produced while handling one read, sent as one write when it is done.
        self.out: list[bytes] | None = None
        self.closed = False

    # ---- connection lifecycle -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)
        settings = struct.pack(">HI", SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS) + struct.pack(
            ">HI", SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW)
        self.transport.write(frame(SETTINGS, 0, 0, settings)
                        + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", CONNECTION_WINDOW - 65535)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        self.streams.clear()
        self.pending.clear()

    def goaway(self) -> None:
        """Tell Envoy to open a new connection (shutdown), then close."""
        if self.transport is not None and not self.closed:
            last = max(self.streams, default=0)
            self.transport.write(frame(GOAWAY, 0, 0, struct.pack(">II", last, 0)))
            self.transport.close()

    def _fail(self, reason: str) -> None:
        log.warning("closing ExtProc connection", reason=reason)
        self._flush_out()
        if self.transport is not None:
            self.transport.write(frame(GOAWAY, 0, 0, struct.pack(">II", 0, PROTOCOL_ERROR)))
            self.transport.close()
        self.closed = True

    # ---- output batching ----------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.out is not None:
            self.out.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _flush_out(self) -> None:
        out, self.out = self.out, None
        if out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))

    # ---- frame parsing ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        # Envoy packs frames of many streams into one read; their answers leave in one write
        # (one send syscall instead of one per request).
        self.out = []
        try:
            self._parse(data)
        finally:
            self._flush_out()

    def _parse(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        if not self.preface_seen:
            if len(buf) < len(PREFACE):
                return
            if bytes(buf[: len(PREFACE)]) != PREFACE:
                self._fail("bad connection preface (not h2c prior knowledge)")
                return
            self.preface_seen = True
            pos = len(PREFACE)
        end = len(buf)
        while end - pos >= 9 and not self.closed:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if length > MAX_FRAME_SIZE:
                self._fail("frame larger than SETTINGS_MAX_FRAME_SIZE")
                return
            if end - pos < 9 + length:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(buf[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._frame(kind, flags, stream_id, payload)
        del buf[:pos]

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self.continuation_of and kind != CONTINUATION:
            self._fail("expected CONTINUATION")
            return
        if kind == DATA:
            self._data(flags, sid, payload)
        elif kind == HEADERS:
            self._headers(flags, sid, payload)
        elif kind == CONTINUATION:
            stream = self.streams.get(sid)
            if sid != self.continuation_of or stream is None:
                self._fail("unexpected CONTINUATION")
                return
            stream.header_block += payload
            if len(stream.header_block) > MAX_HEADER_BLOCK:
                self._fail("header block too large")
                return
            if flags & END_HEADERS:
                self.continuation_of = 0
                self._header_block_done(sid, stream)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif kind == PING:
            if not flags & ACK and self.transport is not None:
                self._write(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            if sid == 0 and len(payload) == 4:
                self.send_window += int.from_bytes(payload, "big") & 0x7FFFFFFF
                self._flush_pending()
        elif kind == RST_STREAM:
            self.streams.pop(sid, None)
        elif kind == GOAWAY:
            self._flush_out()
            if self.transport is not None:
                self.transport.close()
        elif kind == PUSH_PROMISE:
            self._fail("PUSH_PROMISE from a client")
        # PRIORITY and unknown frame types are ignored, as RFC 9113 requires.

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack_from(">HI", payload, i)
            if ident == SETTINGS_MAX_FRAME_SIZE and value < 16384:
                self._fail("invalid SETTINGS_MAX_FRAME_SIZE")
                return
        if self.transport is not None:
            self._write(frame(SETTINGS, ACK, 0))

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        start, stop = 0, len(payload)
        if flags & PADDED:
            stop -= payload[0]
            start = 1
        if flags & PRIORITY_FLAG:
            start += 5
        stream = self.streams.get(sid)
        if stream is None:
            if len(self.streams) >= MAX_STREAMS:
                # Still decode to keep the HPACK table in sync, then refuse.
                if flags & END_HEADERS:
                    self._decode(payload[start:stop])
                if self.transport is not None:
                    self._write(frame(RST_STREAM, 0, sid, struct.pack(">I", REFUSED_STREAM)))
                return
            stream = self.streams[sid] = _Stream()
        stream.end_stream = bool(flags & END_STREAM)
        stream.header_block += payload[start:stop]
        if flags & END_HEADERS:
            self._header_block_done(sid, stream)
        else:
            self.continuation_of = sid

    def _decode(self, block: bytes | bytearray) -> list[tuple[bytes, bytes]] | None:
        # Envoy sends the same gRPC request headers on every stream, so after the first stream
        # its header blocks are byte-identical and leave the HPACK table untouched. A block that
        # does not change the table always means the same thing until some block does, so its
        # decoding is cached by its bytes and the cache is dropped whenever the table changes.
        block = bytes(block)
        cached = self._decoded.get(block)
        if cached is not None:
            return cached
        table = self.decoder.header_table
        generation, maxsize = self._table_generation, table.maxsize
        try:
            headers = self.decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            self._fail(f"HPACK error: {exc}")
            return None
        if generation != self._table_generation or maxsize != table.maxsize:
            self._decoded.clear()
        elif len(self._decoded) < _DECODE_CACHE_SIZE:
            self._decoded[block] = headers
        return headers

    def _count_table_insert(self, name: bytes, value: bytes) -> None:
        self._table_generation += 1
        self._table_add(name, value)

    def _header_block_done(self, sid: int, stream: _Stream) -> None:
        block, stream.header_block = stream.header_block, bytearray()
        headers = self._decode(block)
        if headers is None:
            return
        if stream.response_started or stream.ok or stream.rejection is not None:
            return  # request trailers: nothing to do
        path = authorization = b""
        for name, value in headers:
            if name == b":path":
                path = value
            elif name == b"authorization":
                authorization = value
        if path != METHOD_PATH:
            answer = UNIMPLEMENTED
        elif self.token is not None and not hmac.compare_digest(authorization, self.token):
            answer = UNAUTHENTICATED
        else:
            stream.ok = True
            return
        stream.rejection = answer
        if stream.end_stream:
            self._reject(sid, answer)

    def _reject(self, sid: int, answer: bytes) -> None:
        self.streams.pop(sid, None)
        if self.transport is not None:
            self._write(frame(HEADERS, END_HEADERS | END_STREAM, sid, answer))

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        self.received += len(payload) + 9
        if self.received >= CONNECTION_WINDOW // 2 and self.transport is not None:
            self._write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.received)))
            self.received = 0
        stream = self.streams.get(sid)
        if stream is None:
            return
        if not stream.ok:
            if stream.rejection is not None:
                self._reject(sid, stream.rejection)
            return
        if flags & PADDED and payload:
            payload = payload[1 : len(payload) - payload[0]]
        buf = stream.buffer
        buf += payload
        while len(buf) >= 5:
            size = int.from_bytes(buf[1:5], "big")
            if size > MAX_MESSAGE or buf[0] != 0:
                self._end(sid, INTERNAL_ERROR)
                return
            if len(buf) < 5 + size:
                break
            message = bytes(buf[5 : 5 + size])
            del buf[: 5 + size]
            self._message(sid, stream, message)
            if sid not in self.streams:
                return

    # ---- answering ----------------------------------------------------------------------------
    def _message(self, sid: int, stream: _Stream, message: bytes) -> None:
        try:
            result = self.handler.handle(message)
        except Exception:
            log.exception("ExtProc message handling failed")
            self._end(sid, INTERNAL_ERROR)
            return
        if isinstance(result, tuple):
            self._respond(sid, stream, *result)
        else:
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda t: self._respond_later(sid, t))

    def _respond_later(self, sid: int, task: asyncio.Future[tuple[bytes, bool]]) -> None:
        stream = self.streams.get(sid)
        if stream is None or self.closed:
            return
        if task.cancelled() or task.exception() is not None:
            self._end(sid, INTERNAL_ERROR)
            return
        self._respond(sid, stream, *task.result())

    def _respond(self, sid: int, stream: _Stream, response: bytes, final: bool) -> None:
        out = b""
        if not stream.response_started:
            out = frame(HEADERS, END_HEADERS, sid, RESPONSE_HEADERS)
            stream.response_started = True
        body = b"\x00" + len(response).to_bytes(4, "big") + response
        out += frame(DATA, 0, sid, body)
        if final:
            out += frame(HEADERS, END_HEADERS | END_STREAM, sid, TRAILERS_OK)
            self.streams.pop(sid, None)
        self._send(out, len(body))

    def _end(self, sid: int, trailers: bytes) -> None:
        stream = self.streams.pop(sid, None)
        if self.transport is None or self.closed:
            return
        block = trailers if stream is not None and stream.response_started else RESPONSE_HEADERS + trailers
        self._send(frame(HEADERS, END_HEADERS | END_STREAM, sid, block), 0)

    def _send(self, data: bytes, flow_controlled: int) -> None:
        if self.transport is None or self.closed:
            return
        if self.pending or flow_controlled > self.send_window:
            if len(self.pending) >= MAX_STREAMS:
                self._fail("peer grants no flow-control window")
                return
            self.pending.append((data, flow_controlled))
            return
        self.send_window -= flow_controlled
        self._write(data)

    def _flush_pending(self) -> None:
        while self.pending and self.pending[0][1] <= self.send_window and self.transport is not None:
            data, size = self.pending.pop(0)
            self.send_window -= size
            self._write(data)


async def start_server(
    handler: MessageHandler, host: str, port: int, *, reuse_port: bool, token: str | None
) -> tuple[asyncio.Server, Callable[[], None]]:
    """Listen for Envoy; returns the server and a function that sends GOAWAY on every connection.

    ``token``: Envoy must send ``authorization: Bearer <token>`` (gRPC initial metadata); ``None``
    accepts any caller (dev mode only).
    """
    connections: set[ExtProcProtocol] = set()
    expected = f"Bearer {token}".encode() if token is not None else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ExtProcProtocol(handler, connections, expected), host, port, reuse_port=reuse_port, backlog=1024
    )

    def goaway_all() -> None:
        for conn in list(connections):
            conn.goaway()

    return server, goaway_all
