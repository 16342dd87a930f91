"""The node agent's per-pod API writes (bind, status, final delete) over a lean HTTP path.

Every claim swaps a container image, so the node writes pod status a few times
per claim; at hundreds of claims a second those writes compete with the claims
for the same two cores. Going through ``kubernetes_asyncio``'s generated API
costs, per call, a walk of the body to "sanitize" it, stdlib ``json`` encoding
and — because its session trusts the environment — two thread-pool hops to
re-read ``.netrc`` and the proxy variables; even aiohttp's own client costs
twice the CPU of :class:`~agent_sandbox.common.kubehttp.Http1Pool`. These writes
use the official client's TLS settings and token on that lean pool (the node
talks to its API server directly, never through a proxy); errors stay
``ApiException`` so the kubelet's handling does not change. Rare calls
(register, list, watch) keep the generated API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.common import kubehttp


def pod_path(namespace: str, name: str, sub: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
    return f"{path}/{sub}" if sub else path


class PodWriter:
    def __init__(self, api: ApiClient, *, limit: int) -> None:
        cfg = api.configuration
        self._cfg = cfg
        self._http = kubehttp.Http1Pool(str(cfg.host), ssl_context=kubehttp.ssl_context(cfg),
                                        server_hostname=cfg.tls_server_name, limit=limit,
                                        user_agent="agent-sandbox-node")

    async def close(self) -> None:
        await self._http.close()

    async def send(self, method: str, path: str, body: dict[str, Any],
                   content_type: str = "application/json") -> None:
        """One write; ``ApiException`` with the status for a non-2xx answer.

        The answer (the whole written Pod) is not decoded: the node learns the result from its watch.
        """
        resp = await self._http.request(method, path, body=orjson.dumps(body), content_type=content_type,
                                        authorization=await kubehttp.authorization(self._cfg))
        if resp.status >= 300:
            exc = ApiException(status=resp.status, reason=resp.reason)
            exc.body = resp.body.decode(errors="replace")
            raise exc

    async def bind(self, namespace: str, name: str, node: str) -> None:
        await self.send("POST", pod_path(namespace, name, "binding"), {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.send("PATCH", pod_path(namespace, name, "status"), patch, kubehttp.MERGE_PATCH)

    async def delete_now(self, namespace: str, name: str, uid: str) -> None:
        """Finish a graceful deletion: grace 0, only if the pod is still the one (uid) we ran."""
        await self.send("DELETE", pod_path(namespace, name), {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
