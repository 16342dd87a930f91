"""Routes about the server and the caller: ping, the OpenAPI document, whoami, clusters, gates, quotas."""

from __future__ import annotations

from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.handlers.paging import page
from agent_sandbox.operator.api.models.platform import Cluster, ClusterList, FeatureGates, Ping, QuotaList, WhoAmI
from agent_sandbox.operator.api.openapi import build_document


async def ping(call: Call) -> Reply:
    return Reply(200, Ping(status="ok"))


async def openapi_document(call: Call) -> Reply:
    return Reply(200, build_document())


async def whoami(call: Call) -> Reply:
    ident = call.identity
    return Reply(200, WhoAmI(role=ident.role, user=ident.user or None, team=ident.team or None,
                             namespace=ident.namespace))


async def list_clusters(call: Call) -> Reply:
    directory = call.deps.clusters
    if directory is None:
        clusters = [Cluster(id=call.deps.local_cluster_id, name=call.deps.local_cluster_id, local=True)]
    else:
        clusters = [Cluster.model_validate(c) for c in directory.listing()]
    return Reply(200, ClusterList(clusters=clusters))


async def feature_gates(call: Call) -> Reply:
    return Reply(200, FeatureGates(quota=call.deps.quota_provider.enabled()))


async def list_quotas(call: Call) -> Reply:
    quotas = await call.deps.quota_provider.list_for_user(call.identity.user, call.identity.team)
    return Reply(200, QuotaList.model_validate(page(quotas, call.query.limit, call.query.offset)))


HANDLERS = {
    "Ping": ping,
    "GetOpenAPIDocument": openapi_document,
    "GetWhoAmI": whoami,
    "ListClusters": list_clusters,
    "GetFeatureGates": feature_gates,
    "ListQuotas": list_quotas,
}
