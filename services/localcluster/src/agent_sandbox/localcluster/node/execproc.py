"""Run one ``pods/exec`` call as a child process and pump its streams (shared by the ``local`` and ``sim`` nodes).

The nodes differ only in the argv that reaches the container (``local``
enters the sandbox's namespaces; ``sim`` runs in a scratch directory); the
plumbing is the same and lives here: stdin from the call's bounded queue,
stdout/stderr streamed to the client as they come (never buffered whole), or a
pseudo-terminal for ``tty`` sessions (stderr merged, resizes applied). The
process is killed when the session ends early (client gone, node stopping),
so no exec outlives its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pathlib
import signal
import struct
import subprocess
import termios
from collections.abc import Sequence

from agent_sandbox.localcluster.apiserver.execprotocol import STDERR, STDOUT
from agent_sandbox.localcluster.apiserver.podexec import ExecCall

CHUNK = 32 * 1024
STOP_GRACE = 2.0


async def run_exec(argv: Sequence[str], call: ExecCall, *, env: dict[str, str],
                   cwd: pathlib.Path | None = None, stop_signal: int | None = None) -> int:
    """Run ``argv`` for ``call``; its exit code (128 + signal when killed by one).

    For a ``tty`` call the streams are a pseudo-terminal and ``argv`` must make it the
    controlling terminal of a new session (``setsid --ctty``, or the sandbox entry helper).
    A session that ends early sends ``stop_signal`` first when given (a helper that must
    reap what it started), and SIGKILLs the process group after :data:`STOP_GRACE`.
    """
    if call.options.tty:
        return await _run_tty(argv, call, env, cwd, stop_signal)
    opts = call.options
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, start_new_session=True,
        stdin=subprocess.PIPE if opts.stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE if opts.stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE if opts.stderr else subprocess.DEVNULL)
    pumps = []
    if proc.stdout is not None:
        pumps.append(_pump(proc.stdout, STDOUT, call))
    if proc.stderr is not None:
        pumps.append(_pump(proc.stderr, STDERR, call))
    feeder = asyncio.get_running_loop().create_task(_feed(proc.stdin, call)) if proc.stdin else None
    try:
        await asyncio.gather(*pumps)
        code = await proc.wait()
    finally:
        await _stop(proc, stop_signal)
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
    return code if code >= 0 else 128 - code


async def _pump(stream: asyncio.StreamReader, channel: int, call: ExecCall) -> None:
    while chunk := await stream.read(CHUNK):
        await call.output(channel, chunk)


async def _feed(stdin: asyncio.StreamWriter | None, call: ExecCall) -> None:
    assert stdin is not None
    try:
        while (data := await call.stdin.get()) is not None:
            stdin.write(data)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


async def _run_tty(argv: Sequence[str], call: ExecCall, env: dict[str, str], cwd: pathlib.Path | None,
                   stop_signal: int | None) -> int:
    """A pseudo-terminal session: all three streams are the pty, whose output is the client's stdout."""
    master, slave = os.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env={"TERM": "xterm", **env}, cwd=cwd, stdin=slave, stdout=slave, stderr=slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    control = os.dup(master)  # for stdin writes and resizes; the read transport owns ``master``
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(master, "rb", buffering=0))

    async def feed() -> None:
        while (data := await call.stdin.get()) is not None:
            await asyncio.to_thread(os.write, control, data)

    async def resize() -> None:
        while True:
            cols, rows = await call.resize.get()
            fcntl.ioctl(control, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    helpers = [loop.create_task(resize())] + ([loop.create_task(feed())] if call.options.stdin else [])
    try:
        with contextlib.suppress(OSError):  # EIO once every holder of the terminal has gone
            while chunk := await reader.read(CHUNK):
                await call.output(STDOUT, chunk)
        code = await proc.wait()
    finally:
        transport.close()
        await _stop(proc, stop_signal)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        os.close(control)
    return code if code >= 0 else 128 - code


async def _stop(proc: asyncio.subprocess.Process, stop_signal: int | None) -> None:
    if proc.returncode is not None:
        return
    if stop_signal is not None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(stop_signal)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
    if proc.returncode is None:
        _kill(proc.pid)
    await proc.wait()


def _kill(pid: int) -> None:
    """SIGKILL the exec's process and its process group (it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
