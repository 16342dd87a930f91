"""The E2B-compatible server (``:8090``, root paths): route table, authentication, error shape.

Every route but ``GET /health`` needs an API key (``X-API-Key`` in any spelling, or ``Authorization:
Bearer``; no JWTs, no impersonation). Errors — including unknown routes and authentication failures —
are ``{code, message}`` with ``Should-Retry: false`` on permanent 5xx, because the SDK's parser needs
both fields and retries 5xx otherwise (e2b-contract.md §5).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from agent_sandbox.operator.api.errors import e2b_body, error_middleware, json_response
from agent_sandbox.operator.api.http_metrics import metrics_middleware
from agent_sandbox.operator.auth.authenticator import Authenticator
from agent_sandbox.operator.crosscluster.forwarding import Forwarder
from agent_sandbox.operator.e2b import unsupported
from agent_sandbox.operator.e2b.handlers import IDENTITY, E2BDeps, E2BHandlers

MAX_BODY_BYTES = 2 * 1024 * 1024
PUBLIC_PATHS = frozenset({"/health"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(authenticator: Authenticator) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            request[IDENTITY] = await authenticator.authenticate(
                request.headers, allow_jwt=False, allow_impersonation=False)
        return await handler(request)

    return middleware


async def health(_request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


def build_e2b_app(authenticator: Authenticator, deps: E2BDeps, forwarder: Forwarder | None = None,
                  ) -> web.Application:
    """The E2B app; with ``forwarder``, requests naming a foreign cluster (``templateID`` ``c::pool``, a
    foreign ``sandboxID``) go there once authenticated."""
    h = E2BHandlers(deps)
    middlewares = [metrics_middleware("e2b"), error_middleware(e2b_body), auth_middleware(authenticator)]
    if forwarder is not None:
        middlewares.append(forwarder.middleware("e2b"))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    r = app.router
    r.add_get("/health", health)
    # Fixed paths before the {id} routes they would otherwise match.
    for entry in unsupported.UNSUPPORTED:
        if "{id}" not in entry.path:
            r.add_route(entry.method, entry.path, unsupported.handler(entry))
    r.add_post("/sandboxes", h.create)
    r.add_post("/v2/sandboxes", h.create)
    r.add_get("/sandboxes", h.list_v1)
    r.add_get("/v2/sandboxes", h.list_v2)
    r.add_get("/sandboxes/{id}", h.get)
    r.add_delete("/sandboxes/{id}", h.delete)
    r.add_post("/sandboxes/{id}/timeout", h.set_timeout)
    r.add_post("/sandboxes/{id}/refreshes", h.refresh)
    r.add_post("/sandboxes/{id}/connect", h.connect)
    r.add_post("/v2/sandboxes/{id}/connect", h.connect)
    r.add_get("/sandboxes/{id}/metrics", h.metrics)
    r.add_get("/sandboxes/{id}/logs", h.logs_v1)
    r.add_get("/v2/sandboxes/{id}/logs", h.logs_v2)
    r.add_get("/templates", h.list_templates)
    r.add_get("/templates/{id}", h.get_template)
    for entry in unsupported.UNSUPPORTED:
        if "{id}" in entry.path:
            r.add_route(entry.method, entry.path, unsupported.handler(entry))
    return app
