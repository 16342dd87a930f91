"""Map the service layer's typed errors to :class:`ApiError` (one table for both APIs).

The service layer raises caller-safe typed errors; the HTTP status and retry hints are an HTTP
concern and live here: 400 invalid, 404 not found, 409 conflicts, 429 + ``Retry-After`` when no idle
pod arrived in time or the queue is full, 500 (``Should-Retry: false``) when a claimed sandbox never
became usable.
"""

from __future__ import annotations

from agent_sandbox.common.errors import ApiError
from agent_sandbox.operator.scheduling.errors import NoIdleSandbox
from agent_sandbox.operator.services.errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    NotFound,
    SandboxStartFailed,
    ServiceError,
)

_STATUS: tuple[tuple[type[ServiceError], int, str], ...] = (
    (InvalidRequest, 400, "BadRequest"),
    (NotFound, 404, "NotFound"),
    (AlreadyExists, 409, "AlreadyExists"),
    (Conflict, 409, "Conflict"),
    (SandboxStartFailed, 500, "SandboxStartFailed"),
)


def api_error_from(exc: Exception) -> ApiError | None:
    """The HTTP error for a service/scheduler error; ``None`` for anything else (a real 500)."""
    if isinstance(exc, NoIdleSandbox):
        retry = exc.retry_after_s
        return ApiError(429, str(exc), code="NoIdleSandbox", detail=exc.detail,
                        headers={"Retry-After": str(retry)}, retryable=True)
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return ApiError(status, exc.message, code=code, detail=exc.detail,
                            retryable=False if status >= 500 else None)
    return None
