"""Lifecycle writes shared by the API, the reconciler and the idle loop: release and finish.

Release (a caller's delete, an idle or startup timeout, a crash, an abandoned
claim) is always the same in-place transition back to the idle images. Pods
that cannot be recycled are deleted instead, their finalizer removal saying
how their sandbox ended. History is not written here: every replica derives
it from the pod transitions it observes (:mod:`.history_feed`); ``history``
is the store those records land in, which the services read.
"""

from __future__ import annotations

import contextlib
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.dataplane import DataPlane
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pods_path
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.release import StopDetails, release_options, stop_annotations
from agent_sandbox.operator.lifecycle.updater import trigger_update
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.timeutil import now_utc

log = get_logger(__name__)


class Lifecycle:
    def __init__(self, client: KubeClient, history: HistoryStore, metrics: OperatorMetrics,
                 dataplane: DataPlane | None = None) -> None:
        self.client = client
        self.history = history
        self.metrics = metrics
        self.dataplane = dataplane

    async def _evict_route(self, pod: pv.Pod) -> None:
        """Make the data plane refuse the sandbox ``pod`` held, now rather than when its watch catches up.

        Called only after the write that ends the sandbox succeeded (a lost race leaves it running and
        routable). Never raises: with extproc down it is unroutable anyway."""
        sid = pv.sandbox_id(pod)
        if sid and self.dataplane is not None:
            await self.dataplane.evict_route(sid)

    async def release(self, pod: pv.Pod, pool: dict[str, Any], stop: StopDetails, *,
                      disable_retry: bool = False) -> pv.Pod:
        """Start recycling ``pod`` (→ Stopping); raises KubeError / UnexpectedPodPhase on a lost race."""
        opts = release_options(pod, pool, stop, now_utc())
        try:
            written, _ = await trigger_update(self.client, pod, opts, disable_retry=disable_retry)
        except (KubeError, inplace.UnexpectedPodPhase):
            self.metrics.inplace_total.labels("idle", "conflict").inc()
            raise
        await self._evict_route(pod)
        self.metrics.inplace_total.labels("idle", "success").inc()
        self.metrics.delete_total.labels(stop.reason.value).inc()
        self._observe_stop(pod, stop.reason.value)
        log.info("sandbox released", sandbox_id=pv.sandbox_id(pod), pod=pv.key(pod), reason=stop.reason.value,
                 failure=stop.failure_reason or None)
        return written

    def _observe_stop(self, pod: pv.Pod, reason: str) -> None:
        now = now_utc()
        started = pv.time_annotation(pod, v.ANN_STARTED_AT)
        if started is not None:
            self.metrics.running_duration.labels(reason).observe(max(0.0, (now - started).total_seconds()))
        else:
            claimed = pv.time_annotation(pod, v.ANN_CLAIMED_AT)
            if claimed is not None:
                self.metrics.starting_duration.labels("canceled").observe(
                    max(0.0, (now - claimed).total_seconds()))
        sid = pv.sandbox_id(pod)
        if sid:
            with contextlib.suppress(KeyError):
                self.metrics.running_info.remove(pv.namespace(pod), pv.name(pod), sid)

    def observe_recycled(self, pod: pv.Pod) -> None:
        """Count the recycle of ``pod`` (Stopping→Idle just written) in the recycle-duration metric."""
        terminated = pv.time_annotation(pod, v.ANN_TERMINATED_AT)
        if terminated is not None:
            self.metrics.recycle_duration.observe(max(0.0, (now_utc() - terminated).total_seconds()))

    async def remove_finalizer(self, pod: pv.Pod, *, resource_version: str | None = None,
                               stop: StopDetails | None = None) -> pv.Pod | None:
        """Let ``pod`` go. With ``stop``, the same write says how its sandbox ended (unless a release
        already did), so every replica records that when it sees the pod deleted."""
        fins = pv.finalizers(pod)
        if v.FINALIZER_SANDBOX_PROTECTION not in fins:
            return pod
        meta: dict[str, Any] = {"finalizers": [f for f in fins if f != v.FINALIZER_SANDBOX_PROTECTION]}
        if stop is not None and pv.sandbox_id(pod) and not pv.annotations(pod).get(v.ANN_STOP_REASON):
            meta["annotations"] = stop_annotations(pod, stop, now_utc())
        if resource_version:
            meta["resourceVersion"] = resource_version
        try:
            return await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": meta})
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def delete_pod(self, pod: pv.Pod, *, resource_version: str | None = None) -> bool:
        """Delete ``pod`` (after removing our finalizer); False when it was gone or changed meanwhile."""
        try:
            await self.client.delete(pods_path(pv.namespace(pod), pv.name(pod)),
                                     resource_version=resource_version)
        except KubeError as exc:
            if exc.not_found or exc.conflict:
                return False
            raise
        await self._evict_route(pod)
        return True
