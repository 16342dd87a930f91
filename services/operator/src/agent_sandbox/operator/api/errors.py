"""Error middleware shared by the native and E2B servers: every failure becomes a JSON error body.

Handlers raise :class:`~agent_sandbox.common.errors.ApiError` (or a service-layer error, mapped by
:mod:`~agent_sandbox.operator.api.service_errors`); aiohttp's own HTTP errors (unknown
route, wrong method, body too large) are converted to the same model; anything unexpected is logged
with its traceback and answered 500 without one. The renderer decides the shape: native
``{error, errorCode?, detail?}`` or E2B ``{code, message}``; permanent 5xx carry ``Should-Retry: false``
so SDKs do not retry them (e2b-contract.md §1.5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from agent_sandbox.common.errors import ApiError
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.api.service_errors import api_error_from

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Renderer = Callable[[ApiError], dict[str, Any]]

#: 5xx statuses worth retrying; every other 5xx is answered with ``Should-Retry: false``.
TRANSIENT_5XX = frozenset({502, 503, 504})


def native_body(err: ApiError) -> dict[str, Any]:
    return err.body()


def e2b_body(err: ApiError) -> dict[str, Any]:
    return err.e2b_body()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def error_response(err: ApiError, render: Renderer) -> web.Response:
    headers = dict(err.headers)
    if err.status >= 500 and (err.retryable is False or (err.retryable is None and err.status not in TRANSIENT_5XX)):
        headers["Should-Retry"] = "false"
    elif err.retryable:
        headers["Should-Retry"] = "true"
    return json_response(render(err), err.status, headers)


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    message = {404: "route not found", 405: "method not allowed", 413: "request body too large"}.get(
        exc.status, exc.reason.lower())
    return ApiError(exc.status, message, code=exc.reason.replace(" ", ""), headers=headers)


def error_middleware(render: Renderer) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err, render)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(_from_http_exception(exc), render)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            mapped = api_error_from(exc)
            if mapped is not None:
                return error_response(mapped, render)
            log.exception("unhandled error", method=request.method, path=request.path)
            return error_response(ApiError(500, "internal error", code="Internal", retryable=False), render)

    return middleware
