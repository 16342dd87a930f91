"""Sandbox resources of the native API (behaviour.md §15.4-§15.5).

The create request is the service layer's own model
(:class:`agent_sandbox.operator.services.models.CreateSandboxRequest`), referenced from the route table,
so the document and the code that acts on the request cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from agent_sandbox.operator.api.models.common import (
    DURATION_PATTERN,
    Page,
    PageQuery,
    RequestModel,
    ResponseModel,
)


class SandboxStatus(StrEnum):
    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    FAILED = "Failed"
    COMPLETED = "Completed"
    CANCELED = "Canceled"
    RELEASED = "Released"


class Endpoint(ResponseModel):
    url: str
    logDir: str | None = None


class StatusDetail(ResponseModel):
    reason: str | None = None
    message: str | None = None
    lastUpdatedTime: datetime | None = None


class Sandbox(ResponseModel):
    sandboxId: str
    namespace: str
    poolName: str
    podName: str
    status: SandboxStatus
    claimedAt: datetime
    startedAt: datetime | None = None
    terminatedAt: datetime | None = None
    recycledAt: datetime | None = None
    durationSeconds: float | None = None
    containerImages: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    endpoints: dict[str, Endpoint] | None = None
    cpu: str | None = None
    memory: str | None = None
    failureReason: str | None = None
    failureMessage: str | None = None
    exitCode: int | None = None
    statusDetail: StatusDetail | None = None
    team: str | None = None
    user: str | None = None
    nodeName: str | None = None
    containerId: str | None = None


class SandboxEnvelope(ResponseModel):
    sandbox: Sandbox


class SandboxList(Page):
    items: list[Sandbox]


class ListSandboxesQuery(PageQuery):
    poolName: str | None = Field(default=None, max_length=128)
    status: str | None = Field(default=None, max_length=256, description="comma-separated statuses")


class DeleteSandboxResponse(ResponseModel):
    sandboxId: str
    namespace: str
    poolName: str
    podName: str
    status: SandboxStatus | str


class SetTimeoutRequest(RequestModel):
    timeout: str = Field(pattern=DURATION_PATTERN, max_length=32, description='idle timeout, "0" disables it')


class LogEntry(ResponseModel):
    timestamp: datetime | None = None
    container: str
    log: str


class SandboxLogsQuery(RequestModel):
    container: str | None = Field(default=None, max_length=253)
    lines: int = Field(default=0, ge=0, le=10000, description="tail this many lines (0 = all)")
    source: str = Field(default="stdout", max_length=63, description="stdout or a runtime name")


class SandboxLogsResult(ResponseModel):
    sandboxId: str
    namespace: str
    podName: str
    capturedAt: datetime
    entries: list[LogEntry]
    truncated: bool = False
    totalBytes: int = 0
    source: str
    runtimeName: str | None = None


class ExecTokenResponse(ResponseModel):
    token: str
    expiresAt: datetime | None = None


class EndpointReadiness(ResponseModel):
    ready: bool
    message: str | None = None


class SandboxReadiness(ResponseModel):
    sandboxId: str
    ready: bool
    endpoints: dict[str, EndpointReadiness] = Field(default_factory=dict)


class ExecRequest(RequestModel):
    command: str = Field(min_length=1, max_length=65536)
    timeoutSeconds: int = Field(default=30, ge=1, le=300)


class ExecResult(ResponseModel):
    exitCode: int
    stdout: str
    stderr: str
