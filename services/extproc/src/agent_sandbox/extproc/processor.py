"""ExtProc messages (``envoy.service.ext_proc.v3``) in, ExtProc messages out.

Envoy opens one ``Process`` stream per HTTP request and sends only the request
headers (every other processing mode is SKIP). We answer with a header mutation
(``x-agentsandbox-dst: podIP:port`` for the ORIGINAL_DST cluster, a ``:path``
rewrite for the path form, removal of client-supplied ``x-agentsandbox-*``
headers) or an immediate JSON error; the transport (:mod:`.h2grpc`) then ends
the stream: Envoy treats a clean server close as "processing complete", so the
stream does not stay open for the life of a long download or WebSocket.

Hot path: one pass over the header list, the pure :class:`Decider`, and an
answer encoded by :mod:`.wire` (cached per destination). No Kubernetes call, no
lock, no log line per request. Envoy sends byte-identical messages for identical
request headers (a client polling one sandbox, an SDK calling the same RPC), so a
bounded map from message bytes to the route and its encoded answer skips the
parsing and encoding; the route is re-checked against the live route table on
every use, so an evicted or moved sandbox is never served from it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.type.v3.http_status_pb2 import HttpStatus

from agent_sandbox.common.logging import get_logger
from agent_sandbox.common.vocabulary import HEADER_UPSTREAM_DST, INTERNAL_HEADER_PREFIX

from . import metrics
from .decision import INTERNAL, Decider, Forward, Outcome, Reject, Route, error_body, forward_target_headers
from .resolver import ResolveError, Resolver, format_hostport
from .wire import headers_response, route_to

log = get_logger(__name__)

OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
HEADER_UPSTREAM_HOST = INTERNAL_HEADER_PREFIX + "upstream-host"
HEADER_CROSS_CLUSTER = INTERNAL_HEADER_PREFIX + "cross-cluster"
HEADER_CLUSTER_SCHEME = INTERNAL_HEADER_PREFIX + "cluster-scheme"
_JSON = [HeaderValueOption(header=HeaderValue(key="content-type", raw_value=b"application/json"),
                           append_action=OVERWRITE)]
_EMPTY_BYTES = ep.ProcessingResponse().SerializeToString()


def immediate(status: int, body: bytes) -> bytes:
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=HttpStatus(code=status), headers=ep.HeaderMutation(set_headers=_JSON), body=body
        )
    ).SerializeToString()


#: Distinct routed request messages whose answers are kept (FIFO beyond this).
ROUTED_CACHE_SIZE = 4096


class ExtProcHandler:
    """Turns one serialized ``ProcessingRequest`` into one serialized ``ProcessingResponse``."""

    def __init__(self, decider: Decider, resolver: Resolver) -> None:
        self.decider = decider
        self.resolver = resolver
        #: Request message bytes -> (route decided for them, its encoded answer).
        self._routed: dict[bytes, tuple[Route, bytes]] = {}

    def handle(self, message: bytes) -> tuple[bytes, bool] | Awaitable[tuple[bytes, bool]]:
        """``(response, final)``; ``final`` means the stream is done (request headers answered).

        Synchronous for everything but a cross-cluster request whose gateway address is not
        cached yet, which returns an awaitable (DNS).
        """
        started = time.perf_counter()
        hit = self._routed.get(message)
        if hit is not None:
            if self.decider.still_routes(hit[0], time.time()):
                return _done(hit[1], Outcome.ROUTED, started), True
            del self._routed[message]
        request = ep.ProcessingRequest.FromString(message)
        if not request.HasField("request_headers"):
            return _EMPTY_BYTES, False
        headers, internal = _header_dict(request.request_headers.headers.headers)
        try:
            decision = self.decider.decide(headers, time.time())
            if isinstance(decision, Forward):
                cached = self.resolver.cached(decision.gateway.host, time.time())
                if cached is None:
                    return self._forward_async(decision, internal, started)
                response, outcome = _forward_response(decision, internal, cached), Outcome.FORWARDED
            else:
                response, outcome = _decision_response(decision, internal)
                if isinstance(decision, Route) and self.decider.routes_are_reusable:
                    self._remember(message, decision, response)
        except Exception:
            log.exception("extproc decision failed")
            response, outcome = _reject(INTERNAL), Outcome.ERROR
        return _done(response, outcome, started), True

    def _remember(self, message: bytes, route: Route, response: bytes) -> None:
        if len(self._routed) >= ROUTED_CACHE_SIZE:
            del self._routed[next(iter(self._routed))]
        self._routed[message] = (route, response)

    async def _forward_async(self, fwd: Forward, internal: list[str], started: float) -> tuple[bytes, bool]:
        try:
            ip = await self.resolver.resolve(fwd.gateway.host, time.time())
        except ResolveError as exc:
            log.warning("gateway resolution failed", cluster=fwd.gateway.cluster_id, error=str(exc))
            body = error_body(f"cannot reach cluster {fwd.gateway.cluster_id!r}")
            return _done(immediate(502, body), Outcome.UNKNOWN_CLUSTER, started), True
        return _done(_forward_response(fwd, internal, ip), Outcome.FORWARDED, started), True


def _header_dict(header_list: Iterable[HeaderValue]) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    internal: list[str] = []
    # Envoy hands over lower-case names; values arrive in raw_value.
    for h in header_list:
        key = h.key
        headers[key] = h.raw_value.decode("latin-1") if h.raw_value else h.value
        if key.startswith(INTERNAL_HEADER_PREFIX):
            internal.append(key)
    return headers, internal


def _done(response: bytes, outcome: Outcome, started: float) -> bytes:
    metrics.REQUESTS_BY_OUTCOME[outcome].inc()
    metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
    return response


def _decision_response(decision: Route | Reject, internal: list[str]) -> tuple[bytes, Outcome]:
    if isinstance(decision, Reject):
        return _reject(decision), decision.outcome
    if decision.path is None and not internal:
        return route_to(decision.dst), Outcome.ROUTED
    set_headers = [(HEADER_UPSTREAM_DST, decision.dst)]
    if decision.path is not None:
        set_headers.append((":path", decision.path))
    removed = [k for k in internal if k != HEADER_UPSTREAM_DST]
    # A client-supplied internal header may have matched a route before we removed it: re-route.
    return headers_response(set_headers, removed, bool(internal)), Outcome.ROUTED


def _reject(reject: Reject) -> bytes:
    return immediate(reject.status, reject.body)


def _forward_response(fwd: Forward, internal: list[str], ip: str) -> bytes:
    gw = fwd.gateway
    set_headers = [
        (":authority", gw.authority),
        (":path", fwd.path),
        (HEADER_UPSTREAM_HOST, format_hostport(ip, gw.port)),
        (HEADER_CROSS_CLUSTER, "true"),
        (HEADER_CLUSTER_SCHEME, gw.scheme),
        ("x-forwarded-proto", gw.scheme),
        *gw.headers,
        *forward_target_headers(fwd.target),
    ]
    ours = {HEADER_UPSTREAM_HOST, HEADER_CROSS_CLUSTER, HEADER_CLUSTER_SCHEME}
    removed = [k for k in internal if k not in ours]
    return headers_response(set_headers, removed, True)
