"""Async client of the extproc control plane, for the operator.

Pushing a route is an optimisation (extproc's own Pod watch catches up within
moments) and activity is advisory, so the client never lets extproc being down
break a claim: every call has a short deadline, failures are logged and
reported as ``False``/``None``, and the channel reconnects by itself once
extproc is back (calls wait for a ready channel up to their deadline, so the
first call after a restart succeeds instead of failing in reconnect backoff). Keys never appear in log lines.
"""

from __future__ import annotations

import grpc

from agent_sandbox.common.logging import get_logger

from ._gen import ctrlplane_pb2 as pb
from ._gen import ctrlplane_pb2_grpc as pb_grpc

log = get_logger(__name__)


class ControlPlaneClient:
    def __init__(self, target: str, admin_key: str | None, *, timeout: float = 1.0) -> None:
        """``target``: ``host:port`` or ``unix:/path``; ``admin_key`` ``None`` only against a dev-mode server."""
        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {admin_key}"),) if admin_key else ()
        self._channel = grpc.aio.insecure_channel(
            target,
            options=[("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)],
        )
        self._stub = pb_grpc.ControlPlaneServiceStub(self._channel)
        self.degraded = False

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> ControlPlaneClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _failed(self, method: str, exc: grpc.RpcError) -> None:
        code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
            log.error("extproc control call refused", method=method, target=self.target,
                      code=str(code), details=exc.details() if isinstance(exc, grpc.aio.AioRpcError) else "")
        else:
            log.warning("extproc control plane unavailable, continuing degraded", method=method,
                        target=self.target, code=str(code))
        self.degraded = True

    async def push_route(self, sandbox_id: str, namespace: str, pod_name: str) -> bool:
        try:
            await self._stub.PushRoute(
                pb.PushRouteRequest(sandbox_id=sandbox_id, namespace=namespace, pod_name=pod_name),
                timeout=self.timeout, metadata=self._metadata, wait_for_ready=True,
            )
        except grpc.RpcError as exc:
            self._failed("PushRoute", exc)
            return False
        self.degraded = False
        return True

    async def evict_route(self, sandbox_id: str) -> bool:
        try:
            await self._stub.EvictRoute(pb.EvictRouteRequest(sandbox_id=sandbox_id),
                                        timeout=self.timeout, metadata=self._metadata, wait_for_ready=True)
        except grpc.RpcError as exc:
            self._failed("EvictRoute", exc)
            return False
        self.degraded = False
        return True

    async def get_last_active(self) -> dict[str, str] | None:
        """sandbox id -> RFC 3339 last activity, or ``None`` when extproc cannot be reached."""
        try:
            reply = await self._stub.GetLastActive(pb.GetLastActiveRequest(),
                                                   timeout=self.timeout, metadata=self._metadata, wait_for_ready=True)
        except grpc.RpcError as exc:
            self._failed("GetLastActive", exc)
            return None
        self.degraded = False
        return dict(reply.last_active)
