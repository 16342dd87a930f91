"""Cluster configuration (ConfigMap ``agentsandbox-clusters``, key ``clusters.yaml``).

A sandbox id carries its cluster id, so a data-plane request for a sandbox of
another cluster is forwarded to that cluster's data gateway (``gateway.dataURL``)
instead of answered 404. This module parses the document into pydantic models
at the edge and precomputes, per cluster, everything the request path needs
(scheme, host, port, path prefix, merged headers), so forwarding costs a dict
look-up. Parsing only; the watch lives in :mod:`agent_sandbox.extproc.kube`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


class ClusterEntry(_Model):
    id: str
    name: str = ""
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    visible: bool = True
    gateway: GatewayConfig | None = None


class HostAlias(_Model):
    ip: str
    hostnames: list[str] = Field(default_factory=list)


class ClusterConfig(_Model):
    clusters: list[ClusterEntry] = Field(default_factory=list)
    host_aliases: list[HostAlias] = Field(default_factory=list, alias="hostAliases")


class ClusterConfigError(ValueError):
    """The clusters document is not valid."""


@dataclass(frozen=True, slots=True)
class DataGateway:
    """A foreign cluster's data-plane entry point, ready for the request path."""

    cluster_id: str
    scheme: str
    #: ``Host``/``:authority`` sent to the gateway (``host[:port]`` as written in dataURL).
    authority: str
    host: str
    port: int
    path_prefix: str
    #: Gateway headers merged with data headers (data headers win), lower-cased names.
    headers: tuple[tuple[str, str], ...]


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


def data_gateways(config: ClusterConfig) -> dict[str, DataGateway]:
    """Every cluster with a usable ``gateway.dataURL``; others cannot be forwarded to."""
    out: dict[str, DataGateway] = {}
    for cluster in config.clusters:
        gw = cluster.gateway
        if gw is None or not gw.data_url:
            continue
        parts = urlsplit(gw.data_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        merged = {k.lower(): v for k, v in gw.headers.items()}
        merged.update({k.lower(): v for k, v in gw.data_headers.items()})
        out[cluster.id] = DataGateway(
            cluster_id=cluster.id,
            scheme=parts.scheme,
            authority=parts.netloc.rpartition("@")[2],
            host=parts.hostname,
            port=port,
            path_prefix=parts.path.rstrip("/"),
            headers=tuple(merged.items()),
        )
    return out


def host_aliases(config: ClusterConfig) -> dict[str, str]:
    return {name.lower(): alias.ip for alias in config.host_aliases for name in alias.hostnames}
