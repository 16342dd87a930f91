"""A PTY in a sandbox, driven through envd's ``process.Process`` service (Connect protocol, JSON).

``Start`` with a ``pty`` opens a server stream of process events (the PTY's output arrives as base64
``data.pty``); keystrokes go in with unary ``SendInput``, window sizes with ``Update``, and ``SendSignal``
ends it. Connect JSON over aiohttp keeps this free of generated stubs: the messages are small dicts.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from agent_sandbox.operator.api.envd_access import EnvdAccess
from agent_sandbox.operator.api.envd_connect import PROCESS_SERVICE as SERVICE
from agent_sandbox.operator.api.envd_connect import STREAM_CONTENT_TYPE, envelope, process_events
from agent_sandbox.operator.podview import Pod, sandbox_id

SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"


class PtyError(Exception):
    pass


class EnvdPty:
    def __init__(self, envd: EnvdAccess, pod: Pod) -> None:
        self._envd = envd
        self._base = envd.base_url(pod)
        self._headers = {**envd.headers(sandbox_id(pod)), "Connect-Protocol-Version": "1"}
        self._stream: aiohttp.ClientResponse | None = None
        self.pid: int | None = None

    async def start(self, cols: int = 80, rows: int = 24) -> None:
        body = envelope({"process": {"cmd": "/bin/sh", "args": ["-c", SHELL], "envs": {"TERM": "xterm-256color"}},
                         "pty": {"size": {"cols": cols, "rows": rows}}})
        resp = await self._envd.session.post(
            self._base + SERVICE + "/Start", data=body, timeout=aiohttp.ClientTimeout(total=None, connect=5),
            headers={**self._headers, "Content-Type": STREAM_CONTENT_TYPE})
        if resp.status != 200:
            text = await resp.text()
            resp.release()
            raise PtyError(f"envd refused the terminal ({resp.status}): {text[:200]}")
        self._stream = resp
        async for event in self._events():
            if "start" in event:
                self.pid = int(event["start"].get("pid", 0))
                return
        raise PtyError("envd closed the terminal before it started")

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        assert self._stream is not None
        async for event in process_events(self._stream.content):
            if "end" in event:
                return
            yield event

    async def output(self) -> AsyncIterator[bytes]:
        """PTY output until the process ends or the stream breaks."""
        async for event in self._events():
            data = (event.get("data") or {}).get("pty")
            if data:
                yield base64.b64decode(data)

    async def _unary(self, method: str, message: dict[str, Any]) -> None:
        async with self._envd.session.post(self._base + SERVICE + "/" + method, data=orjson.dumps(message),
                                           headers={**self._headers, "Content-Type": "application/json"}) as resp:
            if resp.status != 200:
                raise PtyError(f"envd {method} answered {resp.status}")

    async def write(self, data: bytes) -> None:
        await self._unary("SendInput", {"process": {"pid": self.pid},
                                        "input": {"pty": base64.b64encode(data).decode()}})

    async def resize(self, cols: int, rows: int) -> None:
        await self._unary("Update", {"process": {"pid": self.pid}, "pty": {"size": {"cols": cols, "rows": rows}}})

    async def kill(self) -> None:
        await self._unary("SendSignal", {"process": {"pid": self.pid}, "signal": "SIGNAL_SIGKILL"})

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
