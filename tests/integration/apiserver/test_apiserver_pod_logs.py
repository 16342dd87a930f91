"""Pod logs through the embedded API server: a real local-node container's output, read by kubectl and the client."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from kubernetes_asyncio import client

from agent_sandbox.localcluster.app import LocalCluster

CLUSTER_NODE = "local"  # the shared ``cluster`` fixture runs a local node for this module
pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="the local node needs bubblewrap")]

SCRIPT = "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; exec sleep 60"



@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def talker(api: client.ApiClient) -> AsyncIterator[client.CoreV1Api]:
    """A running pod that printed five lines to stdout and one to stderr."""
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod("default", {"metadata": {"name": "talker"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "host", "command": ["/bin/sh", "-c", SCRIPT]}]}})
    deadline = time.monotonic() + 30
    while "oops" not in await core.read_namespaced_pod_log("talker", "default"):
        assert time.monotonic() < deadline, "the container's output never reached the log"
        await asyncio.sleep(0.1)
    yield core
    await core.delete_namespaced_pod("talker", "default")


async def test_client_reads_output_with_tail_and_limit(talker: client.CoreV1Api) -> None:
    full = await talker.read_namespaced_pod_log("talker", "default")
    assert [line for line in full.splitlines() if line.startswith("line-")] == [f"line-{i}" for i in range(1, 6)]
    assert "oops" in full  # stderr goes to the same log
    assert await talker.read_namespaced_pod_log("talker", "default", tail_lines=1) == "oops\n"
    assert await talker.read_namespaced_pod_log("talker", "default", container="main", limit_bytes=6) == "line-1"


async def test_kubectl_logs(run_kubectl, talker: client.CoreV1Api) -> None:
    out = await run_kubectl("logs", "talker", "--tail=2")
    assert out.stdout.splitlines() == ["line-5", "oops"]


async def test_bad_requests_are_clear(cluster: LocalCluster, http: ClientSession,
                                      talker: client.CoreV1Api) -> None:
    base = "/api/v1/namespaces/default/pods"
    async with http.get(f"{base}/nobody/log") as resp:
        assert resp.status == 404
    async with http.get(f"{base}/talker/log", params={"container": "sidecar"}) as resp:
        assert resp.status == 400
        assert "container sidecar is not valid" in (await resp.json())["message"]
    for query in ({"tailLines": "many"}, {"tailLines": "-1"}, {"limitBytes": "0"}):
        async with http.get(f"{base}/talker/log", params=query) as resp:
            assert resp.status == 400, query
    async with http.get(f"{base}/talker/log") as plain:
        assert plain.headers["Content-Type"].startswith("text/plain")
    async with ClientSession(cluster.url) as anonymous, anonymous.get(
            "/api/v1/namespaces/default/pods/talker/log") as resp:
        assert resp.status == 401
