"""One scheduler per pool, created when the pool is seen (or on first use) and routed pod events by pool.

A scheduler lists its pool's idle pods when it starts; created by the pool's
informer event, it does so before the first claim instead of inside it.

Bounded by the number of pools: a pool's scheduler is stopped and dropped
when the pool is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.kube.client import KubeClient
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.scheduling.scheduler import OrphanHandler, PoolScheduler


class SchedulerRegistry:
    def __init__(self, client: KubeClient, pods: Informer, metrics: OperatorMetrics,
                 on_orphan: OrphanHandler | None = None) -> None:
        self._client = client
        self._pods = pods
        self._metrics = metrics
        self.on_orphan = on_orphan
        self._schedulers: dict[str, PoolScheduler] = {}
        self._forgetting: set[asyncio.Task[None]] = set()
        self._closed = False

    def get(self, namespace: str, pool: str) -> PoolScheduler:
        key = f"{namespace}/{pool}"
        sched = self._schedulers.get(key)
        if sched is None:
            sched = PoolScheduler(namespace, pool, self._client, self._pods, self._metrics,
                                  on_orphan=self.on_orphan)
            self._schedulers[key] = sched
            if not self._closed:
                sched.start()
        return sched

    def on_pool_event(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Pools informer handler: start the scheduler of a live pool; stop it once the pool is gone (on
        every replica: the leader's pool controller forgets it earlier, when the pool's pods are gone)."""
        meta = (new or old or {}).get("metadata") or {}
        if not meta.get("namespace") or not meta.get("name"):
            return
        if event == "DELETED":
            sched = self._schedulers.pop(f"{meta['namespace']}/{meta['name']}", None)
            if sched is not None:  # dropped now: a pool created again under the name gets a new one
                task = asyncio.get_running_loop().create_task(sched.stop())
                self._forgetting.add(task)
                task.add_done_callback(self._forgetting.discard)
        elif not meta.get("deletionTimestamp"):
            self.get(meta["namespace"], meta["name"])

    def on_pod_event(self, event: str, old: pv.Pod | None, new: pv.Pod | None) -> None:
        pod = new or old
        if pod is None:
            return
        sched = self._schedulers.get(f"{pv.namespace(pod)}/{pv.pool_name(pod)}")
        if sched is not None:
            sched.on_pod_event(event, old, new)

    async def wait_quiet(self, pool_key: str, timeout_s: float) -> None:
        """See :meth:`PoolScheduler.wait_quiet` (a pool nobody claimed from is quiet)."""
        sched = self._schedulers.get(pool_key)
        if sched is not None:
            await sched.wait_quiet(timeout_s)

    def claims_first(self) -> Awaitable[None] | None:
        """Gate for the pod informer (:meth:`Informer.set_gate`): while claim writes are in flight, an
        awaitable that ends when they are done; None (go on) otherwise."""
        busy = [s for s in self._schedulers.values() if s.writing]
        return asyncio.gather(*(s.wait_writes_idle() for s in busy)) if busy else None

    def notify_idle(self, pool_key: str) -> None:
        sched = self._schedulers.get(pool_key)
        if sched is not None:
            sched.notify_idle_available()

    async def forget(self, pool_key: str) -> None:
        sched = self._schedulers.pop(pool_key, None)
        if sched is not None:
            await sched.stop()

    async def stop(self) -> None:
        self._closed = True
        for key in list(self._schedulers):
            await self.forget(key)
        if self._forgetting:
            await asyncio.gather(*self._forgetting, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._schedulers)
