"""The SandboxPool controller (behaviour §6.3): keeps each pool's pods in shape.

Per reconcile of one pool, in order: deletion cleanup, pool finalizer,
protection-finalizer back-fill, pods being deleted (finalizer),
Kubernetes-Failed pods (replace), in-place phases (Starting→Running with
post-start hooks, Stopping→Idle; unpullable images, startup
timeouts and stuck recycles), crashed running sandboxes, status, autoscaler,
replacement of idle pods stuck unhealthy, scale up (gated by expectations),
scale down (priority + protection window). All reads come from the informer
cache; every write that could race a claim carries a resourceVersion. Sandbox
history is not written here: every replica derives it from the pod versions
it observes (``lifecycle.history_feed``), so a write that ends a sandbox
carries how it ended (release annotations, finalizer removal with a stop).

The controller stays off the claim's critical path. A claim burst changes a
pod several times per claim; those events queue a pool's reconcile at most
once per ``POD_EVENT_WINDOW_S`` (a whole reconcile walks all the pool's pods),
and a reconcile waits — a bounded while — until the pool's scheduler has no
claim queued or in flight. The one step a sandbox waits on, finishing an
in-place swap (Starting→Running, Stopping→Idle), does not wait for either: the
pod event that shows the swap done starts that pod's completion write at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.autoscaling.policy import Decision, Policy, decide
from agent_sandbox.operator.controllers import podhealth
from agent_sandbox.operator.controllers.expectations import Expectations
from agent_sandbox.operator.controllers.scaledown import plan_scale_down
from agent_sandbox.operator.controllers.status import compute_status, count_pods
from agent_sandbox.operator.controllers.workqueue import WorkQueue
from agent_sandbox.operator.dataplane import DataPlane
from agent_sandbox.operator.durations import InvalidDuration, optional_duration
from agent_sandbox.operator.kube.client import KubeClient, KubeError, events_path, pods_path, pools_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.lifecycle.actions import Lifecycle
from agent_sandbox.operator.lifecycle.hooks import ANN_HOOKS_STATUS, HOOKS_DONE, HOOKS_FAILED_PREFIX, HookRunner
from agent_sandbox.operator.lifecycle.release import StopDetails
from agent_sandbox.operator.lifecycle.timeouts import startup_expired
from agent_sandbox.operator.lifecycle.updater import mark_completed
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.pooltemplate import build_idle_pod, idle_labels
from agent_sandbox.operator.timeutil import format_time, now_utc

DEFAULT_REQUEUE_S = 10.0
MAX_CONCURRENT_RECONCILES = 8
MAX_CONCURRENT_CREATES = 32
STOPPING_TIMEOUT_S = 300.0
#: Count-only status changes are written at most this often per pool (a claim burst changes the
#: counts on every reconcile; phase and condition changes are always written at once).
STATUS_MIN_INTERVAL_S = 1.0
#: A pool is reconciled at most once per this window because of pod events (pool events and requeues
#: are not delayed); the first event after a quiet spell reconciles at once.
POD_EVENT_WINDOW_S = 0.05
#: A reconcile waits at most this long for the pool's scheduler to have no claim queued or in flight.
CLAIMS_FIRST_MAX_WAIT_S = 0.2
#: Completion writes started straight from pod events; beyond this the reconcile finishes the rest.
MAX_EVENT_COMPLETIONS = 256

log = get_logger(__name__)


def pool_key_of_pod(pod: pv.Pod) -> str:
    pool = pv.pool_name(pod)
    return f"{pv.namespace(pod)}/{pool}" if pool else ""


def swap_finished(pod: pv.Pod) -> bool:
    """A live pod whose in-place swap (claim or release) the kubelet has finished: it needs its
    completion write."""
    return (pv.sandbox_phase(pod) in (v.SandboxPhase.STARTING.value, v.SandboxPhase.STOPPING.value)
            and not pv.is_deleting(pod) and pv.kube_phase(pod) != "Failed" and inplace.update_complete(pod))


class PoolController:
    def __init__(
        self,
        client: KubeClient,
        pods: Informer,
        pools: Informer,
        lifecycle: Lifecycle,
        metrics: OperatorMetrics,
        *,
        hooks: HookRunner | None = None,
        dataplane: DataPlane | None = None,
        notify_idle: Callable[[str], None] | None = None,
        forget_pool: Callable[[str], Awaitable[None]] | None = None,
        claims_quiet: Callable[[str, float], Awaitable[None]] | None = None,
        unhealthy_grace_s: float = podhealth.DEFAULT_UNHEALTHY_GRACE_S,
        requeue_s: float = DEFAULT_REQUEUE_S,
        workers: int = MAX_CONCURRENT_RECONCILES,
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        self.client = client
        self.pods = pods
        self.pools = pools
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.hooks = hooks
        self.dataplane = dataplane
        self.notify_idle = notify_idle
        self.forget_pool = forget_pool
        self.claims_quiet = claims_quiet
        self.unhealthy_grace_s = unhealthy_grace_s
        self.requeue_s = requeue_s
        self.workers = workers
        self.now = now
        self.expectations = Expectations()
        self.queue = WorkQueue()
        self._hook_tasks: dict[str, asyncio.Task[None]] = {}
        self._completions: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._create_sem = asyncio.Semaphore(MAX_CONCURRENT_CREATES)
        self.reconciles = 0
        self._status_written_at: dict[str, float] = {}

    # ---- wiring -----------------------------------------------------------------------------
    def on_pool_event(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        obj = new or old
        if obj is None:
            return
        if event == "MODIFIED" and old is not None and new is not None:
            om, nm = old.get("metadata") or {}, new.get("metadata") or {}
            if (om.get("generation") == nm.get("generation")
                    and om.get("deletionTimestamp") == nm.get("deletionTimestamp")
                    and om.get("annotations") == nm.get("annotations")
                    and om.get("finalizers") == nm.get("finalizers")):
                return  # status-only change: no reconcile (generation-changed predicate)
        meta = obj.get("metadata") or {}
        self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    def on_pod_event(self, event: str, old: pv.Pod | None, new: pv.Pod | None) -> None:
        pod = new or old
        if pod is None:
            return
        key = pool_key_of_pod(pod)
        if not key:
            return
        if event == "ADDED":
            self.expectations.creation_observed(key)
        elif event == "DELETED":
            self.expectations.deletion_observed(key, pv.key(pod))
        elif new is not None and self._running and swap_finished(new):
            self._complete_soon(key, new)
        self.queue.add_coalesced(key, POD_EVENT_WINDOW_S)

    async def run(self) -> None:
        """Reconcile forever with ``workers`` concurrent workers (cancel to stop)."""
        await self.pods.synced.wait()
        await self.pools.synced.wait()
        for pool in self.pools.items():
            self.on_pool_event("ADDED", None, pool)
        tasks = [asyncio.create_task(self._worker(), name=f"pool-worker-{i}") for i in range(self.workers)]
        self._running = True
        try:
            await asyncio.gather(*tasks)
        finally:
            self._running = False
            self.queue.close()
            others = (*self._hook_tasks.values(), *self._completions.values())
            for t in (*tasks, *others):
                t.cancel()
            await asyncio.gather(*tasks, *others, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                if self.claims_quiet is not None:
                    # Claims first, bounded: a steady stream of claims must not starve the pool's upkeep.
                    await self.claims_quiet(key, CLAIMS_FIRST_MAX_WAIT_S)
                requeue = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconcile failed", pool=key, error=repr(exc))
                requeue = 1.0
            finally:
                self.queue.done(key)
            if requeue is not None:
                self.queue.add_after(key, requeue)

    # ---- reconcile -------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        self.reconciles += 1
        pool = self.pools.get(key)
        if pool is None:
            self.expectations.forget(key)
            self.queue.forget(key)
            return None
        meta = pool.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return await self._finalize(key, pool)
        if v.FINALIZER_POOL not in (meta.get("finalizers") or []):
            pool = await self.client.merge_patch(pools_path(meta["namespace"], meta["name"]), {"metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "finalizers": [*(meta.get("finalizers") or []), v.FINALIZER_POOL]}})
        # Read the pods and the expectations together (no await in between): a snapshot
        # taken before creations were observed must not be combined with "satisfied" later.
        pods = self.pods.by_index("pool", key)
        in_sync = self.expectations.satisfied(key)
        now = self.now()
        requeue: list[float] = [self.requeue_s]

        await self._backfill_finalizers(pods)
        for pod in pods:
            if pv.is_deleting(pod):
                await self._pod_deleting(pod)
            elif pv.kube_phase(pod) == "Failed":
                await self._pod_failed(key, pod)
        live = [p for p in pods if not pv.is_deleting(p) and pv.kube_phase(p) != "Failed"]
        recycled = await self._in_place_phases(pool, live, now)
        await self._restarted_running(pool, live)
        if recycled and self.notify_idle is not None:
            self.notify_idle(key)

        counts = count_pods(live)
        idle_since = [inplace.idle_since(p) for p in live
                      if pv.sandbox_phase(p) in (v.SandboxPhase.IDLE.value, "")]
        decision = decide(pool, counts.available_idle, min((s for s in idle_since if s), default=None), now)
        pool = await self._apply_autoscale(pool, decision)
        if decision.requeue_after_s:
            requeue.append(decision.requeue_after_s)
        status_wait = await self._write_status(key, pool, live, decision, now)
        if status_wait:
            requeue.append(status_wait)

        replicas = int((pool.get("spec") or {}).get("replicas") or 0)
        stuck = [p for p in live if podhealth.stuck_idle(p, now, self.unhealthy_grace_s)]
        for pod in stuck:
            log.warning("replacing unhealthy idle pod", pod=pv.key(pod), reason=podhealth.unhealthy_reason(pod))
            if await self._delete_idle(key, pod):
                live.remove(pod)
        if not in_sync or not self.expectations.satisfied(key):
            return min(requeue)
        if len(live) < replicas:
            await self._scale_up(key, pool, replicas - len(live))
        elif len(live) > replicas:
            policy = Policy.from_spec(pool.get("spec") or {})
            window = policy.protection_window_s if policy.enabled else None
            plan = plan_scale_down(live, len(live) - replicas, now, window)
            for pod in plan.protect:
                await self._protect(pod, now)
            for pod in plan.delete:
                await self._delete_idle(key, pod)
            if plan.requeue_after_s:
                requeue.append(plan.requeue_after_s)
        else:
            for pod in live:
                if pv.annotations(pod).get(v.ANN_SCALE_DOWN_PROTECTED) and pv.sandbox_phase(pod) == "idle":
                    await self._unprotect(pod)
        return min(requeue)

    async def _finalize(self, key: str, pool: dict[str, Any]) -> float | None:
        pods = self.pods.by_index("pool", key)
        pool_deleted = StopDetails(v.StopReason.FAILED, "PoolDeleted", "the sandbox pool was deleted")
        for pod in pods:
            ended = pool_deleted if pv.sandbox_id(pod) and not pv.is_deleting(pod) else None
            await self.lifecycle.remove_finalizer(pod, stop=ended)
            if not pv.is_deleting(pod):
                await self.lifecycle.delete_pod(pod)
        if pods:
            return 1.0
        meta = pool["metadata"]
        fins = [f for f in meta.get("finalizers") or [] if f != v.FINALIZER_POOL]
        if len(fins) != len(meta.get("finalizers") or []):
            with contextlib.suppress(KubeError):
                await self.client.merge_patch(pools_path(meta["namespace"], meta["name"]),
                                              {"metadata": {"finalizers": fins}})
        self.expectations.forget(key)
        self.queue.forget(key)
        self._status_written_at.pop(key, None)
        self.metrics.forget_pool(self._metric_labels(pool))
        if self.forget_pool is not None:
            await self.forget_pool(key)
        log.info("pool deleted", pool=key)
        return None

    async def _backfill_finalizers(self, pods: list[pv.Pod]) -> None:
        for pod in pods:
            if not pv.is_deleting(pod) and v.FINALIZER_SANDBOX_PROTECTION not in pv.finalizers(pod):
                with contextlib.suppress(KubeError):
                    await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                        "resourceVersion": pv.resource_version(pod),
                        "finalizers": [*pv.finalizers(pod), v.FINALIZER_SANDBOX_PROTECTION]}})

    async def _pod_deleting(self, pod: pv.Pod) -> None:
        if v.FINALIZER_SANDBOX_PROTECTION not in pv.finalizers(pod):
            return
        # Every replica has recorded the sandbox's end from this pod version (history_feed); only count it.
        if pv.sandbox_id(pod) and pv.sandbox_phase(pod) in (v.SandboxPhase.RUNNING.value,
                                                            v.SandboxPhase.STARTING.value):
            self.metrics.delete_total.labels(v.StopReason.FAILED.value).inc()
        await self.lifecycle.remove_finalizer(pod)

    async def _pod_failed(self, key: str, pod: pv.Pod) -> None:
        status = pod.get("status") or {}
        if pv.sandbox_id(pod) and pv.sandbox_phase(pod) != v.SandboxPhase.STOPPING.value:
            self.metrics.delete_total.labels(v.StopReason.FAILED.value).inc()
        log.info("replacing failed pod", pod=pv.key(pod), reason=status.get("reason"))
        await self._replace(key, pod)

    async def _replace(self, key: str, pod: pv.Pod, *, resource_version: str | None = None,
                       stop: StopDetails | None = None) -> bool:
        """Delete ``pod`` for good (the pool creates a fresh one); with ``resource_version`` only if it is
        unchanged (a conflict raises KubeError); ``stop`` says how its sandbox ended. False when the pod
        was already gone."""
        if await self.lifecycle.remove_finalizer(pod, resource_version=resource_version, stop=stop) is None:
            return False
        self.expectations.expect_deletions(key, [pv.key(pod)])
        if not await self.lifecycle.delete_pod(pod):
            self.expectations.deletion_observed(key, pv.key(pod))
        return True

    async def _in_place_phases(self, pool: dict[str, Any], pods: list[pv.Pod], now: datetime) -> int:
        """Finish or fail in-flight swaps; returns how many pods went back to idle."""
        spec = pool.get("spec") or {}
        try:
            startup_default = optional_duration(spec.get("defaultStartupTimeout"))
        except InvalidDuration:
            startup_default = None
        jobs = []
        for pod in pods:
            if pv.key(pod) in self._completions:
                continue  # its completion write is already on the way
            phase = pv.sandbox_phase(pod)
            if phase == v.SandboxPhase.STARTING.value:
                jobs.append(self._starting(pool, pod, now, startup_default))
            elif phase == v.SandboxPhase.STOPPING.value:
                jobs.append(self._stopping(pool, pod, now))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for res in results:
            if isinstance(res, Exception) and not isinstance(res, KubeError | inplace.UnexpectedPodPhase):
                log.warning("in-place step failed", error=repr(res))
        return sum(1 for r in results if r is True)

    def _complete_soon(self, pool_key: str, pod: pv.Pod) -> None:
        """Finish ``pod``'s swap now, not at the pool's next reconcile (which does it when this cannot)."""
        key = pv.key(pod)
        if key in self._completions or len(self._completions) >= MAX_EVENT_COMPLETIONS:
            return
        task = asyncio.create_task(self._complete(pool_key, pod))
        self._completions[key] = task
        task.add_done_callback(lambda _t: self._completions.pop(key, None))

    async def _complete(self, pool_key: str, pod: pv.Pod) -> None:
        if self.claims_quiet is not None:  # claims first: a burst's completions follow its claim writes
            await self.claims_quiet(pool_key, CLAIMS_FIRST_MAX_WAIT_S)
        pool = self.pools.get(pool_key)
        if pool is None:
            return
        try:
            if pv.sandbox_phase(pod) == v.SandboxPhase.STARTING.value:
                await self._starting(pool, pod, self.now(), None)
            elif await self._stopping(pool, pod, self.now()) and self.notify_idle is not None:
                self.notify_idle(pool_key)
        except (KubeError, inplace.UnexpectedPodPhase) as exc:
            log.debug("completion left to the reconcile", pod=pv.key(pod), error=str(exc))
            self.queue.add(pool_key)
        except Exception as exc:
            log.warning("completion failed; left to the reconcile", pod=pv.key(pod), error=repr(exc))
            self.queue.add(pool_key)

    async def _starting(self, pool: dict[str, Any], pod: pv.Pod, now: datetime,
                        startup_default: float | None) -> bool:
        if inplace.update_complete(pod):
            written = await mark_completed(self.client, pod, idle_labels(pool), (ANN_HOOKS_STATUS,))
            if written is not None:
                self.metrics.inplace_total.labels("running", "success").inc()
                claimed = pv.time_annotation(pod, v.ANN_CLAIMED_AT)
                if claimed is not None:
                    self.metrics.starting_duration.labels("success").observe(
                        max(0.0, (now - claimed).total_seconds()))
                self.metrics.running_info.labels(pv.namespace(pod), pv.name(pod), pv.sandbox_id(pod)).set(1)
                self._start_hooks(pool, written)
            return False
        failure = inplace.image_pull_failure(pod)
        if failure is not None:
            await self.lifecycle.release(pod, pool, StopDetails(
                v.StopReason.FAILED, "ImagePullFailed", f"{failure[0]}: {failure[1]}"))
        elif startup_expired(pod, startup_default, now):
            await self.lifecycle.release(pod, pool, StopDetails(
                v.StopReason.RELEASED, "StartupTimeout", "sandbox did not start within its startup timeout"))
        return False

    async def _stopping(self, pool: dict[str, Any], pod: pv.Pod, now: datetime) -> bool:
        if inplace.update_complete(pod):
            written = await mark_completed(self.client, pod, idle_labels(pool), (ANN_HOOKS_STATUS,))
            if written is None:
                return False
            self.lifecycle.observe_recycled(pod)
            sid = pv.sandbox_id(pod)
            if sid and self.dataplane is not None:
                await self.dataplane.evict_route(sid)
            return True
        since = inplace.phase_since(pod)
        stuck = since is not None and (now - since).total_seconds() > STOPPING_TIMEOUT_S
        if inplace.image_pull_failure(pod) is not None or stuck:
            log.warning("pod cannot return to idle, replacing it", pod=pv.key(pod))
            await self.lifecycle.remove_finalizer(pod)
            await self.lifecycle.delete_pod(pod)
        return False

    async def _restarted_running(self, pool: dict[str, Any], pods: list[pv.Pod]) -> None:
        for pod in pods:
            if pv.sandbox_phase(pod) != v.SandboxPhase.RUNNING.value:
                continue
            restart = inplace.has_unexpected_restart(pod)
            if restart is not None:
                name, status = restart
                term = (status.get("lastState") or {}).get("terminated") or {}
                with contextlib.suppress(KubeError, inplace.UnexpectedPodPhase):
                    await self.lifecycle.release(pod, pool, StopDetails(
                        v.StopReason.FAILED, term.get("reason") or "ContainerRestarted",
                        term.get("message") or f"container {name} restarted unexpectedly",
                        term.get("exitCode")), disable_retry=True)
                continue
            if (pv.annotations(pod).get(v.ANN_POST_START_HOOKS) and not pv.annotations(pod).get(ANN_HOOKS_STATUS)
                    and pv.key(pod) not in self._hook_tasks):
                self._start_hooks(pool, pod)

    # ---- post-start hooks ------------------------------------------------------------------
    def _start_hooks(self, pool: dict[str, Any], pod: pv.Pod) -> None:
        if not pv.annotations(pod).get(v.ANN_POST_START_HOOKS) or pv.key(pod) in self._hook_tasks:
            return
        key = pv.key(pod)
        task = asyncio.create_task(self._run_hooks(pool, pod))
        self._hook_tasks[key] = task
        task.add_done_callback(lambda _t: self._hook_tasks.pop(key, None))

    async def _run_hooks(self, pool: dict[str, Any], pod: pv.Pod) -> None:
        error = await self.hooks.run(pod) if self.hooks is not None else "post-start hooks are not configured"
        value = HOOKS_DONE if not error else HOOKS_FAILED_PREFIX + error[:500]
        try:
            written = await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                "annotations": {ANN_HOOKS_STATUS: value}}})
            if error:
                # A pod that could not be made usable is not trusted with the next claim: it is replaced,
                # not recycled to idle (field-lessons §3.4: broken sandboxes kept in rotation).
                log.warning("post-start hooks failed; replacing the pod", pod=pv.key(pod), error=error)
                if await self._replace(pool_key_of_pod(written), written,
                                       resource_version=pv.resource_version(written),
                                       stop=StopDetails(v.StopReason.FAILED, "PostStartHookFailed", error)):
                    self.metrics.delete_total.labels(v.StopReason.FAILED.value).inc()
        except (KubeError, inplace.UnexpectedPodPhase) as exc:
            log.warning("could not record post-start hook outcome", pod=pv.key(pod), error=str(exc))

    # ---- status, autoscaling ---------------------------------------------------------------
    @staticmethod
    def _metric_labels(pool: dict[str, Any]) -> tuple[str, str, str, str]:
        meta = pool.get("metadata") or {}
        labels = meta.get("labels") or {}
        return (meta.get("namespace", ""), meta.get("name", ""), labels.get(v.LABEL_TEAM, ""),
                labels.get(v.LABEL_USER, ""))

    async def _apply_autoscale(self, pool: dict[str, Any], decision: Decision) -> dict[str, Any]:
        meta = pool["metadata"]
        patch: dict[str, Any] = {}
        if decision.replicas is not None:
            patch["spec"] = {"replicas": decision.replicas}
        if decision.clear_pending:
            patch["metadata"] = {"annotations": {v.ANN_SCALE_UP_PENDING: None}}
        if not patch:
            return pool
        written = await self.client.merge_patch(pools_path(meta["namespace"], meta["name"]), patch)
        if decision.event is not None:
            await self._event(pool, *decision.event)
            log.info("autoscaler", pool=f"{meta['namespace']}/{meta['name']}", action=decision.event[1])
        return {**written, "status": pool.get("status") or {}}

    async def _write_status(self, key: str, pool: dict[str, Any], pods: list[pv.Pod], decision: Decision,
                            now: datetime) -> float | None:
        """Write the status if it changed; returns a requeue delay when a count-only write was deferred."""
        meta = pool["metadata"]
        old = pool.get("status") or {}
        status = compute_status(pool, pods, now)
        for field, value in decision.status.items():
            if value is None:
                status.pop(field, None)
            else:
                status[field] = value
        counts = count_pods(pods)
        self.metrics.set_pool_counts(self._metric_labels(pool), {
            "desired": int((pool.get("spec") or {}).get("replicas") or 0), "idle": counts.idle,
            "running": counts.running, "starting": counts.starting, "stopping": counts.stopping,
            "failed": counts.failed})
        comparable_old = {k: val for k, val in old.items() if k != "pendingRequests"}
        comparable_new = {k: val for k, val in status.items() if k != "pendingRequests"}
        if comparable_old == comparable_new:
            return None
        significant = (old.get("phase") != status["phase"] or decision.status
                       or [c.get("status") for c in old.get("conditions") or []]
                       != [c["status"] for c in status["conditions"]])
        since = time.monotonic() - self._status_written_at.get(key, -1e9)
        if not significant and since < STATUS_MIN_INTERVAL_S:
            return STATUS_MIN_INTERVAL_S - since
        self._status_written_at[key] = time.monotonic()
        patch = {k: comparable_new.get(k) for k in set(comparable_old) | set(comparable_new)}
        await self.client.merge_patch(pools_path(meta["namespace"], meta["name"], "status"), {"status": patch})
        if old.get("phase") != status["phase"]:
            await self._event(pool, "PhaseChanged",
                              f"pool phase {old.get('phase') or 'None'} -> {status['phase']}")
        return None

    async def _event(self, pool: dict[str, Any], reason: str, message: str) -> None:
        meta = pool["metadata"]
        stamp = format_time(self.now())
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": v.API_VERSION, "kind": v.POOL_KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid", "")},
            "reason": reason, "message": message, "type": "Normal", "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "agent-sandbox-operator"}, "reportingComponent": "agent-sandbox-operator",
        }
        try:
            await self.client.create(events_path(meta["namespace"]), body)
        except KubeError as exc:
            log.debug("event not recorded", reason=reason, error=str(exc))

    # ---- scaling ---------------------------------------------------------------------------
    async def _scale_up(self, key: str, pool: dict[str, Any], delta: int) -> None:
        self.expectations.expect_creations(key, delta)
        body = build_idle_pod(pool)
        ns = pool["metadata"]["namespace"]

        async def create_one() -> None:
            async with self._create_sem:
                try:
                    await self.client.create(pods_path(ns), body)
                except Exception as exc:
                    self.expectations.creation_observed(key)
                    log.warning("pod create failed", pool=key, error=str(exc))

        await asyncio.gather(*(create_one() for _ in range(delta)))

    async def _protect(self, pod: pv.Pod, now: datetime) -> None:
        with contextlib.suppress(KubeError):
            await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                "resourceVersion": pv.resource_version(pod),
                "annotations": {v.ANN_SCALE_DOWN_PROTECTED: format_time(now)}}})

    async def _unprotect(self, pod: pv.Pod) -> None:
        with contextlib.suppress(KubeError):
            await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                "resourceVersion": pv.resource_version(pod),
                "annotations": {v.ANN_SCALE_DOWN_PROTECTED: None}}})

    async def _delete_idle(self, key: str, pod: pv.Pod) -> bool:
        """Delete a pod no claim may take.

        The finalizer removal is a CAS that also marks the pod protected: a claim
        that read the pod before it loses its own CAS, one that reads it after
        refuses a protected pod — so the delete itself needs no precondition
        (kubelet status updates would make one fail spuriously).
        """
        try:
            await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                "resourceVersion": pv.resource_version(pod),
                "finalizers": [f for f in pv.finalizers(pod) if f != v.FINALIZER_SANDBOX_PROTECTION],
                "annotations": {v.ANN_SCALE_DOWN_PROTECTED: format_time(self.now())}}})
        except KubeError as exc:
            if exc.conflict or exc.not_found:
                return False
            raise
        self.expectations.expect_deletions(key, [pv.key(pod)])
        if not await self.lifecycle.delete_pod(pod):
            self.expectations.deletion_observed(key, pv.key(pod))
            return False
        return True
