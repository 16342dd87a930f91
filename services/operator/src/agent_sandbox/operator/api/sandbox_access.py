"""Tenant-scoped access to sandboxes, shared by the native and the E2B API.

The service layer scopes by namespace only, but several tenants may share a namespace (global keys
without a ``t-<team>-<user>`` namespace resolve to ``default``). Both HTTP APIs therefore go through
:class:`SandboxAccess`, which adds the rule "a tenant sees only sandboxes stamped with its own team and
user"; admins see every namespace. A sandbox the caller may not see is reported as not found, so its
existence does not leak.
"""

from __future__ import annotations

from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.auth.identity import Identity
from agent_sandbox.operator.services.errors import NotFound
from agent_sandbox.operator.services.models import Caller, CreateSandboxRequest
from agent_sandbox.operator.services.sandboxes import SandboxService

#: Page size used to walk the service's listing (its maximum).
_PAGE = 1000


def caller_of(identity: Identity) -> Caller:
    return Caller(namespace=identity.namespace, team=identity.team or None, user=identity.user or None)


def namespace_scope(identity: Identity) -> str | None:
    """The namespace a caller is confined to; ``None`` (every namespace) for admins."""
    return None if identity.is_admin else identity.namespace


def owns(identity: Identity, record: dict[str, Any]) -> bool:
    """Whether ``identity`` may see the sandbox of ``record`` (a service-layer sandbox record)."""
    if identity.is_admin:
        return True
    return (record.get("namespace") == identity.namespace and (record.get("team") or "") == identity.team
            and (record.get("user") or "") == identity.user)


class SandboxAccess:
    def __init__(self, service: SandboxService) -> None:
        self.service = service

    async def create(self, identity: Identity, req: CreateSandboxRequest, *,
                     sandbox_id: str | None = None) -> dict[str, Any]:
        return await self.service.create(req, caller_of(identity), sandbox_id=sandbox_id)

    async def get(self, identity: Identity, sandbox_id: str) -> dict[str, Any]:
        record = await self.service.get(sandbox_id, namespace_scope(identity))
        if not owns(identity, record):
            raise NotFound(f"sandbox {sandbox_id!r} not found")
        return record

    def records(self, identity: Identity, *, pool_name: str | None = None,
                statuses: list[str] | None = None) -> list[dict[str, Any]]:
        """Every sandbox record (live and history) the caller may see, newest claim first."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.service.list(namespace_scope(identity), pool_name=pool_name, statuses=statuses,
                                     limit=_PAGE, offset=offset)
            out.extend(r for r in page.items if owns(identity, r))
            offset += _PAGE
            if offset >= page.total:
                return out

    async def delete(self, identity: Identity, sandbox_id: str) -> dict[str, Any]:
        await self.get(identity, sandbox_id)
        return await self.service.delete(sandbox_id, namespace_scope(identity))

    async def logs(self, identity: Identity, sandbox_id: str, container: str | None = None,
                   lines: int = 0) -> dict[str, Any]:
        await self.get(identity, sandbox_id)
        return await self.service.logs(sandbox_id, container, lines, namespace_scope(identity))

    async def set_timeout(self, identity: Identity, sandbox_id: str, duration: str) -> None:
        await self.get(identity, sandbox_id)
        await self.service.set_timeout(sandbox_id, duration, namespace_scope(identity))

    def live_pod(self, sandbox_id: str) -> pv.Pod | None:
        """The pod currently holding ``sandbox_id`` (from the watch cache), if any."""
        for pod in self.service.pods.by_index("sandbox-id", sandbox_id):
            if pv.sandbox_phase(pod) in (v.SandboxPhase.RUNNING.value, v.SandboxPhase.STARTING.value):
                return pod
        return None

    def pool(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.service.pools.get(f"{namespace}/{name}")
