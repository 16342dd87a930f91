"""Finished-sandbox history survives operator restarts (behaviour §14, "nothing lost on restart").

The leader stores each finished sandbox's record as a ConfigMap in the
sandbox's namespace; every replica loads those at start-up. A sandbox killed
before an operator restart, or before a rolling update brings up a new
replica, still reads as it ended — on the restarted replica and on one that
was never running when it ended. The embedded control plane and a sim node
play the cluster; the operators and the history writer use the real client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from operator_stack import ADMIN_KEY, CALLER, Gateway, OpEnv, operator_settings, serve_gateway, sim_cluster, wait_until
from prometheus_client import CollectorRegistry

from agent_sandbox.common import vocabulary as v
from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.kube.client import KubeClient, KubeError, pods_path
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_metrics import HistoryMetrics
from agent_sandbox.operator.lifecycle.history_objects import (
    from_configmap,
    history_path,
    object_name,
    to_configmap,
)
from agent_sandbox.operator.lifecycle.history_sync import HistorySync
from agent_sandbox.operator.lifecycle.history_writer import HistoryWriter
from agent_sandbox.operator.services.errors import NotFound
from agent_sandbox.operator.services.models import CreateSandboxRequest
from agent_sandbox.operator.timeutil import format_time, now_utc

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEASE = {"lease_duration_s": 2.0, "lease_renew_s": 0.5}
NS = "default"


@dataclass
class Stack:
    cluster: LocalCluster
    gateway: Gateway
    kube: KubeClient
    state_dir: Any

    def operator(self, identity: str, **overrides: Any) -> Operator:
        return Operator(operator_settings(self.cluster, identity=identity, gateway_base_url=self.gateway.url,
                                          admin_key=ADMIN_KEY, **{**LEASE, **overrides}))

    def env(self, op: Operator) -> OpEnv:
        return OpEnv(self.cluster, op, self.gateway, self.kube, self.state_dir)

    async def stored(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(history_path(NS, object_name(sandbox_id)))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    state_dir = tmp_path_factory.mktemp("history-durable")
    async with serve_gateway() as gateway, sim_cluster(state_dir) as cluster:
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        try:
            yield Stack(cluster, gateway, kube, state_dir)
        finally:
            await kube.close()


async def leading(op: Operator) -> Operator:
    await op.start()
    await wait_until(lambda: op.is_leader, 10, f"{op.settings.identity} leads")
    return op


async def kill_one(stack: Stack, op: Operator, pool: str, **req: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Claim a sandbox in a fresh one-pod pool and kill it; returns (created, finished) records once the
    finished record is stored and the pod is idle again (it no longer says anything about the sandbox)."""
    env = stack.env(op)
    await env.create_pool(pool, replicas=1)
    await env.wait_idle(pool, 1)
    created = await op.sandboxes.create(CreateSandboxRequest(poolName=pool, wait=True, **req), CALLER)
    sid = created["sandboxId"]
    await op.sandboxes.delete(sid)

    async def stored() -> bool:
        return await stack.stored(sid) is not None

    await wait_until(stored, 15, f"history object of {sid}")
    await env.wait_idle(pool, 1)
    assert not [p for p in await env.pods(pool) if p["metadata"]["labels"].get(v.LABEL_SANDBOX_ID) == sid]
    return created, await op.sandboxes.get(sid)


def listed(op: Operator, sandbox_id: str) -> list[dict[str, Any]]:
    return [r for r in op.sandboxes.list(NS, limit=1000).items if r["sandboxId"] == sandbox_id]


async def test_killed_sandbox_reads_the_same_after_a_restart_and_on_a_replica_started_later(stack: Stack) -> None:
    first = await leading(stack.operator("durable-one"))
    try:
        init = {"httpPost": {"port": 49983, "path": "/init", "body": {"envVars": {"API_TOKEN": "tok-do-not-store"}}}}
        created, finished = await kill_one(stack, first, "durable", metadata={"job": "restart"},
                                           postStartHooks=[init])
    finally:
        await first.stop()
    sid = created["sandboxId"]
    assert finished["status"] == "Completed" and finished["terminatedAt"]
    obj = await stack.stored(sid)
    assert obj is not None and from_configmap(obj) == finished, "the stored record is the one served"
    assert obj["metadata"]["labels"][v.LABEL_SANDBOX_POOL] == "durable"
    assert obj["metadata"]["annotations"][v.ANN_TERMINATED_AT] == finished["terminatedAt"]
    assert "tok-do-not-store" not in str(obj) and "API_TOKEN" not in str(obj)

    restarted = await leading(stack.operator("durable-one"))
    later = stack.operator("durable-two")
    try:
        await later.start()
        assert not later.is_leader
        for op in (restarted, later):
            assert await op.sandboxes.get(sid) == finished, op.settings.identity
            assert listed(op, sid) == [finished], op.settings.identity
            assert (await op.sandboxes.delete(sid))["status"] == "Terminated", "a second kill sees it ended"
    finally:
        await later.stop()
        await restarted.stop()


async def test_externally_deleted_pod_reads_failed_after_a_restart(stack: Stack) -> None:
    op = await leading(stack.operator("durable-ext"))
    try:
        env = stack.env(op)
        await env.create_pool("durable-ext", replicas=1)
        await env.wait_idle("durable-ext", 1)
        rec = await op.sandboxes.create(CreateSandboxRequest(poolName="durable-ext", wait=True), CALLER)
        await stack.kube.delete(pods_path(NS, rec["podName"]))

        async def stored() -> bool:
            return await stack.stored(rec["sandboxId"]) is not None

        await wait_until(stored, 15, "history object of the externally deleted sandbox")
        failed = await op.sandboxes.get(rec["sandboxId"])
    finally:
        await op.stop()
    assert failed["status"] == "Failed"
    again = await leading(stack.operator("durable-ext"))
    try:
        assert await again.sandboxes.get(rec["sandboxId"]) == failed
    finally:
        await again.stop()


async def test_leader_sweeps_history_older_than_the_ttl(stack: Stack) -> None:
    ttl = 3.0
    op = await leading(stack.operator("durable-ttl", history_ttl_s=ttl))
    try:
        created, _ = await kill_one(stack, op, "durable-ttl")
        sid = created["sandboxId"]

        async def swept() -> bool:
            return await stack.stored(sid) is None

        await wait_until(swept, ttl + 10, "the expired history object to be deleted")
        with pytest.raises(NotFound):
            await op.sandboxes.get(sid)
        assert listed(op, sid) == []
        assert op.metrics.registry.get_sample_value(
            "agentsandbox_sandbox_history_deleted_total", {"reason": "expired"}) >= 1
    finally:
        await op.stop()


def record(sandbox_id: str, status: str = "Completed") -> dict[str, Any]:
    return {"sandboxId": sandbox_id, "namespace": NS, "poolName": "writer", "status": status,
            "claimedAt": "2026-01-01T12:00:00Z", "terminatedAt": "2026-11-26T12:00:00Z"}


def writes(metrics: HistoryMetrics, result: str) -> float:
    return metrics.writes.labels(result)._value.get()


async def test_writes_are_create_only_and_leader_only(stack: Stack) -> None:
    leader_metrics, follower_metrics = HistoryMetrics(CollectorRegistry()), HistoryMetrics(CollectorRegistry())
    leads = {"yes": True}
    leader = HistoryWriter(stack.kube, lambda: leads["yes"], leader_metrics)
    follower = HistoryWriter(stack.kube, lambda: False, follower_metrics)
    await stack.kube.create(history_path(NS), to_configmap(record("it-written-before", "Failed")))
    task = asyncio.create_task(leader.run())
    try:
        follower.submit(record("it-follower"))
        assert len(follower) == 0 and writes(follower_metrics, "skipped") == 1, "a follower never queues"
        leader.submit(record("it-written-before"))
        leader.submit(record("it-new"))

        async def done() -> bool:
            return writes(leader_metrics, "written") + writes(leader_metrics, "exists") == 2

        await wait_until(done, 10, "both writes handled")
        assert writes(leader_metrics, "exists") == 1
        assert from_configmap(await stack.stored("it-written-before") or {})["status"] == "Failed", \
            "an existing record is never overwritten"
        assert from_configmap(await stack.stored("it-new") or {}) == record("it-new")
        assert await stack.stored("it-follower") is None
        leads["yes"] = False
        leader.submit(record("it-after-losing-the-lease"))
        assert len(leader) == 0 and await stack.stored("it-after-losing-the-lease") is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_writes_retry_through_api_server_errors(stack: Stack) -> None:
    metrics = HistoryMetrics(CollectorRegistry())
    writer = HistoryWriter(stack.kube, lambda: True, metrics)
    task = asyncio.create_task(writer.run())
    try:
        await stack.cluster.set_faults({"error_probability": 1.0, "error_status": 503})
        try:
            writer.submit(record("it-retried"))
            await asyncio.sleep(0.7)
            assert writes(metrics, "written") == 0
        finally:
            await stack.cluster.set_faults({})

        async def written() -> bool:
            return await stack.stored("it-retried") is not None

        await wait_until(written, 10, "the retried write to land")
        assert writes(metrics, "written") == 1 and writes(metrics, "failed") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)



async def test_a_full_queue_drops_its_oldest_and_the_repair_pass_writes_them_later(stack: Stack) -> None:
    metrics = HistoryMetrics(CollectorRegistry())
    writer = HistoryWriter(stack.kube, lambda: True, metrics, queue_limit=3)
    ended = format_time(now_utc() - timedelta(seconds=60))
    burst = [{**record(f"it-burst-{i}"), "terminatedAt": ended} for i in range(5)]
    for rec in burst:
        writer.submit(rec)  # no worker runs yet: the burst overflows the queue
    assert len(writer) == 3 and writes(metrics, "dropped") == 2
    store = HistoryStore()
    for rec in burst:
        store.put(rec)
    sync = HistorySync(stack.kube, store, writer, metrics, ttl_s=3600)
    watch = asyncio.create_task(sync.informer.run())
    drain = asyncio.create_task(writer.run())
    try:
        async def stored(ids: list[str]) -> bool:
            return all([await stack.stored(i) is not None for i in ids])

        await wait_until(lambda: stored([r["sandboxId"] for r in burst[2:]]), 10, "the queued records")
        assert await stack.stored("it-burst-0") is None, "dropped, not yet repaired"
        await wait_until(lambda: len(sync.informer) >= 3, 10, "the watch to see the written records")
        assert sync.repair() == 2
        await wait_until(lambda: stored(["it-burst-0", "it-burst-1"]), 10, "the repaired records")
        await wait_until(lambda: len(sync.informer) >= 5, 10, "the watch to see every record")
        assert sync.repair() == 0, "nothing is missing any more"
    finally:
        for task in (watch, drain):
            task.cancel()
        await asyncio.gather(watch, drain, return_exceptions=True)
