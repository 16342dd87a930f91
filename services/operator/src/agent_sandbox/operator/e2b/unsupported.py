"""E2B operations this server does not offer: 501 with a message naming the alternative.

Pause/resume, snapshots, fork, network updates, template builds, volumes and team/admin APIs have no
counterpart in a pool-of-pods design. Answering 501 (never 404) tells the SDK user the route exists
but the feature does not, and ``agentsandbox_e2b_unsupported_total{operation, category}`` shows
operators which missing features their users reach for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter

from agent_sandbox.common.errors import ApiError

UNSUPPORTED_TOTAL = Counter("agentsandbox_e2b_unsupported_total", "E2B operations answered 501",
                            ("operation", "category"))

_LIFECYCLE = "pause/resume is not offered: a sandbox runs until killed or its timeout; use set_timeout to keep it"
_SNAPSHOT = "snapshots are not offered: build an image and create sandboxes with templateID 'pool//image'"
_BUILD = ("template builds are not offered: push an image to a registry and use templateID 'pool//image', or "
          "create a SandboxPool through the native API (POST /v1/sandboxpools)")


@dataclass(frozen=True, slots=True)
class Unsupported:
    method: str
    path: str
    operation: str
    category: str
    alternative: str


UNSUPPORTED: tuple[Unsupported, ...] = (
    Unsupported("POST", "/sandboxes/{id}/pause", "pause", "lifecycle", _LIFECYCLE),
    Unsupported("POST", "/sandboxes/{id}/resume", "resume", "lifecycle", _LIFECYCLE),
    Unsupported("POST", "/sandboxes/{id}/snapshots", "create_snapshot", "snapshots", _SNAPSHOT),
    Unsupported("GET", "/snapshots", "list_snapshots", "snapshots", _SNAPSHOT),
    Unsupported("POST", "/sandboxes/{id}/fork", "fork", "lifecycle",
                "fork is not offered: create another sandbox from the same template"),
    Unsupported("PUT", "/sandboxes/{id}/network", "update_network", "network",
                "network updates are not offered: egress is set by the pool's network policy"),
    Unsupported("GET", "/sandboxes/metrics", "list_metrics", "metrics",
                "bulk metrics are not offered: use GET /sandboxes/{id}/metrics or the Prometheus metrics"),
    Unsupported("POST", "/templates", "create_template", "templates", _BUILD),
    Unsupported("POST", "/v2/templates", "create_template_v2", "templates", _BUILD),
    Unsupported("POST", "/v3/templates", "create_template_v3", "templates", _BUILD),
    Unsupported("POST", "/templates/{id}", "rebuild_template", "templates", _BUILD),
    Unsupported("PATCH", "/templates/{id}", "update_template", "templates", _BUILD),
    Unsupported("DELETE", "/templates/{id}", "delete_template", "templates", _BUILD),
    Unsupported("POST", "/templates/{id}/builds/{build}", "start_build", "templates", _BUILD),
    Unsupported("POST", "/v2/templates/{id}/builds/{build}", "start_build_v2", "templates", _BUILD),
    Unsupported("GET", "/templates/{id}/builds/{build}/status", "build_status", "templates", _BUILD),
    Unsupported("GET", "/volumes", "list_volumes", "volumes",
                "volumes are not offered: use a pool whose pod template mounts the volume"),
    Unsupported("POST", "/volumes", "create_volume", "volumes",
                "volumes are not offered: use a pool whose pod template mounts the volume"),
    Unsupported("GET", "/nodes", "list_nodes", "admin", "node views are not offered: use kubectl get nodes"),
    Unsupported("GET", "/teams", "list_teams", "admin", "teams are managed with API keys: GET /v1/admin/teams"),
    Unsupported("GET", "/api-keys", "list_api_keys", "admin", "manage keys with the native API: GET /v1/api-keys"),
    Unsupported("POST", "/api-keys", "create_api_key", "admin",
                "manage keys with the native API: POST /v1/api-keys"),
    Unsupported("DELETE", "/api-keys/{id}", "delete_api_key", "admin",
                "manage keys with the native API: DELETE /v1/api-keys/{name}"),
)


def handler(entry: Unsupported) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def not_implemented(request: web.Request) -> web.StreamResponse:
        UNSUPPORTED_TOTAL.labels(entry.operation, entry.category).inc()
        raise ApiError(501, entry.alternative, code="NotImplemented", retryable=False)

    return not_implemented
