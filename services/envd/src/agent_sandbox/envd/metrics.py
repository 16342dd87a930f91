"""Host figures for envd's ``GET /metrics`` (CPU, memory, disk), read from /proc and statvfs.

CPU usage is the busy share of CPU time since the previous sample, so the first
sample after start reports 0.
"""

from __future__ import annotations

import os
import time
from typing import Any


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per key."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return values


def parse_cpu_times(text: str) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate ``cpu`` line of ``/proc/stat``."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = [int(v) for v in line.split()[1:]]
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
            total = sum(fields[:8])
            return total - idle, total
    return 0, 0


class HostMetrics:
    def __init__(self) -> None:
        self._last_cpu: tuple[int, int] | None = None

    def _read(self, path: str) -> str:
        try:
            with open(path, encoding="ascii") as handle:
                return handle.read()
        except OSError:
            return ""

    def sample(self) -> dict[str, Any]:
        busy, total = parse_cpu_times(self._read("/proc/stat"))
        cpu_pct = 0.0
        if self._last_cpu is not None and total > self._last_cpu[1]:
            cpu_pct = 100.0 * (busy - self._last_cpu[0]) / (total - self._last_cpu[1])
        self._last_cpu = (busy, total)
        mem = parse_meminfo(self._read("/proc/meminfo"))
        mem_total = mem.get("MemTotal", 0)
        mem_cache = mem.get("Cached", 0) + mem.get("Buffers", 0)
        mem_used = max(mem_total - mem.get("MemAvailable", mem.get("MemFree", 0)), 0)
        disk = os.statvfs("/")
        disk_total = disk.f_blocks * disk.f_frsize
        disk_used = (disk.f_blocks - disk.f_bfree) * disk.f_frsize
        return {
            "ts": int(time.time()),
            "cpu_count": os.cpu_count() or 1,
            "cpu_used_pct": round(cpu_pct, 2),
            "mem_total": mem_total,
            "mem_used": mem_used,
            "mem_cache": mem_cache,
            "mem_total_mib": mem_total // (1 << 20),
            "mem_used_mib": mem_used // (1 << 20),
            "disk_used": disk_used,
            "disk_total": disk_total,
        }
