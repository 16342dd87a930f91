"""A stand-in for Agent Sandbox's E2B control plane, just enough for the SDK to reach envd.

Run as a script with the workspace Python (it needs aiohttp, which the per-version
SDK venvs lack). It answers the SDK's create/connect/get/kill/timeout routes with
the E2B ``Sandbox`` shape and, like the real operator, calls envd's ``/init``
with the create request's ``envVars`` and the access token before answering 201.

Create metadata ``{"envdAccessToken": "..."}`` makes it hand the SDK a different
token than envd expects (to test authentication failures).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from aiohttp import ClientSession, web


def build_app(envd_url: str, token: str, envd_version: str) -> web.Application:
    sandboxes: dict[str, dict] = {}
    counter = iter(range(1, 1_000_000))

    def sandbox_json(sandbox_id: str) -> dict:
        record = sandboxes[sandbox_id]
        return {
            "templateID": "base", "sandboxID": sandbox_id, "clientID": "test", "envdVersion": envd_version,
            "envdAccessToken": record["token"], "domain": None,
        }

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"code": status, "message": message}, status=status)

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        sandbox_id = f"c1-{next(counter):026d}"
        handed_token = (body.get("metadata") or {}).get("envdAccessToken", token)
        async with ClientSession() as session:
            init = {"envVars": body.get("envVars") or {}, "accessToken": token}
            async with session.post(f"{envd_url}/init", json=init, headers={"X-Access-Token": token}) as resp:
                if resp.status != 204:
                    return error(500, f"envd init failed: {resp.status} {await resp.text()}")
        now = datetime.now(UTC)
        sandboxes[sandbox_id] = {"token": handed_token, "started": now, "end": now + timedelta(seconds=300)}
        return web.json_response(sandbox_json(sandbox_id), status=201)

    async def connect(request: web.Request) -> web.Response:
        sandbox_id = request.match_info["id"]
        if sandbox_id not in sandboxes:
            return error(404, f"sandbox {sandbox_id} not found")
        return web.json_response(sandbox_json(sandbox_id), status=200)

    async def detail(request: web.Request) -> web.Response:
        sandbox_id = request.match_info["id"]
        if sandbox_id not in sandboxes:
            return error(404, f"sandbox {sandbox_id} not found")
        record = sandboxes[sandbox_id]
        return web.json_response({
            **sandbox_json(sandbox_id), "startedAt": record["started"].isoformat(),
            "endAt": record["end"].isoformat(), "cpuCount": 2, "memoryMB": 512, "diskSizeMB": 1024,
            "state": "running", "metadata": {},
        })

    async def kill(request: web.Request) -> web.Response:
        if sandboxes.pop(request.match_info["id"], None) is None:
            return error(404, "sandbox not found")
        return web.Response(status=204)

    async def set_timeout(request: web.Request) -> web.Response:
        if request.match_info["id"] not in sandboxes:
            return error(404, "sandbox not found")
        return web.Response(status=204)

    app = web.Application()
    app.add_routes([
        web.post("/v2/sandboxes", create), web.post("/sandboxes", create),
        web.post("/v2/sandboxes/{id}/connect", connect), web.post("/sandboxes/{id}/connect", connect),
        web.get("/sandboxes/{id}", detail), web.delete("/sandboxes/{id}", kill),
        web.post("/sandboxes/{id}/timeout", set_timeout),
    ])
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envd-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--envd-version", default="0.5.7")
    args = parser.parse_args()
    runner = web.AppRunner(build_app(args.envd_url, args.token, args.envd_version), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
