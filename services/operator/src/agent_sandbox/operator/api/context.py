"""What a native handler receives: the caller, the validated body and query, and the server's parts.

Binding (:mod:`agent_sandbox.operator.api.binding`) authenticates and validates before a handler
runs, so handlers only hold business logic and never see unauthenticated or malformed input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel

from agent_sandbox.operator.api.exec_tokens import ExecTokenStore
from agent_sandbox.operator.api.models.platform import Quota
from agent_sandbox.operator.auth.authenticator import Authenticator
from agent_sandbox.operator.auth.identity import DEV, Identity
from agent_sandbox.operator.auth.keystore import ApiKeyStore
from agent_sandbox.operator.crosscluster.directory import ClusterDirectory


class QuotaProvider(Protocol):
    """Extension point (behaviour.md §24): quotas shown by ``/v1/quotas`` and ``/v1/feature-gates``."""

    def enabled(self) -> bool: ...
    async def list_for_user(self, user: str, team: str) -> list[Quota]: ...


class NoQuotaProvider:
    """The provider used when the extension config names none: quotas disabled, empty list."""

    def enabled(self) -> bool:
        return False

    async def list_for_user(self, user: str, team: str) -> list[Quota]:
        return []


@dataclass
class NativeApiDeps:
    authenticator: Authenticator
    keys: ApiKeyStore
    exec_tokens: ExecTokenStore = field(default_factory=ExecTokenStore)
    local_cluster_id: str = ""
    #: The clusters of the cluster config (``GET /v1/clusters``); none but this one unless configured.
    clusters: ClusterDirectory | None = None
    quota_provider: QuotaProvider = field(default_factory=NoQuotaProvider)
    min_client_version: str = "0.0.0"


@dataclass
class Call:
    request: web.Request
    deps: NativeApiDeps
    identity: Identity = DEV
    body: Any = None
    query: Any = None

    def path(self, name: str) -> str:
        return self.request.match_info[name]


@dataclass(frozen=True)
class Reply:
    status: int
    body: BaseModel | dict[str, Any] | None = None
