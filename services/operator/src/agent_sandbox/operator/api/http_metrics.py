"""Prometheus HTTP metrics of both API servers (behaviour.md §25).

``agentsandbox_http_requests_total`` and ``agentsandbox_http_request_duration_seconds`` labelled by
method, route template (never the raw path: sandbox ids would explode the series count), status code
and ``api`` (``native`` or ``e2b``). Registered on the default registry, which the operator's metrics
server exposes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

from agent_sandbox.common.errors import ApiError

_LABELS = ("method", "path", "status_code", "api")
REQUESTS = Counter("agentsandbox_http_requests_total", "HTTP requests", _LABELS)
DURATION = Histogram(
    "agentsandbox_http_request_duration_seconds", "HTTP request latency", _LABELS,
    buckets=tuple(0.01 * 2**i for i in range(17)),
)
UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return UNMATCHED
    return resource.canonical


def metrics_middleware(api: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ApiError as err:
            status = err.status
            raise
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            labels = (request.method, route_template(request), str(status), api)
            REQUESTS.labels(*labels).inc()
            DURATION.labels(*labels).observe(time.perf_counter() - start)

    return middleware
