"""Stopping child processes the same way everywhere: SIGTERM, a grace period, then SIGKILL.

Every service and test harness that runs a helper process (Envoy, extproc
workers, the services of the single-machine stack) must leave nothing behind
even when the child ignores SIGTERM; one implementation keeps that promise.
"""

from __future__ import annotations

import asyncio


async def terminate(proc: asyncio.subprocess.Process | None, grace: float = 5.0) -> int | None:
    """SIGTERM ``proc``, wait up to ``grace`` seconds, then SIGKILL; returns its exit code."""
    if proc is None or proc.returncode is not None:
        return None if proc is None else proc.returncode
    proc.terminate()
    try:
        return await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        return await proc.wait()
