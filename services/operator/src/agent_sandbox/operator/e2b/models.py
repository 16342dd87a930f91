"""Request and response bodies of the E2B control-plane API (e2b-contract.md §4).

Requests ignore fields we do not know (newer SDKs add fields; refusing them would break every create)
but :func:`refuse_unsupported` turns the features we cannot honour into a 400 naming the field.
Responses omit absent optional objects: the SDK's parser crashes on ``null`` for object fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_sandbox.common.errors import bad_request

MAX_TIMEOUT_SECONDS = 30 * 24 * 3600


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """JSON-ready dict; ``None`` dropped except for the nullable fields the SDK expects."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name in getattr(self, "_nullable", ()):
            data.setdefault(name, None)
        return data


class NewSandbox(_Request):
    """``POST /sandboxes`` (SDK < 2.51) and ``POST /v2/sandboxes`` (SDK ≥ 2.51) share this shape."""

    templateID: str = Field(default="base", max_length=1024)
    timeout: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_SECONDS)
    metadata: dict[str, str] | None = Field(default=None, max_length=64)
    envVars: dict[str, str] | None = Field(default=None, max_length=1024)
    secure: bool | None = None
    autoPause: bool | None = None
    autoPauseMemory: bool | None = None
    autoResume: dict[str, Any] | None = None
    allow_internet_access: bool | None = None
    network: dict[str, Any] | None = None
    mcp: dict[str, Any] | None = None
    iam: dict[str, Any] | None = None
    volumeMounts: list[Any] | None = None


def refuse_unsupported(req: NewSandbox) -> None:
    """400 for create options we cannot honour (behaviour.md §16); ``secure``/``autoPauseMemory`` are ignored."""
    if req.autoPause:
        raise bad_request("autoPause is not supported: sandboxes end at their timeout; use set_timeout to extend")
    if req.autoResume and req.autoResume.get("enabled"):
        raise bad_request("autoResume is not supported: pause/resume is not offered by this server")
    if req.iam and req.iam.get("tokens"):
        raise bad_request("iam.tokens is not supported")
    if req.mcp:
        raise bad_request("mcp is not supported: run the MCP server inside the sandbox yourself")
    if req.volumeMounts:
        raise bad_request("volumeMounts are not supported: use a pool whose template mounts the volume")
    network = req.network or {}
    if network.get("egressProxy"):
        raise bad_request("network.egressProxy is not supported")
    for rule in network.get("rules") or []:
        host = str((rule or {}).get("host", "")) if isinstance(rule, dict) else ""
        if "*" in host:
            raise bad_request(f"network.rules host {host!r}: wildcard hosts are not supported")


class ConnectRequest(_Request):
    timeout: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_SECONDS)
    memory: bool | None = None


class TimeoutRequest(_Request):
    timeout: int = Field(ge=0, le=MAX_TIMEOUT_SECONDS)


class RefreshRequest(_Request):
    duration: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_SECONDS)


class Sandbox(_Response):
    _nullable = ("domain", "trafficAccessToken")

    templateID: str
    sandboxID: str
    clientID: str
    envdVersion: str
    envdAccessToken: str | None = None
    trafficAccessToken: str | None = None
    domain: str | None = None
    alias: str | None = None


class ListedSandbox(_Response):
    templateID: str
    sandboxID: str
    clientID: str
    startedAt: datetime
    endAt: datetime
    cpuCount: int
    memoryMB: int
    diskSizeMB: int = 0
    metadata: dict[str, str] = Field(default_factory=dict)
    envdVersion: str
    state: Literal["running", "paused"] = "running"
    alias: str | None = None


class SandboxDetail(ListedSandbox):
    _nullable = ("domain",)

    envdAccessToken: str | None = None
    domain: str | None = None


class SandboxMetric(_Response):
    timestamp: datetime
    timestampUnix: int
    cpuCount: int
    cpuUsedPct: float
    memUsed: int
    memTotal: int
    memCache: int
    diskUsed: int
    diskTotal: int


class Template(_Response):
    templateID: str
    buildID: str
    cpuCount: int
    memoryMB: int
    diskSizeMB: int = 0
    public: bool = True
    buildStatus: str = "ready"
    spawnCount: int = 0
    names: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    envdVersion: str
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    buildCount: int = 1


class SandboxLog(_Response):
    timestamp: datetime
    line: str


class SandboxLogEntry(_Response):
    timestamp: datetime
    message: str
    level: Literal["debug", "info", "warn", "error"] = "info"
    fields: dict[str, str] = Field(default_factory=dict)


class LogsQuery(_Request):
    """``GET /sandboxes/{id}/logs`` (``start`` ms) and ``/v2/...`` (``cursor`` ms, ``direction``)."""

    start: int | None = Field(default=None, ge=0)
    cursor: int | None = Field(default=None, ge=0)
    limit: int = Field(default=1000, ge=0, le=10000)
    direction: Literal["forward", "backward"] = "forward"
