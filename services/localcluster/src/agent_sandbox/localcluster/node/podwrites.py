"""The node agent's per-pod API writes (bind, status, final delete) over a lean HTTP path.

Every claim swaps a container image, so the node writes pod status a few times
per claim; at hundreds of claims a second those writes compete with the claims
for the same two cores. Going through ``kubernetes_asyncio``'s generated API
costs, per call, a walk of the body to "sanitize" it, stdlib ``json`` encoding
and — because its session trusts the environment — two thread-pool hops to
re-read ``.netrc`` and the proxy variables. These writes share the official
client's connection pool and TLS settings but send orjson bytes on a session
that does not consult the environment; errors stay ``ApiException`` so the
kubelet's handling does not change. Rare calls (register, list, watch) keep
the generated API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = aiohttp.ClientTimeout(total=30)


def pod_path(namespace: str, name: str, sub: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
    return f"{path}/{sub}" if sub else path


class PodWriter:
    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=self._api.rest_client.pool_manager.connector,
                                                  connector_owner=False, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, method: str, path: str, body: dict[str, Any],
                   content_type: str = "application/json") -> None:
        """One write; ``ApiException`` with the status for a non-2xx answer.

        The answer (the whole written Pod) is not decoded: the node learns the result from its watch.
        """
        cfg = self._api.configuration
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = await cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        async with self._http().request(method, str(cfg.host).rstrip("/") + path, data=orjson.dumps(body),
                                        headers=headers, proxy=cfg.proxy or None, timeout=TIMEOUT,
                                        server_hostname=cfg.tls_server_name) as resp:
            data = await resp.read()
        if resp.status >= 300:
            exc = ApiException(status=resp.status, reason=resp.reason)
            exc.body = data.decode(errors="replace")
            raise exc

    async def bind(self, namespace: str, name: str, node: str) -> None:
        await self.send("POST", pod_path(namespace, name, "binding"), {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.send("PATCH", pod_path(namespace, name, "status"), patch, MERGE_PATCH)

    async def delete_now(self, namespace: str, name: str, uid: str) -> None:
        """Finish a graceful deletion: grace 0, only if the pod is still the one (uid) we ran."""
        await self.send("DELETE", pod_path(namespace, name), {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
