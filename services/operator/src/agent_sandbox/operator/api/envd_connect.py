"""Connect-protocol framing for envd's ``process.Process`` server streams (JSON codec).

A streaming request or response is a sequence of envelopes: one flag byte, a 4-byte big-endian
length, the JSON message; flag ``0x02`` marks the end-of-stream message. Shared by the terminal
(PTY) and the one-shot command runner so the framing lives in one place.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

PROCESS_SERVICE = "/process.Process"
STREAM_CONTENT_TYPE = "application/connect+json"
END_STREAM = 0x02


def envelope(message: dict[str, Any]) -> bytes:
    data = orjson.dumps(message)
    return struct.pack(">BI", 0, len(data)) + data


async def process_events(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The ``event`` of each message until the process ends or the stream closes or breaks."""
    while True:
        try:
            flag, size = struct.unpack(">BI", await content.readexactly(5))
            payload = orjson.loads(await content.readexactly(size))
        except (EOFError, aiohttp.ClientError, orjson.JSONDecodeError, ConnectionError):
            return
        if flag & END_STREAM:
            return
        event = payload.get("event") or {}
        yield event
        if "end" in event:
            return
