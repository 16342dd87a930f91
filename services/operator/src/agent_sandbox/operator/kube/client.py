"""Raw-JSON Kubernetes client: the official client's configuration, our own lean HTTP path.

The generated model classes cost a deserialisation per object and hide fields
the operator relies on (unknown CRD fields, exact annotations), so bodies stay
dicts, encoded and parsed with orjson. ``kubernetes_asyncio`` still loads the
kubeconfig (TLS material, tokens and their refresh hooks) and serves the rare
typed call (pod logs), but requests do not go through ``ApiClient.call_api``:
per request it walks the body to "sanitize" it, encodes it with the stdlib
``json`` and — because its session trusts the environment — hops to a thread
pool twice to re-read ``.netrc`` and the proxy variables. Requests go over
:class:`~agent_sandbox.common.kubehttp.Http1Pool` (half of aiohttp's CPU
per request, which bounds claims per core); watches, and every call when
a proxy is configured, over an aiohttp session. The proxy is resolved once;
idle connections live a minute, the pool is opened ahead of a burst
(:meth:`KubeClient.warm`) and kept open through quiet spells
(:meth:`KubeClient.keep_warm`), so a burst of claims does not pay a TLS
handshake each. Errors become :class:`KubeError` carrying the HTTP status, so
callers can tell a lost optimistic race (409) from a missing object (404);
transport failures are ``OSError`` (:class:`~agent_sandbox.common.kubehttp.HttpConnectionError`,
or aiohttp's) or ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from yarl import URL

from agent_sandbox.common import kubehttp
from agent_sandbox.common import vocabulary as v

MERGE_PATCH = kubehttp.MERGE_PATCH
JSON_PATCH = "application/json-patch+json"
DEFAULT_TIMEOUT_S = 30.0
#: Idle connections to the API server live this long (below the usual 75-90 s server-side keep-alive).
KEEPALIVE_S = 60.0
#: Connections opened ahead of the first burst (:meth:`KubeClient.warm`).
WARM_CONNECTIONS = 128


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


def _proxy_for(cfg: k8s.Configuration) -> str | None:
    """The configured proxy, else the environment's for the API server's URL (resolved once)."""
    if cfg.proxy:
        return str(cfg.proxy)
    with contextlib.suppress(LookupError):
        proxy, _auth = get_env_proxy_for_url(URL(cfg.host))
        return str(proxy)
    return None


class KubeClient:
    """Thin async client; one per process, shared by every loop (the connection pool is shared)."""

    def __init__(self, api_client: k8s.ApiClient, *, pool_size: int = 256, keepalive_s: float = KEEPALIVE_S) -> None:
        self._api = api_client
        cfg = api_client.configuration
        self._base = str(cfg.host).rstrip("/")
        self._pool_size = pool_size
        self._keepalive_s = keepalive_s
        self._proxy = _proxy_for(cfg)
        self._session: aiohttp.ClientSession | None = None
        #: The Authorization header when the configuration has no token refresh hook (learnt on first use).
        self._static_auth: tuple[str | None] | None = None
        self._lean = None if self._proxy else kubehttp.Http1Pool(
            self._base, ssl_context=kubehttp.ssl_context(cfg), server_hostname=cfg.tls_server_name,
            limit=pool_size, keepalive_s=keepalive_s)

    @classmethod
    async def from_kubeconfig(cls, path: str, *, pool_size: int = 256, keepalive_s: float = KEEPALIVE_S
                              ) -> KubeClient:
        configuration = type.__call__(k8s.Configuration)
        await k8s_config.load_kube_config(config_file=path, client_configuration=configuration,
                                          persist_config=False)
        return cls(k8s.ApiClient(configuration=configuration), pool_size=pool_size, keepalive_s=keepalive_s)

    @property
    def configuration(self) -> k8s.Configuration:
        """The official client's configuration (for the few calls that need its generated APIs)."""
        return self._api.configuration

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            cfg = self._api.configuration
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=kubehttp.ssl_context(cfg),
                                             keepalive_timeout=self._keepalive_s)
            # trust_env=False: no per-request .netrc / proxy-variable lookups (the proxy is resolved once).
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)
        return self._session

    async def warm(self, connections: int = WARM_CONNECTIONS) -> int:
        """Open up to ``connections`` keep-alive connections now; returns how many requests succeeded.

        A burst of N concurrent writes needs N connections; opening them during the burst costs a TCP and
        TLS handshake each on the critical path. Failures are harmless (the pool simply stays smaller).
        """
        async def probe() -> bool:
            try:
                await self.request("GET", "/version", timeout_s=5.0)
            except (KubeError, aiohttp.ClientError, OSError, TimeoutError):
                return False
            return True

        results = await asyncio.gather(*(probe() for _ in range(max(0, min(connections, self._pool_size)))))
        return sum(results)

    async def keep_warm(self, connections: int = WARM_CONNECTIONS, every_s: float | None = None) -> None:
        """Forever (cancel to stop): every ``every_s`` (default: a third of the keep-alive) run
        ``connections`` concurrent cheap requests, so each pooled connection is used before its
        keep-alive runs out and a burst after a quiet minute finds the pool open. Costs ``connections``
        small GETs per period; failures are absorbed by :meth:`warm`."""
        period = every_s if every_s is not None else self._keepalive_s / 3
        while True:
            await asyncio.sleep(period)
            await self.warm(connections)

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._api.close()

    async def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        auth = await kubehttp.authorization(self._api.configuration)
        if auth:
            headers["Authorization"] = auth
        return headers

    async def _send(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                    body: Any = None, content_type: str = "application/json",
                    timeout_s: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT_S) -> aiohttp.ClientResponse:
        url = self._base + _target(path, query)
        timeout = timeout_s if isinstance(timeout_s, aiohttp.ClientTimeout) else aiohttp.ClientTimeout(
            total=timeout_s)
        return await self._http().request(
            method, URL(url, encoded=True), headers=await self._headers(content_type),
            data=None if body is None else orjson.dumps(body), timeout=timeout, proxy=self._proxy,
            proxy_headers=self._api.configuration.proxy_headers,
            server_hostname=self._api.configuration.tls_server_name,
        )

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        if self._lean is not None:
            auth = await kubehttp.authorization(self._api.configuration)
            if self._api.configuration.refresh_api_key_hook is None:
                self._static_auth = (auth,)  # no token refresh: the header never changes (see send_now)
            resp = await self._lean.request(method, _target(path, query),
                                            body=None if body is None else orjson.dumps(body),
                                            content_type=content_type, authorization=auth, timeout_s=timeout_s)
            return _result(resp.status, resp.reason, resp.body)
        answer = await self._send(method, path, query=query, body=body, content_type=content_type,
                                  timeout_s=timeout_s)
        try:
            data = await answer.read()
        finally:
            answer.release()
        return _result(answer.status, answer.reason or "", data)

    def send_now(self, method: str, path: str, *, body: Any, content_type: str = "application/json"
                 ) -> Awaitable[dict[str, Any]] | None:
        """Write a request before returning, without yielding to the event loop, and give its answer to be
        awaited later (as :meth:`request` would return it); ``None`` when it cannot leave at once: no free
        pooled connection, a proxy, or a token that may need refreshing first.

        On Python 3.11 a task starts only after everything already queued on the loop, so a burst of
        claims would otherwise reach the API server only once the whole burst had been taken in."""
        if self._lean is None or self._static_auth is None:
            return None
        sent = self._lean.send_now(method, path, body=orjson.dumps(body), content_type=content_type,
                                   authorization=self._static_auth[0], timeout_s=DEFAULT_TIMEOUT_S)
        return None if sent is None else _answer(sent)

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
            # Read whatever arrived and split it ourselves: one await per network read, not per event
            # (a claim burst delivers its watch events in large batches).
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _watch_event(line)
            if buffer.strip():
                yield _watch_event(buffer)
        finally:
            resp.release()


async def _answer(sent: Awaitable[kubehttp.Response]) -> dict[str, Any]:
    resp = await sent
    return _result(resp.status, resp.reason, resp.body)


def _result(status: int, reason: str, data: bytes) -> dict[str, Any]:
    """The decoded object of a 2xx answer; :class:`KubeError` otherwise."""
    parsed: Any = None
    if data:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
    if not 200 <= status < 300:
        err = parsed if isinstance(parsed, dict) else {}
        raise KubeError(status, str(err.get("reason") or reason),
                        str(err.get("message") or data[:200].decode(errors="replace")))
    return parsed if isinstance(parsed, dict) else {}


def _target(path: str, query: dict[str, Any] | None) -> str:
    """``path`` with ``query`` (None values left out, booleans as ``true``/``false``) encoded."""
    params = [(k, str(val).lower() if isinstance(val, bool) else str(val))
              for k, val in (query or {}).items() if val is not None]
    return f"{path}?{urlencode(params)}" if params else path


def _watch_event(line: bytes) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(line)
    if event.get("type") == "ERROR":
        obj = event.get("object") or {}
        raise KubeError(int(obj.get("code") or 500), str(obj.get("reason") or ""), str(obj.get("message") or ""))
    return event
