"""Request-queue bookkeeping of the per-pool scheduler (no API server needed: nothing is dispatched)."""

import asyncio

import pytest
from operator_pods import WORK_IMAGE, pod

from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle.inplace import UpdateOptions
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.scheduling.errors import NoIdleSandbox, QueueFull
from agent_sandbox.operator.scheduling.registry import SchedulerRegistry
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


class HeldAnswers:
    """A stand-in API client whose claim writes leave at once and are answered when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []
        self.answer: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    def send_now(self, method: str, path: str, *, body: dict, content_type: str = "application/json"):
        self.sent.append((method, path, body))

        async def answered() -> dict:
            return await self.answer

        return answered()


async def test_a_claim_is_written_in_its_callers_turn_and_the_pool_is_busy_until_answered():
    api = HeldAnswers()
    pods = Informer(None, "/api/v1/pods", kind="Pod")  # type: ignore[arg-type]
    pods.add_index("pool", lambda p: ["ns/pool"])
    pods._apply("ADDED", pod("p-1"))  # as the watch delivers it
    sched = PoolScheduler("ns", "pool", api, pods, OperatorMetrics())  # type: ignore[arg-type]
    sched.start()
    claim = asyncio.create_task(sched.claim(UpdateOptions(target_phase="running", images={"main": WORK_IMAGE}), 60))
    await asyncio.sleep(0)  # one turn: the caller's task only, the scheduler's own loop has not run for it
    assert [(m, path) for m, path, _ in api.sent] == [("PATCH", "/api/v1/namespaces/ns/pods/p-1")]
    assert api.sent[0][2]["metadata"]["resourceVersion"] == "10"  # the conditional claim write
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sched.wait_quiet(0.1)  # the write is unanswered: the pool controller must still wait
    assert loop.time() - started >= 0.09
    written = pod("p-1", "running", image=WORK_IMAGE, rv="11")
    api.answer.set_result(written)
    assert await asyncio.wait_for(claim, 1) == written
    await asyncio.wait_for(sched.wait_quiet(5), 0.5)
    await sched.stop()


async def test_a_pools_scheduler_is_ready_before_its_first_claim():
    """Seen through the pools informer, a live pool gets its scheduler, its idle pods already queued, so the
    first claim does not pay for listing them; a pool being deleted gets none, and a deleted pool's stops."""
    pods = Informer(None, "/api/v1/pods", kind="Pod")  # type: ignore[arg-type]
    pods.add_index("pool", lambda p: [f"ns/{p['metadata']['labels']['agentsandbox.io/sandbox-pool']}"])
    pods._apply("ADDED", pod("p-1"))
    registry = SchedulerRegistry(None, pods, OperatorMetrics())  # type: ignore[arg-type]
    pool = {"metadata": {"namespace": "ns", "name": "pool"}}
    registry.on_pool_event("ADDED", None, pool)
    registry.on_pool_event("MODIFIED", pool, pool)
    gone = {"metadata": {"namespace": "ns", "name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    registry.on_pool_event("MODIFIED", gone, gone)
    registry.on_pool_event("DELETED", None, {"metadata": {"namespace": "ns", "name": "older"}})
    assert len(registry) == 1
    sched = registry.get("ns", "pool")
    assert sched.snapshot()["idle_ready"] == 1
    registry.on_pool_event("DELETED", pool, None)
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(registry) == 0
    with pytest.raises(NoIdleSandbox, match="shutting down"):
        await sched.claim(UpdateOptions(target_phase="running"), 60)
    await registry.stop()
