"""Composition of the operator process: caches, controllers, schedulers, services, probes.

Start-up order: Kubernetes client → informers (pods indexed by pool, sandbox
id and phase; pools; stored history) → lifecycle and history → schedulers and
services (serve claims on every replica) → leader election running the pool
controller, idle-timeout loop and history writes/sweeps (one replica) →
probe/metrics server.
``stop`` fails queued claims promptly, stops the loops and releases the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.controllers.idle_timeout import IdleTimeoutLoop
from agent_sandbox.operator.controllers.pool_controller import PoolController, pool_key_of_pod
from agent_sandbox.operator.crosscluster.config_watch import ClusterConfigWatch
from agent_sandbox.operator.crosscluster.directory import ClusterDirectory
from agent_sandbox.operator.dataplane import DataPlane
from agent_sandbox.operator.kube.client import KubeClient, pods_path, pools_path
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.leader import LeaderElector
from agent_sandbox.operator.lifecycle.actions import Lifecycle
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_feed import HistoryFeed
from agent_sandbox.operator.lifecycle.history_metrics import HistoryMetrics
from agent_sandbox.operator.lifecycle.history_sync import HistorySync
from agent_sandbox.operator.lifecycle.history_writer import HistoryWriter
from agent_sandbox.operator.lifecycle.hook_sealing import HookSealer
from agent_sandbox.operator.lifecycle.hooks import HookRunner
from agent_sandbox.operator.metrics import OperatorMetrics
from agent_sandbox.operator.probes import ProbeServer
from agent_sandbox.operator.scheduling.registry import SchedulerRegistry
from agent_sandbox.operator.services.pools import PoolService
from agent_sandbox.operator.services.sandboxes import SandboxService
from agent_sandbox.operator.settings import OperatorSettings

log = get_logger(__name__)

#: How long the pod informer holds back watch events while claim writes are in flight.
CLAIMS_FIRST_HOLD_S = 0.02


class Operator:
    def __init__(self, settings: OperatorSettings, *, dataplane: DataPlane | None = None) -> None:
        self.settings = settings
        self.dataplane = dataplane
        self.metrics = OperatorMetrics()
        self.client: KubeClient | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self.probes: ProbeServer | None = None
        self.elector: LeaderElector | None = None
        #: Other clusters (ConfigMap ``agentsandbox-clusters``), kept current by a watch once started.
        self.clusters = ClusterDirectory(settings.cluster_id)
        self._cluster_watch: ClusterConfigWatch | None = None

    # Built in start(); typed here for users of a started operator.
    pods: Informer
    pools: Informer
    history: HistoryStore
    history_writer: HistoryWriter
    history_sync: HistorySync
    lifecycle: Lifecycle
    schedulers: SchedulerRegistry
    sandboxes: SandboxService
    pool_service: PoolService
    controller: PoolController
    idle_loop: IdleTimeoutLoop

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector is not None else True

    def ready(self) -> bool:
        return (self.client is not None and self.pods.synced.is_set() and self.pools.synced.is_set()
                and self.history_sync.informer.synced.is_set())

    async def start(self) -> None:
        s = self.settings
        self.client = client = await KubeClient.from_kubeconfig(s.kubeconfig)
        await client.warm()  # open the connection pool now, not during the first burst of claims
        self._tasks.append(asyncio.create_task(client.keep_warm(), name="kube:keep-warm"))
        self.pods = Informer(client, pods_path(), kind="Pod", lag_s=s.informer_lag_s)
        self.pods.add_index("pool", lambda p: [k] if (k := pool_key_of_pod(p)) else [])
        self.pods.add_index("sandbox-id", lambda p: [sid] if (sid := pv.sandbox_id(p)) else [])
        self.pods.add_index("phase", lambda p: [pv.sandbox_phase(p)] if pv.pool_name(p) else [])
        self.pools = Informer(client, pools_path(), kind="SandboxPool", lag_s=s.informer_lag_s)
        self.history = HistoryStore(ttl_s=s.history_ttl_s)
        self.lifecycle = Lifecycle(client, self.history, self.metrics, self.dataplane)
        # Every replica records finished sandboxes from the pod stream, whoever released them; the leader
        # also stores them in the API server, from where every replica (a restarted one too) reads them.
        history_metrics = HistoryMetrics(self.metrics.registry)
        self.history_writer = HistoryWriter(client, lambda: self.is_leader, history_metrics)
        self.history_sync = HistorySync(client, self.history, self.history_writer, history_metrics,
                                        ttl_s=s.history_ttl_s, lag_s=s.informer_lag_s)
        self.pods.add_handler(HistoryFeed(self.history, on_record=self.history_writer.submit).on_pod_event)
        self.schedulers = SchedulerRegistry(client, self.pods, self.metrics)
        # A burst's watch echoes wait (briefly) for its claim answers; see Informer.set_gate.
        self.pods.set_gate(self.schedulers.claims_first, hold_s=CLAIMS_FIRST_HOLD_S)
        sealer = HookSealer(s.secret) if s.secret else None
        self.sandboxes = SandboxService(client, self.pods, self.pools, self.lifecycle, self.schedulers,
                                        self.metrics, cluster_id=s.cluster_id, dataplane=self.dataplane,
                                        gateway_base_url=s.gateway_base_url, sealer=sealer)
        self.schedulers.on_orphan = self.sandboxes.release_orphan
        self.pool_service = PoolService(client, self.pools, self.pods)
        self._session = aiohttp.ClientSession()
        # No operator credential travels with hooks: the request ends inside the tenant's sandbox.
        hooks = HookRunner(s.gateway_base_url, client.configuration, self._session, sealer)
        self.controller = PoolController(client, self.pods, self.pools, self.lifecycle, self.metrics,
                                         hooks=hooks, dataplane=self.dataplane,
                                         notify_idle=self.schedulers.notify_idle,
                                         forget_pool=self.schedulers.forget,
                                         claims_quiet=self.schedulers.wait_quiet,
                                         unhealthy_grace_s=s.unhealthy_idle_grace_s,
                                         requeue_s=s.reconcile_requeue_s)
        self.idle_loop = IdleTimeoutLoop(client, self.pods, self.pools, self.lifecycle, self.dataplane,
                                         interval_s=s.idle_check_interval_s,
                                         dataplane_grace_s=s.dataplane_grace_s)
        self.pods.add_handler(self.schedulers.on_pod_event)
        self.pods.add_handler(self.controller.on_pod_event)
        self.pools.add_handler(self.schedulers.on_pool_event)
        self.pools.add_handler(self.controller.on_pool_event)
        self._tasks.append(asyncio.create_task(self.pods.run(), name="informer:pods"))
        self._tasks.append(asyncio.create_task(self.pools.run(), name="informer:pools"))
        self._tasks.append(asyncio.create_task(self.history_sync.informer.run(), name="informer:history"))
        self._cluster_watch = ClusterConfigWatch(client, self.clusters, s.clusters_namespace)
        self._cluster_watch.start()
        if s.leader_elect:
            self.elector = LeaderElector(client, s.lease_namespace, s.lease_name, s.identity,
                                         lease_s=s.lease_duration_s, renew_s=s.lease_renew_s,
                                         retry_s=min(2.0, s.lease_renew_s))
            self._tasks.append(asyncio.create_task(self.elector.run(self._lead), name="leader"))
        else:
            self._tasks.append(asyncio.create_task(self._lead(), name="controllers"))
        self.probes = ProbeServer(s.metrics_listen, self, metrics_token=s.admin_key)
        if not s.admin_key:
            log.warning("no admin key configured: /metrics is served without authentication")
        await self.probes.start()
        await asyncio.wait_for(asyncio.gather(self.pods.synced.wait(), self.pools.synced.wait(),
                                              self.history_sync.informer.synced.wait()), 60)
        log.info("operator started", cluster_id=s.cluster_id, identity=s.identity,
                 metrics=self.probes.address)

    async def _lead(self) -> None:
        await asyncio.gather(self.controller.run(), self.idle_loop.run(), self.history_sync.lead())

    async def stop(self) -> None:
        if self.client is None:
            return
        await self.schedulers.stop()
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._cluster_watch is not None:
            await self._cluster_watch.stop()
        if self.probes is not None:
            await self.probes.stop()
        if self._session is not None:
            await self._session.close()
        if self.dataplane is not None:
            await self.dataplane.close()
        await self.client.close()
        self.client = None

    async def __aenter__(self) -> Operator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
