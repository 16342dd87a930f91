"""Pydantic models at the edge of the service layer (behaviour §15.5).

Field names are the wire names of the native API (camelCase) so the HTTP layer
can validate request bodies with these models directly. Validation here is
what the API promises: 4xx with a clear message, never a 500.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.durations import parse_duration

NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
MAX_POOL_REPLICAS = 1000


def _duration(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from exc
    return value


def _check_keys(keys: dict[str, str], what: str, check_value: bool) -> dict[str, str]:
    for key, value in keys.items():
        if not _LABEL_KEY_RE.match(key) or len(key) > 253:
            raise ValueError(f"{what} key {key!r} is not a valid Kubernetes key")
        if key.startswith(v.PREFIX):
            raise ValueError(f"{what} key {key!r} uses the reserved prefix {v.PREFIX}")
        if check_value and not _LABEL_VALUE_RE.match(value):
            raise ValueError(f"{what} value {value!r} of {key!r} is not a valid label value")
    return keys


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CreateSandboxRequest(_Model):
    poolName: str = Field(min_length=1, max_length=130)
    image: str | None = Field(default=None, min_length=1, max_length=512)
    containerImages: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    startupTimeout: str | None = None
    idleTimeout: str | None = None
    postStartHooks: list[dict[str, Any]] = Field(default_factory=list)
    #: Return only once the sandbox is Running and its post-start hooks succeeded (armed wait).
    wait: bool = False

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_keys(value, "label", True)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_keys(value, "annotation", False)

    @field_validator("startupTimeout", "idleTimeout")
    @classmethod
    def _durations(cls, value: str | None, info: Any) -> str | None:
        return _duration(value, info.field_name)


class Caller(_Model):
    """Who is asking: the namespace their sandboxes live in, plus team/user stamped on objects."""

    namespace: str = "default"
    team: str | None = None
    user: str | None = None


class ScaleUpPolicy(_Model):
    mode: Literal["Conservative", "Default", "Aggressive"] = "Default"
    cooldownSeconds: int = Field(default=30, ge=0)
    idleThresholdSeconds: int = Field(default=30, ge=0)


class ScaleDownPolicy(_Model):
    idleTimeoutSeconds: int = Field(default=300, ge=0)
    stabilizationSeconds: int = Field(default=60, ge=0)
    protectionWindowSeconds: int = Field(default=10, ge=0)


class Autoscaling(_Model):
    enabled: bool = False
    scaleUpPolicy: ScaleUpPolicy = Field(default_factory=ScaleUpPolicy)
    scaleDownPolicy: ScaleDownPolicy = Field(default_factory=ScaleDownPolicy)


class PoolSpecInput(_Model):
    """Spec fields a caller may set directly (the pod template is either here or from a template)."""

    replicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    minReplicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    maxReplicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    autoscaling: Autoscaling | None = None
    podCreationImagePolicy: Literal["PoolDefaultImage", "IdleImage"] | None = None
    defaultStartupTimeout: str | None = None
    defaultIdleTimeout: str | None = None
    template: dict[str, Any] | None = None
    idleImage: str | None = None
    runtimes: list[dict[str, Any]] | None = None

    @field_validator("defaultStartupTimeout", "defaultIdleTimeout")
    @classmethod
    def _durations(cls, value: str | None, info: Any) -> str | None:
        return _duration(value, info.field_name)


class Overrides(_Model):
    image: str | None = Field(default=None, min_length=1)
    resourceMultiplier: float | None = Field(default=None, ge=1, le=64)


class RegistryCredential(_Model):
    """One registry login. The password is write-only: it goes into the pool's Secret and is never shown."""

    registry: str = Field(min_length=1, max_length=253, pattern=r"^[^\s]+$",
                          description="registry host (and optional path), e.g. registry.example.com")
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(min_length=1, max_length=4096)


class ImagePullSecret(_Model):
    registries: list[RegistryCredential] = Field(min_length=1, max_length=16)

    @field_validator("registries")
    @classmethod
    def _distinct(cls, value: list[RegistryCredential]) -> list[RegistryCredential]:
        names = [r.registry for r in value]
        if len(set(names)) != len(names):
            raise ValueError("each registry may appear only once")
        return value


class CreatePoolRequest(_Model):
    name: str = Field(min_length=1, max_length=63)
    templateName: str | None = None
    replicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    minReplicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    maxReplicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    spec: PoolSpecInput = Field(default_factory=PoolSpecInput)
    overrides: Overrides | None = None
    #: Credentials stored in the Secret ``ips-<name>`` owned by the pool (behaviour §13).
    imagePullSecret: ImagePullSecret | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("name must match ^[a-z]([a-z0-9-]*[a-z0-9])?$ (1-63 characters)")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_keys(value, "label", True)

    @model_validator(mode="after")
    def _source(self) -> CreatePoolRequest:
        if not self.templateName and not (self.spec.template or {}).get("spec"):
            raise ValueError("either templateName or spec.template is required")
        return self


class UpdatePoolRequest(_Model):
    replicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    minReplicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    maxReplicas: int | None = Field(default=None, ge=0, le=MAX_POOL_REPLICAS)
    podCreationImagePolicy: Literal["PoolDefaultImage", "IdleImage"] | None = None
    overrides: Overrides | None = None
    autoscaling: Autoscaling | None = None


class SandboxList(_Model):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
