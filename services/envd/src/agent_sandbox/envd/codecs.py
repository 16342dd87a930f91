"""Connect codecs that report undecodable request bodies as the caller's error.

``connectrpc``'s stock codecs let a JSON or protobuf parse error escape as an
internal error (HTTP 500), which the SDK would retry and a user would read as a
server fault. These wrappers answer ``invalid_argument`` (HTTP 400) instead.
"""

from __future__ import annotations

from typing import Any

from connectrpc.code import Code
from connectrpc.codec import Codec, proto_binary_codec, proto_json_codec
from connectrpc.errors import ConnectError


class CallerErrorCodec:
    def __init__(self, inner: Codec) -> None:
        self._inner = inner

    def name(self) -> str:
        return self._inner.name()

    def encode(self, message: Any) -> bytes:
        return self._inner.encode(message)

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        try:
            return self._inner.decode(data, message_class)
        except ConnectError:
            raise
        except Exception as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, f"cannot decode {self.name()} request body: {exc}") from exc


def codecs() -> list[Any]:
    """Binary and JSON protobuf codecs (the server's defaults), with caller-error decoding."""
    return [CallerErrorCodec(proto_binary_codec()), CallerErrorCodec(proto_json_codec())]
