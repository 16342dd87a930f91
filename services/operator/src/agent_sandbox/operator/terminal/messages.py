"""What a terminal client may send over the WebSocket, parsed without I/O.

Binary frames are raw keystrokes. Text frames are JSON: ``{"op": "stdin", "data": "..."}`` or
``{"op": "resize", "cols": N, "rows": N}``. Anything else is refused with a reason the client can show.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

MAX_DIMENSION = 1000


@dataclass(frozen=True, slots=True)
class Stdin:
    data: bytes


@dataclass(frozen=True, slots=True)
class Resize:
    cols: int
    rows: int


class BadMessage(ValueError):
    pass


def _dimension(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DIMENSION:
        raise BadMessage(f"{name} must be a whole number between 1 and {MAX_DIMENSION}")
    return value


def parse_text(text: str) -> Stdin | Resize:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadMessage("text frames must be JSON objects with an op") from exc
    if not isinstance(msg, dict):
        raise BadMessage("text frames must be JSON objects with an op")
    op = msg.get("op")
    if op == "stdin":
        data = msg.get("data")
        if not isinstance(data, str):
            raise BadMessage("stdin needs data as a string")
        return Stdin(data.encode())
    if op == "resize":
        return Resize(_dimension(msg.get("cols"), "cols"), _dimension(msg.get("rows"), "rows"))
    raise BadMessage(f"unknown op {op!r}; use stdin or resize")
