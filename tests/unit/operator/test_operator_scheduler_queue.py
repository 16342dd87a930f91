"""Request-queue bookkeeping of the per-pool scheduler (no API server needed: nothing is dispatched)."""

import asyncio

import pytest

from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle.inplace import UpdateOptions
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.scheduling.errors import NoIdleSandbox, QueueFull
from agent_sandbox.operator.scheduling.scheduler import PoolScheduler


def scheduler(capacity: int) -> PoolScheduler:
    pods = Informer(None, "/api/v1/pods", kind="Pod")  # type: ignore[arg-type]
    pods.add_index("pool", lambda p: [])
    return PoolScheduler("ns", "pool", None, pods, OperatorMetrics(), queue_capacity=capacity)  # type: ignore[arg-type]


async def test_full_queue_is_refused_with_pool_status_and_shutdown_fails_the_rest():
    sched = scheduler(2)
    waiting = [asyncio.create_task(sched.claim(UpdateOptions(target_phase="running"), 60)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as full:
        await sched.claim(UpdateOptions(target_phase="running"), 60)
    assert str(full.value) == "scheduler queue is full" and full.value.detail["idle"] == 0
    assert sched.snapshot()["queue_len"] == 2
    await asyncio.wait_for(sched.stop(), 1)
    for task in waiting:
        with pytest.raises(NoIdleSandbox, match="shutting down"):
            await task
    with pytest.raises(NoIdleSandbox):
        await sched.claim(UpdateOptions(target_phase="running"), 60)


async def test_scheduler_is_quiet_only_without_queued_claims():
    sched = scheduler(4)
    await asyncio.wait_for(sched.wait_quiet(5), 0.5)  # nothing asked: returns at once
    waiting = asyncio.create_task(sched.claim(UpdateOptions(target_phase="running"), 60))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sched.wait_quiet(0.1)  # a claim is queued (no idle pod): waits the whole bound
    assert loop.time() - started >= 0.09
    await asyncio.wait_for(sched.stop(), 1)
    with pytest.raises(NoIdleSandbox):
        await waiting
    await asyncio.wait_for(sched.wait_quiet(5), 0.5)
