"""What the operator needs from the data plane (ExtProc's control-plane service).

A protocol rather than the gRPC client itself, so the lifecycle code states
its contract (best-effort route push/evict, last-activity map or ``None`` when
unreachable) and runs without a data plane when none is configured. The real
implementation is :class:`agent_sandbox.ctrlplane.client.ControlPlaneClient`.
"""

from __future__ import annotations

from typing import Protocol


class LastActiveSource(Protocol):
    """Where the idle-timeout loop learns about activity: sandbox id -> RFC 3339, ``None`` if unreachable."""

    async def get_last_active(self) -> dict[str, str] | None: ...


class DataPlane(LastActiveSource, Protocol):
    async def push_route(self, sandbox_id: str, namespace: str, pod_name: str) -> bool: ...

    async def evict_route(self, sandbox_id: str) -> bool: ...

    async def close(self) -> None: ...
