"""The native logs result reshaped for E2B: limit keeps the newest lines, times select, v2 can run backwards."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_sandbox.operator.e2b.logs import logs_v1, logs_v2
from agent_sandbox.operator.e2b.models import LogsQuery

CAPTURED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RESULT = {"capturedAt": CAPTURED, "entries": [{"container": "main", "log": f"l{i}"} for i in range(1, 4)]}


def test_v1_has_lines_and_entries_newest_kept() -> None:
    out = logs_v1(RESULT, LogsQuery(limit=2))
    assert out["logs"] == [{"timestamp": "2026-01-02T03:04:05Z", "line": "l2"},
                           {"timestamp": "2026-01-02T03:04:05Z", "line": "l3"}]
    assert out["logEntries"][0] == {"timestamp": "2026-01-02T03:04:05Z", "message": "l2", "level": "info",
                                    "fields": {"container": "main"}}
    assert logs_v1(RESULT, LogsQuery(limit=0)) == {"logs": [], "logEntries": []}


def test_start_after_capture_selects_nothing() -> None:
    later_ms = int(CAPTURED.timestamp() * 1000) + 1
    assert logs_v1(RESULT, LogsQuery(start=later_ms))["logs"] == []
    assert len(logs_v1(RESULT, LogsQuery(start=0))["logs"]) == 3


def test_v2_direction() -> None:
    forward = [e["message"] for e in logs_v2(RESULT, LogsQuery())["logs"]]
    backward = [e["message"] for e in logs_v2(RESULT, LogsQuery(direction="backward"))["logs"]]
    assert forward == ["l1", "l2", "l3"] and backward == ["l3", "l2", "l1"]
