"""SandboxTemplate resources of the native API (behaviour.md §4.2, §15.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from agent_sandbox.operator.api.models.common import POOL_NAME_PATTERN, Page, RequestModel, ResponseModel
from agent_sandbox.operator.api.models.pools import Runtime


class VisibilityRule(RequestModel):
    team: str | None = Field(default=None, max_length=63)
    users: list[str] | None = Field(default=None, max_length=256)


class Visibility(RequestModel):
    rules: list[VisibilityRule] | None = Field(default=None, max_length=256)


class SandboxTemplateSpec(RequestModel):
    version: str | None = Field(default=None, max_length=63)
    description: str | None = Field(default=None, max_length=4096)
    idleImage: str | None = Field(default=None, min_length=1, max_length=512)
    template: dict[str, Any] | str | None = Field(default=None, description="PodTemplateSpec as an object or YAML/JSON")
    runtimes: list[Runtime] | None = Field(default=None, max_length=32)
    visibility: Visibility | None = None


class UpsertSandboxTemplateRequest(RequestModel):
    name: str = Field(min_length=1, max_length=63, pattern=POOL_NAME_PATTERN)
    spec: SandboxTemplateSpec | None = None
    crdYaml: str | None = Field(default=None, max_length=1_000_000, description="full CRD object; wins over spec")
    resourceVersion: str | None = Field(default=None, max_length=64, description="optimistic-concurrency guard")

    @model_validator(mode="after")
    def _content(self) -> UpsertSandboxTemplateRequest:
        if self.spec is None and not self.crdYaml:
            raise ValueError("either spec or crdYaml is required")
        return self


class SandboxTemplate(ResponseModel):
    name: str
    version: str | None = None
    description: str | None = None
    createdAt: datetime | None = None
    cpu: str | None = None
    memory: str | None = None
    syncSource: str | None = None
    docs: str | None = None
    crdYaml: str | None = None
    resourceVersion: str | None = None


class SandboxTemplateSummary(ResponseModel):
    name: str
    version: str | None = None
    description: str | None = None
    createdAt: datetime | None = None
    cpu: str | None = None
    memory: str | None = None
    syncSource: str | None = None
    runtimeNames: list[str] = Field(default_factory=list)
    hasDocs: bool = False


class SandboxTemplateEnvelope(ResponseModel):
    template: SandboxTemplate


class SandboxTemplateList(Page):
    items: list[SandboxTemplateSummary]


class DeleteTemplateResponse(ResponseModel):
    name: str
    status: str
