"""SandboxPool resources of the native API (behaviour.md §4.1, §15.5).

Create and update requests are the service layer's models
(:mod:`agent_sandbox.operator.services.models`), referenced from the route table; this module holds
the response shapes and the runtime description shared with templates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from agent_sandbox.operator.api.models.common import Page, RequestModel, ResponseModel


class ReadinessProbe(RequestModel):
    httpGet: dict[str, Any] = Field(description="only httpGet {port, path} probes are accepted")


class Runtime(RequestModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: str | None = Field(default=None, max_length=8)
    description: str | None = Field(default=None, max_length=1024)
    logDir: str | None = Field(default=None, max_length=1024)
    readinessProbe: ReadinessProbe | None = None
    config: dict[str, Any] | None = None


class PoolCounts(ResponseModel):
    phase: str | None = None
    idle: int = 0
    unavailableIdle: int = 0
    running: int = 0
    starting: int = 0
    stopping: int = 0
    failed: int = 0


class SandboxPool(ResponseModel):
    name: str
    namespace: str
    spec: dict[str, Any]
    status: PoolCounts
    cpu: str | None = None
    memory: str | None = None
    team: str | None = None
    user: str | None = None
    templateVersion: str | None = None
    overrides: dict[str, Any] | None = None
    specYaml: str | None = None
    createdAt: datetime | None = None
    poolDocs: str | None = None


class SandboxPoolEnvelope(ResponseModel):
    """The pool envelope key is ``template`` (kept from the reference API)."""

    template: SandboxPool


class SandboxPoolList(Page):
    items: list[SandboxPool]


class DeletePoolResponse(ResponseModel):
    name: str
    namespace: str
    status: str


class SyncPreview(ResponseModel):
    specYaml: str
    version: str | None = None
