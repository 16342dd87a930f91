"""Run one service as a child process and keep it running: a crash is reported and restarted with backoff.

Children get their own session (a Ctrl-C in the terminal reaches ``up`` only, which then stops
them in order) and a parent-death signal set by ``setpriv --pdeathsig`` (util-linux) before the
exec (if ``up`` itself is killed, they get SIGTERM instead of living on; no ``preexec_fn``,
which is unsafe once the process has threads). Output goes to ``<state>/logs/<service>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from agent_sandbox.common.logging import get_logger
from agent_sandbox.localcluster.stack.plan import Health, ServiceSpec

log = get_logger(__name__)

HEALTH_TIMEOUT_S = 2.0


class Backoff:
    """Restart delays: ``base`` doubling to ``cap``; a run of ``stable_after`` seconds starts over."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, stable_after: float = 60.0) -> None:
        self.base, self.cap, self.stable_after = base, cap, stable_after
        self.attempt = 0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.stable_after:
            self.attempt = 0
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return delay


class ServiceFailed(RuntimeError):
    """A service exited or never became healthy during start-up."""


async def probe(health: Health, session: aiohttp.ClientSession | None = None) -> bool:
    """True when the health endpoint answers 200 within :data:`HEALTH_TIMEOUT_S`."""
    timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
    own = session is None
    if session is None:
        connector = aiohttp.UnixConnector(path=health.unix_socket) if health.unix_socket else None
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    try:
        async with session.get(health.url, timeout=timeout) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False
    finally:
        if own:
            await session.close()


def die_with_parent_prefix() -> tuple[str, ...]:
    """The command prefix that gives the child SIGTERM when ``up`` dies (empty without setpriv)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "TERM", "--") if setpriv else ()


class Supervised:
    def __init__(self, spec: ServiceSpec, log_dir: Path, *, report: Callable[[str], None],
                 on_started: Callable[[Supervised], None], backoff: Backoff | None = None) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        self._report = report
        self._on_started = on_started
        self._backoff = backoff or Backoff()
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AGENT_SANDBOX_LOG_FORMAT": "json", **self.spec.env}
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *die_with_parent_prefix(), *self.spec.argv, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._started_at = time.monotonic()
        self._on_started(self)

    async def start(self, ready_within: float) -> None:
        """Spawn the service and wait until it is healthy; then keep it running in the background."""
        await self._spawn()
        await self.wait_healthy(ready_within)
        self._watch = asyncio.get_running_loop().create_task(self._keep_running(), name=f"supervise:{self.spec.name}")

    async def wait_healthy(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            proc = self.process
            if proc is None or proc.returncode is not None:
                code = proc.returncode if proc is not None else None
                raise ServiceFailed(f"{self.spec.name} exited with code {code} during start-up; "
                                    f"last lines of {self.log_path}:\n{self.log_tail()}")
            if await probe(self.spec.health):
                return
            await asyncio.sleep(0.1)
        raise ServiceFailed(f"{self.spec.name} was not healthy within {within:.0f}s; last lines of "
                            f"{self.log_path}:\n{self.log_tail()}")

    async def _keep_running(self) -> None:
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            delay = self._backoff.next_delay(time.monotonic() - self._started_at)
            self.restarts += 1
            self._report(f"{self.spec.name} exited with code {code}; restarting in {delay:.1f}s "
                         f"(restart {self.restarts}, log {self.log_path})")
            log.error("service exited; restarting", service=self.spec.name, code=code, retry_in=delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn()
            except OSError as exc:
                self._report(f"{self.spec.name} could not be started: {exc}")
                log.error("service restart failed", service=self.spec.name, error=str(exc))
                self.process = None
                self._started_at = time.monotonic()
                await asyncio.sleep(self._backoff.next_delay(0))
                continue

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self.process
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                self._report(f"{self.spec.name} did not stop within {grace:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        return proc.returncode

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""
