"""Settings of ``agent-sandbox up``: flags over ``AGENT_SANDBOX_STACK_*`` environment over a config file.

Every port defaults to the port the same service uses in a cluster (behaviour.md §2), so the
printed ``export`` lines stay the same from one start to the next; ``0`` picks a free port at
start (tests run several stacks side by side). Everything binds loopback: sandboxes share the
host's loopback, so each service there also requires credentials.

The state directory defaults to ``.state`` in the current directory when that directory is a
checkout of this repository (where ``scripts/up`` runs), else ``~/.local/state/agent-sandbox``.

Config file (YAML or JSON; any subset)::

    host: 127.0.0.1
    ports: {cluster: 6443, api: 8080, e2b: 8090, envoy: 8092, extproc: 9002, control: 9003,
            extproc_health: 8081, operator_metrics: 8082}
    pool: {name: base, image: host, idle_image: agent-sandbox/idle:latest, replicas: 2}
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from agent_sandbox.common.ids import validate_cluster_id
from agent_sandbox.common.settings import ServiceSettings

STATE_DIR_NAME = ".state"
USER_STATE_DIR = Path("~/.local/state/agent-sandbox")
_NAME = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"


class Ports(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: int = Field(6443, ge=0, le=65535, description="embedded control plane (plain HTTP)")
    api: int = Field(8080, ge=0, le=65535, description="operator native API")
    e2b: int = Field(8090, ge=0, le=65535, description="operator E2B-compatible API")
    envoy: int = Field(8092, ge=0, le=65535, description="Envoy data plane (E2B_SANDBOX_URL)")
    extproc: int = Field(9002, ge=0, le=65535, description="extproc ExternalProcessor gRPC")
    control: int = Field(9003, ge=0, le=65535, description="extproc control-plane gRPC")
    extproc_health: int = Field(8081, ge=0, le=65535, description="extproc /healthz /readyz /metrics")
    operator_metrics: int = Field(8082, ge=0, le=65535, description="operator /healthz /readyz /metrics")


class PoolSettings(BaseModel):
    """The default SandboxTemplate and SandboxPool (the template the E2B SDK asks for by default)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("base", pattern=_NAME, max_length=63)
    namespace: str = Field("default", pattern=_NAME, max_length=63)
    image: str = "host"
    idle_image: str = "agent-sandbox/idle:latest"
    replicas: int = Field(2, ge=0, le=64)


class StackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_SANDBOX_STACK_", extra="forbid", populate_by_name=True)

    state_dir: Path
    host: str = "127.0.0.1"
    ports: Ports = Field(default_factory=Ports)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    cluster_id: str = "local"
    #: Seconds `up` waits for every service and the pool's warm sandboxes before giving up.
    ready_timeout_s: float = Field(180.0, gt=0)
    #: Envoy worker threads.
    envoy_concurrency: int = Field(2, ge=1, le=64)

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        if not ipaddress.ip_address(value).is_loopback:
            raise ValueError("the single-machine stack binds loopback only (e.g. 127.0.0.1)")
        return value

    @field_validator("cluster_id")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return validate_cluster_id(value)

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()


def default_state_dir(cwd: Path, home_state: Path = USER_STATE_DIR) -> Path:
    """``.state`` in a checkout of this repository (``scripts/up`` is there), else the per-user state dir."""
    if (cwd / "scripts" / "up").is_file() and (cwd / "pyproject.toml").is_file():
        return cwd / STATE_DIR_NAME
    return home_state.expanduser()
