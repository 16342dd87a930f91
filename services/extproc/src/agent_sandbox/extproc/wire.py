"""Protobuf wire encoding of the one ExtProc answer every routed request gets.

Why by hand: a routed request's answer is ``ProcessingResponse.request_headers``
with a header mutation. Building it from generated message classes (five nested
objects, a repeated field, ``SerializeToString``) cost more CPU than the whole
routing decision. The encoding below is the same bytes, written directly; for the
common case (only the destination header is set) the bytes for one destination are
cached, so a request to a busy sandbox costs a dict look-up. Rare answers
(immediate errors) still use the generated classes; ``tests/unit/extproc`` checks
both produce what the generated parser reads back.

Field numbers (envoy.service.ext_proc.v3 / envoy.config.core.v3):
ProcessingResponse.request_headers = 1 -> HeadersResponse.response = 1 ->
CommonResponse{header_mutation = 2, clear_route_cache = 5} ->
HeaderMutation{set_headers = 1, remove_headers = 2} ->
HeaderValueOption{header = 1, append_action = 3} -> HeaderValue{key = 1, raw_value = 3}.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from agent_sandbox.common.vocabulary import HEADER_UPSTREAM_DST

#: ``HeaderValueOption.append_action = OVERWRITE_IF_EXISTS_OR_ADD`` (field 3, varint 2).
_OVERWRITE = b"\x18\x02"
#: ``CommonResponse.clear_route_cache = true`` (field 5, varint 1).
_CLEAR_ROUTE_CACHE = b"\x28\x01"
#: Destinations whose encoded answer is kept (one per live sandbox port in practice).
ROUTE_CACHE_SIZE = 4096


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` = field number << 3 | 2)."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _set_header(key: str, value: bytes) -> bytes:
    header = _field(0x0A, key.encode()) + _field(0x1A, value)
    return _field(0x0A, _field(0x0A, header) + _OVERWRITE)


def _value(text: str) -> bytes:
    """Header values arrive as bytes decoded latin-1 (so a rewritten path round-trips byte for
    byte); text from configuration that latin-1 cannot carry goes out as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def headers_response(set_headers: Iterable[tuple[str, str]], removed: Iterable[str], clear_route_cache: bool) -> bytes:
    """A serialized ``ProcessingResponse`` answering request headers with this mutation."""
    mutation = b"".join(_set_header(k, _value(v)) for k, v in set_headers)
    mutation += b"".join(_field(0x12, k.encode()) for k in removed)
    common = _field(0x12, mutation) + (_CLEAR_ROUTE_CACHE if clear_route_cache else b"")
    return _field(0x0A, _field(0x0A, common))


@lru_cache(maxsize=ROUTE_CACHE_SIZE)
def route_to(dst: str) -> bytes:
    """The answer of a plain routed request: only the destination header set."""
    return headers_response(((HEADER_UPSTREAM_DST, dst),), (), False)
