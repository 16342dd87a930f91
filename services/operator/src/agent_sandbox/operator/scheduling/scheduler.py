"""The per-pool claim scheduler (behaviour §8.2-8.3).

One task per pool matches queued claim requests with idle pods:

* idle pods come from the informer cache — pushed by watch events and, when
  the queue runs low, by a throttled refresh over the pool's index (a map
  lookup, never an API List);
* a popped pod is reserved for ~2 s so a concurrent request cannot pick it
  while the claim write travels back through the watch;
* the claim is **one** conditional merge patch carrying the read
  resourceVersion; a 409 (someone else claimed or changed the pod) requeues
  the request, never hands out the pod;
* a request that finds nothing queued ahead of it, a write slot and an idle pod
  is launched from its caller; a write leaves at once when a pooled API
  connection is free and its answer is awaited by a task of its own (at most
  128 in flight), so a burst's first claims reach the API server while the
  operator is still taking in the rest; the request queue has a cap, every
  request a deadline, and a claim whose caller already left is handed to
  ``on_orphan`` (release as Canceled) so no pod leaks;
* no idle pod → the pool is marked ``scale-up-pending`` for the autoscaler.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.controllers.status import count_pods
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pools_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.lifecycle.updater import start_trigger, trigger_update
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.scheduling.errors import ClaimFailed, NoIdleSandbox, QueueFull
from agent_sandbox.operator.scheduling.queue import ReadyQueue, Reservations, pop_unreserved
from agent_sandbox.operator.timeutil import format_time, now_utc, parse_time

QUEUE_CAPACITY = 8192
MAX_INFLIGHT = 128
#: Queued claims launched before the loop turns once (see ``PoolScheduler._dispatch``).
DISPATCH_BATCH = 32
REFRESH_THROTTLE_S = 0.05
LOW_WATER = 4
EXPIRE_TICK_S = 0.3
POLL_BASE_S = 10.0
POLL_CAP_S = 300.0
SCALE_UP_PENDING_REFRESH_S = 30.0
STATUS_WRITE_EVERY_S = 3.0

log = get_logger(__name__)


@dataclass(eq=False)
class ClaimRequest:
    opts: inplace.UpdateOptions
    deadline: float
    future: asyncio.Future[pv.Pod]
    enqueued_at: float
    dispatched: bool = field(default=False)


OrphanHandler = Callable[[pv.Pod], Awaitable[None]]


def claimable(pod: pv.Pod | None) -> bool:
    """An idle, ready, running pod not being deleted nor protected for scale-down."""
    return (
        pod is not None
        and pv.sandbox_phase(pod) == v.SandboxPhase.IDLE
        and not pv.is_deleting(pod)
        and pv.kube_phase(pod) == "Running"
        and pv.pod_ready(pod)
        and not pv.annotations(pod).get(v.ANN_SCALE_DOWN_PROTECTED)
    )


class PoolScheduler:
    def __init__(
        self,
        namespace: str,
        pool: str,
        client: KubeClient,
        pods: Informer,
        metrics: OperatorMetrics,
        *,
        on_orphan: OrphanHandler | None = None,
        queue_capacity: int = QUEUE_CAPACITY,
        max_inflight: int = MAX_INFLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = namespace
        self.pool = pool
        self.pool_key = f"{namespace}/{pool}"
        self._client = client
        self._pods = pods
        self._metrics = metrics
        self._on_orphan = on_orphan
        self._capacity = queue_capacity
        self._clock = clock
        self._requests: deque[ClaimRequest] = deque()
        self._ready = ReadyQueue()
        self._reservations = Reservations(clock=clock)
        self._sem = asyncio.Semaphore(max_inflight)
        self._max_inflight = max_inflight
        self._inflight = 0
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._writes_idle = asyncio.Event()  # no claim write in flight
        self._writes_idle.set()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._last_refresh = -1e9
        self._scale_up_task: asyncio.Task[None] | None = None
        self._last_pending_written = -1e9
        self._last_status_value: int | None = None
        self._last_status_at = -1e9
        self.last_dispatch_at: float | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._refresh(force=True)
            self._task = asyncio.create_task(self._run(), name=f"scheduler:{self.pool_key}")

    async def stop(self) -> None:
        """Fail queued requests with the no-idle error at once and stop."""
        self._closed = True
        self._quiet.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        detail = self.pool_detail()
        while self._requests:
            req = self._requests.popleft()
            if not req.future.done():
                req.future.set_exception(NoIdleSandbox(self.namespace, self.pool, dict(detail),
                                                       "scheduler is shutting down"))
        for task in list(self._side_tasks):
            task.cancel()
        if self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)

    # ---- API -----------------------------------------------------------------------------
    async def claim(self, opts: inplace.UpdateOptions, timeout_s: float) -> pv.Pod:
        """Claim an idle pod with ``opts`` within ``timeout_s``; NoIdleSandbox/QueueFull otherwise."""
        if self._closed:
            raise self._no_idle("scheduler is shutting down")
        if len(self._requests) >= self._capacity:
            raise QueueFull(self.namespace, self.pool, self.pool_detail())
        now = self._clock()
        opts.expected_phase = v.SandboxPhase.IDLE.value
        if v.ANN_SCALE_DOWN_PROTECTED not in opts.remove_annotations:
            opts.remove_annotations.append(v.ANN_SCALE_DOWN_PROTECTED)
        fut: asyncio.Future[pv.Pod] = asyncio.get_running_loop().create_future()
        req = ClaimRequest(opts, now + timeout_s, fut, now)
        if self._requests or not self._start_now(req):
            self._requests.append(req)
            self._quiet.clear()
            self._wake.set()
        return await fut

    def on_pod_event(self, _type: str, old: pv.Pod | None, new: pv.Pod | None) -> None:
        """Informer handler (already filtered to this pool): feed newly idle pods to the ready queue."""
        if claimable(new):
            key = pv.key(new)  # type: ignore[arg-type]
            if old is not None and pv.sandbox_phase(old) != v.SandboxPhase.IDLE:
                # Came back from a sandbox: our claim write has long propagated, the reservation is moot.
                self._reservations.release(key)
            if not self._reservations.is_reserved(key) and self._ready.push(key):
                self._wake.set()

    def notify_idle_available(self) -> None:
        self._refresh(force=True)
        self._wake.set()

    async def wait_quiet(self, timeout_s: float) -> None:
        """Return once no claim is queued or being written, or after ``timeout_s`` (the pool controller
        lets claims go first)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), timeout_s)

    def _note_quiet(self) -> None:
        if self._inflight == 0:
            self._writes_idle.set()
            if not self._requests:
                self._quiet.set()

    @property
    def writing(self) -> bool:
        """Claim writes are in flight."""
        return self._inflight > 0

    async def wait_writes_idle(self) -> None:
        await self._writes_idle.wait()

    def snapshot(self) -> dict[str, Any]:
        return {"idle_ready": len(self._ready), "queue_len": len(self._requests),
                "reserved_count": len(self._reservations), "inflight_cas": self._inflight,
                "last_dispatch_at": self.last_dispatch_at}

    def pool_detail(self) -> dict[str, Any]:
        counts = count_pods(self._pods.by_index("pool", self.pool_key))
        detail: dict[str, Any] = {"idle": counts.idle, "running": counts.running, "starting": counts.starting,
                                  "stopping": counts.stopping, "failed": counts.failed,
                                  "hint": "no idle sandbox became available in time; retry later or scale the pool",
                                  "retryAfter": 5}
        if counts.stopping > 0:
            detail.update(retryAfter=30, hint=f"{counts.stopping} sandboxes are being recycled and will be "
                                              "idle shortly; retry later")
        return detail

    # ---- internals -----------------------------------------------------------------------
    def _no_idle(self, message: str | None = None) -> NoIdleSandbox:
        return NoIdleSandbox(self.namespace, self.pool, self.pool_detail(), message)

    def _refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_refresh < REFRESH_THROTTLE_S:
            self._metrics.refresh_total.labels("throttled").inc()
            return
        self._last_refresh = now
        for pod in self._pods.by_index("pool", self.pool_key):
            key = pv.key(pod)
            if key in self._ready or self._reservations.is_reserved(key):
                continue
            if claimable(pod):
                self._ready.push(key)
            elif pv.sandbox_phase(pod) == v.SandboxPhase.IDLE and pv.annotations(pod).get(
                    v.ANN_SCALE_DOWN_PROTECTED):
                self._metrics.skipped_protected.inc()
        self._metrics.refresh_total.labels("ok").inc()

    def _still_claimable(self, key: str) -> bool:
        return claimable(self._pods.get(key))

    async def _run(self) -> None:
        poll = POLL_BASE_S
        next_poll = self._clock() + poll
        next_expire = self._clock() + EXPIRE_TICK_S
        while not self._closed:
            timeout = max(0.0, min(next_poll, next_expire) - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                now = self._clock()
                if now >= next_expire:
                    self._expire(now)
                    next_expire = now + EXPIRE_TICK_S
                if now >= next_poll:
                    self._refresh(force=True)
                    poll = min(POLL_CAP_S, poll * 2) * random.uniform(0.8, 1.2)
                    next_poll = now + poll
                if await self._dispatch():
                    poll = POLL_BASE_S
                    next_poll = self._clock() + poll
                self._maybe_write_status()
                self._note_quiet()
            except Exception:  # the loop must survive any bug in one iteration
                log.exception("scheduler iteration failed", pool=self.pool_key)
                await asyncio.sleep(0.1)

    def _expire(self, now: float) -> None:
        expired = self._reservations.sweep()
        if expired:
            self._metrics.reservation_expired.inc(expired)
            self._refresh()
        if self._requests and any(r.deadline <= now or r.future.done() for r in self._requests):
            keep: deque[ClaimRequest] = deque()
            detail: dict[str, Any] | None = None  # counted once per sweep, not once per request
            for req in self._requests:
                if req.future.done():
                    continue
                if req.deadline <= now:
                    detail = detail or self.pool_detail()
                    self._metrics.cas_outcome.labels("expired").inc()
                    req.future.set_exception(NoIdleSandbox(self.namespace, self.pool, dict(detail)))
                else:
                    keep.append(req)
            self._requests = keep
        labels = (self.namespace, self.pool)
        self._metrics.ready_queue.labels(*labels).set(len(self._ready))
        self._metrics.reservations.labels(*labels).set(len(self._reservations))

    async def _dispatch(self) -> bool:
        """Start a claim write for each queued request while idle pods and write slots last.

        After every ``DISPATCH_BATCH`` the loop turns once, so the answers to the writes already sent are
        taken in while a long queue is worked off (writes that could not leave at once, for want of a
        pooled connection, also leave then). Turning after every write is no better: each request then
        costs both sides a loop iteration of its own."""
        dispatched = False
        started = 0
        while self._requests and self._inflight < self._max_inflight:
            req = self._requests[0]
            if req.future.done():
                self._requests.popleft()
                continue
            if req.deadline <= self._clock():
                self._requests.popleft()
                self._metrics.cas_outcome.labels("expired").inc()
                req.future.set_exception(self._no_idle())
                continue
            if len(self._ready) < LOW_WATER:
                self._refresh()
            key = self._pop_idle()
            if key is None:
                self._trigger_scale_up_once()
                break
            self._requests.popleft()
            dispatched = True
            self._launch(req, key)
            started += 1
            if started % DISPATCH_BATCH == 0:
                await asyncio.sleep(0)
        return dispatched

    def _start_now(self, req: ClaimRequest) -> bool:
        """Launch ``req`` at once, from its caller (nothing is queued ahead of it): when a write slot and an
        idle pod are free, its claim write leaves before the caller yields, so the API server starts on a
        burst while the operator is still taking in the rest of it."""
        if self._closed or self._inflight >= self._max_inflight:
            return False
        key = self._pop_idle()
        if key is None:
            return False
        self._launch(req, key)
        return True

    def _pop_idle(self) -> str | None:
        """Reserve the next claimable pod of the ready queue (those no longer claimable are dropped)."""
        key, evicted = pop_unreserved(self._ready, self._reservations, self._still_claimable)
        if evicted:
            self._metrics.ready_evicted.inc(evicted)
        return key

    def _launch(self, req: ClaimRequest, key: str) -> None:
        """Start the claim write of ``req`` (a caller still waiting) on ``key``, just popped from the ready
        queue as claimable: sent now when a pooled connection is free (see :meth:`KubeClient.send_now`),
        else by the task that awaits its answer."""
        self._inflight += 1
        self._writes_idle.clear()
        self._quiet.clear()
        self._metrics.dispatch_latency.observe(max(0.0, self._clock() - req.enqueued_at))
        self.last_dispatch_at = self._clock()
        sent: Awaitable[pv.Pod] | None = None
        with contextlib.suppress(inplace.UnexpectedPodPhase, inplace.PodNotReady, ValueError):
            sent = start_trigger(self._client, self._pods.get(key), req.opts)  # type: ignore[arg-type]
        self._spawn(self._cas(req, key, sent))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _requeue(self, req: ClaimRequest) -> None:
        self._requests.appendleft(req)
        self._wake.set()

    async def _cas(self, req: ClaimRequest, key: str, sent: Awaitable[pv.Pod] | None) -> None:
        try:
            async with self._sem:
                await self._claim_one(req, key, sent)
        finally:
            self._inflight -= 1
            self._note_quiet()
            self._wake.set()

    async def _claim_one(self, req: ClaimRequest, key: str, sent: Awaitable[pv.Pod] | None) -> None:
        """Finish the claim write of ``req`` on ``key`` (``sent``: already on its way, else written here)."""
        if sent is None:
            if req.future.done() or req.deadline <= self._clock():
                self._reservations.release(key)
                self._ready.push(key)
                if not req.future.done():
                    self._requeue(req)
                return
            pod = self._pods.get(key)
            if not claimable(pod):
                self._metrics.cas_outcome.labels("retriable").inc()
                self._requeue(req)
                return
        try:
            if sent is not None:
                written = await sent
            else:
                written, _fast = await trigger_update(self._client, pod, req.opts, disable_retry=True)  # type: ignore[arg-type]
        except (inplace.UnexpectedPodPhase, inplace.PodNotReady) as exc:
            self._metrics.cas_outcome.labels("retriable").inc()
            self._metrics.inplace_total.labels("running", "conflict").inc()
            log.debug("claim lost", pod=key, error=str(exc))
            self._requeue(req)
            return
        except KubeError as exc:
            if exc.conflict or exc.not_found:
                self._metrics.cas_outcome.labels("retriable").inc()
                self._metrics.inplace_total.labels("running", "conflict").inc()
                self._requeue(req)
                return
            self._metrics.cas_outcome.labels("hard").inc()
            self._metrics.inplace_total.labels("running", "error").inc()
            self._reservations.release(key)
            if not req.future.done():
                req.future.set_exception(ClaimFailed(f"claim write failed: {exc}"))
            return
        except Exception as exc:
            self._metrics.cas_outcome.labels("hard").inc()
            self._reservations.release(key)
            if not req.future.done():
                req.future.set_exception(ClaimFailed(f"claim write failed: {exc!r}"))
            return
        self._metrics.cas_outcome.labels("success").inc()
        self._metrics.inplace_total.labels("running", "success").inc()
        if req.future.done():
            # The caller left (disconnect, cancellation) while the write was in flight.
            if self._on_orphan is not None:
                try:
                    await self._on_orphan(written)
                except Exception as exc:  # the pod stays claimed; its timeouts still bound it
                    log.warning("could not release an abandoned claim", pod=key, error=repr(exc))
            return
        req.future.set_result(written)

    def _trigger_scale_up_once(self) -> None:
        if self._scale_up_task is not None and not self._scale_up_task.done():
            return
        if self._clock() - self._last_pending_written < SCALE_UP_PENDING_REFRESH_S:
            return
        self._scale_up_task = asyncio.create_task(self._write_scale_up_pending())

    async def _write_scale_up_pending(self) -> None:
        try:
            path = pools_path(self.namespace, self.pool)
            pool = await self._client.get(path)
            stamp = parse_time(((pool.get("metadata") or {}).get("annotations") or {}).get(v.ANN_SCALE_UP_PENDING))
            now = now_utc()
            if stamp is None or (now - stamp).total_seconds() >= SCALE_UP_PENDING_REFRESH_S:
                await self._client.merge_patch(path, {"metadata": {"annotations": {
                    v.ANN_SCALE_UP_PENDING: format_time(now)}}})
            self._last_pending_written = self._clock()
        except Exception as exc:
            log.warning("could not mark pool scale-up-pending", pool=self.pool_key, error=str(exc))

    def _maybe_write_status(self) -> None:
        now = self._clock()
        if now - self._last_status_at < STATUS_WRITE_EVERY_S:
            return
        value, last = len(self._requests), self._last_status_value
        changed = (last is None or (value == 0) != (last == 0)
                   or (last > 0 and abs(value - last) / last >= 0.2))
        if not changed:
            return
        self._last_status_at = now
        self._last_status_value = value
        self._spawn(self._write_status(value))

    async def _write_status(self, value: int) -> None:
        try:
            await self._client.merge_patch(pools_path(self.namespace, self.pool, "status"),
                                           {"status": {"pendingRequests": value}})
        except Exception as exc:
            self._last_status_value = None
            log.debug("pendingRequests write failed", pool=self.pool_key, error=str(exc))
