"""The ``process.Process`` Connect service on top of :mod:`.processes`.

Translates requests into :class:`~.processes.ProcessSpec` (user, cwd, environment)
and process events into protocol messages: a ``start`` event first, output,
keepalives while idle, exactly one ``end``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from protobuf import Oneof

from ._gen.process import process_connect
from ._gen.process import process_pb as pb
from .caller import caller_account, keepalive_interval
from .paths import resolve_path
from .processes import (
    Ended,
    ManagedProcess,
    Output,
    ProcessError,
    ProcessSpec,
    ProcessTable,
    PtySize,
    Subscription,
    compose_environment,
)
from .rpc_errors import to_connect_error
from .state import EnvdState
from .users import user_environment

R = TypeVar("R")

_SIGNALS = {pb.Signal.SIGKILL: signal.SIGKILL, pb.Signal.SIGTERM: signal.SIGTERM}


def _event(inner: Oneof) -> pb.ProcessEvent:  # type: ignore[type-arg]
    return pb.ProcessEvent(event=inner)


def _end_event(ended: Ended) -> pb.ProcessEvent:
    status = ended.status
    end = pb.ProcessEvent.EndEvent(exit_code=status.exit_code, exited=status.exited, status=status.status)
    if status.error is not None:
        end.error = status.error
    return _event(Oneof("end", end))


def _data_event(output: Output) -> pb.ProcessEvent:
    return _event(Oneof("data", pb.ProcessEvent.DataEvent(output=Oneof(output.kind, output.data))))


class ProcessService(process_connect.Process):
    def __init__(self, state: EnvdState, table: ProcessTable) -> None:
        self._state = state
        self._table = table

    # --- helpers -------------------------------------------------------------------------------

    def _select(self, selector: pb.ProcessSelector | None) -> ManagedProcess:
        choice = selector.selector if selector is not None else None
        if choice is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "process selector (pid or tag) is required")
        try:
            if choice.field == "pid":
                return self._table.get(pid=choice.value)
            return self._table.get(tag=choice.value)
        except ProcessError as exc:
            raise to_connect_error(exc) from exc

    def _spec(self, request: pb.StartRequest, ctx: RequestContext) -> ProcessSpec:
        config = request.process
        if config is None or not config.cmd:
            raise ConnectError(Code.INVALID_ARGUMENT, "process.cmd is required")
        account = caller_account(ctx, self._state)
        if config.has_field("cwd") and config.cwd:
            cwd = resolve_path(config.cwd, account.home)
        else:
            cwd = self._state.default_workdir or account.home
            if not os.path.isdir(cwd):
                cwd = "/"
        if not os.path.isdir(cwd):
            raise ConnectError(Code.INVALID_ARGUMENT, f"cwd '{cwd}' does not exist or is not a directory")
        env = compose_environment(
            os.environ, self._state.env_vars, config.envs or {},
            user_environment(account, os.environ.get("PATH")),
        )
        pty = None
        if request.pty is not None and request.pty.size is not None:
            pty = PtySize(cols=request.pty.size.cols or 80, rows=request.pty.size.rows or 24)
        elif request.pty is not None:
            pty = PtySize(cols=80, rows=24)
        return ProcessSpec(
            cmd=config.cmd,
            args=tuple(config.args or ()),
            envs=dict(config.envs or {}),
            cwd=cwd,
            account=account,
            env=env,
            tag=request.tag if request.has_field("tag") else None,
            pty=pty,
            stdin=request.stdin if request.has_field("stdin") else True,
        )

    @staticmethod
    async def _stream(
        process: ManagedProcess,
        sub: Subscription,
        ctx: RequestContext,
        wrap: Callable[[pb.ProcessEvent], R],
    ) -> AsyncIterator[R]:
        interval = keepalive_interval(ctx)
        try:
            yield wrap(_event(Oneof("start", pb.ProcessEvent.StartEvent(pid=process.pid))))
            while True:
                event = await sub.get(interval)
                if event is None:
                    yield wrap(_event(Oneof("keepalive", pb.ProcessEvent.KeepAlive())))
                elif isinstance(event, Output):
                    yield wrap(_data_event(event))
                else:
                    yield wrap(_end_event(event))
                    return
        finally:
            sub.close()

    # --- RPCs ----------------------------------------------------------------------------------

    async def list(self, request: pb.ListRequest, ctx: RequestContext) -> pb.ListResponse:
        infos = []
        for process in self._table:
            spec = process.spec
            info = pb.ProcessInfo(
                config=pb.ProcessConfig(cmd=spec.cmd, args=list(spec.args), envs=dict(spec.envs), cwd=spec.cwd),
                pid=process.pid,
            )
            if spec.tag is not None:
                info.tag = spec.tag
            infos.append(info)
        return pb.ListResponse(processes=infos)

    async def start(self, request: pb.StartRequest, ctx: RequestContext) -> AsyncIterator[pb.StartResponse]:
        try:
            spec = self._spec(request, ctx)
            process, sub = self._table.start(spec)
        except ConnectError:
            raise
        except Exception as exc:
            raise to_connect_error(exc) from exc
        remaining_ms = ctx.timeout_ms
        if remaining_ms is not None:
            process.kill_after(remaining_ms / 1000.0)
        async for message in self._stream(process, sub, ctx, lambda e: pb.StartResponse(event=e)):
            yield message

    async def connect(self, request: pb.ConnectRequest, ctx: RequestContext) -> AsyncIterator[pb.ConnectResponse]:
        process = self._select(request.process)
        sub = process.subscribe()
        async for message in self._stream(process, sub, ctx, lambda e: pb.ConnectResponse(event=e)):
            yield message

    async def update(self, request: pb.UpdateRequest, ctx: RequestContext) -> pb.UpdateResponse:
        process = self._select(request.process)
        if request.pty is not None and request.pty.size is not None:
            try:
                process.resize(PtySize(cols=request.pty.size.cols, rows=request.pty.size.rows))
            except ProcessError as exc:
                raise to_connect_error(exc) from exc
        return pb.UpdateResponse()

    async def _send(self, process: ManagedProcess, data: pb.ProcessInput | None) -> None:
        choice = data.input if data is not None else None
        if choice is None:
            return
        try:
            await process.write_input(choice.value, pty=choice.field == "pty")
        except ProcessError as exc:
            raise to_connect_error(exc) from exc

    async def send_input(self, request: pb.SendInputRequest, ctx: RequestContext) -> pb.SendInputResponse:
        await self._send(self._select(request.process), request.input)
        return pb.SendInputResponse()

    async def stream_input(
        self, request: AsyncIterator[pb.StreamInputRequest], ctx: RequestContext
    ) -> pb.StreamInputResponse:
        process: ManagedProcess | None = None
        async for message in request:
            event = message.event
            if event is None:
                continue
            if event.field == "start":
                process = self._select(event.value.process)
            elif event.field == "data":
                if process is None:
                    raise ConnectError(Code.FAILED_PRECONDITION, "the first message must be a start event")
                await self._send(process, event.value.input)
        return pb.StreamInputResponse()

    async def send_signal(self, request: pb.SendSignalRequest, ctx: RequestContext) -> pb.SendSignalResponse:
        process = self._select(request.process)
        sig = _SIGNALS.get(request.signal)
        if sig is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "signal must be SIGNAL_SIGTERM or SIGNAL_SIGKILL")
        process.signal(sig)
        return pb.SendSignalResponse()

    async def close_stdin(self, request: pb.CloseStdinRequest, ctx: RequestContext) -> pb.CloseStdinResponse:
        process = self._select(request.process)
        try:
            process.close_stdin()
        except ProcessError as exc:
            raise to_connect_error(exc) from exc
        return pb.CloseStdinResponse()
