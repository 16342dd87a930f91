"""The HPACK decode cache of the ExtProc HTTP/2 server never serves a stale meaning."""

from __future__ import annotations

from agent_sandbox.extproc.h2grpc import ExtProcProtocol


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
