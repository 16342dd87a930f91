"""Leader election through a ``coordination.k8s.io/v1`` Lease.

Several operator replicas may run; all serve claims (the claim write is a CAS,
so they cannot double-hand a pod), but only the leader runs the controllers
(reconciler, idle-timeout loop, autoscaler), or two replicas would create the
same pods twice. Acquire and renew are conditional writes on the Lease's
resourceVersion. A leader that cannot renew within the lease duration stops
its controllers before another replica may take over; on shutdown the lease
is released so a successor need not wait for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.kube.client import KubeClient, KubeError, leases_path
from agent_sandbox.operator.timeutil import now_utc, parse_time

log = get_logger(__name__)


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str, *,
                 lease_s: float = 15.0, renew_s: float = 5.0, retry_s: float = 2.0) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.retry_s = retry_s
        self.is_leader = False
        self.transitions = 0

    def _spec(self, now: datetime, prior: dict[str, Any] | None) -> dict[str, Any]:
        prior = prior or {}
        same = prior.get("holderIdentity") == self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_s),
            "acquireTime": prior.get("acquireTime") if same and prior.get("acquireTime") else _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": int(prior.get("leaseTransitions") or 0) + (0 if same else 1),
        }

    async def try_acquire(self) -> bool:
        """One acquire-or-renew attempt."""
        now = now_utc()
        path = leases_path(self.namespace, self.name)
        try:
            lease = await self.client.get(path)
        except KubeError as exc:
            if not exc.not_found:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, None)}
            try:
                await self.client.create(leases_path(self.namespace), body)
                return True
            except KubeError as cexc:
                if cexc.status == 409:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renewed = parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.lease_s)
        expired = renewed is None or renewed + timedelta(seconds=duration) < now
        if holder and holder != self.identity and not expired:
            return False
        try:
            await self.client.merge_patch(path, {
                "metadata": {"resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
                "spec": self._spec(now, spec)})
        except KubeError as exc:
            if exc.conflict:
                return False
            raise
        return True

    async def release(self) -> None:
        path = leases_path(self.namespace, self.name)
        with contextlib.suppress(Exception):
            lease = await self.client.get(path)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                await self.client.merge_patch(path, {
                    "metadata": {"resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
                    "spec": {"holderIdentity": None, "renewTime": None}})

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Forever: wait for leadership, run ``lead()`` while renewals succeed, stop it when they do not."""
        try:
            while True:
                if not await self._attempt():
                    await asyncio.sleep(self.retry_s)
                    continue
                self.is_leader = True
                self.transitions += 1
                log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)
                task = asyncio.create_task(lead(), name="leader-work")
                try:
                    await self._renew_until_lost(task)
                finally:
                    self.is_leader = False
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                log.warning("lost leadership", identity=self.identity)
        finally:
            if self.is_leader:
                self.is_leader = False
            await self.release()

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire()
        except Exception as exc:
            log.warning("lease acquire failed", error=repr(exc))
            return False

    async def _renew_until_lost(self, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while not task.done():
            await asyncio.wait({task}, timeout=self.renew_s)
            if task.done():
                if task.exception() is not None:
                    log.error("leader work crashed", error=repr(task.exception()))
                return
            if await self._attempt():
                last_ok = loop.time()
            elif loop.time() - last_ok > self.lease_s * 0.8:
                return
