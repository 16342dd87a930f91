"""Watch semantics through kubernetes_asyncio's Watch: replay, 410, bookmarks, timeouts, selectors."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import ClientSession
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.localcluster.app import LocalCluster

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _collect(stream: watch.Watch, func, count: int, **kw) -> list[tuple[str, str]]:
    events = []
    async with asyncio.timeout(10):
        async for event in stream.stream(func, **kw):
            events.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
            if len(events) >= count:
                break
    return events


async def test_initial_state_then_live_events(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "w1"}})
    await core.create_namespaced_config_map("w1", {"metadata": {"name": "before"}})

    async def writer() -> None:
        await asyncio.sleep(0.1)
        await core.create_namespaced_config_map("w1", {"metadata": {"name": "after"}})
        await core.patch_namespaced_config_map("after", "w1", {"data": {"k": "v"}})
        await core.delete_namespaced_config_map("after", "w1")

    task = asyncio.create_task(writer())
    events = await _collect(watch.Watch(), core.list_namespaced_config_map, 4, namespace="w1",
                            timeout_seconds=10)
    await task
    assert events == [("ADDED", "before"), ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


async def test_resume_from_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "w2"}})
    listing = await core.list_namespaced_config_map("w2")
    rv = listing.metadata.resource_version
    for name in ("a", "b", "c"):
        await core.create_namespaced_config_map("w2", {"metadata": {"name": name}})
    await core.create_namespaced_config_map("default", {"metadata": {"name": "other-namespace"}})
    events = await _collect(watch.Watch(), core.list_namespaced_config_map, 3, namespace="w2",
                            resource_version=rv, timeout_seconds=10)
    assert events == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]


async def test_selector_moves_emit_added_and_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "w3"}})
    await core.create_namespaced_config_map("w3", {"metadata": {"name": "m", "labels": {"phase": "idle"}}})
    rv = (await core.list_namespaced_config_map("w3")).metadata.resource_version

    async def writer() -> None:
        await asyncio.sleep(0.1)
        await core.patch_namespaced_config_map("m", "w3", {"metadata": {"labels": {"phase": "running"}}})
        await core.patch_namespaced_config_map("m", "w3", {"metadata": {"labels": {"phase": "idle"}}})

    task = asyncio.create_task(writer())
    events = await _collect(watch.Watch(), core.list_namespaced_config_map, 2, namespace="w3",
                            label_selector="phase=idle", resource_version=rv, timeout_seconds=10)
    await task
    assert events == [("DELETED", "m"), ("ADDED", "m")]


async def test_bookmarks_and_timeout(cluster: LocalCluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    rv = (await core.list_namespaced_secret("default")).metadata.resource_version
    started = time.monotonic()
    types = []
    async for event in watch.Watch().stream(core.list_namespaced_secret, namespace="default", resource_version=rv,
                                            allow_watch_bookmarks=True, timeout_seconds=1):
        types.append(event["type"])
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3
    assert types and set(types) == {"BOOKMARK"}


async def test_too_old_resource_version_is_410(make_api_client) -> None:
    async with LocalCluster(crd_dir=None, event_log_size=5) as small, make_api_client(small) as api:
        core = client.CoreV1Api(api)
        first = await core.create_namespaced_config_map("default", {"metadata": {"name": "c0"}})
        for i in range(1, 10):
            await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as err:
            async for _ in watch.Watch().stream(core.list_namespaced_config_map, namespace="default",
                                                resource_version=first.metadata.resource_version,
                                                timeout_seconds=2):
                pass
        assert err.value.status == 410
        page = await core.list_namespaced_config_map("default", limit=2)
        for i in range(10, 20):
            await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as err:
            await core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
        assert err.value.status == 410


async def test_slow_watcher_is_dropped_not_blocking(make_api_client) -> None:
    async with LocalCluster(crd_dir=None, watch_queue_size=10) as small, make_api_client(small) as api:
        core = client.CoreV1Api(api)
        assert small.server is not None
        watcher = small.server.store.watch(small.server.registry.lookup("", "v1", "configmaps"), None, (), (), None)
        started = time.monotonic()
        for i in range(50):
            await core.create_namespaced_config_map("default", {"metadata": {"name": f"s{i}"}})
        assert time.monotonic() - started < 5
        assert watcher.dropped
        small.server.store.unwatch(watcher)


async def test_send_initial_events_ends_with_marked_bookmark(api: client.ApiClient, http: ClientSession) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "w4"}})
    await core.create_namespaced_config_map("w4", {"metadata": {"name": "one"}})
    params = {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
              "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
    async with http.get("/api/v1/namespaces/w4/configmaps", params=params) as resp:
        lines = [line async for line in resp.content]
    events = [orjson.loads(line) for line in lines]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "one"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
