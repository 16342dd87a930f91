"""Fault injection (runtime endpoint) and SQLite persistence across a subprocess restart."""

from __future__ import annotations

import pathlib
import time

import pytest
from aiohttp import ClientSession
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.localcluster.app import LocalCluster, LocalClusterProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_faults_are_observable(cluster: LocalCluster, api: client.ApiClient, http: ClientSession) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "faults"}})
    try:
        async with http.put("/localcluster/v1/faults", json={"conflict_probability": 1.0}) as resp:
            assert resp.status == 200
        with pytest.raises(ApiException) as err:
            await core.create_namespaced_config_map("faults", {"metadata": {"name": "x"}})
        assert err.value.status == 409
        assert (await core.list_namespaced_config_map("faults")).items == []  # reads unaffected

        await cluster.set_faults({"error_probability": 1.0, "error_status": 503})
        with pytest.raises(ApiException) as err:
            await core.list_namespaced_config_map("faults")
        assert err.value.status == 503

        await cluster.set_faults({"latency_ms": {"read": 150}})
        started = time.monotonic()
        await core.list_namespaced_config_map("faults")
        assert time.monotonic() - started >= 0.15

        await cluster.set_faults({"watch_drop_after_events": 2})
        for i in range(4):
            await core.create_namespaced_config_map("faults", {"metadata": {"name": f"cm{i}"}})
        seen = []
        async for event in watch.Watch().stream(core.list_namespaced_config_map, namespace="faults",
                                                timeout_seconds=5):
            seen.append(event["type"])
        assert seen == ["ADDED", "ADDED"]  # the stream was closed after two events

        async with http.put("/localcluster/v1/faults", json={"conflict_probability": 7}) as resp:
            assert resp.status == 400 and (await resp.json())["kind"] == "Status"
    finally:
        await cluster.set_faults({})
    async with http.get("/localcluster/v1/faults") as resp:
        assert (await resp.json())["conflict_probability"] == 0.0


async def test_state_survives_restart(tmp_path: pathlib.Path, make_api_client) -> None:
    state = tmp_path / "state"
    async with LocalClusterProcess(state_dir=state, crd_dir=None) as first, make_api_client(first) as api:
        core = client.CoreV1Api(api)
        await core.create_namespaced_config_map("default", {"metadata": {"name": "kept"}, "data": {"v": "1"}})
        await core.create_namespaced_config_map("default", {"metadata": {"name": "gone"}})
        await core.delete_namespaced_config_map("gone", "default")
        last_rv = int((await core.patch_namespaced_config_map("kept", "default", {"data": {"v": "2"}}))
                      .metadata.resource_version)
        token = first.token
    async with LocalClusterProcess(state_dir=state, crd_dir=None) as second, make_api_client(second) as api:
        assert second.token == token
        core = client.CoreV1Api(api)
        kept = await core.read_namespaced_config_map("kept", "default")
        assert kept.data == {"v": "2"} and int(kept.metadata.resource_version) == last_rv
        with pytest.raises(ApiException):
            await core.read_namespaced_config_map("gone", "default")
        newer = await core.create_namespaced_config_map("default", {"metadata": {"name": "newer"}})
        assert int(newer.metadata.resource_version) > last_rv
        assert await second.healthy()


async def test_in_process_cluster_persists_with_state_dir(tmp_path: pathlib.Path, make_api_client) -> None:
    async with LocalCluster(state_dir=tmp_path, crd_dir=None) as first, make_api_client(first) as api:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": "persisted"}})
    async with LocalCluster(state_dir=tmp_path, crd_dir=None) as second, make_api_client(second) as api:
        ns = await client.CoreV1Api(api).read_namespace("persisted")
        assert ns.status.phase == "Active"
