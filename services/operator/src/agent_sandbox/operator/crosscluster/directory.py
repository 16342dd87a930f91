"""The clusters this operator knows, from the cluster configuration (behaviour.md §20.1).

Holds the last valid ``clusters.yaml`` and answers the two questions the API servers ask: which
clusters to list (``GET /v1/clusters``: this one first, then the visible others) and where a foreign
cluster's native or E2B API lives (gateway URL plus merged gateway headers). A document that does not
parse is reported and ignored — the previous configuration stays in force, so a bad edit never cuts
forwarding that worked. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from agent_sandbox.common.clusters import CONFIGMAP_KEY, ClusterConfig, ClusterConfigError, parse_cluster_config

Api = Literal["native", "e2b"]


@dataclass(frozen=True, slots=True)
class ApiGateway:
    """Where a foreign cluster serves one of its APIs."""

    cluster_id: str
    #: ``scheme://host[:port][/prefix]`` without a trailing slash; the request path is appended.
    base_url: str
    #: ``gateway.headers`` merged with the API's own headers (the latter win).
    headers: tuple[tuple[str, str], ...]


class ClusterDirectory:
    def __init__(self, local_id: str) -> None:
        self.local_id = local_id
        self.config = ClusterConfig()
        #: Why the latest document was refused ("" when it was accepted).
        self.error = ""

    def apply_configmap(self, obj: dict[str, Any] | None) -> None:
        """Adopt the ConfigMap's ``clusters.yaml`` (``None``: the ConfigMap is gone → no clusters).

        Raises :class:`ClusterConfigError` for an invalid document, keeping the previous configuration.
        """
        text = ((obj or {}).get("data") or {}).get(CONFIGMAP_KEY, "")
        try:
            config = parse_cluster_config(text)
        except ClusterConfigError as exc:
            self.error = str(exc)
            raise
        self.config = config
        self.error = ""

    def listing(self) -> list[dict[str, Any]]:
        """``{id, name, local}`` of this cluster and every visible foreign one."""
        own = self.config.cluster(self.local_id)
        out = [{"id": self.local_id, "name": (own.name if own and own.name else self.local_id), "local": True}]
        out += [{"id": c.id, "name": c.name or c.id, "local": False}
                for c in self.config.clusters if c.id != self.local_id and c.visible]
        return out

    def gateway(self, cluster_id: str, api: Api) -> ApiGateway | None:
        """The gateway of ``cluster_id``'s ``api``; ``None`` when unknown or without a usable URL."""
        entry = self.config.cluster(cluster_id)
        if entry is None or entry.gateway is None or cluster_id == self.local_id:
            return None
        gw = entry.gateway
        url, extra = (gw.native_url, gw.native_headers) if api == "native" else (gw.e2b_url, gw.e2b_headers)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        merged = {k.lower(): val for k, val in gw.headers.items()}
        merged.update({k.lower(): val for k, val in extra.items()})
        return ApiGateway(cluster_id, url.rstrip("/"), tuple(merged.items()))
