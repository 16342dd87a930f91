"""Operator settings: flags over ``AGENT_SANDBOX_*`` environment over defaults (behaviour §3.1)."""

from __future__ import annotations

import os
import socket

from pydantic import Field, field_validator

from agent_sandbox.common.ids import validate_cluster_id
from agent_sandbox.common.settings import ServiceSettings
from agent_sandbox.common.vocabulary import SYSTEM_NAMESPACE


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class OperatorSettings(ServiceSettings):
    kubeconfig: str
    cluster_id: str = "local"
    api_listen: str | None = None
    e2b_listen: str | None = None
    metrics_listen: str = "127.0.0.1:8082"
    admin_key: str | None = None
    #: Shared secret: HS256 JWT verification and the key envd access tokens derive from (extproc verifies with it).
    secret: str | None = None
    #: Serve the APIs without an admin key (every credential-less caller is an admin). Never the default.
    dev_mode: bool = False
    #: ``domain`` returned in E2B create answers; unset lets the SDK use its own.
    e2b_domain: str | None = None
    #: How the operator reaches a sandbox's envd (placeholders ``{pod_ip}``, ``{sandbox_id}``).
    envd_url_template: str = "http://{pod_ip}:49983"
    extproc_url: str | None = None
    #: Namespace of the ConfigMap ``agentsandbox-clusters`` (cross-cluster forwarding, ``GET /v1/clusters``).
    clusters_namespace: str = SYSTEM_NAMESPACE
    gateway_base_url: str = ""
    idle_check_interval_s: float = Field(default=120.0, gt=0)
    history_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    leader_elect: bool = True
    lease_namespace: str = "agent-sandbox-system"
    lease_name: str = "agent-sandbox-operator"
    lease_duration_s: float = Field(default=15.0, gt=0)
    lease_renew_s: float = Field(default=5.0, gt=0)
    identity: str = Field(default_factory=default_identity)
    unhealthy_idle_grace_s: float = Field(default=120.0, gt=0)
    reconcile_requeue_s: float = Field(default=10.0, gt=0)
    dataplane_grace_s: float = Field(default=600.0, ge=0)
    #: Artificial informer lag (seconds) for stress tests and benchmarks; 0 in production.
    informer_lag_s: float = Field(default=0.0, ge=0, le=30)

    @field_validator("api_listen", "e2b_listen", "metrics_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("cluster_id")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return validate_cluster_id(value)
