"""E2B's view of a sandbox's logs: the native logs result reshaped into ``SandboxLogs`` / ``SandboxLogsV2Response``.

Container output carries no per-line time, so every line is stamped with the moment it was read;
``start``/``cursor`` (times) therefore select everything or nothing, and ``limit`` keeps the newest
lines. Each entry names its container in ``fields`` so a multi-container sandbox stays readable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent_sandbox.operator.e2b.models import LogsQuery, SandboxLog, SandboxLogEntry


def _entries(result: dict[str, Any], since_ms: int | None, limit: int) -> list[SandboxLogEntry]:
    captured: datetime = result["capturedAt"]
    if since_ms is not None and datetime.fromtimestamp(since_ms / 1000, tz=UTC) > captured:
        return []
    lines = result["entries"][-limit:] if limit else []
    return [SandboxLogEntry(timestamp=captured, message=e["log"], fields={"container": e["container"]})
            for e in lines]


def logs_v1(result: dict[str, Any], query: LogsQuery) -> dict[str, Any]:
    """``SandboxLogs``: ``logs`` (timestamp, line) and the same lines as structured ``logEntries``."""
    entries = _entries(result, query.start, query.limit)
    return {"logs": [SandboxLog(timestamp=e.timestamp, line=e.message).wire() for e in entries],
            "logEntries": [e.wire() for e in entries]}


def logs_v2(result: dict[str, Any], query: LogsQuery) -> dict[str, Any]:
    """``SandboxLogsV2Response``: ``logs`` oldest first, or newest first for ``direction=backward``."""
    entries = _entries(result, query.cursor, query.limit)
    if query.direction == "backward":
        entries.reverse()
    return {"logs": [e.wire() for e in entries]}
