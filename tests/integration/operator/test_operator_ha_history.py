"""Sandbox history is the same on every operator replica (behaviour §14, issue 3).

Two operators share one embedded control plane: one leads (runs the
controllers that recycle and replace pods), both serve get/list. Behind a
Service that alternates between them, a finished sandbox must read the same
on both — same status, stop details and timestamps — whichever replica took
the delete and whichever performed the recycle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from operator_stack import ADMIN_KEY, CALLER, OpEnv, operator_settings, serve_gateway, sim_cluster, wait_until

from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.kube.client import KubeClient, pods_path
from agent_sandbox.operator.services.errors import NotFound, SandboxStartFailed
from agent_sandbox.operator.services.models import CreateSandboxRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEASE = {"lease_duration_s": 2.0, "lease_renew_s": 0.5}


@dataclass
class Replicas:
    leader: Operator
    follower: Operator
    env: OpEnv

    def both(self) -> tuple[Operator, Operator]:
        return self.leader, self.follower

    def pick(self, role: str) -> Operator:
        return self.leader if role == "leader" else self.follower


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replicas(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Replicas]:
    state_dir = tmp_path_factory.mktemp("ha-history")
    async with serve_gateway() as gateway, sim_cluster(state_dir) as cluster:
        def replica(identity: str) -> Operator:
            return Operator(operator_settings(cluster, identity=identity, gateway_base_url=gateway.url,
                                              admin_key=ADMIN_KEY, **LEASE))

        leader, follower = replica("hist-one"), replica("hist-two")
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        try:
            await leader.start()
            await wait_until(lambda: leader.is_leader, 10, "first replica leads")
            await follower.start()
            assert not follower.is_leader
            yield Replicas(leader, follower, OpEnv(cluster, leader, gateway, kube, state_dir))
        finally:
            await follower.stop()
            await leader.stop()
            await kube.close()


async def status_on(op: Operator, sandbox_id: str) -> str:
    try:
        return (await op.sandboxes.get(sandbox_id))["status"]
    except NotFound:
        return "NotFound"


async def finished_on_both(r: Replicas, sandbox_id: str, status: str) -> dict[str, Any]:
    """Wait until both replicas answer ``status`` for the sandbox; the two records must be identical."""
    async def settled() -> bool:
        return all([await status_on(op, sandbox_id) == status for op in r.both()])

    await wait_until(settled, 15, f"{sandbox_id} {status} on both replicas")
    one, two = [await op.sandboxes.get(sandbox_id) for op in r.both()]
    assert one == two, "the replicas disagree about a finished sandbox"
    listed = [[rec for rec in op.sandboxes.list("default", limit=1000).items if rec["sandboxId"] == sandbox_id]
              for op in r.both()]
    assert listed == [[one], [one]], "list shows the same single record on both replicas"
    assert one["terminatedAt"]
    return one


@pytest.mark.parametrize("role", ["leader", "follower"])
async def test_deleted_sandbox_reads_completed_on_both_replicas(replicas: Replicas, role: str) -> None:
    pool = f"done-{role}"
    await replicas.env.create_pool(pool, replicas=1)
    await replicas.env.wait_idle(pool, 1)
    actor = replicas.pick(role)
    rec = await actor.sandboxes.create(CreateSandboxRequest(poolName=pool, wait=True, metadata={"job": role}),
                                       CALLER)
    out = await actor.sandboxes.delete(rec["sandboxId"])
    assert out["status"] == "Stopping"
    done = await finished_on_both(replicas, rec["sandboxId"], "Completed")
    assert done["startedAt"] == rec["startedAt"] and done["claimedAt"] == rec["claimedAt"]
    assert done["recycledAt"] >= done["terminatedAt"] >= done["startedAt"]
    assert done["metadata"] == {"job": role} and done["podName"] == rec["podName"]
    assert done["durationSeconds"] >= 0 and "failureReason" not in done
    for op in replicas.both():
        again = await op.sandboxes.delete(rec["sandboxId"])
        assert again["status"] == "Terminated", "a second delete on either replica sees the sandbox ended"


async def test_externally_deleted_pod_reads_failed_on_both_replicas(replicas: Replicas) -> None:
    await replicas.env.create_pool("kubectl", replicas=1)
    await replicas.env.wait_idle("kubectl", 1)
    rec = await replicas.follower.sandboxes.create(CreateSandboxRequest(poolName="kubectl", wait=True), CALLER)
    await replicas.env.kube.delete(pods_path("default", rec["podName"]))
    failed = await finished_on_both(replicas, rec["sandboxId"], "Failed")
    assert "deleted" in failed["failureMessage"] and failed["failureReason"]
    await replicas.env.wait_idle("kubectl", 1)
    assert await finished_on_both(replicas, rec["sandboxId"], "Failed") == failed, "the pod's removal changes nothing"


async def test_failed_starts_read_failed_with_their_reason_on_both_replicas(replicas: Replicas) -> None:
    await replicas.env.create_pool("badstart", replicas=1)
    await replicas.env.wait_idle("badstart", 1)
    with pytest.raises(SandboxStartFailed) as pull:
        await replicas.follower.sandboxes.create(CreateSandboxRequest(
            poolName="badstart", image="bad/img:pullerror", startupTimeout="20s", wait=True), CALLER)
    assert pull.value.reason == "ImagePullFailed"
    failed = await finished_on_both(replicas, pull.value.sandbox_id, "Failed")
    assert failed["failureReason"] == "ImagePullFailed" and "pull" in failed["failureMessage"].lower()

    await replicas.env.wait_idle("badstart", 1)
    bad_hook = {"httpPost": {"port": 49983, "path": "/fail"}}
    with pytest.raises(SandboxStartFailed) as hook:
        await replicas.leader.sandboxes.create(CreateSandboxRequest(
            poolName="badstart", postStartHooks=[bad_hook], wait=True), CALLER)
    assert hook.value.reason == "PostStartHookFailed"
    failed = await finished_on_both(replicas, hook.value.sandbox_id, "Failed")
    assert failed["failureReason"] == "PostStartHookFailed" and "500" in failed["failureMessage"]
