"""envd's ASGI application: one dispatcher in front of the RPC services and the HTTP routes.

Connect RPCs (``/process.Process/*``, ``/filesystem.Filesystem/*``) need the
access token; the ``connectrpc`` + protobuf runtime they use is the largest part
of envd's memory, so it is imported on the first RPC rather than at start, which
keeps a sandbox that never runs a command small. Everything else goes to
:mod:`.http_api`, which applies its own per-route auth.
"""

from __future__ import annotations

import json
from typing import Any

from agent_sandbox.common.logging import get_logger

from .auth import token_matches
from .http_api import HttpApi
from .state import EnvdState

log = get_logger(__name__)

RPC_PREFIXES = ("/process.Process/", "/filesystem.Filesystem/")

Scope = dict[str, Any]


class EnvdApp:
    def __init__(self, state: EnvdState) -> None:
        self.state = state
        self._http = HttpApi(state)
        self._rpc: dict[str, Any] | None = None
        self._processes: Any = None
        self._watches: Any = None

    def _rpc_apps(self) -> dict[str, Any]:
        if self._rpc is None:
            from ._gen.filesystem.filesystem_connect import FilesystemASGIApplication
            from ._gen.process.process_connect import ProcessASGIApplication
            from .codecs import codecs
            from .filesystem_service import FilesystemService
            from .process_service import ProcessService
            from .processes import ProcessTable
            from .watchers import WatchRegistry

            self._processes = ProcessTable()
            self._watches = WatchRegistry()
            self._rpc = {
                "/process.Process/": ProcessASGIApplication(
                    ProcessService(self.state, self._processes), codecs=codecs()),
                "/filesystem.Filesystem/": FilesystemASGIApplication(
                    FilesystemService(self.state, self._watches), codecs=codecs()),
            }
        return self._rpc

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(RPC_PREFIXES):
            token = _header(scope, b"x-access-token")
            if not token_matches(self.state.access_token, token):
                await _connect_error(send, 401, "unauthenticated", "invalid or missing access token")
                return
            prefix = RPC_PREFIXES[0] if path.startswith(RPC_PREFIXES[0]) else RPC_PREFIXES[1]
            await self._rpc_apps()[prefix](scope, receive, send)
            return
        await self._http(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._processes is not None:
                    await self._processes.shutdown()
                if self._watches is not None:
                    await self._watches.close_all()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _connect_error(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
