"""The kubelet I/O shell shared by the ``sim`` and ``local`` node agents.

It talks to the API server exactly like a kubelet (plus a one-node scheduler):
registers and heartbeats a core/v1 Node, lists and watches Pods (re-listing on
410 Gone or after the connection drops, so an API server restart is survived),
binds pending Pods with an empty ``spec.nodeName``, turns pod events into
:class:`~.container.ContainerMachine` events, reports status through the
``pods/status`` subresource, and completes graceful deletion (stop the
containers, then ``DELETE`` with ``gracePeriodSeconds=0``).

Scale: all state is in plain dicts keyed by pod uid; delays live in one
:class:`~.timers.TimerQueue`; API writes go through a fixed pool of worker
tasks fed by a de-duplicating dirty set (one entry per pod at most), so ten
thousand pods never mean ten thousand tasks or an unbounded queue. Pod objects
travel as raw JSON dicts (orjson), not generated models. A writer lets due
timers fire before it builds a status (:meth:`Kubelet._settle`), so a change
whose runtime steps take no time (an in-place swap on a ``sim`` node with no
delays) costs one status write, not one per step.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.common.logging import get_logger
from agent_sandbox.localcluster.node.container import ContainerMachine, Pull, Start, Stop, Wake
from agent_sandbox.localcluster.node.podstatus import (
    TERMINAL_PHASES,
    Eviction,
    PodFacts,
    build_pod_status,
    status_patch,
)
from agent_sandbox.localcluster.node.podwrites import PodWriter
from agent_sandbox.localcluster.node.runtime import PodRecord, Runtime
from agent_sandbox.localcluster.node.settings import NodeSettings
from agent_sandbox.localcluster.node.timefmt import parse_rfc3339, rfc3339
from agent_sandbox.localcluster.node.timers import TimerQueue

log = get_logger(__name__)

HOST_IP = "127.0.0.1"
KUBELET_VERSION = "v1.30.0-agentsandbox"
MERGE_PATCH = "application/merge-patch+json"
WATCH_TIMEOUT_SECONDS = 240
RETRY_DELAY = 0.5
BIND_DELAY = 0.1
MAX_RETRY_DELAY = 5.0
SETTLE_TURNS = 8  # loop turns a status writer waits at most for instant runtime steps to land


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410): re-list."""


class Kubelet:
    def __init__(
        self,
        api: ApiClient,
        node_name: str,
        settings: NodeSettings,
        runtime_factory: Callable[[Kubelet, TimerQueue], Runtime],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_name = node_name
        self.settings = settings
        self.core = CoreV1Api(api)
        self.writer = PodWriter(api, limit=settings.status_writers)
        self.timers = TimerQueue()
        self.runtime = runtime_factory(self, self.timers)
        self.pods: dict[str, PodRecord] = {}
        self._clock = clock
        self._timing = settings.timing()
        self._unbound: dict[str, tuple[str, str]] = {}
        self._active = 0  # pods holding runtime resources, for the capacity check
        self._dirty: dict[tuple[str, str], None] = {}
        self._busy: set[tuple[str, str]] = set()
        self._wake_workers = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        await self.runtime.open()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.timers.run())
                tg.create_task(self._heartbeat_loop())
                tg.create_task(self._pods_loop())
                for _ in range(self.settings.status_writers):
                    tg.create_task(self._worker())
        finally:
            await asyncio.shield(self.runtime.close())
            await asyncio.shield(self.writer.close())

    # ---- node object -----------------------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        now = rfc3339(self._clock())
        mem_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki",
                    "pods": str(self.settings.max_pods), "ephemeral-storage": "100Gi"}

        def cond(ctype: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
            return {"type": ctype, "status": "True" if ok else "False", "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": self._started_at}

        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                cond("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                cond("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", True, "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": os.uname().release,
                "osImage": "agent-sandbox", "containerRuntimeVersion": f"{self.runtime.name}://{self.runtime.version}",
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux", "architecture": os.uname().machine.replace("x86_64", "amd64"),
            },
        }

    async def _register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": {
                "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                "agentsandbox.io/node-kind": self.runtime.kind}},
            "spec": {"podCIDR": self.settings.pod_cidr, "podCIDRs": [self.settings.pod_cidr]},
        }
        try:
            await _raw(self.core.create_node(body, _preload_content=False))
        except ApiException as exc:
            if exc.status != 409:
                raise
        await self._patch_node_status()

    async def _patch_node_status(self) -> None:
        await _raw(self.core.patch_node_status(self.node_name, {"status": self._node_status()},
                                               _content_type=MERGE_PATCH, _preload_content=False))

    async def _heartbeat_loop(self) -> None:
        self._started_at = rfc3339(self._clock())
        registered = False
        delay = RETRY_DELAY
        while True:
            try:
                if registered:
                    await self._patch_node_status()
                else:
                    await self._register()
                    registered = True
                    log.info("node registered", node=self.node_name, kind=self.runtime.kind)
                delay = RETRY_DELAY
                await asyncio.sleep(self.settings.heartbeat_interval)
            except ApiException as exc:
                registered = registered and exc.status != 404
                log.warning("node heartbeat failed", status=exc.status, reason=exc.reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.warning("node heartbeat failed", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    # ---- list + watch ----------------------------------------------------------------------

    async def _pods_loop(self) -> None:
        rv: str | None = None
        delay = RETRY_DELAY
        while True:
            try:
                if rv is None:
                    rv = await self._relist()
                rv = await self._watch(rv)
                delay = RETRY_DELAY
            except WatchExpired:
                log.info("pod watch expired, re-listing")
                rv = None
            except (ApiException, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.warning("pod watch failed", error=str(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
            except Exception:  # e.g. a malformed object: start over from a fresh list
                log.exception("pod watch broke, re-listing")
                rv = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _relist(self) -> str:
        data = await _raw(self.core.list_pod_for_all_namespaces(_preload_content=False))
        seen = set()
        for pod in data.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self._on_pod(pod)
        for uid in [u for u in self.pods if u not in seen]:
            self._on_pod_deleted(uid)
        for uid in [u for u in self._unbound if u not in seen]:
            self._unbound.pop(uid, None)
        return str(data.get("metadata", {}).get("resourceVersion") or "")

    async def _watch(self, rv: str) -> str:
        resp = await self.core.list_pod_for_all_namespaces(
            watch=True, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=WATCH_TIMEOUT_SECONDS,
            _preload_content=False, _request_timeout=aiohttp.ClientTimeout(total=WATCH_TIMEOUT_SECONDS + 30),
        )
        try:
            if resp.status == 410:
                raise WatchExpired()
            if resp.status >= 300:
                raise ApiException(status=resp.status, reason=resp.reason)
            async for line in _lines(resp.content):
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired()
                    raise ApiException(status=obj.get("code") or 500, reason=obj.get("message"))
                rv = str(obj.get("metadata", {}).get("resourceVersion") or rv)
                if kind == "DELETED":
                    self._on_pod_deleted(obj["metadata"]["uid"])
                elif kind in ("ADDED", "MODIFIED"):
                    self._on_pod(obj)
        finally:
            resp.release()
        return rv

    # ---- pod events ------------------------------------------------------------------------

    def _on_pod(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        node = spec.get("nodeName")
        if not node:
            if not meta.get("deletionTimestamp") and uid not in self._unbound:
                self._unbound[uid] = (meta.get("namespace") or "default", meta["name"])
                # A real scheduler, if there is one, usually binds within milliseconds: let it.
                self.timers.call_later(BIND_DELAY, lambda: self._mark(("bind", uid)) if uid in self._unbound
                                       else None)
            return
        self._unbound.pop(uid, None)
        if node != self.node_name:
            return
        rec = self.pods.get(uid)
        if rec is None:
            rec = self._adopt(pod)
            self.pods[uid] = rec
            self._active += not rec.released
            changed = True
        else:
            # Most events change nothing the node reports (the echo of its own status write, label and
            # annotation edits): those must not cost a status sync. Container changes touch through _apply.
            generation = _generation(meta)
            changed = spec != rec.spec or generation != rec.facts.observed_generation
            rec.spec = rec.facts.spec = spec
            annotations = meta.get("annotations") or {}
            if annotations != rec.annotations:
                rec.annotations = annotations
                self.runtime.pod_updated(rec)
            if not rec.deleting:
                for c in spec.get("containers") or []:
                    m = rec.machines.get(c.get("name"))
                    image = c.get("image", "")
                    if m is not None and image != m.spec_image:
                        self._apply(rec, m, m.set_image(image))
            rec.facts.observed_generation = generation
        if meta.get("deletionTimestamp") and not rec.deleting:
            rec.deleting = changed = True
            grace = meta.get("deletionGracePeriodSeconds")
            grace = self.settings.max_grace if grace is None else min(float(grace), self.settings.max_grace)
            for m in rec.machines.values():
                self._apply(rec, m, m.shutdown(grace))
        if changed:
            self._touch(rec)

    def _adopt(self, pod: dict[str, Any]) -> PodRecord:
        """A pod bound to this node that the node does not know yet (new, or from before a restart)."""
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        now = self._clock()
        facts = PodFacts(spec=spec, host_ip=HOST_IP,
                         start_time=parse_rfc3339(status.get("startTime")) or now,
                         prev_conditions=list(status.get("conditions") or []),
                         observed_generation=_generation(meta))
        rec = PodRecord(uid=meta["uid"], namespace=meta.get("namespace") or "default", name=meta["name"],
                        spec=spec, annotations=meta.get("annotations") or {}, facts=facts)
        if status.get("phase") in TERMINAL_PHASES:
            # A finished pod is never restarted: keep what it reported.
            rec.frozen = rec.released = True
            rec.last_written = status
            return rec
        try:
            facts.pod_ip = self.runtime.assign_ip(rec, status.get("podIP"))
        except RuntimeError as exc:
            log.error("no pod IP", pod=rec.key, error=str(exc))
        reported = {s.get("name"): s for s in status.get("containerStatuses") or []}
        pod_label = f"{rec.name}_{rec.namespace}({rec.uid})"
        grace = spec.get("terminationGracePeriodSeconds")
        grace = min(30.0 if grace is None else float(grace), self.settings.max_grace)
        for c in spec.get("containers") or []:
            m = ContainerMachine(
                c.get("name", ""), c.get("image", ""), restart_policy=spec.get("restartPolicy") or "Always",
                grace=grace, timing=self._timing, pod_label=pod_label)
            rec.machines[m.name] = m
            previous = reported.get(m.name)
            if previous and facts.pod_ip:
                self._apply(rec, m, m.restore(previous, self.runtime.keeps_containers, now))
            elif facts.pod_ip:
                self._apply(rec, m, m.begin())
        self.runtime.pod_updated(rec)
        return rec

    def _on_pod_deleted(self, uid: str) -> None:
        self._unbound.pop(uid, None)
        rec = self.pods.get(uid)
        if rec is None:
            return
        rec.gone = rec.deleting = True
        for m in rec.machines.values():
            self._apply(rec, m, m.shutdown(0))
        self._touch(rec)

    # ---- runtime events (RuntimeEvents) ----------------------------------------------------

    def _machine(self, uid: str, container: str) -> tuple[PodRecord, ContainerMachine] | None:
        rec = self.pods.get(uid)
        m = rec.machines.get(container) if rec else None
        return (rec, m) if rec is not None and m is not None else None

    def pulled(self, uid: str, container: str, token: int, image_id: str) -> None:
        if found := self._machine(uid, container):
            self._apply(found[0], found[1], found[1].pulled(token, image_id))

    def pull_failed(self, uid: str, container: str, token: int, message: str) -> None:
        if found := self._machine(uid, container):
            self._apply(found[0], found[1], found[1].pull_failed(token, message, self._clock()))

    def started(self, uid: str, container: str, container_id: str) -> None:
        if found := self._machine(uid, container):
            self._apply(found[0], found[1], found[1].started(container_id, self._clock()))

    def start_failed(self, uid: str, container: str, container_id: str, message: str) -> None:
        if found := self._machine(uid, container):
            self._apply(found[0], found[1], found[1].start_failed(container_id, message, self._clock()))

    def exited(self, uid: str, container: str, container_id: str, exit_code: int,
               reason: str | None = None, message: str | None = None) -> None:
        if found := self._machine(uid, container):
            rec, m = found
            self._apply(rec, m, m.exited(container_id, exit_code, reason, self._clock(), message=message))

    def evict(self, uid: str, message: str) -> None:
        rec = self.pods.get(uid)
        if rec is None or rec.deleting or rec.facts.eviction is not None or rec.frozen:
            return
        rec.facts.eviction = Eviction(message=message)
        for m in rec.machines.values():
            self._apply(rec, m, m.shutdown(0))
        self._touch(rec)

    def _on_timer(self, uid: str, container: str, token: int) -> None:
        if found := self._machine(uid, container):
            self._apply(found[0], found[1], found[1].timer(token))

    # ---- actions and writes ----------------------------------------------------------------

    def _apply(self, rec: PodRecord, m: ContainerMachine, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Pull):
                self.runtime.pull(rec, m.name, action.image, action.token)
            elif isinstance(action, Start):
                self.runtime.start(rec, m.name, action)
            elif isinstance(action, Stop):
                self.runtime.stop(rec, m.name, action.container_id, min(action.grace, self.settings.max_grace))
            elif isinstance(action, Wake):
                self.timers.call_later(action.delay, lambda u=rec.uid, c=m.name, t=action.token: self._on_timer(
                    u, c, t))
        self._touch(rec)

    def _touch(self, rec: PodRecord) -> None:
        if not rec.frozen and rec.machines and rec.all_stopped() and rec.facts.terminal_phase is None:
            statuses = [m.status() for m in rec.machines.values()]
            ok = all((s["state"].get("terminated") or {}).get("exitCode") == 0 for s in statuses)
            rec.facts.terminal_phase = "Succeeded" if ok and rec.facts.eviction is None else "Failed"
        self._mark(("pod", rec.uid))

    def _mark(self, key: tuple[str, str]) -> None:
        self._dirty[key] = None
        self._wake_workers.set()

    async def _next_key(self) -> tuple[str, str]:
        while True:
            for key in self._dirty:
                if key not in self._busy:
                    del self._dirty[key]
                    return key
            self._wake_workers.clear()
            await self._wake_workers.wait()

    async def _settle(self) -> None:
        """Give the timer task a few turns to fire what is already due (bounded: a writer never starves)."""
        for _ in range(SETTLE_TURNS):
            if not self.timers.has_due():
                return
            await asyncio.sleep(0)

    async def _worker(self) -> None:
        while True:
            key = await self._next_key()
            self._busy.add(key)
            try:
                await self._settle()
                self._dirty.pop(key, None)  # marked while settling: this sync already covers it
                done = await (self._bind(key[1]) if key[0] == "bind" else self._sync(key[1]))
            except (ApiException, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.warning("api write failed", op=key[0], error=str(exc)[:200])
                done = False
            except Exception:  # a bug for one pod must not stop the writers of every other pod
                log.exception("pod sync failed", op=key[0], uid=key[1])
                done = False
            finally:
                self._busy.discard(key)
            if key in self._dirty:
                self._wake_workers.set()
            if not done:
                self.timers.call_later(RETRY_DELAY, lambda k=key: self._mark(k))

    async def _bind(self, uid: str) -> bool:
        target = self._unbound.get(uid)
        if target is None:
            return True
        if self._active >= self.settings.max_pods:
            return False  # retried: capacity frees up as pods go
        namespace, name = target
        try:
            await self.writer.bind(namespace, name, self.node_name)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Bound elsewhere, or a write conflict: only the watch can tell. Retry; a pod the watch shows
            # bound leaves ``_unbound`` and the retry is a no-op.
            return False
        self._unbound.pop(uid, None)
        return True

    async def _sync(self, uid: str) -> bool:
        rec = self.pods.get(uid)
        if rec is None:
            return True
        if not rec.frozen and not rec.gone:
            status = build_pod_status(rec.facts, [m.status() for m in rec.machines.values()], self._clock())
            if status != rec.last_written:
                try:
                    await self.writer.patch_status(rec.namespace, rec.name, status_patch(status))
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                rec.last_written = status
                rec.facts.prev_conditions = status["conditions"]
        if not rec.all_stopped():
            return True
        if not rec.released:
            await self.runtime.release(rec)
            rec.released = True
            self._active -= 1
        if rec.gone:
            self.pods.pop(uid, None)
            if self._unbound:
                self._mark(("bind", next(iter(self._unbound))))
        elif rec.deleting and not rec.delete_sent:
            try:
                await self.writer.delete_now(rec.namespace, rec.name, rec.uid)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
            rec.delete_sent = True
        return True


def _generation(meta: dict[str, Any]) -> int | None:
    generation = meta.get("generation")
    return generation if isinstance(generation, int) else None


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited watch events of any size (aiohttp's line reader caps a line at 128 KiB)."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


async def _raw(call: Any) -> dict[str, Any]:
    """Await a kubernetes_asyncio call made with ``_preload_content=False``; JSON body or ApiException."""
    resp = await call
    try:
        body = await resp.read()
    finally:
        resp.release()
    if resp.status >= 300:
        exc = ApiException(status=resp.status, reason=resp.reason)
        exc.body = body.decode(errors="replace")
        raise exc
    return orjson.loads(body) if body else {}
