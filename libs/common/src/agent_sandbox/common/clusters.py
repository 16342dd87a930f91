"""The cluster configuration document (ConfigMap ``agentsandbox-clusters``, key ``clusters.yaml``).

One schema (behaviour.md §20.1) read by every service that reaches other clusters: extproc forwards
data-plane traffic of foreign sandboxes to ``gateway.dataURL``, the operator forwards API requests to
``gateway.nativeURL`` / ``gateway.e2bURL`` and lists the clusters. Keeping the model here means one
parser and one set of defaults; each service precomputes what its own request path needs. Parsing
only — no I/O.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIGMAP_NAME = "agentsandbox-clusters"
CONFIGMAP_KEY = "clusters.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class GatewayConfig(_Model):
    native_url: str = Field("", alias="nativeURL")
    e2b_url: str = Field("", alias="e2bURL")
    data_url: str = Field("", alias="dataURL")
    headers: dict[str, str] = Field(default_factory=dict)
    native_headers: dict[str, str] = Field(default_factory=dict, alias="nativeHeaders")
    e2b_headers: dict[str, str] = Field(default_factory=dict, alias="e2bHeaders")
    data_headers: dict[str, str] = Field(default_factory=dict, alias="dataHeaders")


class Registry(_Model):
    host: str
    type: str = ""


class ClusterEntry(_Model):
    id: str
    name: str = ""
    #: Hub-facing URL of the cluster's operator.
    url: str = ""
    #: PromQL matcher selecting the cluster's series.
    selector: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    visible: bool = True
    gateway: GatewayConfig | None = None
    registries: list[Registry] = Field(default_factory=list)


class HostAlias(_Model):
    ip: str
    hostnames: list[str] = Field(default_factory=list)


class ClusterConfig(_Model):
    clusters: list[ClusterEntry] = Field(default_factory=list)
    host_aliases: list[HostAlias] = Field(default_factory=list, alias="hostAliases")

    def cluster(self, cluster_id: str) -> ClusterEntry | None:
        return next((c for c in self.clusters if c.id == cluster_id), None)


class ClusterConfigError(ValueError):
    """The clusters document is not valid."""


def parse_cluster_config(text: str) -> ClusterConfig:
    try:
        data: Any = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ClusterConfigError(f"{CONFIGMAP_KEY} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ClusterConfigError(f"{CONFIGMAP_KEY} must hold a mapping")
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as exc:
        raise ClusterConfigError(f"{CONFIGMAP_KEY} is invalid: {exc.errors()[0]['msg']}") from exc
