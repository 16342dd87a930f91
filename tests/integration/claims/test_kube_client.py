"""The operator's lean Kubernetes client against the embedded API server (real TLS, real process).

What a user of the claim path notices: a burst right after start-up does not open new connections
(no TLS handshakes on the critical path), API errors keep their status (409 = lost race, 404 = gone),
the environment's proxy settings are resolved once rather than per request, and watch events arrive
intact whether they come many to a read or one large event spread over many reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from agent_sandbox.localcluster.app import LocalClusterProcess
from agent_sandbox.operator.kube.client import KubeClient, KubeError

pytestmark = pytest.mark.asyncio(loop_scope="module")

CM_PATH = "/api/v1/namespaces/default/configmaps"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalClusterProcess]:
    async with LocalClusterProcess(state_dir=tmp_path_factory.mktemp("kubeclient"), node="none") as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="module")
async def client(cluster: LocalClusterProcess) -> AsyncIterator[KubeClient]:
    kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        yield kube
    finally:
        await kube.close()


def established_to(port: int) -> int:
    """Open TCP connections from this machine to ``port`` on 127.0.0.1 (our client's side only)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":  # 01 = ESTABLISHED
                count += 1
    return count


async def test_warm_pool_serves_a_burst_without_new_connections(cluster: LocalClusterProcess,
                                                                client: KubeClient) -> None:
    port = int(cluster.tls_url.rsplit(":", 1)[1])
    before = established_to(port)
    assert await client.warm(24) == 24
    warmed = established_to(port)
    assert warmed - before == 24
    await asyncio.gather(*(client.request("GET", CM_PATH) for _ in range(24)))
    assert established_to(port) == warmed


async def test_errors_keep_their_status(client: KubeClient) -> None:
    created = await client.create(CM_PATH, {"metadata": {"name": "cas"}, "data": {"v": "1"}})
    rv = created["metadata"]["resourceVersion"]
    await client.merge_patch(f"{CM_PATH}/cas", {"metadata": {"resourceVersion": rv}, "data": {"v": "2"}})
    with pytest.raises(KubeError) as lost:
        await client.merge_patch(f"{CM_PATH}/cas", {"metadata": {"resourceVersion": rv}, "data": {"v": "3"}})
    assert lost.value.conflict
    assert (await client.get(f"{CM_PATH}/cas"))["data"] == {"v": "2"}
    with pytest.raises(KubeError) as missing:
        await client.get(f"{CM_PATH}/absent")
    assert missing.value.not_found


async def test_environment_proxy_is_resolved_once(cluster: LocalClusterProcess, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        with pytest.raises(OSError):
            await proxied.get("/version")
    finally:
        await proxied.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        monkeypatch.delenv("NO_PROXY")  # read at construction, not per request
        assert (await direct.get("/version"))["major"]
    finally:
        await direct.close()


async def test_watch_delivers_batched_and_large_events_intact(client: KubeClient) -> None:
    listing = await client.list(CM_PATH)
    big = "x" * 300_000  # far larger than one socket read
    names = [f"batch-{i}" for i in range(200)]

    async def write() -> None:
        await asyncio.gather(*(client.create(CM_PATH, {"metadata": {"name": n}}) for n in names))
        await client.create(CM_PATH, {"metadata": {"name": "large"}, "data": {"blob": big}})

    seen: dict[str, dict] = {}

    async def watch() -> None:
        async for event in client.watch(CM_PATH, resource_version=listing["metadata"]["resourceVersion"],
                                        timeout_s=20):
            if event["type"] == "ADDED":
                seen[event["object"]["metadata"]["name"]] = event["object"]
            if "large" in seen:
                return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    await write()
    await asyncio.wait_for(watcher, 20)
    assert set(names) <= set(seen)
    assert seen["large"]["data"]["blob"] == big


async def test_kept_warm_pool_outlives_the_keepalive_of_idle_connections(cluster: LocalClusterProcess) -> None:
    port = int(cluster.tls_url.rsplit(":", 1)[1])
    kept = await KubeClient.from_kubeconfig(str(cluster.kubeconfig), keepalive_s=0.5)
    idle = await KubeClient.from_kubeconfig(str(cluster.kubeconfig), keepalive_s=0.5)
    warmed = asyncio.Event()
    warm = kept.warm

    async def warm_and_tell(connections: int) -> int:
        result = await warm(connections)
        warmed.set()
        return result

    kept.warm = warm_and_tell  # type: ignore[method-assign]
    keeper = asyncio.create_task(kept.keep_warm(8))  # every third of the keep-alive
    try:
        before = established_to(port)
        assert await kept.warm(8) == 8
        assert await idle.warm(8) == 8
        assert established_to(port) - before == 16
        await asyncio.sleep(1.6)  # past the keep-alive: the idle client's connections are closed
        assert established_to(port) - before == 8
        warmed.clear()
        await warmed.wait()  # between two keep-warm rounds, so the burst does not share the pool with one
        await asyncio.gather(*(kept.request("GET", CM_PATH) for _ in range(8)))
        assert established_to(port) - before == 8  # the burst after the quiet spell opened none
    finally:
        keeper.cancel()
        await kept.close()
        await idle.close()


async def test_send_now_writes_before_yielding_and_answers_like_request(cluster: LocalClusterProcess) -> None:
    kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        body = {"metadata": {"name": "sent-now"}, "data": {"n": "0"}}
        assert kube.send_now("POST", CM_PATH, body=body) is None  # no connection yet, credentials not read
        await kube.warm(2)
        started = kube.send_now("POST", CM_PATH, body=body)
        assert started is not None
        created = await started
        assert created["metadata"]["name"] == "sent-now"
        patch = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"n": "1"}}
        path = f"{CM_PATH}/sent-now"
        first = kube.send_now("PATCH", path, body=patch, content_type="application/merge-patch+json")
        second = kube.send_now("PATCH", path, body=patch, content_type="application/merge-patch+json")
        assert first is not None and second is not None
        assert kube.send_now("GET", path, body=None) is None  # both pooled connections are busy
        assert (await first)["data"] == {"n": "1"}
        with pytest.raises(KubeError) as lost:
            await second  # the same resourceVersion: the second write lost the race
        assert lost.value.conflict
    finally:
        await kube.close()
