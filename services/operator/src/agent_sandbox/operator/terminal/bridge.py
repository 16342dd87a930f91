"""``GET /v1/sandboxes/{id}/terminal?token=``: a WebSocket bridged to a PTY in the sandbox.

The single-use exec token (``POST /v1/sandboxes/{id}/exec-token``) is the credential, because a
browser cannot put an API key on a WebSocket upgrade; it is consumed before the upgrade (401 when
invalid, expired or for another sandbox). Output flows to the client as binary frames; binary frames
from the client are keystrokes, text frames are JSON ``stdin``/``resize`` ops. When either side goes
away the PTY gets an end-of-transmission and is then killed, so no shell outlives its socket.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from agent_sandbox.common.errors import ApiError
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.api.envd_access import EnvdAccess
from agent_sandbox.operator.api.exec_tokens import ExecTokenStore
from agent_sandbox.operator.api.sandbox_access import SandboxAccess
from agent_sandbox.operator.terminal.envd_pty import EnvdPty, PtyError
from agent_sandbox.operator.terminal.messages import BadMessage, Resize, Stdin, parse_text

log = get_logger(__name__)

PATH = "/v1/sandboxes/{id}/terminal"
EOT = b"\x04"
HEARTBEAT_S = 30.0


class TerminalBridge:
    def __init__(self, tokens: ExecTokenStore, access: SandboxAccess, envd: EnvdAccess) -> None:
        self._tokens = tokens
        self._access = access
        self._envd = envd

    def route(self) -> web.RouteDef:
        return web.get(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sandbox_id = request.match_info["id"]
        grant = self._tokens.consume(request.query.get("token"), sandbox_id)
        pod = self._access.live_pod(sandbox_id)
        if pod is None or (pod.get("metadata") or {}).get("name") != grant.pod_name:
            raise ApiError(404, f"sandbox {sandbox_id} is not running", code="NotFound")
        pty = EnvdPty(self._envd, pod)
        try:
            await pty.start()
        except PtyError as exc:
            await pty.close()
            raise ApiError(502, str(exc), code="EnvdError") from exc
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        try:
            await ws.prepare(request)
            log.info("terminal opened", sandbox_id=sandbox_id, pid=pty.pid)
            await self._bridge(ws, pty)
        finally:
            await self._finish(pty)
            await ws.close()
            log.info("terminal closed", sandbox_id=sandbox_id)
        return ws

    async def _bridge(self, ws: web.WebSocketResponse, pty: EnvdPty) -> None:
        async def downstream() -> None:
            async for chunk in pty.output():
                await ws.send_bytes(chunk)

        async def upstream() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await pty.write(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    try:
                        op = parse_text(msg.data)
                    except BadMessage as exc:
                        await ws.send_json({"error": str(exc)})
                        continue
                    if isinstance(op, Stdin):
                        await pty.write(op.data)
                    elif isinstance(op, Resize):
                        await pty.resize(op.cols, op.rows)

        tasks = [asyncio.create_task(downstream()), asyncio.create_task(upstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, PtyError, ConnectionError):
                    await task

    async def _finish(self, pty: EnvdPty) -> None:
        """End the shell: EOT first (a clean logout), then kill whatever is left."""
        if pty.pid is not None:
            for name, step in (("eot", lambda: pty.write(EOT)), ("kill", pty.kill)):
                try:
                    await asyncio.wait_for(step(), 5)
                except (PtyError, OSError, TimeoutError) as exc:
                    log.info("terminal cleanup step failed", step=name, error=str(exc))
        await pty.close()
