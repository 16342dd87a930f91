"""HTTP health and metrics endpoints.

``/healthz`` answers while the process runs; ``/readyz`` only while every cache
has synced once and the ExtProc listener answers (:mod:`.readiness`): Envoy's
traffic should not arrive before routes can be resolved, nor be sent to a data
plane whose ExtProc path is broken. ``/metrics`` needs the admin bearer key unless
running in dev mode, like every other non-health endpoint of ours.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import metrics


def health_app(ready: Callable[[], Awaitable[bool]], admin_key: str | None) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if await ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def metrics_handler(request: web.Request) -> web.Response:
        if admin_key:
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(presented.encode(), admin_key.encode()):
                return web.json_response({"error": "unauthorized"}, status=401)
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def start_health(address: str, ready: Callable[[], Awaitable[bool]], admin_key: str | None) -> web.AppRunner:
    host, _, port = address.rpartition(":")
    runner = web.AppRunner(health_app(ready, admin_key), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port)).start()
    return runner
