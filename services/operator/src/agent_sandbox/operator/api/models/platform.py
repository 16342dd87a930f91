"""Caller and platform information: whoami, clusters, feature gates, quotas, statistics."""

from __future__ import annotations

from pydantic import Field

from agent_sandbox.operator.api.models.common import Page, ResponseModel
from agent_sandbox.operator.auth.identity import Role


class WhoAmI(ResponseModel):
    role: Role
    user: str | None = None
    team: str | None = None
    namespace: str | None = None


class Cluster(ResponseModel):
    id: str
    name: str
    local: bool


class ClusterList(ResponseModel):
    clusters: list[Cluster]


class FeatureGates(ResponseModel):
    quota: bool


class Quota(ResponseModel):
    url: str
    queue: str | None = None
    free: int | None = None


class QuotaList(Page):
    items: list[Quota]


class SandboxStatistics(ResponseModel):
    namespace: str
    total: int
    byStatus: dict[str, int] = Field(default_factory=dict)


class SandboxStatisticsEnvelope(ResponseModel):
    statistics: SandboxStatistics


class AdminSandboxStatistics(ResponseModel):
    total: int
    byStatus: dict[str, int] = Field(default_factory=dict)
    byNamespace: dict[str, int] = Field(default_factory=dict)


class AdminSandboxStatisticsEnvelope(ResponseModel):
    statistics: AdminSandboxStatistics


class NamespacePoolStatistics(ResponseModel):
    pools: int = 0
    replicas: int = 0
    idle: int = 0
    running: int = 0
    failed: int = 0


class AdminPoolStatistics(ResponseModel):
    total: int
    totalReplicas: int
    totalIdleReplicas: int
    totalRunningReplicas: int
    totalFailedReplicas: int
    byNamespace: dict[str, NamespacePoolStatistics] = Field(default_factory=dict)


class AdminPoolStatisticsEnvelope(ResponseModel):
    statistics: AdminPoolStatistics


class Ping(ResponseModel):
    status: str
