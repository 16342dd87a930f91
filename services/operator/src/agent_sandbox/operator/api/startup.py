"""Start the operator's HTTP API servers: the one entry point the operator's CLI calls.

Usage (inside the operator's running event loop, after :meth:`Operator.start`)::

    servers = await start_api_servers(operator.client, ApiServerSettings(admin_key=..., secret=..., ...),
                                      sandboxes=operator.sandboxes, pools=operator.pool_service)
    ...
    await servers.stop()

With the service layer given, the native API serves sandboxes, pools, templates and statistics,
the terminal WebSocket is served, and the E2B-compatible API listens on ``e2b_port`` (``None``
disables it). Refuses to start (``InsecureConfiguration``) without an admin key unless ``dev_mode``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import NativeApiDeps
from agent_sandbox.operator.api.envd_access import DEFAULT_URL_TEMPLATE, EnvdAccess
from agent_sandbox.operator.api.handlers import pools as pool_handlers
from agent_sandbox.operator.api.handlers import sandboxes as sandbox_handlers
from agent_sandbox.operator.api.handlers import statistics as statistics_handlers
from agent_sandbox.operator.api.handlers import templates as template_handlers
from agent_sandbox.operator.api.sandbox_access import SandboxAccess
from agent_sandbox.operator.api.server import build_native_app, unbound_operations
from agent_sandbox.operator.auth.authenticator import Authenticator
from agent_sandbox.operator.auth.iam import NamespaceResolver
from agent_sandbox.operator.auth.keystore import ApiKeyStore
from agent_sandbox.operator.auth.kube_secrets import KubeAuthBackend
from agent_sandbox.operator.crosscluster.directory import ClusterDirectory
from agent_sandbox.operator.crosscluster.forwarding import Forwarder
from agent_sandbox.operator.e2b.handlers import E2BDeps
from agent_sandbox.operator.e2b.key_reservations import KeyReservations
from agent_sandbox.operator.e2b.server import build_e2b_app
from agent_sandbox.operator.kube.client import KubeClient
from agent_sandbox.operator.services.pools import PoolService
from agent_sandbox.operator.services.sandboxes import SandboxService
from agent_sandbox.operator.settings import default_identity
from agent_sandbox.operator.terminal.bridge import TerminalBridge

log = get_logger(__name__)


@dataclass(frozen=True)
class ApiServerSettings:
    admin_key: str = ""
    #: HS256 JWT verification secret (empty disables JWTs).
    secret: str = ""
    #: Secret the envd access tokens derive from: the one extproc verifies with (empty = no tokens).
    envd_secret: str = ""
    dev_mode: bool = False
    local_cluster_id: str = ""
    apikey_namespace: str = v.SYSTEM_NAMESPACE
    apikey_cache_ttl: float = 60.0
    min_client_version: str = "0.0.0"
    api_host: str = "0.0.0.0"
    api_port: int = 8080
    e2b_host: str = "0.0.0.0"
    #: ``None`` = no E2B server.
    e2b_port: int | None = 8090
    #: envdVersion reported to E2B SDKs: the version of the envd this deployment injects.
    envd_version: str = "0.5.7"
    #: ``domain`` in E2B create answers (``--e2b-domain``); ``None`` lets the SDK use its own.
    e2b_domain: str | None = None
    #: How the operator reaches envd (``{pod_ip}``, ``{sandbox_id}`` placeholders).
    envd_url_template: str = DEFAULT_URL_TEMPLATE
    #: Namespace of the E2B ``Idempotency-Key`` records (Leases; the operator's own namespace).
    idempotency_namespace: str = v.SYSTEM_NAMESPACE


@dataclass
class ApiServers:
    runners: list[web.AppRunner] = field(default_factory=list)
    native: NativeApiDeps | None = None
    envd: EnvdAccess | None = None
    forwarder: Forwarder | None = None
    #: Background loops of the servers (the idempotency-record sweep), cancelled on stop.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def address(self, index: int) -> str:
        host, port = self.runners[index].addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for runner in reversed(self.runners):
            await runner.cleanup()
        if self.envd is not None:
            await self.envd.close()
        if self.forwarder is not None:
            await self.forwarder.close()


def build_native_deps(kube: KubeClient, settings: ApiServerSettings,
                      clusters: ClusterDirectory | None = None) -> NativeApiDeps:
    backend = KubeAuthBackend(kube)
    keys = ApiKeyStore(backend, settings.apikey_namespace, cache_ttl=settings.apikey_cache_ttl)
    auth = Authenticator(admin_key=settings.admin_key, keys=keys, resolver=NamespaceResolver(backend.namespace_exists),
                         jwt_secret=settings.secret.encode() or None, dev_mode=settings.dev_mode)
    return NativeApiDeps(authenticator=auth, keys=keys, local_cluster_id=settings.local_cluster_id,
                         clusters=clusters, min_client_version=settings.min_client_version)


def service_handlers(access: SandboxAccess, pools: PoolService, kube: KubeClient,
                     envd: EnvdAccess) -> dict[str, Handler]:
    """Native handlers backed by the service layer (sandboxes, pools, templates, statistics)."""
    return {**sandbox_handlers.handlers(access, envd), **pool_handlers.handlers(pools),
            **template_handlers.handlers(kube), **statistics_handlers.handlers(access, pools)}


async def _listen(app: web.Application, host: str, port: int) -> web.AppRunner:
    # A caller that hangs up cancels its handler: a create abandoned mid-claim is released (Canceled)
    # instead of leaving a claimed pod nobody knows about.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def start_api_servers(kube: KubeClient, settings: ApiServerSettings,
                            extra_handlers: Mapping[str, Handler] | None = None, *,
                            sandboxes: SandboxService | None = None,
                            pools: PoolService | None = None,
                            clusters: ClusterDirectory | None = None,
                            is_leader: Callable[[], bool] = lambda: True) -> ApiServers:
    """Listen with the native API (and, given the service layer, the E2B API); returns the servers to stop.

    ``clusters`` (the operator's watched cluster directory) enables ``GET /v1/clusters`` beyond this
    cluster and cross-cluster forwarding; without it every foreign cluster is unknown (502).
    ``is_leader`` says whether this replica sweeps expired idempotency records (one sweeper is enough).
    """
    clusters = clusters or ClusterDirectory(settings.local_cluster_id)
    deps = build_native_deps(kube, settings, clusters)
    handlers: dict[str, Handler] = dict(extra_handlers or {})
    servers = ApiServers(native=deps, forwarder=Forwarder(clusters))
    routes: list[web.RouteDef] = []
    access = None
    if sandboxes is not None and pools is not None:
        access = SandboxAccess(sandboxes)
        servers.envd = EnvdAccess(settings.envd_secret, settings.envd_url_template)
        handlers = {**service_handlers(access, pools, kube, servers.envd), **handlers}
        routes.append(TerminalBridge(deps.exec_tokens, access, servers.envd).route())
    try:
        servers.runners.append(await _listen(build_native_app(deps, handlers, routes, servers.forwarder),
                                             settings.api_host, settings.api_port))
        log.info("native api listening", address=servers.address(0), unserved_operations=unbound_operations(handlers))
        if access is not None and pools is not None and servers.envd is not None and settings.e2b_port is not None:
            # The record names are HMACs under the deployment secret, so every replica derives the same.
            reservations = KeyReservations(kube, settings.idempotency_namespace,
                                           (settings.envd_secret or settings.secret).encode(),
                                           holder=default_identity())
            servers.tasks.append(asyncio.create_task(reservations.run_sweeper(is_leader), name="idempotency-sweep"))
            e2b = E2BDeps(access=access, pools=pools, envd=servers.envd, envd_version=settings.envd_version,
                          domain=settings.e2b_domain, local_cluster_id=settings.local_cluster_id,
                          reservations=reservations)
            servers.runners.append(await _listen(build_e2b_app(deps.authenticator, e2b, servers.forwarder),
                                                 settings.e2b_host, settings.e2b_port))
            log.info("e2b api listening", address=servers.address(1))
    except BaseException:
        await servers.stop()
        raise
    return servers
