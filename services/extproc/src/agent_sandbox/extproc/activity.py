"""Per-sandbox last-activity times, for the operator's idle-timeout loop.

Every routed request touches its sandbox id; ``GetLastActive`` returns the
map. The map is bounded twice: a periodic GC drops ids that no longer have a
running pod, and a hard cap evicts the least recently touched id, so a flood
of ids can never grow it without limit. Touch moves the id to the end of the
insertion-ordered dict, so the oldest entry is always first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

DEFAULT_MAX_ENTRIES = 100_000


class ActivityTracker:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._last: dict[str, float] = {}

    def touch(self, sandbox_id: str, now: float) -> None:
        last = self._last
        if last.pop(sandbox_id, None) is None and len(last) >= self.max_entries:
            del last[next(iter(last))]
        last[sandbox_id] = now

    def seed(self, sandbox_id: str, at: float) -> None:
        """Record activity known from elsewhere (pod annotations) without moving time backwards."""
        current = self._last.get(sandbox_id)
        if current is None:
            if len(self._last) >= self.max_entries:
                return
            self._last[sandbox_id] = at
        elif at > current:
            self._last[sandbox_id] = at

    def gc(self, is_running: Callable[[str], bool]) -> int:
        """Drop ids without a running pod; returns how many were dropped."""
        dead = [sid for sid in self._last if not is_running(sid)]
        for sid in dead:
            del self._last[sid]
        return len(dead)

    def get(self, sandbox_id: str) -> float | None:
        return self._last.get(sandbox_id)

    def __len__(self) -> int:
        return len(self._last)

    def snapshot(self) -> dict[str, str]:
        """Every id's last activity as an RFC 3339 UTC timestamp."""
        return {sid: rfc3339(ts) for sid, ts in self._last.items()}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
