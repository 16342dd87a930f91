"""The data plane's RBAC grants exactly the requests extproc's watches make: all of them, and nothing else.

The requests come from the real :meth:`DataPlane.build_informers` of an extproc configured by the chart's
rendered args and env (list, then watch, per informer); the rendered ClusterRole/Role are evaluated the way
the Kubernetes RBAC authorizer does for core-group resources (verbs, resources, resourceNames that need a
``metadata.name`` field selector, Role scoped to its namespace).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from helm_worker import NAMESPACE, Rendered, container_env
from kubernetes_asyncio import client

from agent_sandbox.common.cli import build_parser
from agent_sandbox.common.settings import load_settings
from agent_sandbox.extproc.app import DataPlane
from agent_sandbox.extproc.settings import ExtprocSettings

EXTPROC = "agent-sandbox-extproc"


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str
    namespace: str | None  # None: all namespaces
    name: str | None  # from a metadata.name field selector


@dataclass(frozen=True)
class Grant:
    verb: str
    resource: str
    namespace: str | None  # None: cluster-wide
    name: str | None  # None: any name


async def _extproc_requests(r: Rendered, monkeypatch: pytest.MonkeyPatch) -> set[Request]:
    container = r.container("agent-sandbox-data-plane", "extproc")
    for key, value in container_env(r, container).items():
        monkeypatch.setenv(key, value)
    args = build_parser().parse_args(container["args"])
    settings = load_settings(ExtprocSettings, {k: getattr(args, k, None) for k in ExtprocSettings.model_fields})
    api = client.ApiClient()
    try:
        informers = DataPlane(settings).build_informers(api)
    finally:
        await api.close()
    requests: set[Request] = set()
    for informer in informers:
        call = informer._list.__name__  # e.g. list_pod_for_all_namespaces, list_namespaced_config_map
        kwargs = informer._kwargs
        if call.endswith("_for_all_namespaces"):
            kind, namespace = call.removeprefix("list_").removesuffix("_for_all_namespaces"), None
        else:
            assert call.startswith("list_namespaced_"), call
            kind, namespace = call.removeprefix("list_namespaced_"), kwargs["namespace"]
        selector = kwargs.get("field_selector") or ""
        name = selector.removeprefix("metadata.name=") if selector.startswith("metadata.name=") else None
        for verb in ("list", "watch"):
            requests.add(Request(verb, kind.replace("_", "") + "s", namespace, name))
    return requests


def _grants(r: Rendered) -> set[Grant]:
    grants: set[Grant] = set()
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        for binding in r.all(binding_kind):
            if {"kind": "ServiceAccount", "name": EXTPROC, "namespace": NAMESPACE} not in binding["subjects"]:
                continue
            role = r.get(role_kind, binding["roleRef"]["name"])
            namespace = binding["metadata"].get("namespace")
            for rule in role["rules"]:
                assert rule["apiGroups"] == [""], rule
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [None]:
                            grants.add(Grant(verb, resource, namespace, name))
    return grants


def _allows(grant: Grant, request: Request) -> bool:
    return (grant.verb == request.verb and grant.resource == request.resource
            and (grant.namespace is None or grant.namespace == request.namespace)
            and (grant.name is None or grant.name == request.name))


@pytest.mark.parametrize("values", [{}, {"dataPlane": {"extproc": {"enableAuth": True}}},
                                    {"dataPlane": {"extproc": {"clustersConfigMapName": "fleet"}}}],
                         ids=["default", "auth", "configmap-name"])
async def test_extproc_rbac_is_exactly_what_its_watches_need(render_with, monkeypatch, values):
    r = render_with(values)
    requests = await _extproc_requests(r, monkeypatch)
    grants = _grants(r)
    denied = [q for q in requests if not any(_allows(g, q) for g in grants)]
    assert not denied, f"extproc would be forbidden: {denied}"
    unused = [g for g in grants if not any(_allows(g, q) for q in requests)]
    assert not unused, f"granted but never requested: {unused}"
    # What that means for an operator reading the chart:
    assert Request("watch", "pods", None, None) in requests  # sandbox pods in every namespace
    assert not any(g.verb == "get" for g in grants)
    assert not any(g.resource == "secrets" and g.namespace is None for g in grants)
    auth = values.get("dataPlane", {}).get("extproc", {}).get("enableAuth", False)
    assert any(g.resource == "secrets" for g in grants) is auth  # API-key Secrets only with data-plane auth
