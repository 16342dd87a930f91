"""Proxy requests that name a foreign cluster to that cluster's API gateway (behaviour.md §20.2).

One forwarder serves both APIs: it is a middleware of the native and of the E2B server, placed after
authentication (a caller needs valid credentials here too — the hub syncs keys to every cluster — so
an operator is never an open relay). A request naming another cluster (see
:mod:`agent_sandbox.operator.crosscluster.routing`) is sent verbatim — method, raw path and query,
body — to the cluster's ``nativeURL`` or ``e2bURL``, with the caller's credential and content
headers, the merged gateway headers and ``X-Source-Cluster: <local id>``; status, headers and body are
streamed back. An unknown cluster, or one that does not answer, is a 502 with a clear message and
``Should-Retry: false`` (a create may have happened remotely; a blind SDK retry could claim twice).
A request that already carries ``X-Source-Cluster`` is never forwarded again, so two clusters with
crossed configurations cannot bounce a request forever.

The client session has a bounded connection pool and connect/read timeouts; response bodies are not
decompressed on the way through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from agent_sandbox.common.errors import ApiError
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.crosscluster.directory import Api, ClusterDirectory
from agent_sandbox.operator.crosscluster.routing import named_cluster

log = get_logger(__name__)

SOURCE_HEADER = "X-Source-Cluster"
#: Request headers copied to the foreign cluster: credentials, body type, and what the APIs read.
COPIED_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "Accept", "Idempotency-Key",
                  "X-Agent-Sandbox-Client-Version")
#: Response headers not copied back: hop-by-hop, and framing that aiohttp sets for the streamed body.
_DROPPED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                      "transfer-encoding", "upgrade", "content-length", "server", "date"})
MAX_CONNECTIONS = 64
MAX_PER_HOST = 32
CONNECT_TIMEOUT_S = 5.0
#: A create waits for the foreign sandbox to be usable; the slowest answer a client waits for.
READ_TIMEOUT_S = 300.0
CHUNK = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class Forwarder:
    def __init__(self, directory: ClusterDirectory) -> None:
        self.directory = directory
        self._session: aiohttp.ClientSession | None = None

    @property
    def local_id(self) -> str:
        return self.directory.local_id

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=MAX_PER_HOST),
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S),
                auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def target(self, request: web.Request, api: Api) -> str | None:
        """The foreign cluster ``request`` must go to, or ``None`` to serve it here.

        WebSocket upgrades (terminals) are not forwarded: they cross clusters through the hub (§23).
        """
        if request.headers.get("Upgrade"):
            return None
        body = await request.read() if request.method == "POST" and request.body_exists else b""
        cluster = named_cluster(request.method, request.path, body, api)
        return cluster if cluster and cluster != self.local_id else None

    async def forward(self, request: web.Request, cluster_id: str, api: Api) -> web.StreamResponse:
        source = request.headers.get(SOURCE_HEADER)
        if source:
            raise ApiError(502, f"cluster {cluster_id!r} is not this cluster ({self.local_id!r}) and the request "
                           f"was already forwarded from {source!r}; check the cluster configurations",
                           code="ForwardingLoop", retryable=False)
        gateway = self.directory.gateway(cluster_id, api)
        if gateway is None:
            raise ApiError(502, f"unknown cluster {cluster_id!r}: it has no {api} gateway URL in the cluster "
                           "configuration (ConfigMap agentsandbox-clusters)", code="UnknownCluster",
                           retryable=False)
        headers = {name: request.headers[name] for name in COPIED_HEADERS if name in request.headers}
        headers.update(gateway.headers)
        headers[SOURCE_HEADER] = self.local_id
        # body_exists, not can_read_body: the body may already have been read (and cached) by target().
        body = await request.read() if request.body_exists else None
        # encoded=True: the path and query go out byte for byte as the caller sent them.
        url = URL(gateway.base_url + request.raw_path, encoded=True)
        try:
            async with self._client().request(request.method, url, data=body, headers=headers,
                                              allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in _DROPPED:
                        response.headers.add(name, value)
                await response.prepare(request)
                try:
                    async for chunk in upstream.content.iter_chunked(CHUNK):
                        await response.write(chunk)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # Status and headers are out: all that is left is to cut the connection, so the
                    # client sees a truncated answer rather than a complete-looking one.
                    log.warning("forwarded response broke off", cluster=cluster_id, api=api,
                                path=request.path, error=type(exc).__name__)
                    if request.transport is not None:
                        request.transport.close()
                    return response
                await response.write_eof()
                log.info("forwarded request", cluster=cluster_id, api=api, method=request.method,
                         path=request.path, status=upstream.status)
                return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("forwarding failed", cluster=cluster_id, api=api, method=request.method,
                        path=request.path, error=type(exc).__name__)
            raise ApiError(502, f"cluster {cluster_id!r} did not answer at its {api} gateway "
                           f"({type(exc).__name__})", code="ClusterUnreachable", retryable=False) from exc

    def middleware(self, api: Api, authenticate: Callable[[web.Request], Awaitable[object]] | None = None,
                   ) -> Middleware:
        """Forward requests naming a foreign cluster; ``authenticate`` first when no earlier middleware did."""

        @web.middleware
        async def forward_foreign(request: web.Request, handler: Handler) -> web.StreamResponse:
            cluster = await self.target(request, api)
            if cluster is None:
                return await handler(request)
            if authenticate is not None:
                await authenticate(request)
            return await self.forward(request, cluster, api)

        return forward_foreign
