"""First-start objects of the stack, created through the public APIs only when missing.

* Namespaces ``agent-sandbox-system`` (API-key Secrets) and the pool's namespace.
* SandboxTemplate and SandboxPool ``base`` (the template the E2B SDK asks for when none is given):
  an existing pool is left as it is, so a user's ``kubectl scale`` or edits survive a restart.
* The user's API key, imported by hash through the operator's admin API (the operator never sees
  the raw key; importing an already-known hash answers 409, which is fine).

The object bodies are pure functions (unit-tested); the rest is a thin Kubernetes/HTTP shell.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import load_kube_config

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.apikeys import HASH_PREFIX_LEN, hash_api_key
from agent_sandbox.localcluster.stack.settings import PoolSettings

LOCAL_USER = "local"
LOCAL_TEAM = "local"
TERMINATION_GRACE_S = 5
#: Seconds to wait for the operator's native API to accept connections.
API_WAIT_S = 30.0


class BootstrapError(RuntimeError):
    """A first-start object could not be created."""


def template_body(pool: PoolSettings) -> dict[str, Any]:
    return {
        "apiVersion": v.API_VERSION, "kind": v.TEMPLATE_KIND,
        "metadata": {"name": pool.name},
        "spec": {
            "description": "Default sandbox of the single-machine stack (host root filesystem, envd injected)",
            "idleImage": pool.idle_image,
            "template": pod_template(pool.image),
            "runtimes": [{"name": "envd", "port": 49983, "description": "E2B envd"}],
        },
    }


def pod_template(image: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "main", "image": image}],
                     "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                     "automountServiceAccountToken": False}}


def pool_body(pool: PoolSettings) -> dict[str, Any]:
    template = template_body(pool)["spec"]
    return {
        "apiVersion": v.API_VERSION, "kind": v.POOL_KIND,
        "metadata": {"name": pool.name, "namespace": pool.namespace},
        "spec": {"replicas": pool.replicas, "templateName": pool.name, "idleImage": template["idleImage"],
                 "template": template["template"], "runtimes": template["runtimes"]},
    }


def api_key_import_body(api_key: str, namespace: str) -> dict[str, Any]:
    token_hash = hash_api_key(api_key)
    return {"tokenHash": token_hash, "hashPrefix": token_hash[:HASH_PREFIX_LEN], "user": LOCAL_USER,
            "team": LOCAL_TEAM, "namespace": namespace, "description": "agent-sandbox up: the local user's key"}


def pool_warm(pool: dict[str, Any] | None, replicas: int) -> tuple[bool, int]:
    """(all ``replicas`` idle pods are ready, ready idle count) from a SandboxPool's status."""
    status = (pool or {}).get("status") or {}
    ready = int(status.get("idleReplicas") or 0) - int(status.get("unavailableIdleReplicas") or 0)
    return ready >= replicas, max(ready, 0)


async def kube_client(kubeconfig: Path) -> ApiClient:
    config = Configuration()
    await load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    return ApiClient(config)


async def _create_if_missing(create: Callable[[], Any], what: str) -> bool:
    try:
        await create()
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise BootstrapError(f"cannot create {what}: {exc.status} {exc.reason}") from exc
    return True


async def ensure_objects(api: ApiClient, pool: PoolSettings) -> list[str]:
    """Create whatever is missing; returns what was created (for the progress lines)."""
    core, custom = CoreV1Api(api), CustomObjectsApi(api)
    created: list[str] = []
    for ns in dict.fromkeys((v.SYSTEM_NAMESPACE, pool.namespace)):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        if await _create_if_missing(lambda b=body: core.create_namespace(b), f"namespace {ns}"):
            created.append(f"namespace/{ns}")
    if await _create_if_missing(lambda: custom.create_cluster_custom_object(
            v.GROUP, v.VERSION, v.TEMPLATE_PLURAL, template_body(pool)), f"SandboxTemplate {pool.name}"):
        created.append(f"sandboxtemplate/{pool.name}")
    if await _create_if_missing(lambda: custom.create_namespaced_custom_object(
            v.GROUP, v.VERSION, pool.namespace, v.POOL_PLURAL, pool_body(pool)), f"SandboxPool {pool.name}"):
        created.append(f"sandboxpool/{pool.namespace}/{pool.name}")
    return created


async def import_api_key(api_url: str, admin_key: str, api_key: str, namespace: str,
                         within: float = API_WAIT_S) -> bool:
    """Register the user's key with the operator; False if it was already registered.

    The operator may report ready a moment before its API listens, so connection errors are
    retried for ``within`` seconds.
    """
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        while True:
            try:
                async with session.post(f"{api_url}/v1/admin/api-keys", json=api_key_import_body(api_key, namespace),
                                        headers={"X-API-Key": admin_key}) as resp:
                    if resp.status == 201:
                        return True
                    if resp.status == 409:
                        return False
                    raise BootstrapError(f"importing the user's API key failed: HTTP {resp.status} "
                                         f"{(await resp.text())[:300]}")
            except aiohttp.ClientConnectionError as exc:
                if time.monotonic() > deadline:
                    raise BootstrapError(f"the operator's native API at {api_url} does not answer ({exc})") from exc
                await asyncio.sleep(0.2)


async def wait_pool_warm(api: ApiClient, pool: PoolSettings, within: float,
                         progress: Callable[[int], None]) -> None:
    """Wait until the pool's status shows ``replicas`` ready idle pods, calling ``progress`` on changes."""
    custom = CustomObjectsApi(api)
    deadline = time.monotonic() + within
    last = -1
    while time.monotonic() < deadline:
        try:
            obj = await custom.get_namespaced_custom_object(v.GROUP, v.VERSION, pool.namespace, v.POOL_PLURAL,
                                                            pool.name)
        except ApiException as exc:
            if exc.status != 404:
                raise BootstrapError(f"reading SandboxPool {pool.name}: {exc.status} {exc.reason}") from exc
            obj = None
        done, ready = pool_warm(obj, pool.replicas)
        if ready != last:
            progress(ready)
            last = ready
        if done:
            return
        await asyncio.sleep(0.2)
    raise BootstrapError(f"SandboxPool {pool.name} did not get {pool.replicas} warm sandboxes within {within:.0f}s "
                         f"(see `kubectl describe sbp {pool.name}` and logs/localcluster.log)")
