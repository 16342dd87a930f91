"""Custom resources, patches, subresources, finalizers and garbage collection via kubernetes_asyncio."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

pytestmark = pytest.mark.asyncio(loop_scope="module")

G, V, P = "test.example.com", "v1", "widgets"
MERGE = "application/merge-patch+json"


def _widget(name: str, **spec: object) -> dict:
    return {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": name},
            "spec": {"replicas": 1, **spec}}


async def test_crd_defaults_and_validation(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    created = await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-defaults"))
    assert created["spec"]["size"] == "small" and created["spec"]["color"] == "blue"
    with pytest.raises(ApiException) as err:
        await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-bad", replicas=-1, size="huge"))
    assert err.value.status == 422
    import json

    causes = {c["field"] for c in json.loads(err.value.body)["details"]["causes"]}
    assert causes == {"spec.replicas", "spec.size"}
    with pytest.raises(ApiException) as err:
        await co.create_namespaced_custom_object(G, V, "default", P, {**_widget("w-missing"), "spec": {}})
    assert err.value.status == 422 and "spec.replicas" in err.value.body
    with pytest.raises(ApiException) as err:
        await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-type", replicas="three"))
    assert err.value.status == 422


async def test_every_patch_type(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-patch"))
    merged = await co.patch_namespaced_custom_object(G, V, "default", P, "w-patch", {"spec": {"replicas": 2}},
                                                     _content_type=MERGE)
    assert merged["spec"]["replicas"] == 2 and merged["metadata"]["generation"] == 2
    jsonp = await co.patch_namespaced_custom_object(
        G, V, "default", P, "w-patch", [{"op": "replace", "path": "/spec/size", "value": "large"}],
        _content_type="application/json-patch+json")
    assert jsonp["spec"]["size"] == "large"
    with pytest.raises(ApiException) as err:
        await co.patch_namespaced_custom_object(
            G, V, "default", P, "w-patch", [{"op": "test", "path": "/spec/size", "value": "small"}],
            _content_type="application/json-patch+json")
    assert err.value.status == 422
    applied = await co.patch_namespaced_custom_object(
        G, V, "default", P, "w-patch", {"apiVersion": f"{G}/{V}", "kind": "Widget",
                                        "metadata": {"name": "w-patch", "labels": {"applied": "yes"}},
                                        "spec": {"replicas": 4}},
        field_manager="tests", force=True, _content_type="application/apply-patch+yaml")
    assert applied["spec"]["replicas"] == 4 and applied["metadata"]["labels"] == {"applied": "yes"}
    with pytest.raises(ApiException) as err:
        await co.patch_namespaced_custom_object(G, V, "default", P, "w-patch", {"spec": {"replicas": 5}},
                                                _content_type="application/apply-patch+yaml")
    assert err.value.status == 400
    await co.patch_namespaced_custom_object(  # absent: apply creates it (201, as kube-apiserver)
        G, V, "default", P, "w-applied", _widget("w-applied", replicas=7), field_manager="tests",
        _content_type="application/apply-patch+yaml")
    assert (await co.get_namespaced_custom_object(G, V, "default", P, "w-applied"))["spec"]["replicas"] == 7


async def test_strategic_merge_patch_merges_containers_by_name(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod("default", {"metadata": {"name": "smp"}, "spec": {"containers": [
        {"name": "a", "image": "img-a:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "img-b:1"}]}})
    patched = await core.patch_namespaced_pod("smp", "default", {"spec": {"containers": [
        {"name": "b", "image": "img-b:2"}]}})
    assert [(c.name, c.image) for c in patched.spec.containers] == [("a", "img-a:1"), ("b", "img-b:2")]
    assert [e.name for e in patched.spec.containers[0].env] == ["X"]


async def test_status_subresource_is_separate(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    created = await co.create_namespaced_custom_object(
        G, V, "default", P, {**_widget("w-status"), "status": {"phase": "Ignored"}})
    assert "status" not in created
    main = await co.patch_namespaced_custom_object(G, V, "default", P, "w-status",
                                                   {"status": {"phase": "Nope"}}, _content_type=MERGE)
    assert "status" not in main
    status = await co.patch_namespaced_custom_object_status(
        G, V, "default", P, "w-status", {"status": {"phase": "Ready"}, "spec": {"replicas": 9}},
        _content_type=MERGE)
    assert status["status"]["phase"] == "Ready" and status["spec"]["replicas"] == 1
    assert status["metadata"]["generation"] == created["metadata"]["generation"]


async def test_scale_subresource(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-scale"))
    await co.patch_namespaced_custom_object_status(
        G, V, "default", P, "w-scale", {"status": {"replicas": 1, "selector": "app=w"}}, _content_type=MERGE)
    scale = await co.get_namespaced_custom_object_scale(G, V, "default", P, "w-scale")
    assert scale["spec"]["replicas"] == 1 and scale["status"] == {"replicas": 1, "selector": "app=w"}
    await co.patch_namespaced_custom_object_scale(G, V, "default", P, "w-scale", {"spec": {"replicas": 3}},
                                                  _content_type=MERGE)
    assert (await co.get_namespaced_custom_object(G, V, "default", P, "w-scale"))["spec"]["replicas"] == 3


async def test_finalizers_hold_deletion(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    await co.create_namespaced_custom_object(
        G, V, "default", P, {**_widget("w-final"), "metadata": {"name": "w-final", "finalizers": ["test/hold"]}})
    deleting = await co.delete_namespaced_custom_object(G, V, "default", P, "w-final")
    assert deleting["metadata"]["deletionTimestamp"]
    still = await co.get_namespaced_custom_object(G, V, "default", P, "w-final")
    assert still["metadata"]["finalizers"] == ["test/hold"]
    with pytest.raises(ApiException) as err:
        await co.patch_namespaced_custom_object(G, V, "default", P, "w-final",
                                                {"metadata": {"finalizers": ["test/hold", "test/new"]}},
                                                _content_type=MERGE)
    assert err.value.status == 403
    await co.patch_namespaced_custom_object(G, V, "default", P, "w-final", {"metadata": {"finalizers": None}},
                                            _content_type=MERGE)
    with pytest.raises(ApiException) as err:
        await co.get_namespaced_custom_object(G, V, "default", P, "w-final")
    assert err.value.status == 404


async def test_owner_reference_garbage_collection(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    owner = await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-owner"))
    ref = {"apiVersion": f"{G}/{V}", "kind": "Widget", "name": "w-owner", "uid": owner["metadata"]["uid"]}
    await core.create_namespaced_config_map("default", {"metadata": {"name": "dep-plain", "ownerReferences": [ref]}})
    await core.create_namespaced_config_map("default", {"metadata": {
        "name": "dep-final", "ownerReferences": [ref], "finalizers": ["test/keep"]}})
    await co.delete_namespaced_custom_object(G, V, "default", P, "w-owner")
    with pytest.raises(ApiException):
        await core.read_namespaced_config_map("dep-plain", "default")
    held = await core.read_namespaced_config_map("dep-final", "default")
    assert held.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("dep-final", "default", {"metadata": {"finalizers": None}})
    orphan_owner = await co.create_namespaced_custom_object(G, V, "default", P, _widget("w-orphan"))
    ref["name"], ref["uid"] = "w-orphan", orphan_owner["metadata"]["uid"]
    await core.create_namespaced_config_map("default", {"metadata": {"name": "dep-orphan", "ownerReferences": [ref]}})
    await co.delete_namespaced_custom_object(G, V, "default", P, "w-orphan", propagation_policy="Orphan")
    kept = await core.read_namespaced_config_map("dep-orphan", "default")
    assert not kept.metadata.owner_references


async def test_pod_graceful_deletion_waits_for_node(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod("default", {"metadata": {"name": "bound"}, "spec": {
        "nodeName": "some-node", "containers": [{"name": "c", "image": "i:1"}]}})
    await core.create_namespaced_pod("default", {"metadata": {"name": "unbound"}, "spec": {
        "schedulerName": "other", "containers": [{"name": "c", "image": "i:1"}]}})
    pending = await core.delete_namespaced_pod("bound", "default")
    assert pending.metadata.deletion_timestamp and pending.metadata.deletion_grace_period_seconds == 30
    assert (await core.read_namespaced_pod("bound", "default")).metadata.deletion_timestamp
    await core.delete_namespaced_pod("bound", "default", grace_period_seconds=0)
    await core.delete_namespaced_pod("unbound", "default")
    for name in ("bound", "unbound"):
        with pytest.raises(ApiException):
            await core.read_namespaced_pod(name, "default")


async def test_binding_subresource_assigns_node_once(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "bind"}})
    await core.create_namespaced_pod("bind", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "i:1"}]}})
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    await core.create_namespaced_pod_binding("p", "bind", binding, _preload_content=False)
    bound = await core.list_namespaced_pod("bind", field_selector="spec.nodeName=node-a")
    assert [p.metadata.name for p in bound.items] == ["p"]
    assert any(c.type == "PodScheduled" for c in bound.items[0].status.conditions)
    again = await core.create_namespaced_pod_binding("p", "bind", {**binding, "target": {"name": "node-b"}},
                                                     _preload_content=False)
    assert again.status == 409
    again.release()
    await core.delete_namespace("bind")


async def test_selectors_and_paging(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "sel"}})
    for i in range(7):
        labels = {"app": "web" if i % 2 else "db", "agentsandbox.io/sandbox-pool": f"pool{i % 3}"}
        if i < 3:
            labels["canary"] = "yes"
        await core.create_namespaced_config_map("sel", {"metadata": {"name": f"cm{i}", "labels": labels}})

    async def names(**kw: str) -> list[str]:
        return [c.metadata.name for c in (await core.list_namespaced_config_map("sel", **kw)).items]

    assert await names(label_selector="app=web") == ["cm1", "cm3", "cm5"]
    assert await names(label_selector="app==db,canary") == ["cm0", "cm2"]
    assert await names(label_selector="app!=db") == ["cm1", "cm3", "cm5"]
    assert await names(label_selector="app in (web),!canary") == ["cm3", "cm5"]
    assert await names(label_selector="app notin (web)") == ["cm0", "cm2", "cm4", "cm6"]
    assert await names(label_selector="agentsandbox.io/sandbox-pool=pool1") == ["cm1", "cm4"]
    assert await names(field_selector="metadata.name=cm2") == ["cm2"]
    assert await names(field_selector="metadata.name!=cm2,metadata.namespace=sel") == [
        "cm0", "cm1", "cm3", "cm4", "cm5", "cm6"]
    page = await core.list_namespaced_config_map("sel", limit=3)
    seen = [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = await core.list_namespaced_config_map("sel", limit=3, _continue=page.metadata._continue)
        seen += [c.metadata.name for c in page.items]
    assert seen == [f"cm{i}" for i in range(7)]
    pods = await core.list_pod_for_all_namespaces(field_selector="status.phase=Pending")
    assert all(p.status.phase == "Pending" for p in pods.items)
    await core.delete_namespace("sel")
    with pytest.raises(ApiException):
        await core.read_namespace("sel")


async def test_table_output(http: ClientSession, widgets: str) -> None:
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    async with http.get("/api/v1/namespaces/default/pods", headers=accept) as resp:
        table = await resp.json()
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"] and table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    async with http.get(f"/apis/{G}/{V}/namespaces/default/{P}/w-defaults", headers=accept) as resp:
        table = await resp.json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Replicas"]
    assert table["rows"][0]["cells"] == ["w-defaults", "small", 1]
    async with http.get("/api/v1/namespaces", headers=accept) as resp:
        table = await resp.json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


async def test_crd_deletion_removes_resource(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.test.example.com"},
           "spec": {"group": "test.example.com", "scope": "Cluster",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    await ext.create_custom_resource_definition(crd)
    co = client.CustomObjectsApi(api)
    await co.create_cluster_custom_object(G, "v1", "gadgets", {"apiVersion": f"{G}/v1", "kind": "Gadget",
                                                               "metadata": {"name": "g1"}, "free": {"x": 1}})
    assert (await co.get_cluster_custom_object(G, "v1", "gadgets", "g1"))["free"] == {"x": 1}
    await ext.delete_custom_resource_definition("gadgets.test.example.com")
    with pytest.raises(ApiException) as err:
        await co.get_cluster_custom_object(G, "v1", "gadgets", "g1")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        await ext.create_custom_resource_definition({**crd, "metadata": {"name": "wrong.name.example.com"}})
    assert err.value.status == 422
