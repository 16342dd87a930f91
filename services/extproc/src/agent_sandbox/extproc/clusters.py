"""Data-plane gateways of foreign clusters, precomputed from the cluster configuration.

A sandbox id carries its cluster id, so a data-plane request for a sandbox of
another cluster is forwarded to that cluster's data gateway (``gateway.dataURL``)
instead of answered 404. The document's schema and parser live in
:mod:`agent_sandbox.common.clusters` (shared with the operator); this module
precomputes, per cluster, everything the request path needs (scheme, host, port,
path prefix, merged headers), so forwarding costs a dict look-up. The watch
lives in :mod:`agent_sandbox.extproc.kube`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from agent_sandbox.common.clusters import ClusterConfig


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
