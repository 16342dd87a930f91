"""RFC 3339 timestamps with second precision, the form Kubernetes status fields use."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


def rfc3339(ts: float) -> str:
    return _second(int(ts // 1))


@lru_cache(maxsize=4096)  # a node formats the same few seconds (now, start times) over and over
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
