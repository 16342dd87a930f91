"""Typed errors of the service layer; the HTTP layers map each to a status code.

They carry a caller-safe message and, where useful, a ``detail`` payload
(available pools, pool status) — never a stack trace or an internal name.
"""

from __future__ import annotations

from typing import Any

from agent_sandbox.operator.scheduling.errors import NoIdleSandbox, QueueFull

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidRequest",
    "NoIdleSandbox",
    "NotFound",
    "QueueFull",
    "SandboxStartFailed",
    "ServiceError",
]


class ServiceError(Exception):
    """Base class: ``message`` is safe to show to the caller."""

    def __init__(self, message: str, detail: Any | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(ServiceError):
    """Bad input (HTTP 400)."""


class NotFound(ServiceError):
    """No such sandbox, pool or template (HTTP 404)."""


class AlreadyExists(ServiceError):
    """Name already taken (HTTP 409)."""


class Conflict(ServiceError):
    """The object changed or is in a state that forbids the operation (HTTP 409)."""


class SandboxStartFailed(ServiceError):
    """The sandbox was claimed but never became usable (bad image, hook failure, startup timeout)."""

    def __init__(self, message: str, reason: str, sandbox_id: str) -> None:
        super().__init__(message, {"reason": reason, "sandboxId": sandbox_id})
        self.reason = reason
        self.sandbox_id = sandbox_id
