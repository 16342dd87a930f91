"""Raw-JSON Kubernetes client over ``kubernetes_asyncio``.

The generated model classes cost a deserialisation per object and hide fields
the operator relies on (unknown CRD fields, exact annotations). We reuse the
official client's configuration, authentication and connection pool
(``ApiClient.call_api``) but keep bodies as dicts and parse responses with
orjson. Errors become :class:`KubeError` carrying the HTTP status, so callers
can tell a lost optimistic race (409) from a missing object (404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from agent_sandbox.common import vocabulary as v

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
DEFAULT_TIMEOUT_S = 30.0


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        return self.status == 410


def pods_path(namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    return _join(base, name, sub)


def pools_path(namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    root = f"/apis/{v.GROUP}/{v.VERSION}"
    base = f"{root}/namespaces/{namespace}/{v.POOL_PLURAL}" if namespace else f"{root}/{v.POOL_PLURAL}"
    return _join(base, name, sub)


def templates_path(name: str | None = None) -> str:
    return _join(f"/apis/{v.GROUP}/{v.VERSION}/{v.TEMPLATE_PLURAL}", name, None)


def leases_path(namespace: str, name: str | None = None) -> str:
    return _join(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", name, None)


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


def _join(base: str, name: str | None, sub: str | None) -> str:
    if name:
        base = f"{base}/{quote(name, safe='')}"
    if sub:
        base = f"{base}/{sub}"
    return base


class KubeClient:
    """Thin async client; one per process, shared by every loop (the connection pool is shared)."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self._api = api_client

    @classmethod
    async def from_kubeconfig(cls, path: str, *, pool_size: int = 256) -> KubeClient:
        configuration = type.__call__(k8s.Configuration)
        await k8s_config.load_kube_config(config_file=path, client_configuration=configuration,
                                          persist_config=False)
        configuration.connection_pool_maxsize = pool_size
        return cls(k8s.ApiClient(configuration=configuration))

    @property
    def configuration(self) -> k8s.Configuration:
        """The official client's configuration (for the few calls that need its generated APIs)."""
        return self._api.configuration

    async def close(self) -> None:
        await self._api.close()

    async def _send(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                    body: Any = None, content_type: str = "application/json",
                    timeout_s: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT_S) -> aiohttp.ClientResponse:
        params = [(k, str(val).lower() if isinstance(val, bool) else str(val))
                  for k, val in (query or {}).items() if val is not None]
        return await self._api.call_api(
            path, method, query_params=params,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"], _return_http_data_only=True,
            _preload_content=False, _request_timeout=timeout_s,
        )

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        resp = await self._send(method, path, query=query, body=body, content_type=content_type,
                                timeout_s=timeout_s)
        try:
            data = await resp.read()
        finally:
            resp.release()
        parsed: Any = None
        if data:
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                parsed = None
        if not 200 <= resp.status < 300:
            status = parsed if isinstance(parsed, dict) else {}
            raise KubeError(resp.status, str(status.get("reason") or resp.reason or ""),
                            str(status.get("message") or data[:200].decode(errors="replace")))
        return parsed if isinstance(parsed, dict) else {}

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def pod_log(self, namespace: str, name: str, container: str, *, tail_lines: int | None = None,
                      limit_bytes: int | None = None) -> str:
        """A container's output (plain text, not JSON, hence the typed client)."""
        try:
            text = await k8s.CoreV1Api(self._api).read_namespaced_pod_log(
                name, namespace, container=container, tail_lines=tail_lines, limit_bytes=limit_bytes,
                _request_timeout=DEFAULT_TIMEOUT_S)
        except k8s.ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason or ""), str(exc.body or "")[:200]) from None
        return str(text or "")

    async def list(self, path: str, *, label_selector: str | None = None,
                   field_selector: str | None = None) -> dict[str, Any]:
        return await self.request("GET", path, query={"labelSelector": label_selector,
                                                      "fieldSelector": field_selector})

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, body=body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """RFC 7386 patch; a ``metadata.resourceVersion`` in ``body`` makes it conditional (409 if stale)."""
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete(self, path: str, *, resource_version: str | None = None,
                     grace_period_s: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        if grace_period_s is not None:
            body["gracePeriodSeconds"] = grace_period_s
        return await self.request("DELETE", path, body=body)

    async def watch(self, path: str, *, resource_version: str, timeout_s: int = 300,
                    label_selector: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Events of one watch request (ends when the server closes it); 410 arrives as a KubeError."""
        resp = await self._send(
            "GET", path,
            query={"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": True,
                   "timeoutSeconds": timeout_s, "labelSelector": label_selector},
            timeout_s=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s + 30),
        )
        try:
            if resp.status != 200:
                data = await resp.read()
                raise KubeError(resp.status, resp.reason or "", data[:200].decode(errors="replace"))
            async for line in resp.content:
                if not line.strip():
                    continue
                event = orjson.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    raise KubeError(int(obj.get("code") or 500), str(obj.get("reason") or ""),
                                    str(obj.get("message") or ""))
                yield event
        finally:
            resp.release()
