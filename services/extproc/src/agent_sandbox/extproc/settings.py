"""Settings of the extproc process (flags over ``AGENT_SANDBOX_*`` environment over defaults)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from agent_sandbox.common.clusters import CONFIGMAP_NAME
from agent_sandbox.common.ids import validate_cluster_id
from agent_sandbox.common.settings import ServiceSettings
from agent_sandbox.common.vocabulary import SYSTEM_NAMESPACE


class ExtprocSettings(ServiceSettings):
    kubeconfig: str | None = None
    #: Envoy ExternalProcessor gRPC (``host:port``).
    listen: str = "127.0.0.1:9002"
    #: Control-plane gRPC (``host:port``).
    control_listen: str = "127.0.0.1:9003"
    #: ``/healthz``, ``/readyz``, ``/metrics`` (HTTP); empty disables.
    health_listen: str = "127.0.0.1:8081"
    workers: int = Field(1, ge=1, le=64)
    admin_key: SecretStr | None = None
    dev: bool = False
    cluster_id: str | None = None
    #: Require ``x-api-key`` (admin or tenant key) on data-plane requests.
    enable_auth: bool = False
    #: Shared secret of envd access tokens (``AGENT_SANDBOX_SECRET``).
    secret: SecretStr | None = None
    #: Require a valid ``X-Access-Token`` on envd (port 49983) requests; needs ``secret``.
    check_envd_token: bool = False
    apikey_namespace: str = SYSTEM_NAMESPACE
    clusters_configmap_name: str = CONFIGMAP_NAME
    route_ttl: float = Field(60.0, gt=0)
    activity_gc_interval: float = Field(300.0, gt=0)
    watch_timeout: int = Field(240, ge=5)

    @field_validator("cluster_id")
    @classmethod
    def _cluster(cls, value: str | None) -> str | None:
        return validate_cluster_id(value) if value else None

    @model_validator(mode="after")
    def _credentials(self) -> ExtprocSettings:
        if not self.dev and not (self.admin_key and self.admin_key.get_secret_value()):
            raise ValueError(
                "an admin key is required (--admin-key or AGENT_SANDBOX_ADMIN_KEY); "
                "use --dev only for local development"
            )
        if self.check_envd_token and not (self.secret and self.secret.get_secret_value()):
            raise ValueError("--check-envd-token needs the shared secret (--secret or AGENT_SANDBOX_SECRET)")
        return self

    def admin_key_value(self) -> str | None:
        return self.admin_key.get_secret_value() if self.admin_key else None
