"""Error model shared by the HTTP APIs.

Native API errors are ``{"error", "errorCode"?, "detail"?}``; the E2B layer
renders the same exception as ``{"code", "message"}``. Handlers raise
:class:`ApiError`; a middleware turns it into a response, so no handler builds
error bodies by hand and no unexpected exception escapes as a stack trace.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorBody(BaseModel):
    """Body of every native-API error response."""

    model_config = ConfigDict(extra="forbid")

    error: str
    errorCode: str | None = None
    detail: Any | None = None


class E2BErrorBody(BaseModel):
    """Body of every E2B-API error response."""

    code: int
    message: str


class ApiError(Exception):
    """An error with an HTTP status that is safe to show to the caller."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        detail: Any | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.retryable = retryable

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=self.message, errorCode=self.code, detail=self.detail).model_dump(
            exclude_none=True
        )

    def e2b_body(self) -> dict[str, Any]:
        return E2BErrorBody(code=self.status, message=self.message).model_dump()


def bad_request(message: str, *, code: str = "BadRequest", detail: Any | None = None) -> ApiError:
    return ApiError(400, message, code=code, detail=detail)


def unauthorized(message: str = "unauthorized") -> ApiError:
    return ApiError(401, message, code="Unauthorized")


def forbidden(message: str = "forbidden") -> ApiError:
    return ApiError(403, message, code="Forbidden")


def not_found(message: str, *, code: str = "NotFound", detail: Any | None = None) -> ApiError:
    return ApiError(404, message, code=code, detail=detail)


def conflict(message: str, *, code: str = "Conflict", detail: Any | None = None) -> ApiError:
    return ApiError(409, message, code=code, detail=detail)
