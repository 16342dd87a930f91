"""HPACK in the ExtProc HTTP/2 server: the decode cache never serves a stale meaning, and the
constant blocks we send never depend on (or change) the peer's dynamic table."""

from __future__ import annotations

import hpack

from agent_sandbox.extproc.h2grpc import RESPONSE_HEADERS, TRAILERS_OK, UNAUTHENTICATED, ExtProcProtocol


def literal_with_indexing(name_index: int, value: bytes) -> bytes:
    return bytes((0x40 | name_index, len(value))) + value


def test_same_bytes_after_a_table_insert_are_decoded_again() -> None:
    proto = ExtProcProtocol(handler=None, connections=set())  # type: ignore[arg-type]
    newest = b"\xbe"  # indexed field 62: the newest dynamic-table entry
    assert proto._decode(literal_with_indexing(4, b"/a")) == [(b":path", b"/a")]
    assert proto._decode(newest) == [(b":path", b"/a")]
    assert proto._decode(newest) == [(b":path", b"/a")]  # cached
    assert proto._decode(literal_with_indexing(4, b"/b")) == [(b":path", b"/b")]
    assert proto._decode(newest) == [(b":path", b"/b")]
    # A table size update also invalidates: entries are evicted, index 62 no longer exists.
    assert proto._decode(b"\x20") == []
    assert proto._decode(newest) is None and proto.closed


def test_constant_response_blocks_decode_without_touching_the_peer_table() -> None:
    decoder = hpack.Decoder()
    assert decoder.decode(RESPONSE_HEADERS) == [(":status", "200"), ("content-type", "application/grpc")]
    assert decoder.decode(TRAILERS_OK) == [("grpc-status", "0")]
    assert decoder.decode(UNAUTHENTICATED)[2] == ("grpc-status", "16")
    assert len(decoder.header_table.dynamic_entries) == 0  # stateless: any connection, any order
