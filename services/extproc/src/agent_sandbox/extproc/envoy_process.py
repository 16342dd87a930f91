"""Run a real Envoy with the data-plane configuration (single-machine stack, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from agent_sandbox.common.subprocesses import terminate

from .envoy_config import EnvoyPorts, envoy_binary, render


class EnvoyProcess:
    def __init__(self, ports: EnvoyPorts, workdir: Path, *, concurrency: int = 1,
                 log_level: str = "warning", config_text: str | None = None, ready_timeout: float = 15.0) -> None:
        self.ports = ports
        self.workdir = workdir
        self.concurrency = concurrency
        self.log_level = log_level
        self.config_text = config_text
        self.ready_timeout = ready_timeout
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.ports.listen_address in ("0.0.0.0", "") else self.ports.listen_address
        return f"http://{host}:{self.ports.listen_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    @property
    def admin_url(self) -> str:
        return f"http://{self.ports.admin_address}:{self.ports.admin_port}"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "envoy.yaml"
        config.write_text(self.config_text if self.config_text is not None else render(self.ports))
        self.process = await asyncio.create_subprocess_exec(
            envoy_binary(), "-c", str(config), "--concurrency", str(self.concurrency),
            "--disable-hot-restart", "--log-level", self.log_level, "--log-path", str(self.log_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.ready_timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    break
                try:
                    async with session.get(self.admin_url + "/ready") as resp:
                        if resp.status == 200 and (await resp.text()).strip() == "LIVE":
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        log_tail = self.log_path.read_text()[-3000:] if self.log_path.exists() else ""
        await self.stop()
        raise RuntimeError(f"envoy did not become ready: {log_tail}")

    async def stop(self) -> None:
        proc, self.process = self.process, None
        await terminate(proc, 5.0)

    async def __aenter__(self) -> EnvoyProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
