"""Pod logs: where the API server finds a container's output, and how a request trims it.

The API server runs no containers; node agents do. A node agent running in the
same process registers a reader under its node name, and ``GET .../pods/<name>/log``
asks the reader of the pod's ``spec.nodeName``. A node without a reader (the
``sim`` node, or an agent in another process) has an empty log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

LogReader = Callable[[str, str], Awaitable[bytes]]
"""``(pod uid, container name) -> the container's output so far``."""


class PodLogSources:
    """Log readers of the in-process node agents, by node name."""

    def __init__(self) -> None:
        self._readers: dict[str, LogReader] = {}

    def register(self, node_name: str, reader: LogReader | None) -> None:
        """Read ``node_name``'s logs with ``reader``; None when the agent stops."""
        if reader is None:
            self._readers.pop(node_name, None)
        else:
            self._readers[node_name] = reader

    async def read(self, node_name: str, pod_uid: str, container: str) -> bytes:
        reader = self._readers.get(node_name)
        return b"" if reader is None else await reader(pod_uid, container)


def pick_container(pod: dict[str, Any], requested: str | None) -> str:
    """The container a log request means; ValueError with the reason when it names none."""
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    pod_name = (pod.get("metadata") or {}).get("name", "")
    if requested:
        if requested not in names:
            raise ValueError(f"container {requested} is not valid for pod {pod_name}")
        return requested
    if len(names) != 1:
        raise ValueError(f"a container name must be specified for pod {pod_name}, choose one of: {names}")
    return names[0]


def trim(data: bytes, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    """Keep the last ``tail_lines`` lines, then at most the first ``limit_bytes`` bytes (kubelet order)."""
    if tail_lines is not None:
        if tail_lines == 0:
            data = b""
        else:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail_lines:])
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data
