"""The native API's route table: one entry per operation, the single source of the OpenAPI document.

Each entry names the request body and query models, the success responses and who may call it. The
server binds a handler to every ``operation_id`` (and refuses to start if one is missing), and
:mod:`agent_sandbox.operator.api.openapi` renders the document from the same entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from agent_sandbox.operator.api.models import apikeys as k
from agent_sandbox.operator.api.models import common as c
from agent_sandbox.operator.api.models import platform as p
from agent_sandbox.operator.api.models import pools as pl
from agent_sandbox.operator.api.models import sandboxes as s
from agent_sandbox.operator.api.models import templates as t
from agent_sandbox.operator.services import models as svc


class Access(StrEnum):
    PUBLIC = "public"
    TENANT = "tenant"
    ADMIN = "admin"


#: Error statuses every authenticated operation may answer (all with :class:`ErrorResponse`).
AUTHENTICATED_ERRORS = (400, 401, 403, 404, 409, 413, 422, 426, 429, 500, 502, 503)
PUBLIC_ERRORS = (400, 500)

_PARAM_RE = re.compile(r"\{([a-zA-Z_]+)\}")


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    access: Access
    #: answered status → body model; ``None`` = no body (204) or, for 200, any JSON object. An error
    #: status listed here (is_ready's 503) carries this model or an ErrorResponse.
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    deprecated: bool = False

    @property
    def path_params(self) -> list[str]:
        return _PARAM_RE.findall(self.path)

    @property
    def error_statuses(self) -> tuple[int, ...]:
        return PUBLIC_ERRORS if self.access is Access.PUBLIC else AUTHENTICATED_ERRORS


def _r(method: str, path: str, op: str, summary: str, tag: str, responses: dict[int, type[BaseModel] | None], *,
       access: Access = Access.TENANT, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
       deprecated: bool = False) -> RouteSpec:
    return RouteSpec(method, path, op, summary, tag, access, responses, body, query, deprecated)


A = Access.ADMIN
P = Access.PUBLIC
SB = "/v1/sandboxes/{id}"
POOL = "/v1/sandboxpools/{name}"

ROUTES: tuple[RouteSpec, ...] = (
    _r("GET", "/ping", "Ping", "Liveness of the API server", "meta", {200: p.Ping}, access=P),
    _r("GET", "/openapi.json", "GetOpenAPIDocument", "This OpenAPI document", "meta", {200: None}, access=P),
    _r("GET", "/v1/auth/whoami", "GetWhoAmI", "Who the credentials identify", "auth", {200: p.WhoAmI}),
    # sandboxes
    _r("POST", "/v1/sandboxes", "CreateSandbox", "Claim a sandbox from a pool", "sandboxes",
       {201: s.SandboxEnvelope}, body=svc.CreateSandboxRequest),
    _r("GET", "/v1/sandboxes", "ListSandboxes", "List sandboxes (live and recent history)", "sandboxes",
       {200: s.SandboxList}, query=s.ListSandboxesQuery),
    _r("GET", SB, "GetSandbox", "One sandbox", "sandboxes", {200: s.SandboxEnvelope}),
    _r("DELETE", SB, "DeleteSandbox", "End a sandbox (its pod returns to the pool)", "sandboxes",
       {202: s.DeleteSandboxResponse}),
    _r("PUT", SB + "/timeout", "SetSandboxTimeout", "Set or clear the idle timeout", "sandboxes", {204: None},
       body=s.SetTimeoutRequest),
    _r("GET", SB + "/logs", "GetSandboxLogs", "Logs of a sandbox", "sandboxes", {200: s.SandboxLogsResult},
       query=s.SandboxLogsQuery),
    _r("POST", SB + "/exec-token", "CreateSandboxExecToken", "Single-use 30 s token for the terminal WebSocket",
       "sandboxes", {200: s.ExecTokenResponse}),
    _r("GET", SB + "/is_ready", "IsSandboxReady", "Readiness of the sandbox endpoints", "sandboxes",
       {200: s.SandboxReadiness, 503: s.SandboxReadiness}, deprecated=True),
    _r("POST", SB + "/exec", "ExecSandboxCommand", "Run a command and wait for it", "sandboxes",
       {200: s.ExecResult}, body=s.ExecRequest, deprecated=True),
    # pools
    _r("POST", "/v1/sandboxpools", "CreateSandboxPool", "Create a pool", "pools", {201: pl.SandboxPoolEnvelope},
       body=svc.CreatePoolRequest),
    _r("GET", "/v1/sandboxpools", "ListSandboxPools", "Pools in the caller's namespace", "pools",
       {200: pl.SandboxPoolList}, query=c.PageQuery),
    _r("GET", POOL, "GetSandboxPool", "One pool", "pools", {200: pl.SandboxPoolEnvelope}),
    _r("PUT", POOL, "UpdateSandboxPool", "Change replicas, bounds, image policy, overrides, autoscaling", "pools",
       {200: pl.SandboxPoolEnvelope}, body=svc.UpdatePoolRequest),
    _r("DELETE", POOL, "DeleteSandboxPool", "Delete a pool", "pools", {202: pl.DeletePoolResponse}),
    _r("POST", POOL + "/sync-template", "SyncSandboxPoolTemplate", "Re-copy the pool's template", "pools",
       {200: pl.SandboxPoolEnvelope}, deprecated=True),
    _r("POST", POOL + "/sync-template/preview", "PreviewSyncSandboxPoolTemplate", "Spec a template sync would write",
       "pools", {200: pl.SyncPreview}),
    # templates
    _r("GET", "/v1/sandbox-templates", "ListSandboxTemplates", "Templates visible to the caller", "templates",
       {200: t.SandboxTemplateList}, query=c.PageQuery),
    _r("GET", "/v1/sandbox-templates/{name}", "GetSandboxTemplate", "One template", "templates",
       {200: t.SandboxTemplateEnvelope}),
    _r("POST", "/v1/admin/sandbox-templates", "AdminCreateSandboxTemplate", "Create a template", "admin",
       {201: t.SandboxTemplateEnvelope}, access=A, body=t.UpsertSandboxTemplateRequest),
    _r("PUT", "/v1/admin/sandbox-templates/{name}", "AdminUpdateSandboxTemplate", "Replace a template", "admin",
       {200: t.SandboxTemplateEnvelope}, access=A, body=t.UpsertSandboxTemplateRequest),
    _r("DELETE", "/v1/admin/sandbox-templates/{name}", "AdminDeleteSandboxTemplate", "Delete a template", "admin",
       {202: t.DeleteTemplateResponse}, access=A),
    # platform
    _r("GET", "/v1/clusters", "ListClusters", "Known clusters", "platform", {200: p.ClusterList}),
    _r("GET", "/v1/feature-gates", "GetFeatureGates", "Optional features enabled here", "platform",
       {200: p.FeatureGates}),
    _r("GET", "/v1/quotas", "ListQuotas", "Quotas of the caller (empty without a quota provider)", "platform",
       {200: p.QuotaList}, query=c.PageQuery),
    _r("GET", "/v1/statistics/sandboxes", "GetUserSandboxStatistics", "Sandbox counts in the caller's namespace",
       "platform", {200: p.SandboxStatisticsEnvelope}),
    # API keys
    _r("POST", "/v1/api-keys", "SelfCreateAPIKey", "Create a key for yourself", "api-keys",
       {201: k.CreateAPIKeyResult}, body=k.SelfCreateAPIKeyRequest),
    _r("GET", "/v1/api-keys", "SelfListAPIKeys", "Your keys", "api-keys", {200: k.APIKeyList}, query=c.PageQuery),
    _r("DELETE", "/v1/api-keys/{name}", "SelfDeleteAPIKey", "Delete one of your keys", "api-keys",
       {200: k.DeleteAPIKeyResponse}),
    _r("POST", "/v1/admin/api-keys", "CreateAPIKey", "Create or import a key", "admin", {201: k.CreateAPIKeyResult},
       access=A, body=k.CreateAPIKeyRequest),
    _r("GET", "/v1/admin/api-keys", "ListAPIKeys", "All keys", "admin", {200: k.APIKeyList}, access=A,
       query=k.AdminListAPIKeysQuery),
    _r("DELETE", "/v1/admin/api-keys/{name}", "DeleteAPIKey", "Delete a key", "admin", {200: k.DeleteAPIKeyResponse},
       access=A),
    # admin views
    _r("GET", "/v1/admin/teams", "ListTeams", "Teams owning keys", "admin", {200: c.StringList}, access=A),
    _r("GET", "/v1/admin/teams/{team}/users", "ListUsersByTeam", "Users of a team", "admin", {200: c.StringList},
       access=A),
    _r("GET", "/v1/admin/namespaces", "ListNamespaces", "Namespaces holding pools", "admin", {200: c.StringList},
       access=A),
    _r("GET", "/v1/admin/statistics/sandboxes", "AdminGetSandboxStatistics", "Sandbox counts everywhere", "admin",
       {200: p.AdminSandboxStatisticsEnvelope}, access=A),
    _r("GET", "/v1/admin/statistics/sandboxpools", "AdminGetSandboxPoolStatistics", "Pool counts everywhere",
       "admin", {200: p.AdminPoolStatisticsEnvelope}, access=A),
)

ROUTES_BY_ID: dict[str, RouteSpec] = {r.operation_id: r for r in ROUTES}
