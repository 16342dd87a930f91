"""``pods/exec``: the WebSocket shell between a client and the node agent that runs the command.

The API server runs no containers; node agents do. As with logs
(:mod:`.podlogs`), a node agent in the same process registers an exec runner
under its node name, and ``GET|POST .../pods/<name>/exec`` hands the request to
the runner of the pod's ``spec.nodeName``. A node without a runner (an agent in
another process) is refused with a ``Status`` before the upgrade — a clear
error instead of a connection that never answers. Everything that can be
refused (bad query, pod not running, unsupported subprotocol, no upgrade) is
refused before the upgrade as a Kubernetes ``Status``; after it, failures
travel on the error channel as real kubelets send them (:mod:`.execprotocol`).

Sessions are bounded (``max_sessions``, 429 beyond), stdin is a bounded queue
(reading from the client pauses while the command does not consume), and a
session ends — process killed by the runner — when the client goes away or
its node agent stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from agent_sandbox.common.logging import get_logger

from . import execprotocol as xp
from .errors import StatusError, bad_request

log = get_logger(__name__)

STDIN_QUEUE = 64
RESIZE_QUEUE = 8
MAX_SESSIONS = 256
MAX_MESSAGE = 4 * 1024 * 1024

Output = Callable[[int, bytes], Awaitable[None]]


class ExecError(Exception):
    """The node could not run the command at all (container gone, executable missing...)."""


@dataclass(slots=True)
class ExecCall:
    """What a node's exec runner gets: the target, the client's streams, and where output goes."""

    pod_uid: str
    options: xp.ExecOptions
    output: Output
    """``await output(channel, data)`` sends stdout (1) or stderr (2) bytes to the client."""
    stdin: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(STDIN_QUEUE))
    """Client stdin chunks; None = end of input. Only fed when ``options.stdin``."""
    resize: asyncio.Queue[tuple[int, int]] = field(default_factory=lambda: asyncio.Queue(RESIZE_QUEUE))
    """Terminal sizes ``(columns, rows)`` for ``options.tty`` sessions."""


ExecRunner = Callable[[ExecCall], Awaitable[int]]
"""Runs ``call`` to completion and returns the exit code; raises :class:`ExecError` when it cannot run."""


class PodExecRunners:
    """Exec runners of the in-process node agents, by node name, and the sessions they serve."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._runners: dict[str, ExecRunner] = {}
        self._sessions: dict[str, set[asyncio.Task[int]]] = {}
        self.max_sessions = max_sessions

    def register(self, node_name: str, runner: ExecRunner | None) -> None:
        """Serve ``node_name``'s exec with ``runner``; None when the agent stops (its sessions end)."""
        if runner is not None:
            self._runners[node_name] = runner
            return
        self._runners.pop(node_name, None)
        for task in self._sessions.pop(node_name, set()):
            task.cancel()

    def get(self, node_name: str) -> ExecRunner | None:
        return self._runners.get(node_name)

    @property
    def active(self) -> int:
        return sum(len(tasks) for tasks in self._sessions.values())

    def track(self, node_name: str, task: asyncio.Task[int]) -> None:
        tasks = self._sessions.setdefault(node_name, set())
        tasks.add(task)

        def forget(done: asyncio.Task[int]) -> None:
            tasks.discard(done)
            if not tasks and self._sessions.get(node_name) is tasks:
                del self._sessions[node_name]

        task.add_done_callback(forget)


async def serve(request: web.BaseRequest, pod: dict[str, Any], runners: PodExecRunners) -> web.StreamResponse:
    """Answer one exec request on ``pod``: refuse it with a Status, or upgrade and run it."""
    try:
        options = xp.parse_options(request.query, pod)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    problem = xp.runnable_problem(pod, options.container)
    if problem is not None:
        raise bad_request(problem)
    node = pod["spec"]["nodeName"]
    runner = runners.get(node)
    if runner is None:
        raise StatusError(503, "ServiceUnavailable", f'node "{node}" does not serve exec here: its agent runs '
                                                     "outside this API server's process")
    if request.method != "GET" or request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request("Upgrade request required: pods/exec speaks WebSocket (a GET upgrade with "
                          f"{' or '.join(xp.PROTOCOLS)}); SPDY is not supported")
    protocol = xp.choose_protocol(request.headers.get("Sec-WebSocket-Protocol", ""))
    if protocol is None:
        raise bad_request(f"unsupported WebSocket subprotocol; use one of {', '.join(xp.PROTOCOLS)}")
    if runners.active >= runners.max_sessions:
        raise StatusError(429, "TooManyRequests", f"too many exec sessions (limit {runners.max_sessions})")
    ws = web.WebSocketResponse(protocols=xp.PROTOCOLS, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise bad_request("invalid WebSocket handshake")
    await ws.prepare(request)
    await _session(ws, runner, runners, node, pod["metadata"].get("uid", ""), options, protocol)
    return ws


async def _session(ws: web.WebSocketResponse, runner: ExecRunner, runners: PodExecRunners, node: str,
                   pod_uid: str, options: xp.ExecOptions, protocol: str) -> None:
    async def output(channel: int, data: bytes) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await ws.send_bytes(xp.frame(channel, data))

    call = ExecCall(pod_uid, options, output)
    run = asyncio.get_running_loop().create_task(runner(call))
    runners.track(node, run)
    reader = asyncio.get_running_loop().create_task(_read_client(ws, call, protocol))
    try:
        await asyncio.wait([run, reader], return_when=asyncio.FIRST_COMPLETED)
        if not run.done():  # the client went away first
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
            return
        status = _outcome(run, options.command)
        await output(xp.ERROR, status)
    finally:
        for task in (run, reader):
            task.cancel()
        await asyncio.gather(run, reader, return_exceptions=True)
        await ws.close()


def _outcome(run: asyncio.Task[int], command: tuple[str, ...]) -> bytes:
    if run.cancelled():
        return xp.error_status("the command was ended: its container or node agent stopped")
    exc = run.exception()
    if exc is None:
        return xp.exit_status(run.result(), command)
    if isinstance(exc, ExecError):
        return xp.error_status(str(exc))
    log.error("exec runner failed", error=repr(exc))
    return xp.error_status(f"internal error: {type(exc).__name__}")


async def _read_client(ws: web.WebSocketResponse, call: ExecCall, protocol: str) -> None:
    """Feed the client's stdin and resize messages to the call until the client closes."""
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == xp.STDIN and call.options.stdin:
                if data:
                    await call.stdin.put(bytes(data))
            elif channel == xp.RESIZE and call.options.tty:
                size = xp.parse_resize(data)
                if size is not None and not call.resize.full():
                    call.resize.put_nowait(size)
            elif channel == xp.CLOSE and protocol == xp.V5 and data[:1] == bytes((xp.STDIN,)):
                await call.stdin.put(None)
    finally:
        if call.options.stdin and not call.stdin.full():
            call.stdin.put_nowait(None)
