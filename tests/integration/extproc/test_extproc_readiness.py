"""``/readyz`` says whether Envoy can use this data plane right now, not merely that it once started.

503 until the Pod watch has synced once (API server unreachable at start-up), 200 once it has;
with several workers, 503 while the ExtProc listener does not answer (workers stopped, a worker
dead and being restarted) and 200 again once it does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from extproc_stack import ExtprocProcess, free_port

from agent_sandbox.localcluster.app import LocalCluster

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def status(extproc: ExtprocProcess, path: str = "/readyz") -> int:
    try:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
                    session.get(f"http://127.0.0.1:{extproc.health_port}{path}") as resp):
            return resp.status
    except aiohttp.ClientError:
        return 0


async def until(extproc: ExtprocProcess, expected: int, within: float) -> None:
    deadline = time.monotonic() + within
    seen = []
    while time.monotonic() < deadline:
        seen.append(await status(extproc))
        if seen[-1] == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {expected} within {within}s (last: {seen[-5:]})")


def worker_pids(extproc: ExtprocProcess) -> list[int]:
    assert extproc.process is not None
    pid = extproc.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_not_ready_until_the_pod_watch_has_synced(tmp_path: Path) -> None:
    cluster = LocalCluster(state_dir=tmp_path / "cluster", port=free_port(), tls_port=free_port())
    await cluster.start()
    await cluster.stop()  # the kubeconfig stays valid; nothing answers at its address yet
    extproc = ExtprocProcess(cluster.kubeconfig)
    await extproc.start(wait_ready=False)
    try:
        await until(extproc, 503, within=20)
        assert await status(extproc, "/healthz") == 200
        await asyncio.sleep(1.0)
        assert await status(extproc) == 503  # still no API server: still not ready
        await cluster.start()
        await until(extproc, 200, within=20)
    finally:
        await extproc.stop()
        await cluster.stop()


async def test_not_ready_while_the_extproc_listener_does_not_answer() -> None:
    async with LocalCluster() as cluster:
        extproc = ExtprocProcess(cluster.kubeconfig, workers=2)
        await extproc.start()
        try:
            assert await status(extproc) == 200
            pids = worker_pids(extproc)
            assert len(pids) == 2
            # Stopped workers: the kernel still accepts connections on the port, nobody serves them.
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                await until(extproc, 503, within=5)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            await until(extproc, 200, within=5)
            # A dead worker: not ready until the supervisor has restarted it and it has synced.
            os.kill(pids[0], signal.SIGKILL)
            await until(extproc, 503, within=5)
            # The surviving worker may answer the probe before the supervisor has reaped the dead
            # one (a loaded machine): readiness is judged once the supervisor knows.
            for _ in range(200):  # 10 s
                if pids[0] not in worker_pids(extproc):
                    break
                await asyncio.sleep(0.05)
            assert pids[0] not in worker_pids(extproc)
            await until(extproc, 200, within=30)
            assert len(worker_pids(extproc)) == 2
        finally:
            await extproc.stop()
