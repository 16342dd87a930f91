"""Sandbox and pool statistics: counts by status for the caller, and platform-wide for admins."""

from __future__ import annotations

from collections import Counter

from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.models.platform import (
    AdminPoolStatistics,
    AdminPoolStatisticsEnvelope,
    AdminSandboxStatistics,
    AdminSandboxStatisticsEnvelope,
    NamespacePoolStatistics,
    SandboxStatistics,
    SandboxStatisticsEnvelope,
)
from agent_sandbox.operator.api.sandbox_access import SandboxAccess
from agent_sandbox.operator.services.pools import PoolService


def handlers(access: SandboxAccess, pools: PoolService) -> dict[str, Handler]:
    async def user_stats(call: Call) -> Reply:
        ident = call.identity
        # "Your sandboxes": an admin sees every namespace, so narrow to its own here.
        records = [r for r in access.records(ident) if r.get("namespace") == ident.namespace]
        by_status = Counter(str(r.get("status")) for r in records)
        return Reply(200, SandboxStatisticsEnvelope(statistics=SandboxStatistics(
            namespace=ident.namespace, total=len(records), byStatus=dict(by_status))))

    async def admin_sandbox_stats(call: Call) -> Reply:
        records = access.records(call.identity)
        return Reply(200, AdminSandboxStatisticsEnvelope(statistics=AdminSandboxStatistics(
            total=len(records), byStatus=dict(Counter(str(r.get("status")) for r in records)),
            byNamespace=dict(Counter(str(r.get("namespace")) for r in records)))))

    async def admin_pool_stats(call: Call) -> Reply:
        by_ns: dict[str, NamespacePoolStatistics] = {}
        totals = Counter[str]()
        for pool in pools.list():
            meta = pool["metadata"]
            counts = pools.counts(meta.get("namespace", ""), meta.get("name", ""))
            replicas = int((pool.get("spec") or {}).get("replicas") or 0)
            ns = by_ns.setdefault(meta.get("namespace", ""), NamespacePoolStatistics())
            ns.pools += 1
            ns.replicas += replicas
            ns.idle += counts["idle"]
            ns.running += counts["running"]
            ns.failed += counts["failed"]
            totals.update({"pools": 1, "replicas": replicas, "idle": counts["idle"], "running": counts["running"],
                           "failed": counts["failed"]})
        return Reply(200, AdminPoolStatisticsEnvelope(statistics=AdminPoolStatistics(
            total=totals["pools"], totalReplicas=totals["replicas"], totalIdleReplicas=totals["idle"],
            totalRunningReplicas=totals["running"], totalFailedReplicas=totals["failed"], byNamespace=by_ns)))

    return {
        "GetUserSandboxStatistics": user_stats,
        "AdminGetSandboxStatistics": admin_sandbox_stats,
        "AdminGetSandboxPoolStatistics": admin_pool_stats,
    }
