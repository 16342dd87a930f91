"""RFC 3339 timestamps as written into annotations and Kubernetes objects.

Kubernetes writes second-precision ``...Z`` timestamps; our annotations keep
microseconds so phase durations measured in tests are meaningful. Parsing
accepts both and never raises on garbage (callers treat it as "unknown").
"""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
