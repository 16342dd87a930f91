"""Start the operator's HTTP API servers: the one entry point the operator's CLI calls.

Usage (inside the operator's running event loop, after the Kubernetes client exists)::

    runners = await start_api_servers(kube, ApiServerSettings(admin_key=..., secret=..., ...))
    ...
    for runner in runners:
        await runner.cleanup()

Refuses to start (``InsecureConfiguration``) without an admin key unless ``dev_mode`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import NativeApiDeps
from agent_sandbox.operator.api.server import build_native_app, unbound_operations
from agent_sandbox.operator.auth.authenticator import Authenticator
from agent_sandbox.operator.auth.iam import NamespaceResolver
from agent_sandbox.operator.auth.keystore import ApiKeyStore
from agent_sandbox.operator.auth.kube_secrets import KubeAuthBackend
from agent_sandbox.operator.kube.client import KubeClient

log = get_logger(__name__)


@dataclass(frozen=True)
class ApiServerSettings:
    admin_key: str = ""
    #: Shared secret: HS256 JWT verification (empty disables JWTs).
    secret: str = ""
    dev_mode: bool = False
    local_cluster_id: str = ""
    apikey_namespace: str = v.SYSTEM_NAMESPACE
    apikey_cache_ttl: float = 60.0
    min_client_version: str = "0.0.0"
    api_host: str = "0.0.0.0"
    api_port: int = 8080


def build_native_deps(kube: KubeClient, settings: ApiServerSettings) -> NativeApiDeps:
    backend = KubeAuthBackend(kube)
    keys = ApiKeyStore(backend, settings.apikey_namespace, cache_ttl=settings.apikey_cache_ttl)
    auth = Authenticator(admin_key=settings.admin_key, keys=keys, resolver=NamespaceResolver(backend.namespace_exists),
                         jwt_secret=settings.secret.encode() or None, dev_mode=settings.dev_mode)
    return NativeApiDeps(authenticator=auth, keys=keys, local_cluster_id=settings.local_cluster_id,
                         min_client_version=settings.min_client_version)


async def start_api_servers(kube: KubeClient, settings: ApiServerSettings,
                            extra_handlers: Mapping[str, Handler] | None = None) -> list[web.AppRunner]:
    """Listen with the native API on ``api_host:api_port``; returns the runners to clean up at shutdown."""
    deps = build_native_deps(kube, settings)
    runner = web.AppRunner(build_native_app(deps, extra_handlers), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_port).start()
    log.info("native api listening", address=f"{settings.api_host}:{settings.api_port}",
             unserved_operations=unbound_operations(extra_handlers))
    return [runner]
