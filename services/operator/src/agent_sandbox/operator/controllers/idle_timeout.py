"""The idle-timeout loop (behaviour §10; leader only).

Every interval: fetch the data plane's last-activity map, then for each
Running sandbox with an ``idle-timeout`` decide whether it has been idle too
long (release as Released / IdleTimeout) or persist newer activity into the
``last-active`` annotation so it survives an ExtProc restart. When ExtProc is
unreachable the tick is skipped — but only for ``dataplane_grace_s``; after
that the annotations alone decide, so a dead data plane cannot keep sandboxes
alive forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.dataplane import LastActiveSource
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pods_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.lifecycle.actions import Lifecycle
from agent_sandbox.operator.lifecycle.release import StopDetails
from agent_sandbox.operator.lifecycle.timeouts import idle_decision
from agent_sandbox.operator.timeutil import format_time, now_utc, parse_time

DEFAULT_INTERVAL_S = 120.0
DEFAULT_DATAPLANE_GRACE_S = 600.0

log = get_logger(__name__)


class IdleTimeoutLoop:
    def __init__(self, client: KubeClient, pods: Informer, pools: Informer, lifecycle: Lifecycle,
                 last_active_source: LastActiveSource | None, *, interval_s: float = DEFAULT_INTERVAL_S,
                 dataplane_grace_s: float = DEFAULT_DATAPLANE_GRACE_S,
                 now: Callable[[], datetime] = now_utc) -> None:
        self.client = client
        self.pods = pods
        self.pools = pools
        self.lifecycle = lifecycle
        self.last_active_source = last_active_source
        self.interval_s = interval_s
        self.dataplane_grace_s = dataplane_grace_s
        self.now = now
        self._unreachable_since: float | None = None
        self.ticks = 0

    async def run(self) -> None:
        await self.pods.synced.wait()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("idle-timeout tick failed", error=repr(exc))
            await asyncio.sleep(self.interval_s)

    async def _observed(self) -> tuple[bool, dict[str, datetime]]:
        if self.last_active_source is None:
            return True, {}  # no data plane: the last-active annotation is the activity record
        raw = await self.last_active_source.get_last_active()
        if raw is None:
            since = self._unreachable_since = self._unreachable_since or time.monotonic()
            if time.monotonic() - since < self.dataplane_grace_s:
                log.warning("extproc unreachable, skipping idle-timeout tick")
                return False, {}
            return True, {}
        self._unreachable_since = None
        return True, {sid: t for sid, stamp in raw.items() if (t := parse_time(stamp)) is not None}

    async def tick(self) -> int:
        """One pass; returns how many sandboxes were released."""
        self.ticks += 1
        proceed, observed = await self._observed()
        if not proceed:
            return 0
        released = 0
        now = self.now()
        for pod in self.pods.by_index("phase", v.SandboxPhase.RUNNING.value):
            decision = idle_decision(pod, observed.get(pv.sandbox_id(pod)), now)
            if decision is None:
                continue
            try:
                if decision.expired:
                    pool = self.pools.get(f"{pv.namespace(pod)}/{pv.pool_name(pod)}")
                    if pool is None:
                        continue
                    await self.lifecycle.release(pod, pool, StopDetails(
                        v.StopReason.RELEASED, "IdleTimeout", decision.message()), disable_retry=True)
                    released += 1
                elif decision.refresh_to is not None:
                    await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                        "resourceVersion": pv.resource_version(pod),
                        "annotations": {v.ANN_LAST_ACTIVE: format_time(decision.refresh_to)}}})
            except (KubeError, inplace.UnexpectedPodPhase) as exc:
                log.debug("idle-timeout action lost a race", pod=pv.key(pod), error=str(exc))
        return released
