"""The client-version gate: writes with an API key must come from a client at least this new (426)."""

from __future__ import annotations

import re

HEADER = "X-Agent-Sandbox-Client-Version"
DEFAULT_CLIENT_VERSION = "0.0.0"
_VERSION_RE = re.compile(r"^v?(\d{1,6})(?:\.(\d{1,6}))?(?:\.(\d{1,6}))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``1.2.3`` (optionally ``v``-prefixed, pre-release suffix ignored) → ``(1, 2, 3)``; ``None`` if unparsable."""
    m = _VERSION_RE.match(text.strip())
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def client_version_ok(header_value: str | None, minimum: str) -> bool:
    have = parse_version(header_value or DEFAULT_CLIENT_VERSION)
    need = parse_version(minimum) or (0, 0, 0)
    return have is not None and have >= need
