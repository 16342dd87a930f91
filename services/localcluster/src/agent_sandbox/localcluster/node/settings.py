"""Node agent settings: environment ``AGENT_SANDBOX_SIM_*`` / ``AGENT_SANDBOX_LOCAL_*``
over a YAML file in the state dir (``sim.yaml`` / ``local.yaml``) over defaults.

Back-off timings default to the kubelet's (10 s doubling to 5 min); tests and
benchmarks shrink them. Nested values (``images``) are JSON in the environment,
e.g. ``AGENT_SANDBOX_SIM_IMAGES='[{"pattern": "*:slow", "pull_delay": 2}]'``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from agent_sandbox.common.settings import ServiceSettings, load_settings
from agent_sandbox.localcluster.node.container import Timing


class NodeSettings(ServiceSettings):
    crash_backoff_base: float = Field(10.0, ge=0)
    crash_backoff_cap: float = Field(300.0, ge=0)
    pull_backoff_base: float = Field(10.0, ge=0)
    pull_backoff_cap: float = Field(300.0, ge=0)
    err_image_pull_display: float = Field(1.0, ge=0, description="seconds ErrImagePull shows before ImagePullBackOff")
    max_grace: float = Field(30.0, ge=0, description="cap on a pod's termination grace period")
    max_pods: int = Field(110, ge=1)
    status_writers: int = Field(8, ge=1, le=64, description="concurrent API writes (status, bind, delete)")
    heartbeat_interval: float = Field(10.0, gt=0)
    pod_cidr: str = "10.88.0.0/16"

    @field_validator("pod_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=False)
        if net.version != 4 or net.num_addresses < 4:
            raise ValueError("pod_cidr must be an IPv4 network with room for pods")
        return str(net)

    def timing(self) -> Timing:
        return Timing(
            crash_backoff_base=self.crash_backoff_base,
            crash_backoff_cap=self.crash_backoff_cap,
            pull_backoff_base=self.pull_backoff_base,
            pull_backoff_cap=self.pull_backoff_cap,
            err_image_pull_display=self.err_image_pull_display,
        )


class ImageRule(BaseModel):
    """Behaviour of the images whose reference matches ``pattern`` (fnmatch glob); first match wins."""

    model_config = {"extra": "forbid"}

    pattern: str
    pull_delay: float | None = Field(None, ge=0)
    start_delay: float | None = Field(None, ge=0)
    pull_error: str | None = None
    crash_exit_code: int | None = Field(None, ge=1, le=255)
    crash_after: float | None = Field(None, ge=0)
    evict_after: float | None = Field(None, ge=0)
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")

    def matches(self, image: str) -> bool:
        return fnmatch.fnmatchcase(image, self.pattern)


class SimSettings(NodeSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_SANDBOX_SIM_", extra="forbid", populate_by_name=True)

    max_pods: int = Field(20000, ge=1)
    pull_delay: float = Field(0.0, ge=0, description="seconds to pull an image not yet on the node")
    start_delay: float = Field(0.0, ge=0, description="seconds from create to running")
    crash_after: float = Field(1.0, ge=0, description="seconds a crashing container runs before it exits")
    images: list[ImageRule] = Field(
        default_factory=lambda: [
            ImageRule(pattern="*:pullerror", pull_error="simulated registry error: manifest unknown"),
            ImageRule(pattern="*:crash", crash_exit_code=1),
        ]
    )

    def rule(self, image: str) -> ImageRule | None:
        return next((r for r in self.images if r.matches(image)), None)


class LocalSettings(NodeSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_SANDBOX_LOCAL_", extra="forbid", populate_by_name=True)

    max_pods: int = Field(64, ge=1)
    pod_cidr: str = "127.77.0.0/16"
    image_map: Path | None = Field(None, description="image map file; default <state_dir>/images.yaml")
    bundle_dir: Path | None = Field(None, description="/mnt/agentsandbox source; default built into the state dir")
    bwrap: str = "bwrap"
    cgroups: bool = Field(True, description="apply resources.limits through cgroup v1 where writable")
    pids_limit: int | None = Field(4096, ge=8, description="pids.max of every container (kubelet podPidsLimit)")
    stop_timeout: float = Field(10.0, gt=0, description="seconds to wait for a killed sandbox to disappear")
    masked_paths: list[Path] = Field(
        default_factory=list, description="host paths hidden (empty tmpfs) in sandboxes on the host root, besides the "
                                          "node's state dir: e.g. the whole state of a single-machine stack")
    address_leases_dir: Path | None = Field(
        None, description="directory of the machine-wide pod address leases shared by all local nodes; "
                          "default <tmp>/agent-sandbox-pod-addresses")


def load_node_settings(kind: str, state_dir: Path | None) -> SimSettings | LocalSettings:
    cls: type[SimSettings] | type[LocalSettings] = SimSettings if kind == "sim" else LocalSettings
    config = state_dir / f"{kind}.yaml" if state_dir else None
    return load_settings(cls, config_file=config if config and config.exists() else None)
