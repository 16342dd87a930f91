"""Several extproc worker processes behind one ExtProc port.

``--workers N`` starts N worker processes that all bind the ExtProc port with
SO_REUSEPORT; the kernel spreads Envoy's HTTP/2 connections across them (Envoy
opens more connections under load because the config caps streams per
connection). On a 2-core machine shared with Envoy and the load generator, two
workers measured slightly ahead of one (bench/dataplane: throughput ratio 0.55 vs
0.48, within the noise of a shared machine). Each worker keeps its own
route table, fed by its own watches, so no request ever crosses a process
boundary. This supervisor owns what must exist once: the public control-plane
port (its backend fans PushRoute/EvictRoute out to every worker and merges
GetLastActive), the health/metrics port, and restarting a worker that dies.

Supervisor and workers talk over Unix sockets in a private (0700) directory,
using the same ControlPlane gRPC service with a random per-run key. A worker
gets its configuration on stdin and exits when stdin closes, so it never
outlives the supervisor.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from agent_sandbox.common.logging import get_logger
from agent_sandbox.ctrlplane.client import ControlPlaneClient

from .control import control_server
from .health import start_health
from .readiness import extproc_answers
from .settings import ExtprocSettings

log = get_logger(__name__)

READY_LINE = b"ready"


@dataclass(slots=True)
class Worker:
    index: int
    socket: Path
    client: ControlPlaneClient
    ready: bool = False
    restarts: int = 0
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


class FanoutBackend:
    """Control-plane backend that applies every call to every worker."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def push_route(self, sandbox_id: str, namespace: str, pod_name: str) -> None:
        await asyncio.gather(*(w.client.push_route(sandbox_id, namespace, pod_name) for w in self.workers))

    async def evict_route(self, sandbox_id: str) -> None:
        await asyncio.gather(*(w.client.evict_route(sandbox_id) for w in self.workers))

    async def last_active(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for snapshot in await asyncio.gather(*(w.client.get_last_active() for w in self.workers)):
            for sid, at in (snapshot or {}).items():
                # Same fixed-width RFC 3339 UTC format everywhere: string order is time order.
                if at > merged.get(sid, ""):
                    merged[sid] = at
        return merged


def worker_config(settings: ExtprocSettings, control_address: str, control_key: str) -> bytes:
    data = settings.model_dump(mode="python")
    for name in ("admin_key", "secret"):
        value = getattr(settings, name)
        data[name] = value.get_secret_value() if value is not None else None
    return orjson.dumps({"settings": data, "control_address": control_address, "control_key": control_key})


async def _supervise(worker: Worker, config: bytes, stop: asyncio.Event) -> None:
    backoff = 0.2
    while not stop.is_set():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_sandbox.extproc.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        worker.process = proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(config + b"\n")
        await proc.stdin.drain()
        log.info("worker started", worker=worker.index, pid=proc.pid)
        async for line in proc.stdout:
            if line.strip() == READY_LINE:
                worker.ready = True
                backoff = 0.2
        code = await proc.wait()
        worker.ready = False
        if stop.is_set():
            return
        worker.restarts += 1
        log.error("worker exited, restarting", worker=worker.index, code=code, restarts=worker.restarts)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)


async def run_supervisor(settings: ExtprocSettings, stop: asyncio.Event, runtime_dir: Path) -> None:
    internal_key = secrets.token_hex(32)
    workers = [
        Worker(i, runtime_dir / f"worker-{i}.sock",
               ControlPlaneClient(f"unix:{runtime_dir / f'worker-{i}.sock'}", internal_key, timeout=1.0))
        for i in range(settings.workers)
    ]
    admin_key = settings.admin_key_value()
    control = control_server(FanoutBackend(workers), settings.control_listen, admin_key)
    await control.start()
    async def ready() -> bool:
        return all(w.ready and w.alive() for w in workers) and await extproc_answers(settings.listen)

    health = None
    if settings.health_listen:
        health = await start_health(settings.health_listen, ready, admin_key)
    tasks = [
        asyncio.create_task(_supervise(w, worker_config(settings, f"unix:{w.socket}", internal_key), stop))
        for w in workers
    ]
    log.info("extproc supervisor serving", workers=settings.workers, listen=settings.listen,
             control=settings.control_listen)
    try:
        await stop.wait()
    finally:
        for w in workers:
            if w.process is not None and w.process.returncode is None:
                w.process.terminate()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        await control.stop(1.0)
        if health is not None:
            await health.cleanup()
        await asyncio.gather(*(w.client.close() for w in workers))
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
