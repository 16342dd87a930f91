"""Bind handlers to the route table: authentication, access level, version gate, validation, rendering.

Every native route goes through :func:`bind`, so no handler can forget a check. Responses are
serialised from the handler's pydantic model with ``None`` fields omitted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel

from agent_sandbox.common.errors import ApiError, forbidden
from agent_sandbox.operator.api.context import Call, NativeApiDeps, Reply
from agent_sandbox.operator.api.errors import json_response
from agent_sandbox.operator.api.routes import Access, RouteSpec
from agent_sandbox.operator.api.validation import read_body, read_query
from agent_sandbox.operator.auth.client_version import HEADER as VERSION_HEADER
from agent_sandbox.operator.auth.client_version import client_version_ok
from agent_sandbox.operator.auth.identity import AuthMethod

Handler = Callable[[Call], Awaitable[Reply]]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEYED = frozenset({AuthMethod.API_KEY, AuthMethod.ADMIN_KEY})


def render(reply: Reply) -> web.Response:
    if reply.body is None:
        return web.Response(status=reply.status)
    body = reply.body.model_dump(mode="json", exclude_none=True) if isinstance(reply.body, BaseModel) else reply.body
    return json_response(body, reply.status)


def bind(spec: RouteSpec, handler: Handler, deps: NativeApiDeps) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def endpoint(request: web.Request) -> web.Response:
        call = Call(request, deps)
        if spec.access is not Access.PUBLIC:
            call.identity = await deps.authenticator.authenticate(request.headers)
            if spec.access is Access.ADMIN and not call.identity.is_admin:
                raise forbidden("admin api key required")
            if (request.method in WRITE_METHODS and call.identity.method in _KEYED
                    and not client_version_ok(request.headers.get(VERSION_HEADER), deps.min_client_version)):
                raise ApiError(426, "client too old; upgrade your Agent Sandbox client", code="UpgradeRequired",
                               detail={"minimumVersion": deps.min_client_version, "header": VERSION_HEADER})
        if spec.query is not None:
            call.query = read_query(request, spec.query)
        if spec.body is not None:
            call.body = await read_body(request, spec.body)
        return render(await handler(call))

    endpoint.__name__ = spec.operation_id
    return endpoint
