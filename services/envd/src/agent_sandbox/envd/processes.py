"""Child processes owned by envd: spawn, stream output, feed input, signal, reap.

A process outlives the RPC that started it: a client that disconnects leaves it
running (background commands rely on this), ``Connect`` re-attaches later, and
only ``SendSignal`` or the start request's deadline kills it. So processes live in
a :class:`ProcessTable`, and RPC streams are *subscribers* of a process.

Output is read with the event loop (non-blocking fds, no threads) and fanned out
to every subscriber through a small bounded queue. A slow subscriber therefore
slows the reader, and the child blocks on a full pipe instead of envd buffering
without bound. Exit is detected through a pidfd; after exit the output still in
the pipe is drained, but a pipe held open by a grandchild (``sleep 100 &``) does
not delay the end event.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent_sandbox.common.logging import get_logger

from .exitstatus import ExitStatus, from_wait_status
from .users import Account

log = get_logger(__name__)

READ_CHUNK = 32 * 1024
SUBSCRIBER_QUEUE = 64
MAX_PROCESSES = 1024
# The deadline kill lands this long after the client's own deadline, so the caller
# sees its SDK's timeout error rather than a race with the kill's end event.
DEADLINE_GRACE = 0.25
# Scrubbed from children: envd's own configuration is not the sandbox's environment.
_INTERNAL_ENV_PREFIX = "AGENT_SANDBOX_"

OutputKind = Literal["stdout", "stderr", "pty"]


class ProcessError(Exception):
    """A process operation failed; ``kind`` picks the Connect code, the message is safe to show."""

    def __init__(self, kind: Literal["not_found", "invalid_argument", "resource_exhausted", "internal"],
                 message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Output:
    kind: OutputKind
    data: bytes


@dataclass(frozen=True, slots=True)
class Ended:
    status: ExitStatus


Event = Output | Ended


@dataclass(frozen=True, slots=True)
class PtySize:
    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    cmd: str
    args: tuple[str, ...]
    envs: Mapping[str, str]
    cwd: str
    account: Account
    env: Mapping[str, str]
    tag: str | None = None
    pty: PtySize | None = None
    stdin: bool = True


def compose_environment(
    base: Mapping[str, str],
    sandbox_vars: Mapping[str, str],
    request_vars: Mapping[str, str],
    login_vars: Mapping[str, str],
) -> dict[str, str]:
    """The child's environment: envd's (minus internals) < sandbox vars < login vars < request vars."""
    env = {k: v for k, v in base.items() if not k.startswith(_INTERNAL_ENV_PREFIX)}
    env.update(sandbox_vars)
    login = dict(login_vars)
    if "PATH" in env:
        login.pop("PATH", None)
    env.update(login)
    env.update(request_vars)
    return env


class Subscription:
    """One reader of a process's events; closing it never affects the process."""

    def __init__(self, process: ManagedProcess) -> None:
        self._process = process
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)

    async def get(self, max_wait: float | None) -> Event | None:
        """The next event, or None when ``max_wait`` seconds pass without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), max_wait)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._process._subscribers.discard(self)
        # Unblock a publisher waiting on this (now orphaned) queue.
        while not self.queue.empty():
            self.queue.get_nowait()


@dataclass(eq=False)
class ManagedProcess:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    stdin_fd: int | None
    pty_fd: int | None
    _subscribers: set[Subscription] = field(default_factory=set)
    _exited: bool = False
    _read_waiters: set[asyncio.Future[None]] = field(default_factory=set)
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _end: ExitStatus | None = None
    _kill_timer: asyncio.TimerHandle | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        if self._end is not None:
            sub.queue.put_nowait(Ended(self._end))
        else:
            self._subscribers.add(sub)
        return sub

    # --- signals -------------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        """Signal the process group (the command and everything it started)."""
        if self.popen.returncode is not None:
            return  # already reaped: the pid may belong to someone else by now
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_after(self, seconds: float) -> None:
        """Kill the process when ``seconds`` elapse (the start request's Connect deadline)."""
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        loop = asyncio.get_running_loop()
        self._kill_timer = loop.call_later(max(seconds, 0.0) + DEADLINE_GRACE, self._deadline_reached)

    def _deadline_reached(self) -> None:
        if self.popen.returncode is None:
            log.info("process_deadline_kill", pid=self.pid)
            self.signal(signal.SIGKILL)

    # --- input ---------------------------------------------------------------------------------

    async def write_input(self, data: bytes, *, pty: bool) -> None:
        fd = self.pty_fd if pty else self.stdin_fd
        if pty and self.pty_fd is None:
            raise ProcessError("invalid_argument", "process has no PTY")
        if fd is None:
            raise ProcessError("invalid_argument", "stdin of the process is closed or was not requested")
        async with self._write_lock:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    await self._wait_fd(fd, writable=True)
                    continue
                except OSError as exc:
                    raise ProcessError("invalid_argument", f"cannot write input: {exc.strerror}") from exc
                view = view[written:]

    def close_stdin(self) -> None:
        if self.pty_fd is not None:
            raise ProcessError("invalid_argument", "close stdin is not supported for PTY processes; send Ctrl+D")
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def resize(self, size: PtySize) -> None:
        if self.pty_fd is None:
            raise ProcessError("invalid_argument", "process has no PTY to resize")
        set_winsize(self.pty_fd, size)

    # --- I/O loop ------------------------------------------------------------------------------

    async def _wait_fd(self, fd: int, *, writable: bool = False) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        if writable:
            loop.add_writer(fd, ready)
        else:
            loop.add_reader(fd, ready)
            self._read_waiters.add(fut)
        try:
            await fut
        finally:
            if writable:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)
                self._read_waiters.discard(fut)

    async def _publish(self, event: Event) -> None:
        for sub in list(self._subscribers):
            await sub.queue.put(event)

    async def _pump(self, fd: int, kind: OutputKind) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    if self._exited:
                        return
                    await self._wait_fd(fd)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # PTY: every slave end closed
                        return
                    raise
                if not data:
                    return
                await self._publish(Output(kind, data))
        finally:
            os.close(fd)

    async def run(self, outputs: list[tuple[int, OutputKind]], on_done: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        pumps = [asyncio.create_task(self._pump(fd, kind)) for fd, kind in outputs]
        pidfd = _pidfd(self.pid)
        exited: asyncio.Future[None] = loop.create_future()
        if pidfd is not None:
            loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            if pidfd is not None:
                await exited
                wait_status = _reap(self.pid)
            else:
                wait_status = await _poll_exit(self.pid)
            self.popen.returncode = wait_status
            self._exited = True
            for waiter in list(self._read_waiters):
                if not waiter.done():
                    waiter.set_result(None)
            results = await asyncio.gather(*pumps, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.warning("process_output_error", pid=self.pid, error=str(result))
            status = from_wait_status(wait_status)
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            for fd in (self.stdin_fd, self.pty_fd):
                if fd is not None:
                    os.close(fd)
            self.stdin_fd = self.pty_fd = None
            await self._publish(Ended(status))
            self._end = status
            self._subscribers.clear()
        finally:
            if pidfd is not None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            for pump in pumps:
                pump.cancel()
            if not on_done.done():
                on_done.set_result(None)


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable at exit), or None where the kernel or sandbox lacks pidfd_open."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _try_reap(pid: int) -> int | None:
    reaped, wait_status = os.waitpid(pid, os.WNOHANG)
    return wait_status if reaped else None


async def _poll_exit(pid: int) -> int:
    """Fallback exit detection without pidfd: poll ``waitpid(WNOHANG)``."""
    while True:
        wait_status = _try_reap(pid)
        if wait_status is not None:
            return wait_status
        await asyncio.sleep(0.05)


def _reap(pid: int) -> int:
    """Collect the exit status of ``pid`` once its pidfd reported exit (does not block then)."""
    _, wait_status = os.waitpid(pid, 0)
    return wait_status


def set_winsize(fd: int, size: PtySize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))


def _take_controlling_tty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ProcessTable:
    """All live processes, by pid and by tag; bounded by :data:`MAX_PROCESSES`."""

    def __init__(self) -> None:
        self._by_pid: dict[int, ManagedProcess] = {}

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(list(self._by_pid.values()))

    def get(self, *, pid: int | None = None, tag: str | None = None) -> ManagedProcess:
        if pid is not None:
            process = self._by_pid.get(pid)
            if process is not None:
                return process
            raise ProcessError("not_found", f"process with pid {pid} not found")
        for process in self._by_pid.values():
            if tag is not None and process.spec.tag == tag:
                return process
        raise ProcessError("not_found", f"process with tag {tag!r} not found")

    def start(self, spec: ProcessSpec) -> tuple[ManagedProcess, Subscription]:
        """Spawn ``spec`` and return it with a subscription that sees all of its output."""
        if len(self._by_pid) >= MAX_PROCESSES:
            raise ProcessError("resource_exhausted", f"too many processes (limit {MAX_PROCESSES})")
        if spec.tag is not None and any(p.spec.tag == spec.tag for p in self._by_pid.values()):
            raise ProcessError("invalid_argument", f"a process with tag {spec.tag!r} already runs")
        process = _spawn(spec)
        sub = process.subscribe()
        self._by_pid[process.pid] = process
        outputs = _output_fds(process)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda _f: self._by_pid.pop(process.pid, None))
        process._task = asyncio.create_task(process.run(outputs, done))
        return process, sub

    async def shutdown(self) -> None:
        """Kill every process (envd is stopping) and wait briefly for them to be reaped."""
        tasks = []
        for process in self:
            process.signal(signal.SIGKILL)
            if process._task is not None:
                tasks.append(process._task)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


def _output_fds(process: ManagedProcess) -> list[tuple[int, OutputKind]]:
    """Non-blocking fds the pumps own (and close), detached from the Popen file objects."""
    outputs: list[tuple[int, OutputKind]] = []
    if process.pty_fd is not None:
        outputs.append((os.dup(process.pty_fd), "pty"))
    else:
        for stream, kind in ((process.popen.stdout, "stdout"), (process.popen.stderr, "stderr")):
            assert stream is not None
            outputs.append((os.dup(stream.fileno()), kind))  # type: ignore[arg-type]
            stream.close()
    for fd, _ in outputs:
        os.set_blocking(fd, False)
    return outputs


def _spawn(spec: ProcessSpec) -> ManagedProcess:
    account = spec.account
    identity: dict[str, object] = {}
    if os.geteuid() == 0 and not account.is_self:
        identity = {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}
    argv = [spec.cmd, *spec.args]
    master: int | None = None
    try:
        if spec.pty is not None:
            master, slave = os.openpty()
            set_winsize(master, spec.pty)
            try:
                popen = subprocess.Popen(
                    argv, stdin=slave, stdout=slave, stderr=slave, cwd=spec.cwd, env=dict(spec.env),
                    start_new_session=True, preexec_fn=_take_controlling_tty, close_fds=True,
                    **identity,  # type: ignore[arg-type]
                )
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            return ManagedProcess(spec=spec, popen=popen, stdin_fd=None, pty_fd=master)
        popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE if spec.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=spec.cwd, env=dict(spec.env),
            start_new_session=True, close_fds=True,
            **identity,  # type: ignore[arg-type]
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if master is not None:
            os.close(master)
        raise ProcessError("invalid_argument", f"cannot start {spec.cmd!r}: {exc}") from exc
    stdin_fd: int | None = None
    if popen.stdin is not None:
        stdin_fd = os.dup(popen.stdin.fileno())
        popen.stdin.close()
        os.set_blocking(stdin_fd, False)
    return ManagedProcess(spec=spec, popen=popen, stdin_fd=stdin_fd, pty_fd=None)
