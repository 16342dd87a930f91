"""The watch cache survives dropped streams, 410 Gone (relist) and an API-server restart."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from operator_stack import wait_until

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.kube.client import KubeClient, pods_path
from agent_sandbox.operator.kube.informer import Informer

pytestmark = pytest.mark.asyncio


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}


async def api_names(kube: KubeClient) -> set[str]:
    listing = await kube.list(pods_path("default"))
    return {p["metadata"]["name"] for p in listing["items"]}


def cache_names(inf: Informer) -> set[str]:
    return {p["metadata"]["name"] for p in inf.items()}


@contextlib.asynccontextmanager
async def running(inf: Informer):
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.synced.wait(), 10)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_dropped_watches_and_410_relist_keep_the_cache_exact(tmp_path) -> None:
    async with LocalCluster(state_dir=tmp_path, persist=False, event_log_size=20) as cluster:
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        inf = Informer(kube, pods_path(), kind="Pod")
        events: list[tuple[str, str]] = []
        inf.add_handler(lambda t, old, new: events.append((t, (new or old)["metadata"]["name"])))
        try:
            async with running(inf):
                await cluster.set_faults({"watch_drop_after_events": 3})
                for i in range(10):
                    await kube.create(pods_path("default"), pod(f"a{i}"))
                await wait_until(lambda: len(cache_names(inf)) == 10, 10, "cache follows dropped watches")
                await cluster.set_faults({})
            # While the informer is stopped the server's event log rolls over: resuming gets 410.
            for i in range(30):
                await kube.create(pods_path("default"), pod(f"b{i}"))
            await kube.delete(pods_path("default", "a0"), grace_period_s=0)
            relists = inf.relists
            async with running(inf):
                await wait_until(lambda: inf.relists > relists, 10, "relist after 410")
                await wait_until(lambda: cache_names(inf) == {f"a{i}" for i in range(1, 10)} | {
                    f"b{i}" for i in range(30)}, 10, "cache equals the server after relist")
                assert ("DELETED", "a0") in events
                await kube.create(pods_path("default"), pod("c0"))
                await wait_until(lambda: "c0" in cache_names(inf), 10, "watching again after relist")
        finally:
            await kube.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_cache_survives_an_api_server_restart(tmp_path) -> None:
    port, tls_port = free_port(), free_port()
    first = LocalCluster(state_dir=tmp_path, persist=True, port=port, tls_port=tls_port)
    await first.start()
    kube = await KubeClient.from_kubeconfig(str(first.kubeconfig))
    inf = Informer(kube, pods_path(), kind="Pod", max_backoff_s=0.5)
    try:
        async with running(inf):
            await kube.create(pods_path("default"), pod("before"))
            await wait_until(lambda: "before" in cache_names(inf), 10, "first pod cached")
            await first.stop()
            second = LocalCluster(state_dir=tmp_path, persist=True, port=port, tls_port=tls_port)
            await second.start()
            try:
                await kube.create(pods_path("default"), pod("after"))
                await wait_until(lambda: cache_names(inf) == {"before", "after"}, 20, "cache after restart")
                assert cache_names(inf) == await api_names(kube)
            finally:
                await second.stop()
    finally:
        await kube.close()


async def test_a_gate_holds_events_back_for_a_bounded_time_only(tmp_path) -> None:
    """While the gate is closed (claim writes in flight) events wait, at most ``hold_s`` each time;
    once it opens they are applied at once."""
    async with LocalCluster(state_dir=tmp_path, persist=False) as cluster:
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        inf = Informer(kube, pods_path(), kind="Pod")
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        inf.set_gate(lambda: None if closed.done() else asyncio.shield(closed), hold_s=0.5)
        try:
            async with running(inf):
                loop = asyncio.get_running_loop()
                await kube.create(pods_path("default"), pod("held"))
                started = loop.time()
                await asyncio.sleep(0.2)
                assert "held" not in cache_names(inf), "the gate holds the event back"
                await wait_until(lambda: "held" in cache_names(inf), 5, "the event is applied after the hold")
                assert 0.4 <= loop.time() - started < 1.5
                closed.set_result(None)
                await kube.create(pods_path("default"), pod("free"))
                await wait_until(lambda: "free" in cache_names(inf), 0.5, "an open gate does not delay")
        finally:
            await kube.close()
