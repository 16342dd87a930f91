"""SandboxService: create, get, list, delete sandboxes and set their timeouts.

``create`` is the claim path of behaviour §8.1: validate, build the claim
(labels, annotations, target images), hand it to the pool's scheduler, push
the route to the data plane and — with ``wait`` — return only when the
sandbox is Running and its post-start hooks succeeded. A claim whose caller
gave up is released as Canceled (by the scheduler's orphan handler or here).

The caller may choose the sandbox id (a fresh id of this cluster in the common
format): the E2B layer needs it before the claim, because the envd access token
derives from the id and travels to envd in the post-start ``/init`` hook. Hook
bodies are stored sealed when the deployment has a secret (they carry secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.ids import InvalidSandboxId, is_sandbox_id, new_sandbox_id, parse_sandbox_id
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.dataplane import DataPlane
from agent_sandbox.operator.durations import optional_duration, parse_duration
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pods_path, pools_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.lifecycle.actions import Lifecycle
from agent_sandbox.operator.lifecycle.history import merge_records
from agent_sandbox.operator.lifecycle.hook_sealing import HookSealer
from agent_sandbox.operator.lifecycle.hooks import ANN_HOOKS_STATUS, HOOKS_DONE, parse_hooks, seal_bodies
from agent_sandbox.operator.lifecycle.records import sandbox_record
from agent_sandbox.operator.lifecycle.release import StopDetails, delete_stop_reason
from agent_sandbox.operator.lifecycle.timeouts import DEFAULT_STARTUP_TIMEOUT_S, resolve_timeout
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.scheduling.errors import ClaimFailed, NoIdleSandbox
from agent_sandbox.operator.scheduling.registry import SchedulerRegistry
from agent_sandbox.operator.services.errors import AlreadyExists, InvalidRequest, NotFound, SandboxStartFailed
from agent_sandbox.operator.services.models import NAME_RE, Caller, CreateSandboxRequest, SandboxList
from agent_sandbox.operator.services.validation import resolve_images
from agent_sandbox.operator.timeutil import format_time, now_utc
from agent_sandbox.operator.ttlmap import TTLMap

log = get_logger(__name__)


#: Most bytes of one container's log a logs read returns (``truncated`` says when it cut).
MAX_LOG_BYTES = 1024 * 1024
#: How long a write waits for the watch cache to show it (reads come from the cache).
READ_YOUR_WRITES_S = 2.0
#: Own claims remembered until the pod cache has them (see ``SandboxService._live_pod``).
RECENT_CLAIMS_TTL_S = 5.0
RECENT_CLAIMS_MAX = 1024
_LOGGING_PHASES = frozenset({v.SandboxPhase.STARTING.value, v.SandboxPhase.RUNNING.value,
                             v.SandboxPhase.STOPPING.value})


class SandboxService:
    def __init__(self, client: KubeClient, pods: Informer, pools: Informer, lifecycle: Lifecycle,
                 schedulers: SchedulerRegistry, metrics: OperatorMetrics, *, cluster_id: str,
                 dataplane: DataPlane | None = None, gateway_base_url: str = "",
                 sealer: HookSealer | None = None) -> None:
        self.client = client
        self.pods = pods
        self.pools = pools
        self.lifecycle = lifecycle
        self.schedulers = schedulers
        self.metrics = metrics
        self.cluster_id = cluster_id
        self.dataplane = dataplane
        self.gateway_base_url = gateway_base_url
        self.sealer = sealer
        #: Caller-chosen ids of creates in flight (not yet on a pod): a second create with one is refused.
        self._claiming: set[str] = set()
        #: Pods as our claim writes returned them, by sandbox id: read-your-writes before the watch delivers.
        self._recent_claims: TTLMap[str, pv.Pod] = TTLMap(RECENT_CLAIMS_TTL_S, RECENT_CLAIMS_MAX)

    # ---- create ----------------------------------------------------------------------------
    async def _pool(self, caller: Caller, name: str) -> dict[str, Any]:
        pool = self.pools.get(f"{caller.namespace}/{name}")
        if pool is None and NAME_RE.match(name):
            # A pool created a moment ago may not have reached the cache yet.
            with contextlib.suppress(KubeError):
                pool = await self.client.get(pools_path(caller.namespace, name))
        if pool is None or (pool.get("metadata") or {}).get("deletionTimestamp"):
            available = [
                {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"],
                 "idle": (p.get("status") or {}).get("idleReplicas", 0),
                 "running": (p.get("status") or {}).get("runningReplicas", 0),
                 "starting": (p.get("status") or {}).get("startingReplicas", 0)}
                for p in self.pools.items() if p["metadata"].get("namespace") == caller.namespace
            ]
            raise NotFound(f"sandbox pool {name!r} not found",
                           {"availablePools": available, "hint": "create the pool or pick one listed here"})
        return pool

    def build_claim(self, req: CreateSandboxRequest, caller: Caller, pool: dict[str, Any],
                    sandbox_id: str) -> tuple[inplace.UpdateOptions, float]:
        """The claim's update options and its startup timeout in seconds."""
        spec = pool.get("spec") or {}
        images = resolve_images(spec, req.image, req.containerImages)
        try:
            hooks = parse_hooks(req.postStartHooks)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if any(h.httpPost is not None and h.httpPost.sealedBody is not None for h in hooks):
            raise InvalidRequest("postStartHooks: sealedBody is written by the operator; send body instead")
        if self.sealer is not None:
            hooks = seal_bodies(hooks, self.sealer, sandbox_id)
        startup = resolve_timeout(optional_duration(req.startupTimeout),
                                  optional_duration(spec.get("defaultStartupTimeout")),
                                  DEFAULT_STARTUP_TIMEOUT_S) or DEFAULT_STARTUP_TIMEOUT_S
        idle = resolve_timeout(optional_duration(req.idleTimeout),
                               optional_duration(spec.get("defaultIdleTimeout")), None)
        labels = {**req.labels, v.LABEL_SANDBOX_ID: sandbox_id, v.LABEL_MANAGED_BY: v.MANAGED_BY_VALUE}
        if caller.team:
            labels[v.LABEL_TEAM] = caller.team
        if caller.user:
            labels[v.LABEL_USER] = caller.user
        annotations = {
            **req.annotations,
            v.ANN_SANDBOX_ID: sandbox_id,
            v.ANN_CLAIMED_AT: format_time(now_utc()),
            v.ANN_STARTUP_TIMEOUT: str(int(startup)),
            v.ANN_SANDBOX_METADATA: orjson.dumps(req.metadata).decode(),
            v.ANN_MANAGED_LABEL_KEYS: orjson.dumps(sorted(req.labels)).decode(),
            v.ANN_MANAGED_ANNOTATION_KEYS: orjson.dumps(sorted(req.annotations)).decode(),
        }
        if idle:
            annotations[v.ANN_IDLE_TIMEOUT] = str(int(idle))
        if hooks:
            annotations[v.ANN_POST_START_HOOKS] = orjson.dumps(
                [h.model_dump(by_alias=True, exclude_none=True) for h in hooks]).decode()
        opts = inplace.UpdateOptions(target_phase=v.SandboxPhase.RUNNING.value, images=images, labels=labels,
                                     annotations=annotations,
                                     remove_annotations=[ANN_HOOKS_STATUS])
        return opts, startup

    def check_new_id(self, sandbox_id: str) -> str:
        """``sandbox_id`` if a caller may give it to a new sandbox: well-formed, of this cluster, unused."""
        try:
            parsed = parse_sandbox_id(sandbox_id)
        except InvalidSandboxId as exc:
            raise InvalidRequest(f"sandboxId: {exc}") from exc
        if parsed.cluster_id != self.cluster_id:
            raise InvalidRequest(f"sandboxId {sandbox_id!r} belongs to cluster {parsed.cluster_id!r}, "
                                 f"not to this cluster {self.cluster_id!r}")
        if (sandbox_id in self._claiming or self.pods.by_index("sandbox-id", sandbox_id)
                or self.lifecycle.history.find(sandbox_id) is not None):
            raise AlreadyExists(f"sandbox id {sandbox_id!r} is already in use")
        return sandbox_id

    async def create(self, req: CreateSandboxRequest, caller: Caller, *,
                     sandbox_id: str | None = None) -> dict[str, Any]:
        """Claim a sandbox; ``sandbox_id`` (see :meth:`check_new_id`) instead of a fresh one."""
        if sandbox_id is None:
            return await self._create(req, caller, new_sandbox_id(self.cluster_id))
        self._claiming.add(self.check_new_id(sandbox_id))
        try:
            return await self._create(req, caller, sandbox_id)
        finally:
            self._claiming.discard(sandbox_id)

    def _local_pool_request(self, req: CreateSandboxRequest) -> CreateSandboxRequest:
        """``req`` with a ``<this cluster>::pool`` reference reduced to ``pool`` (requests for other
        clusters are forwarded by the API layer and arrive there with their prefix intact)."""
        cluster, sep, name = req.poolName.partition("::")
        if not sep:
            return req
        if cluster != self.cluster_id:
            raise InvalidRequest(f"poolName {req.poolName!r} names cluster {cluster!r}; this is cluster "
                                 f"{self.cluster_id!r}")
        return req.model_copy(update={"poolName": name})

    async def _create(self, req: CreateSandboxRequest, caller: Caller, sandbox_id: str) -> dict[str, Any]:
        started = time.monotonic()
        req = self._local_pool_request(req)
        pool = await self._pool(caller, req.poolName)
        opts, startup = self.build_claim(req, caller, pool, sandbox_id)
        scheduler = self.schedulers.get(caller.namespace, req.poolName)
        outcome = "error"
        try:
            pod = await scheduler.claim(opts, startup)
            outcome = "success"
        except NoIdleSandbox:
            outcome = "no_idle"
            raise
        except ClaimFailed as exc:
            raise SandboxStartFailed(str(exc), "ClaimFailed", sandbox_id) from exc
        finally:
            self.metrics.claim_duration.labels(outcome).observe(time.monotonic() - started)
            self.metrics.create_total.labels(outcome).inc()
        self._recent_claims.put(sandbox_id, pod)
        try:
            if self.dataplane is not None:
                await self.dataplane.push_route(sandbox_id, pv.namespace(pod), pv.name(pod))
            if req.wait:
                remaining = max(0.5, startup - (time.monotonic() - started))
                pod = await self._wait_usable(pod, sandbox_id, remaining)
        except asyncio.CancelledError:
            await self._release_abandoned(pod)
            raise
        return self._record(pod, pool)

    async def _wait_usable(self, pod: pv.Pod, sandbox_id: str, timeout_s: float) -> pv.Pod:
        written_rv = pv.resource_version(pod)

        def settled(obj: pv.Pod | None) -> bool:
            if obj is not None and pv.rv_older(pv.resource_version(obj), written_rv):
                return False  # the cache has not caught up with our own claim write yet
            if obj is None or pv.sandbox_id(obj) != sandbox_id:
                return True
            phase = pv.sandbox_phase(obj)
            if phase in (v.SandboxPhase.STOPPING.value, v.SandboxPhase.IDLE.value, v.SandboxPhase.FAILED.value):
                return True
            if phase != v.SandboxPhase.RUNNING.value:
                return False
            return not pv.annotations(obj).get(v.ANN_POST_START_HOOKS) or bool(
                pv.annotations(obj).get(ANN_HOOKS_STATUS))

        try:
            current = await self.pods.wait_for(pv.key(pod), settled, timeout_s)
        except TimeoutError:
            current = self.pods.get(pv.key(pod)) or pod
            await self._release(current, StopDetails(v.StopReason.RELEASED, "StartupTimeout",
                                                     "sandbox did not become ready within its startup timeout"))
            raise SandboxStartFailed("sandbox did not become ready within its startup timeout",
                                     "StartupTimeout", sandbox_id) from None
        if current is not None and pv.sandbox_id(current) == sandbox_id and \
                pv.sandbox_phase(current) == v.SandboxPhase.RUNNING.value:
            status = pv.annotations(current).get(ANN_HOOKS_STATUS)
            if not status or status == HOOKS_DONE:
                return current
            # The pool controller that ran the hooks replaces this pod; releasing it here would race that.
            raise SandboxStartFailed(f"sandbox post-start hooks failed: {status}", "PostStartHookFailed",
                                     sandbox_id)
        ann = pv.annotations(current) if current is not None else {}
        reason = ann.get(v.ANN_FAILURE_REASON) or "SandboxStopped"
        message = ann.get(v.ANN_FAILURE_MESSAGE) or "the sandbox stopped before it became ready"
        raise SandboxStartFailed(f"sandbox failed to start: {reason}: {message}", reason, sandbox_id)

    async def _release(self, pod: pv.Pod, stop: StopDetails) -> None:
        pool = self.pools.get(f"{pv.namespace(pod)}/{pv.pool_name(pod)}")
        if pool is None:
            return
        with contextlib.suppress(KubeError, inplace.UnexpectedPodPhase):
            await self.lifecycle.release(pod, pool, stop)

    async def _release_abandoned(self, pod: pv.Pod) -> None:
        """Release a claim whose caller left (stop reason Canceled)."""
        current = self.pods.get(pv.key(pod)) or pod
        if pv.sandbox_id(current) != pv.sandbox_id(pod):
            current = pod
        await asyncio.shield(self._release(current, StopDetails(v.StopReason.CANCELED, "ClientGone",
                                                                "the caller went away during create")))

    async def release_orphan(self, pod: pv.Pod) -> None:
        """Scheduler hook: a claim landed after its caller had gone."""
        log.info("releasing claim of a departed caller", pod=pv.key(pod), sandbox_id=pv.sandbox_id(pod))
        await self._release_abandoned(pod)

    # ---- read ------------------------------------------------------------------------------
    def _record(self, pod: pv.Pod, pool: dict[str, Any] | None = None) -> dict[str, Any]:
        pool = pool or self.pools.get(f"{pv.namespace(pod)}/{pv.pool_name(pod)}") or {}
        return sandbox_record(pod, now_utc(), gateway_base_url=self.gateway_base_url,
                              runtimes=(pool.get("spec") or {}).get("runtimes"))

    async def _live_pod(self, sandbox_id: str, namespace: str | None) -> pv.Pod | None:
        """The pod holding ``sandbox_id``: from the cache, else (a claim the watch has not delivered
        yet — read-your-writes right after create) as our own claim wrote it while the cache still
        holds an older version of that pod, else from the API server."""
        for pod in self.pods.by_index("sandbox-id", sandbox_id):
            if namespace is None or pv.namespace(pod) == namespace:
                return pod
        if not is_sandbox_id(sandbox_id) or self.lifecycle.history.find(sandbox_id) is not None:
            return None
        claimed = self._recent_claims.get(sandbox_id)
        if claimed is not None and (namespace is None or pv.namespace(claimed) == namespace):
            cached = self.pods.get(pv.key(claimed))
            if cached is not None and pv.rv_older(pv.resource_version(cached), pv.resource_version(claimed)):
                return claimed
        listing = await self.client.list(pods_path(namespace),
                                         label_selector=f"{v.LABEL_SANDBOX_ID}={sandbox_id}")
        items = listing.get("items") or []
        return items[0] if items else None

    def _finished(self, sandbox_id: str, namespace: str | None) -> dict[str, Any] | None:
        """The history record of ``sandbox_id``: it wins over a pod still holding the id on its way
        out (being deleted, failed by its node), which no longer runs the sandbox."""
        rec = self.lifecycle.history.find(sandbox_id)
        return rec if rec is not None and (namespace is None or rec.get("namespace") == namespace) else None

    async def get(self, sandbox_id: str, namespace: str | None = None) -> dict[str, Any]:
        rec = self._finished(sandbox_id, namespace)
        if rec is not None:
            return rec
        pod = await self._live_pod(sandbox_id, namespace)
        if pod is not None and pv.sandbox_phase(pod) != v.SandboxPhase.IDLE.value:
            return self._record(pod)
        raise NotFound(f"sandbox {sandbox_id!r} not found")

    def list(self, namespace: str | None = None, *, pool_name: str | None = None,
             statuses: list[str] | None = None, limit: int = 20, offset: int = 0) -> SandboxList:
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidRequest("limit must be 1-1000 and offset >= 0")
        live = [self._record(p) for p in self.pods.items()
                if pv.sandbox_id(p) and pv.sandbox_phase(p) != v.SandboxPhase.IDLE.value
                and (namespace is None or pv.namespace(p) == namespace)]
        history = [r for r in self.lifecycle.history.records()
                   if namespace is None or r.get("namespace") == namespace]
        merged = merge_records(live, history)
        if pool_name:
            merged = [r for r in merged if r.get("poolName") == pool_name]
        if statuses:
            wanted = {s.strip().lower() for s in statuses if s.strip()}
            merged = [r for r in merged if str(r.get("status", "")).lower() in wanted]
        return SandboxList(items=merged[offset:offset + limit], total=len(merged), limit=limit, offset=offset)

    # ---- write -----------------------------------------------------------------------------
    async def delete(self, sandbox_id: str, namespace: str | None = None) -> dict[str, Any]:
        rec = self._finished(sandbox_id, namespace)
        if rec is not None:
            return {"sandboxId": sandbox_id, "namespace": rec.get("namespace"), "poolName": rec.get("poolName"),
                    "podName": rec.get("podName"), "status": "Terminated"}
        pod = await self._live_pod(sandbox_id, namespace)
        if pod is None or pv.sandbox_phase(pod) == v.SandboxPhase.IDLE.value:
            raise NotFound(f"sandbox {sandbox_id!r} not found")
        out = {"sandboxId": sandbox_id, "namespace": pv.namespace(pod), "poolName": pv.pool_name(pod),
               "podName": pv.name(pod), "status": "Stopping"}
        if pv.sandbox_phase(pod) == v.SandboxPhase.STOPPING.value:
            return out
        pool = self.pools.get(f"{pv.namespace(pod)}/{pv.pool_name(pod)}")
        if pool is None:
            raise NotFound(f"sandbox {sandbox_id!r} belongs to a pool that no longer exists")
        for _ in range(5):
            try:
                written = await self.lifecycle.release(pod, pool, StopDetails(delete_stop_reason(pod)),
                                                       disable_retry=True)
            except (KubeError, inplace.UnexpectedPodPhase):
                pod = await self.client.get(pods_path(pv.namespace(pod), pv.name(pod)))
                if pv.sandbox_id(pod) != sandbox_id or pv.sandbox_phase(pod) in (
                        v.SandboxPhase.STOPPING.value, v.SandboxPhase.IDLE.value):
                    return out
            else:
                await self.pods.wait_seen(written, READ_YOUR_WRITES_S)  # an immediate get or delete sees it
                return out
        raise InvalidRequest("the sandbox kept changing; retry the delete")

    async def logs(self, sandbox_id: str, container: str | None = None, lines: int = 0,
                   namespace: str | None = None) -> dict[str, Any]:
        """The live output of the sandbox's containers (or of ``container``), the last ``lines`` lines of each."""
        pod = await self._live_pod(sandbox_id, namespace)
        if pod is None or pv.sandbox_phase(pod) not in _LOGGING_PHASES:
            raise NotFound(f"sandbox {sandbox_id!r} is not running; its logs left with its pod")
        names = [str(c.get("name")) for c in pv.containers(pod)]
        if container is not None and container not in names:
            raise InvalidRequest(f"container {container!r} is not in sandbox {sandbox_id!r}; choose one of {names}")
        entries: list[dict[str, str]] = []
        total = 0
        truncated = False
        for name in [container] if container else names:
            try:
                text = await self.client.pod_log(pv.namespace(pod), pv.name(pod), name,
                                                 tail_lines=lines or None, limit_bytes=MAX_LOG_BYTES)
            except KubeError as exc:
                if exc.not_found:
                    raise NotFound(f"sandbox {sandbox_id!r} is not running; its logs left with its pod") from None
                raise
            size = len(text.encode())
            total += size
            truncated = truncated or size >= MAX_LOG_BYTES
            entries.extend({"container": name, "log": line} for line in text.splitlines())
        return {"sandboxId": sandbox_id, "namespace": pv.namespace(pod), "podName": pv.name(pod),
                "capturedAt": now_utc(), "entries": entries, "truncated": truncated, "totalBytes": total,
                "source": "live"}

    async def set_timeout(self, sandbox_id: str, duration: str, namespace: str | None = None) -> None:
        """Set, extend or (``"0"``) disable the idle timeout; counting restarts now."""
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise InvalidRequest(f"timeout: {exc}") from exc
        pod = await self._live_pod(sandbox_id, namespace)
        if pod is None or pv.sandbox_phase(pod) not in (v.SandboxPhase.RUNNING.value,
                                                       v.SandboxPhase.STARTING.value):
            raise NotFound(f"sandbox {sandbox_id!r} is not running")
        annotations: dict[str, str | None] = (
            {v.ANN_IDLE_TIMEOUT: None} if seconds <= 0
            else {v.ANN_IDLE_TIMEOUT: str(max(1, int(seconds))), v.ANN_LAST_ACTIVE: format_time(now_utc())})
        for _ in range(5):
            try:
                written = await self.client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), {"metadata": {
                    "resourceVersion": pv.resource_version(pod), "annotations": annotations}})
                await self.pods.wait_seen(written, READ_YOUR_WRITES_S)  # the caller's next read shows it
                return
            except KubeError as exc:
                if not exc.conflict and not exc.not_found:
                    raise
                if exc.not_found:
                    break
                pod = await self.client.get(pods_path(pv.namespace(pod), pv.name(pod)))
                if pv.sandbox_id(pod) != sandbox_id:
                    break
        raise NotFound(f"sandbox {sandbox_id!r} is not running")
