"""One data-plane process: routing state, the watches that feed it, and its gRPC servers.

:class:`DataPlane` owns the route table, activity tracker and decider of one
process and keeps them fresh from three watches (sandbox pods, the cluster
ConfigMap when a cluster id is set, API-key Secrets when data-plane auth is on)
plus a GC loop. :func:`serve` runs a DataPlane with the ExtProc server and a
control-plane server; it is used directly for ``--workers 1`` and by every
worker process otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from agent_sandbox.common.clusters import CONFIGMAP_KEY, ClusterConfigError, parse_cluster_config
from agent_sandbox.common.logging import get_logger
from agent_sandbox.common.vocabulary import LABEL_SANDBOX_PHASE, LABEL_TYPE, TYPE_API_KEY

from .activity import ActivityTracker
from .clusters import data_gateways, host_aliases
from .control import LocalBackend, control_server
from .decision import Decider, Policy
from .envoy_config import extproc_token
from .h2grpc import start_server
from .keys import KeyIndex
from .kube import Informer, api_client
from .processor import ExtProcHandler
from .resolver import Resolver
from .routes import ROUTABLE_PHASES, PodView, RouteTable, pod_view
from .settings import ExtprocSettings

log = get_logger(__name__)

ROUTE_GC_INTERVAL = 30.0


class DataPlane:
    def __init__(self, settings: ExtprocSettings) -> None:
        self.settings = settings
        self.routes = RouteTable(push_ttl=settings.route_ttl)
        self.activity = ActivityTracker()
        self.keys = KeyIndex(settings.admin_key_value()) if settings.enable_auth else None
        secret = settings.secret.get_secret_value().encode() if settings.check_envd_token and settings.secret else None
        self.decider = Decider(self.routes, self.activity, Policy(self.keys, secret, settings.cluster_id))
        self.resolver = Resolver()
        self.informers: list[Informer] = []

    # ---- pods ---------------------------------------------------------------------------------
    def _seed(self, view: PodView) -> None:
        if view.sandbox_id and view.running and view.phase in ROUTABLE_PHASES and view.activity_seed:
            self.activity.seed(view.sandbox_id, view.activity_seed)

    def _pods_replace(self, items: list[dict[str, Any]]) -> None:
        views = [pod_view(obj) for obj in items]
        self.routes.replace_pods(views)
        for view in views:
            self._seed(view)
        log.info("pods listed", pods=len(views))

    def _pod_upsert(self, obj: dict[str, Any]) -> None:
        view = pod_view(obj)
        self.routes.upsert_pod(view)
        self._seed(view)

    def _pod_delete(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self.routes.delete_pod(meta.get("namespace") or "default", meta.get("name") or "")

    # ---- cluster config -----------------------------------------------------------------------
    def _clusters_apply(self, obj: dict[str, Any] | None) -> None:
        text = ((obj or {}).get("data") or {}).get(CONFIGMAP_KEY, "")
        try:
            config = parse_cluster_config(text)
        except ClusterConfigError as exc:
            log.warning("ignoring invalid cluster config, keeping the previous one", error=str(exc))
            return
        self.decider.gateways = data_gateways(config)
        self.resolver.set_aliases(host_aliases(config))
        log.info("cluster config loaded", gateways=sorted(self.decider.gateways))

    def _clusters_replace(self, items: list[dict[str, Any]]) -> None:
        self._clusters_apply(items[0] if items else None)

    # ---- loops --------------------------------------------------------------------------------
    def build_informers(self, api: client.ApiClient) -> list[Informer]:
        core = client.CoreV1Api(api)
        s = self.settings
        informers = [
            Informer("pods", core.list_pod_for_all_namespaces, label_selector=LABEL_SANDBOX_PHASE,
                     on_replace=self._pods_replace, on_upsert=self._pod_upsert, on_delete=self._pod_delete,
                     watch_timeout=s.watch_timeout),
        ]
        if s.cluster_id:
            informers.append(Informer(
                "clusters", core.list_namespaced_config_map, namespace=s.apikey_namespace,
                field_selector=f"metadata.name={s.clusters_configmap_name}",
                on_replace=self._clusters_replace, on_upsert=self._clusters_apply,
                on_delete=lambda _obj: self._clusters_apply(None), watch_timeout=s.watch_timeout,
            ))
        if self.keys is not None:
            keys = self.keys
            informers.append(Informer(
                "apikeys", core.list_namespaced_secret, namespace=s.apikey_namespace,
                label_selector=f"{LABEL_TYPE}={TYPE_API_KEY}",
                on_replace=keys.replace, on_upsert=keys.upsert, on_delete=keys.delete,
                watch_timeout=s.watch_timeout,
            ))
        self.informers = informers
        return informers

    def synced(self) -> bool:
        return bool(self.informers) and all(i.synced.is_set() for i in self.informers)

    async def gc_loop(self) -> None:
        next_activity_gc = time.monotonic() + self.settings.activity_gc_interval
        while True:
            await asyncio.sleep(min(ROUTE_GC_INTERVAL, self.settings.activity_gc_interval))
            try:
                self.routes.gc(time.time())
                if time.monotonic() >= next_activity_gc and self.synced():
                    dropped = self.activity.gc(self.routes.is_running)
                    next_activity_gc = time.monotonic() + self.settings.activity_gc_interval
                    if dropped:
                        log.info("activity gc", dropped=dropped, tracked=len(self.activity))
            except Exception:
                log.exception("gc pass failed")


async def serve(
    settings: ExtprocSettings,
    *,
    stop: asyncio.Event,
    control_address: str,
    control_key: str | None,
    reuse_port: bool,
    on_ready: Callable[[], None],
) -> None:
    """Run one data-plane process until ``stop`` is set."""
    host, _, port = settings.listen.rpartition(":")
    admin_key = settings.admin_key_value()
    plane = DataPlane(settings)
    api = await api_client(settings.kubeconfig)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(api.close)
        control = control_server(LocalBackend(plane.routes, plane.activity), control_address, control_key)
        await control.start()
        stack.push_async_callback(control.stop, 1.0)
        extproc, goaway_all = await start_server(
            ExtProcHandler(plane.decider, plane.resolver), host.strip("[]") or "127.0.0.1", int(port),
            reuse_port=reuse_port, token=extproc_token(admin_key) if admin_key else None,
        )
        stack.callback(goaway_all)
        stack.callback(extproc.close)
        tasks = [asyncio.create_task(inf.run(), name=f"watch-{inf.name}") for inf in plane.build_informers(api)]
        tasks.append(asyncio.create_task(plane.gc_loop(), name="gc"))
        tasks.append(asyncio.create_task(_when_synced(plane, on_ready), name="ready"))
        stack.push_async_callback(_cancel, tasks)
        log.info("extproc serving", listen=settings.listen, control=control_address)
        await stop.wait()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _when_synced(plane: DataPlane, on_ready: Callable[[], None]) -> None:
    await asyncio.gather(*(inf.synced.wait() for inf in plane.informers))
    log.info("caches synced", pods=len(plane.routes.pods()))
    on_ready()
