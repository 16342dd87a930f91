"""The per-request routing decision (behaviour.md §18.2), as a pure function of
the request headers and in-memory state.

Order: optional API-key check -> target extraction -> cross-cluster split ->
route resolution -> optional envd access-token check -> activity touch. The
result is one of :class:`Route` (send to ``podIP:port``), :class:`Forward`
(send to another cluster's data gateway) or :class:`Reject` (answer now with a
JSON error). The gRPC layer only translates these into ExtProc messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

from agent_sandbox.common.envd_token import verify_envd_token
from agent_sandbox.common.ids import LOCAL_ID_LEN
from agent_sandbox.common.vocabulary import ENVD_PORT

from .activity import ActivityTracker
from .clusters import DataGateway
from .keys import KeyIndex
from .resolver import format_hostport
from .routes import Resolution, RouteTable
from .targets import Form, Target, TargetError, extract_target


class Outcome(StrEnum):
    """Metric label of a decision."""

    ROUTED = "routed"
    FORWARDED = "forwarded"
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    UNHEALTHY = "unhealthy"
    UNKNOWN_CLUSTER = "unknown_cluster"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Route:
    sandbox_id: str
    #: ``podIP:port`` for the ORIGINAL_DST cluster.
    dst: str
    #: Rewritten ``:path`` or ``None`` to keep it.
    path: str | None
    #: The pod IP the route was resolved to (what :meth:`Decider.still_routes` re-checks).
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Forward:
    target: Target
    gateway: DataGateway
    #: ``:path`` at the gateway: its path prefix + the original request path.
    path: str


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    body: bytes
    outcome: Outcome


Decision = Route | Forward | Reject


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def e2b_not_found(sandbox_id: str) -> bytes:
    """E2B's edge-proxy answer; the SDK keys on the substring 'was not found'."""
    return orjson.dumps({"sandboxId": sandbox_id, "message": "The sandbox was not found", "code": 502})


UNAUTHORIZED = Reject(401, error_body("unauthorized"), Outcome.UNAUTHORIZED)
BAD_TOKEN = Reject(401, error_body("invalid or missing X-Access-Token"), Outcome.UNAUTHORIZED)
NOT_FOUND = Reject(404, error_body("sandbox not found"), Outcome.NOT_FOUND)
UNHEALTHY = Reject(502, error_body("sandbox is not in a healthy state"), Outcome.UNHEALTHY)
INTERNAL = Reject(503, error_body("internal routing error"), Outcome.ERROR)

#: envd paths that stay open without a token (envd checks signed URLs itself).
TOKEN_EXEMPT_PATHS = frozenset({"/health", "/files", "/init"})


@dataclass(slots=True)
class Policy:
    #: ``None`` disables the data-plane API-key check (the E2B SDK sends no key to envd).
    keys: KeyIndex | None = None
    #: Shared secret of envd access tokens; ``None`` disables the check.
    envd_secret: bytes | None = None
    #: This cluster's id; ``None`` disables cross-cluster forwarding.
    local_cluster_id: str | None = None


class Decider:
    def __init__(self, routes: RouteTable, activity: ActivityTracker, policy: Policy) -> None:
        self.routes = routes
        self.activity = activity
        self.policy = policy
        #: Replaced wholesale when the cluster ConfigMap changes.
        self.gateways: dict[str, DataGateway] = {}

    def decide(self, headers: dict[str, str], now: float) -> Decision:
        policy = self.policy
        if policy.keys is not None and not policy.keys.allows(headers.get("x-api-key"), now):
            return UNAUTHORIZED
        try:
            target = extract_target(headers)
        except TargetError as exc:
            return Reject(400, error_body(str(exc)), Outcome.BAD_REQUEST)
        sid = target.sandbox_id
        local = policy.local_cluster_id
        if local is not None and len(sid) > LOCAL_ID_LEN + 1 and sid[-LOCAL_ID_LEN - 1] == "-":
            cluster = sid[: -LOCAL_ID_LEN - 1]
            if cluster != local:
                return self._forward(target, cluster, headers)
        resolution, ip = self.routes.resolve(sid, now)
        if resolution is not Resolution.ROUTABLE:
            if target.form.is_e2b:
                return Reject(502, e2b_not_found(sid), Outcome.NOT_FOUND
                              if resolution is Resolution.UNKNOWN else Outcome.UNHEALTHY)
            return NOT_FOUND if resolution is Resolution.UNKNOWN else UNHEALTHY
        if policy.envd_secret is not None and target.port == ENVD_PORT:
            path = (target.path or headers.get(":path", "/")).partition("?")[0]
            if path not in TOKEN_EXEMPT_PATHS and not verify_envd_token(
                policy.envd_secret, sid, headers.get("x-access-token")
            ):
                return BAD_TOKEN
        self.activity.touch(sid, now)
        return Route(sid, format_hostport(ip, target.port), target.path, ip)

    @property
    def routes_are_reusable(self) -> bool:
        """Whether a :class:`Route` may be reused for the same request headers after
        :meth:`still_routes` re-checked it: true unless the API-key check (keys expire) is on.
        Everything else a route depends on is in the headers or re-checked."""
        return self.policy.keys is None

    def still_routes(self, route: Route, now: float) -> bool:
        """Re-check a route decided earlier for identical headers: the sandbox must still resolve
        to the same pod IP. Counts as activity, like a fresh decision."""
        resolution, ip = self.routes.resolve(route.sandbox_id, now)
        if resolution is not Resolution.ROUTABLE or ip != route.ip:
            return False
        self.activity.touch(route.sandbox_id, now)
        return True

    def _forward(self, target: Target, cluster: str, headers: dict[str, str]) -> Decision:
        gateway = self.gateways.get(cluster)
        if gateway is None:
            return Reject(502, error_body(f"unknown target cluster {cluster!r}"), Outcome.UNKNOWN_CLUSTER)
        # The original path (not the rewritten one): the remote data plane parses the target again.
        return Forward(target, gateway, gateway.path_prefix + headers.get(":path", "/"))


def forward_target_headers(target: Target) -> tuple[tuple[str, str], ...]:
    """Headers that keep the target visible to the remote data plane once ``:authority`` changes.

    Only the host form loses its target when the request is sent to a gateway; it is
    re-expressed as E2B headers so the remote answers E2B-shaped errors as well.
    """
    if target.form is Form.HOST:
        return (("e2b-sandbox-id", target.sandbox_id), ("e2b-sandbox-port", str(target.port)))
    return ()
