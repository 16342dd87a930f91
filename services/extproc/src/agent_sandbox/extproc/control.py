"""Control-plane gRPC service ``sandbox.ctrlplane.v1.ControlPlaneService`` (behaviour.md §19).

The operator pushes a route right after a claim, evicts it on release, and
reads last-activity times for its idle-timeout loop. The service is a thin
shell over a :class:`ControlBackend`: with one process the backend acts on the
local route table; with several worker processes the supervisor's backend fans
every call out to the workers (see :mod:`agent_sandbox.extproc.workers`).
Every call needs ``authorization: Bearer <admin key>`` unless running in dev mode.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc

from agent_sandbox.common.logging import get_logger
from agent_sandbox.ctrlplane._gen import ctrlplane_pb2 as pb
from agent_sandbox.ctrlplane._gen import ctrlplane_pb2_grpc as pb_grpc

from . import metrics
from .activity import ActivityTracker
from .routes import RouteTable

log = get_logger(__name__)

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


class ControlBackend(Protocol):
    async def push_route(self, sandbox_id: str, namespace: str, pod_name: str) -> None: ...
    async def evict_route(self, sandbox_id: str) -> None: ...
    async def last_active(self) -> dict[str, str]: ...


class LocalBackend:
    """Acts on this process's route table and activity tracker."""

    def __init__(self, routes: RouteTable, activity: ActivityTracker) -> None:
        self.routes = routes
        self.activity = activity

    async def push_route(self, sandbox_id: str, namespace: str, pod_name: str) -> None:
        self.routes.push(sandbox_id, namespace, pod_name, time.time())

    async def evict_route(self, sandbox_id: str) -> None:
        self.routes.evict(sandbox_id, time.time())

    async def last_active(self) -> dict[str, str]:
        return self.activity.snapshot()


class ControlPlaneService(pb_grpc.ControlPlaneServiceServicer):
    def __init__(self, backend: ControlBackend) -> None:
        self.backend = backend

    async def PushRoute(
        self, request: pb.PushRouteRequest, context: grpc.aio.ServicerContext
    ) -> pb.PushRouteResponse:
        await _require(context, "PushRoute", _DNS_LABEL.match(request.sandbox_id), "sandbox_id must be a DNS label")
        await _require(context, "PushRoute", _DNS_LABEL.match(request.namespace), "namespace must be a DNS label")
        await _require(context, "PushRoute", _DNS_SUBDOMAIN.match(request.pod_name), "pod_name is not a valid name")
        await self.backend.push_route(request.sandbox_id, request.namespace, request.pod_name)
        metrics.CONTROL_REQUESTS.labels("PushRoute", "ok").inc()
        log.debug("route pushed", sandbox_id=request.sandbox_id, namespace=request.namespace, pod=request.pod_name)
        return pb.PushRouteResponse()

    async def EvictRoute(
        self, request: pb.EvictRouteRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvictRouteResponse:
        await _require(context, "EvictRoute", _DNS_LABEL.match(request.sandbox_id), "sandbox_id must be a DNS label")
        await self.backend.evict_route(request.sandbox_id)
        metrics.CONTROL_REQUESTS.labels("EvictRoute", "ok").inc()
        return pb.EvictRouteResponse()

    async def GetLastActive(
        self, request: pb.GetLastActiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLastActiveResponse:
        last = await self.backend.last_active()
        metrics.CONTROL_REQUESTS.labels("GetLastActive", "ok").inc()
        return pb.GetLastActiveResponse(last_active=last)


async def _require(context: grpc.aio.ServicerContext, method: str, ok: object, message: str) -> None:
    if not ok:
        metrics.CONTROL_REQUESTS.labels(method, "invalid").inc()
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def bearer_matches(metadata: Any, key: str) -> bool:
    """``authorization: Bearer <key>`` (or the raw key) in gRPC metadata, compared in constant time."""
    for item in metadata or ():
        if item[0] != "authorization":
            continue
        value = item[1].decode() if isinstance(item[1], bytes) else str(item[1])
        scheme, _, rest = value.partition(" ")
        presented = rest.strip() if scheme.lower() == "bearer" and rest else value.strip()
        return hmac.compare_digest(presented.encode(), key.encode())
    return False


class AdminKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call without the admin bearer key (UNAUTHENTICATED)."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("admin key must not be empty")
        self._key = key

        async def deny(request: object, context: grpc.aio.ServicerContext) -> None:
            metrics.CONTROL_REQUESTS.labels("any", "unauthenticated").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid admin bearer key")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if bearer_matches(handler_call_details.invocation_metadata, self._key):
            return await continuation(handler_call_details)
        return self._deny


def control_server(backend: ControlBackend, address: str, admin_key: str | None) -> grpc.aio.Server:
    """A gRPC server for the control plane on ``address`` (``host:port`` or ``unix:path``)."""
    interceptors = [AdminKeyInterceptor(admin_key)] if admin_key else []
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_ControlPlaneServiceServicer_to_server(ControlPlaneService(backend), server)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio reports a busy port as RuntimeError
        raise OSError(f"cannot listen on {address} (address in use?)") from exc
    return server
