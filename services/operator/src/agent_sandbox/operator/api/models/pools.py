"""SandboxPool resources of the native API (behaviour.md §4.1, §15.5)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.api.models.common import (
    DURATION_PATTERN,
    POOL_NAME_PATTERN,
    Page,
    RequestModel,
    ResponseModel,
)

_REPLICAS = Field(default=None, ge=0, le=100_000)
_SECONDS = Field(default=None, ge=0, le=10_000_000)


class ScaleUpMode(StrEnum):
    CONSERVATIVE = "Conservative"
    DEFAULT = "Default"
    AGGRESSIVE = "Aggressive"


class ScaleUpPolicy(RequestModel):
    mode: ScaleUpMode | None = None
    cooldownSeconds: int | None = _SECONDS
    idleThresholdSeconds: int | None = _SECONDS


class ScaleDownPolicy(RequestModel):
    idleTimeoutSeconds: int | None = _SECONDS
    stabilizationSeconds: int | None = _SECONDS
    protectionWindowSeconds: int | None = _SECONDS


class Autoscaling(RequestModel):
    enabled: bool = False
    scaleUpPolicy: ScaleUpPolicy | None = None
    scaleDownPolicy: ScaleDownPolicy | None = None


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


class PoolSpec(RequestModel):
    """Pool spec as the API accepts it; durations are Go-style strings."""

    replicas: int = Field(ge=0, le=100_000)
    minReplicas: int | None = _REPLICAS
    maxReplicas: int | None = _REPLICAS
    templateName: str | None = Field(default=None, max_length=253)
    autoscaling: Autoscaling | None = None
    podCreationImagePolicy: v.PodCreationImagePolicy | None = None
    defaultStartupTimeout: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)
    defaultIdleTimeout: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)
    idleImage: str | None = Field(default=None, min_length=1, max_length=512)
    template: dict[str, Any] | str | None = Field(default=None, description="PodTemplateSpec as an object or YAML/JSON")
    runtimes: list[Runtime] | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _bounds(self) -> PoolSpec:
        check_replica_bounds(self.replicas, self.minReplicas, self.maxReplicas, self.autoscaling)
        return self


def check_replica_bounds(
    replicas: int | None, min_replicas: int | None, max_replicas: int | None, autoscaling: Autoscaling | None
) -> None:
    """Autoscaling enabled ⇒ min and max set and ``min ≤ replicas ≤ max`` (behaviour.md §4.1)."""
    if not (autoscaling and autoscaling.enabled):
        return
    if min_replicas is None or max_replicas is None:
        raise ValueError("autoscaling.enabled requires minReplicas and maxReplicas")
    if min_replicas > max_replicas:
        raise ValueError("minReplicas must not exceed maxReplicas")
    if replicas is not None and not min_replicas <= replicas <= max_replicas:
        raise ValueError("replicas must lie between minReplicas and maxReplicas")


class PoolOverrides(RequestModel):
    image: str | None = Field(default=None, min_length=1, max_length=512)
    resourceMultiplier: float | None = Field(default=None, gt=0, le=64)


class ImagePullSecret(RequestModel):
    registry: str = Field(min_length=1, max_length=253)
    username: str = Field(min_length=1, max_length=253)
    password: str = Field(min_length=1, max_length=4096)


class CreateSandboxPoolRequest(RequestModel):
    name: str = Field(min_length=1, max_length=63, pattern=POOL_NAME_PATTERN)
    templateName: str | None = Field(default=None, max_length=253)
    replicas: int | None = _REPLICAS
    minReplicas: int | None = _REPLICAS
    maxReplicas: int | None = _REPLICAS
    labels: dict[str, str] | None = Field(default=None, max_length=64)
    annotations: dict[str, str] | None = Field(default=None, max_length=64)
    spec: PoolSpec | None = None
    overrides: PoolOverrides | None = None
    imagePullSecret: ImagePullSecret | None = None

    @model_validator(mode="after")
    def _source(self) -> CreateSandboxPoolRequest:
        if not self.templateName and not (self.spec and self.spec.template):
            raise ValueError("either templateName or spec.template is required")
        return self


class UpdateSandboxPoolRequest(RequestModel):
    replicas: int | None = _REPLICAS
    minReplicas: int | None = _REPLICAS
    maxReplicas: int | None = _REPLICAS
    podCreationImagePolicy: v.PodCreationImagePolicy | None = None
    overrides: PoolOverrides | None = None
    autoscaling: Autoscaling | None = None


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
