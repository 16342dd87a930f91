"""CRUD, metadata semantics and error answers through the real kubernetes_asyncio client."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.localcluster.app import LocalCluster

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _pod(name: str, **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}


async def test_core_kinds_round_trip(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "crud"}})
    cm = await core.create_namespaced_config_map("crud", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp
    cm.data["a"] = "2"
    updated = await core.replace_namespaced_config_map("cfg", "crud", cm)
    assert updated.data == {"a": "2"}
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    await core.create_namespaced_secret("crud", {"metadata": {"name": "s"}, "stringData": {"k": "v"},
                                                 "data": {"x": "eA=="}})
    assert (await core.read_namespaced_secret("s", "crud")).data["x"] == "eA=="
    await core.create_namespaced_service("crud", {"metadata": {"name": "svc"},
                                                  "spec": {"ports": [{"port": 80}]}})
    await core.create_namespaced_event("crud", {"metadata": {"name": "ev"}, "reason": "Test", "message": "hi",
                                                "involvedObject": {"kind": "Pod", "name": "p"}})
    await core.create_node({"metadata": {"name": "crud-node", "labels": {"pool": "none"}},
                            "spec": {"unschedulable": True}})
    assert (await core.read_node("crud-node")).spec.unschedulable is True
    leases = client.CoordinationV1Api(api)
    await leases.create_namespaced_lease("crud", {"metadata": {"name": "leader"},
                                                  "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}})
    lease = await leases.read_namespaced_lease("leader", "crud")
    assert lease.spec.holder_identity == "me"
    events = client.EventsV1Api(api)
    await events.create_namespaced_event("crud", {"metadata": {"name": "ev2"},
                                                  "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Test",
                                                  "action": "Tested",
                                                  "reportingController": "tests", "reportingInstance": "t1",
                                                  "regarding": {"kind": "Pod", "name": "p1"}})
    assert [e.metadata.name for e in (await events.list_namespaced_event("crud")).items] == ["ev2"]
    pod = await core.create_namespaced_pod("crud", _pod("p1", labels={"app": "x"}))
    assert pod.status.phase == "Pending" and pod.spec.restart_policy == "Always"
    names = [p.metadata.name for p in (await core.list_namespaced_pod("crud")).items]
    assert names == ["p1"]
    await core.delete_namespaced_config_map("cfg", "crud")
    with pytest.raises(ApiException) as err:
        await core.read_namespaced_config_map("cfg", "crud")
    assert err.value.status == 404
    await core.delete_node("crud-node")


async def test_generate_name_and_duplicates(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == 9
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_config_map("default", {"metadata": {"name": created.metadata.name}})
    assert err.value.status == 409 and "AlreadyExists" in err.value.body


async def test_stale_resource_version_conflicts(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "cas"}, "data": {"v": "0"}})
    stale_rv = cm.metadata.resource_version
    await core.patch_namespaced_config_map("cas", "default", {"data": {"v": "1"}})
    cm.data["v"] = "2"
    with pytest.raises(ApiException) as err:
        await core.replace_namespaced_config_map("cas", "default", cm)
    assert err.value.status == 409 and "Conflict" in err.value.body
    with pytest.raises(ApiException) as err:
        await core.patch_namespaced_config_map(
            "cas", "default", {"metadata": {"resourceVersion": stale_rv}, "data": {"v": "3"}})
    assert err.value.status == 409
    assert (await core.read_namespaced_config_map("cas", "default")).data == {"v": "1"}


async def test_namespace_must_exist(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        await client.CoreV1Api(api).create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert err.value.status == 404


async def test_pod_validation_and_immutability(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_pod("default", {"metadata": {"name": "bad"}, "spec": {"containers": []}})
    assert err.value.status == 422
    await core.create_namespaced_pod("default", _pod("immut"))
    changed = await core.patch_namespaced_pod("immut", "default",
                                              {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}})
    assert changed.spec.containers[0].image == "busybox:2"
    assert changed.metadata.generation == 2
    with pytest.raises(ApiException) as err:
        await core.patch_namespaced_pod("immut", "default", {"spec": {"hostname": "other"}})
    assert err.value.status == 422


async def test_status_errors_are_kubernetes_status(cluster: LocalCluster, http: ClientSession) -> None:
    async with ClientSession() as anonymous, anonymous.get(f"{cluster.url}/api/v1/pods") as resp:
        assert resp.status == 401
        assert (await resp.json())["kind"] == "Status"
    async with ClientSession() as anonymous, anonymous.get(f"{cluster.url}/healthz") as resp:
        assert resp.status == 200
    async with http.post("/api/v1/namespaces/default/configmaps", data=b"{not json",
                         headers={"Content-Type": "application/json"}) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest"
        assert resp.headers["Content-Type"] == "application/json"
    async with http.get("/api/v1/frobnicators") as resp:
        assert resp.status == 404 and (await resp.json())["kind"] == "Status"
    async with http.get("/api/v1/pods", params={"labelSelector": "a in (b"}) as resp:
        assert resp.status == 400
    async with http.get("/api/v1/pods", params={"fieldSelector": "spec.color=red"}) as resp:
        assert resp.status == 400 and "not supported" in (await resp.json())["message"]
    async with http.patch("/api/v1/namespaces/default/configmaps/cas", data=b"{}",
                          headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
    async with http.get("/api/v1/namespaces/default/configmaps/cas") as resp:
        assert resp.headers["Content-Type"] == "application/json"
    async with http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "Bad_Name"}}) as resp:
        assert resp.status == 422 and (await resp.json())["details"]["causes"][0]["field"] == "metadata.name"


async def test_kubeconfig_uses_tls_and_token(cluster: LocalCluster) -> None:
    from kubernetes_asyncio import config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    assert configuration.host.startswith("https://")
    async with client.ApiClient(configuration) as api_client:
        namespaces = await client.CoreV1Api(api_client).list_namespace()
    assert {"default", "kube-system", "agent-sandbox-system"} <= {n.metadata.name for n in namespaces.items}


async def test_discovery(http: ClientSession) -> None:
    async with http.get("/version/") as resp:
        assert (await resp.json())["major"] == "1"
    async with http.get("/apis/agentsandbox.io/v1alpha1") as resp:
        resources = {r["name"]: r for r in (await resp.json())["resources"]}
    assert resources["sandboxpools"]["shortNames"] == ["sbp"] and resources["sandboxpools"]["namespaced"]
    assert "sandboxpools/status" in resources and "sandboxpools/scale" in resources
    assert resources["sandboxtemplates"]["namespaced"] is False
    async with http.get("/apis") as resp:
        groups = {g["name"] for g in (await resp.json())["groups"]}
    assert {"agentsandbox.io", "coordination.k8s.io", "apiextensions.k8s.io"} <= groups
