"""Leader election and restart safety.

Two operators share one cluster: exactly one runs the controllers, both serve
claims. The leader is a real ``agent-sandbox operator`` process killed with
SIGKILL while sandboxes are mid-swap; the survivor takes the lease and, after
reconciling, no pod is stuck starting/stopping, none holds two sandboxes and
the pool has exactly its replicas.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from operator_stack import CALLER, Gateway, OpEnv, operator_settings, sim_cluster, wait_until

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.kube.client import KubeClient, leases_path
from agent_sandbox.operator.services.models import CreateSandboxRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEASE = {"lease_duration_s": 2.0, "lease_renew_s": 0.5}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ha(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpEnv]:
    state_dir = tmp_path_factory.mktemp("ha")
    async with sim_cluster(state_dir) as cluster:
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        try:
            yield OpEnv(cluster, None, Gateway(), kube, state_dir)  # type: ignore[arg-type]
        finally:
            await kube.close()


async def lease_holder(kube: KubeClient) -> str:
    try:
        lease = await kube.get(leases_path("default", "agent-sandbox-operator"))
    except Exception:
        return ""
    return (lease.get("spec") or {}).get("holderIdentity") or ""


async def test_exactly_one_leader_and_failover_on_stop(ha: OpEnv) -> None:
    one = Operator(operator_settings(ha.cluster, identity="op-one", **LEASE))
    two = Operator(operator_settings(ha.cluster, identity="op-two", **LEASE))
    await one.start()
    await wait_until(lambda: one.is_leader, 10, "first operator leads")
    await two.start()
    try:
        await asyncio.sleep(1.5)
        assert one.is_leader and not two.is_leader
        assert await lease_holder(ha.kube) == "op-one"
        ha.operator = two
        await ha.create_pool("ha", replicas=1)
        await ha.wait_idle("ha", 1)
        # The follower serves claims; the leader's reconciler completes the swap.
        rec = await two.sandboxes.create(CreateSandboxRequest(poolName="ha", wait=True), CALLER)
        assert rec["status"] == "Running"
        await two.sandboxes.delete(rec["sandboxId"])
        await one.stop()
        await wait_until(lambda: two.is_leader, 10, "follower takes over")
        assert await lease_holder(ha.kube) == "op-two"
    finally:
        await two.stop()
        await one.stop()


async def operator_process(ha: OpEnv, identity: str) -> asyncio.subprocess.Process:
    """``agent-sandbox operator`` as a real process (the stable command interface)."""
    env = {**os.environ, "AGENT_SANDBOX_LEASE_NAMESPACE": "default", "AGENT_SANDBOX_LEASE_DURATION_S": "2",
           "AGENT_SANDBOX_LEASE_RENEW_S": "0.5", "AGENT_SANDBOX_IDENTITY": identity,
           "AGENT_SANDBOX_RECONCILE_REQUEUE_S": "1", "AGENT_SANDBOX_LOG_LEVEL": "warning",
           "AGENT_SANDBOX_ADMIN_KEY": "asb_" + "5" * 40}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent_sandbox.common.cli", "operator", "--kubeconfig", str(ha.cluster.kubeconfig),
        "--cluster-id", "ha", "--metrics-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_process_refuses_to_serve_apis_without_an_admin_key(ha: OpEnv) -> None:
    env = {k: val for k, val in os.environ.items() if k != "AGENT_SANDBOX_ADMIN_KEY"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent_sandbox.common.cli", "operator", "--kubeconfig", str(ha.cluster.kubeconfig),
        "--metrics-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"admin key" in err


async def test_process_rejects_a_malformed_history_ttl(ha: OpEnv) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent_sandbox.common.cli", "operator", "--kubeconfig", str(ha.cluster.kubeconfig),
        "--sandbox-history-ttl", "1 day", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"--sandbox-history-ttl" in err and b"invalid duration" in err


async def test_process_runs_until_sigterm_and_hands_back_the_lease(ha: OpEnv) -> None:
    proc = await operator_process(ha, "op-term")
    try:
        await wait_until(lambda: _holder_is(ha, "op-term"), 30, "process operator leads", interval=0.2)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert await lease_holder(ha.kube) == "", "lease released on shutdown"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _holder_is(ha: OpEnv, identity: str) -> bool:
    return await lease_holder(ha.kube) == identity


@pytest.mark.slow
async def test_leader_killed_mid_swap_leaves_no_stuck_or_doubled_pods(ha: OpEnv) -> None:
    proc = await operator_process(ha, "op-proc")
    survivor = Operator(operator_settings(ha.cluster, identity="op-survivor", **LEASE))
    try:
        await wait_until(lambda: _holder_is(ha, "op-proc"), 30, "process operator leads", interval=0.2)
        await survivor.start()
        ha.operator = survivor
        await ha.create_pool("rs", replicas=6)
        await ha.wait_idle("rs", 6, within=30)
        slow = [asyncio.create_task(survivor.sandboxes.create(CreateSandboxRequest(
            poolName="rs", image=f"rs/slow:{i}", annotations={"sim.agentsandbox.io/pull-delay": "2"}), CALLER))
            for i in range(3)]
        done = [await survivor.sandboxes.create(CreateSandboxRequest(poolName="rs", wait=True), CALLER)
                for _ in range(2)]
        started = await asyncio.gather(*slow)
        await survivor.sandboxes.delete(done[0]["sandboxId"])
        assert ha.counts("rs")["starting"] >= 1
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await wait_until(lambda: survivor.is_leader, 15, "survivor takes the lease")

        def settled() -> bool:
            c = ha.counts("rs")
            return c["starting"] == 0 and c["stopping"] == 0 and c["idle"] + c["running"] == 6

        await wait_until(settled, 20, "every pod idle or running")
        pods = await ha.pods("rs")
        assert len(pods) == 6, "no pod created twice"
        ids = [p["metadata"]["labels"].get(v.LABEL_SANDBOX_ID) for p in pods
               if p["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "running"]
        assert max(collections.Counter(ids).values()) == 1
        assert set(ids) == {r["sandboxId"] for r in [*started, done[1]]}
        assert all(v.FINALIZER_SANDBOX_PROTECTION in p["metadata"]["finalizers"] for p in pods)
        for p in pods:
            if p["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "idle":
                assert v.LABEL_SANDBOX_ID not in p["metadata"]["labels"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await survivor.stop()
