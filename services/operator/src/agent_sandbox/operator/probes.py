"""``/healthz``, ``/readyz`` and ``/metrics`` (aiohttp).

Health endpoints answer without credentials (kubelet probes carry none) and
expose nothing but liveness. ``/metrics`` names pods and sandbox ids, so it
requires ``Authorization: Bearer <token>`` whenever a token is configured
(the operator passes its admin key).
"""

from __future__ import annotations

import hmac
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from agent_sandbox.operator.metrics import OperatorMetrics


class _Probed(Protocol):
    metrics: OperatorMetrics

    def ready(self) -> bool: ...

    @property
    def is_leader(self) -> bool: ...


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"listen address {value!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


class ProbeServer:
    def __init__(self, listen: str, target: _Probed, metrics_token: str | None = None) -> None:
        self._host, self._port = split_listen(listen)
        self._target = target
        self._expected = f"Bearer {metrics_token}".encode() if metrics_token else None
        self._runner: web.AppRunner | None = None
        self.address = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sock = site._server.sockets[0] if site._server and site._server.sockets else None  # type: ignore[union-attr]
        port = sock.getsockname()[1] if sock else self._port
        self.address = f"{self._host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready = self._target.ready()
        return web.json_response({"ready": ready, "leader": self._target.is_leader}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._expected is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), self._expected):
            return web.json_response({"error": "metrics require Authorization: Bearer <admin key>"}, status=401)
        body = self._target.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
