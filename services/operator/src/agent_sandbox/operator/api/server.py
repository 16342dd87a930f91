"""The native API server (``:8080``): an aiohttp application built from the route table.

:func:`build_native_app` binds every handler module's ``HANDLERS`` to its route (plus any extra
handlers the caller passes, e.g. the sandbox and pool routes backed by the service layer) behind the
metrics and error middlewares; ``extra_routes`` are routes outside the document (the terminal
WebSocket). Operations in the route table without a handler are not served (404) and are listed by
:func:`unbound_operations`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from agent_sandbox.operator.api.binding import Handler, bind
from agent_sandbox.operator.api.context import NativeApiDeps
from agent_sandbox.operator.api.errors import error_middleware, native_body
from agent_sandbox.operator.api.handlers import apikeys, meta
from agent_sandbox.operator.api.http_metrics import metrics_middleware
from agent_sandbox.operator.api.routes import ROUTES, ROUTES_BY_ID
from agent_sandbox.operator.crosscluster.forwarding import Forwarder

#: Request bodies above this are refused with 413 (pool specs with embedded templates are the largest).
MAX_BODY_BYTES = 4 * 1024 * 1024
DEPS_KEY: web.AppKey[NativeApiDeps] = web.AppKey("native_deps", NativeApiDeps)

BUILTIN_HANDLERS: dict[str, Handler] = {**meta.HANDLERS, **apikeys.HANDLERS}


def unbound_operations(extra: Mapping[str, Handler] | None = None) -> list[str]:
    bound = {**BUILTIN_HANDLERS, **(extra or {})}
    return [r.operation_id for r in ROUTES if r.operation_id not in bound]


def build_native_app(deps: NativeApiDeps, extra_handlers: Mapping[str, Handler] | None = None,
                     extra_routes: Sequence[web.RouteDef] = (), forwarder: Forwarder | None = None,
                     ) -> web.Application:
    """The native app; with ``forwarder``, requests naming a foreign cluster go there (after authentication)."""
    handlers = {**BUILTIN_HANDLERS, **(extra_handlers or {})}
    unknown = set(handlers) - set(ROUTES_BY_ID)
    if unknown:
        raise ValueError(f"handlers for operations not in the route table: {sorted(unknown)}")
    middlewares = [metrics_middleware("native"), error_middleware(native_body)]
    if forwarder is not None:
        async def authenticate(request: web.Request) -> object:
            return await deps.authenticator.authenticate(request.headers)

        middlewares.append(forwarder.middleware("native", authenticate))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[DEPS_KEY] = deps
    for route in ROUTES:
        handler = handlers.get(route.operation_id)
        if handler is not None:
            app.router.add_route(route.method, route.path, bind(route, handler, deps), name=route.operation_id)
    app.router.add_routes(extra_routes)
    return app
