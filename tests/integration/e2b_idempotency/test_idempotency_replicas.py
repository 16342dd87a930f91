"""``Idempotency-Key`` across operator replicas and restarts: one key, one sandbox, one pod.

Two real operators with their E2B servers share one embedded control plane; every assertion about
pods reads the apiserver, not a replica's cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
import pytest_asyncio
from idem_stack import NAMESPACE, POOL, SECRET, TwoReplicas

from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.operator.e2b import key_reservations as kr
from agent_sandbox.operator.e2b.idempotency import fingerprint
from agent_sandbox.operator.kube.client import leases_path
from agent_sandbox.operator.services.models import Caller, CreateSandboxRequest
from agent_sandbox.operator.timeutil import format_time, now_utc

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def full_pool(two: TwoReplicas) -> None:
    await two.settle()


def _payload(body: dict | None = None) -> dict:
    return {"templateID": POOL, "metadata": {}, "envVars": {}, **(body or {})}


async def _record_left_by_a_dead_replica(two: TwoReplicas, key: str, sandbox_id: str, *,
                                         in_flight_for: float, expires_in: float = 600) -> None:
    """The Lease a replica writes when it reserves ``key``, as it stands when that replica died mid-create."""
    now = now_utc()
    await two.kube.create(leases_path(NAMESPACE), {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": kr.lease_name(SECRET.encode(), f"{NAMESPACE}/{two.team}/{two.user}", key),
                     "labels": {kr.LABEL_IDEMPOTENCY: "true"},
                     "annotations": {kr.ANN_FINGERPRINT: fingerprint(_payload()), kr.ANN_SANDBOX_ID: sandbox_id,
                                     kr.ANN_INFLIGHT_UNTIL: format_time(now + timedelta(seconds=in_flight_for)),
                                     kr.ANN_EXPIRES_AT: format_time(now + timedelta(seconds=expires_in))}},
        "spec": {"holderIdentity": "op-dead"}})


async def test_same_key_on_another_replica_returns_the_same_sandbox(two: TwoReplicas) -> None:
    status, first = await two.create(0, "job-one-two")
    assert status == 201, first
    status, again = await two.create(1, "job-one-two")
    assert status == 201, again
    assert again["sandboxID"] == first["sandboxID"]
    assert again["envdAccessToken"] == first["envdAccessToken"], "the replayed answer still opens envd"
    assert await two.claimed_pods() == {first["sandboxID"]: 1}


async def test_concurrent_duplicates_on_both_replicas_claim_one_pod(two: TwoReplicas) -> None:
    answers = await asyncio.gather(*(two.create(i % 2, "job-burst") for i in range(10)))
    assert {status for status, _ in answers} == {201}, answers
    ids = {body["sandboxID"] for _, body in answers}
    assert len(ids) == 1
    await asyncio.sleep(0.3)  # a stray second claim would have landed by now
    assert await two.claimed_pods() == {ids.pop(): 1}


async def test_key_survives_an_operator_restart(two: TwoReplicas) -> None:
    status, first = await two.create(1, "job-restart")
    assert status == 201, first
    await two.restart(1, "op-two-restarted")
    status, again = await two.create(1, "job-restart")
    assert status == 201, again
    assert again["sandboxID"] == first["sandboxID"]
    assert await two.claimed_pods() == {first["sandboxID"]: 1}


async def test_a_different_body_under_the_same_key_is_refused_on_every_replica(two: TwoReplicas) -> None:
    status, first = await two.create(0, "job-body", {"metadata": {"run": "a"}})
    assert status == 201, first
    for replica in (1, 0):
        status, body = await two.create(replica, "job-body", {"metadata": {"run": "b"}})
        assert status == 409, body
        assert "different request" in body["message"]
    assert await two.claimed_pods() == {first["sandboxID"]: 1}


async def test_a_failed_first_attempt_frees_the_key(two: TwoReplicas) -> None:
    before = len(await two.key_records())
    status, body = await two.create(0, "job-retry", {"templateID": "missing"})
    assert status == 400, body
    assert len(await two.key_records()) == before, "a failed create leaves no record behind"
    status, body = await two.create(1, "job-retry")
    assert status == 201, body
    assert await two.claimed_pods() == {body["sandboxID"]: 1}


async def test_the_sandbox_of_a_replica_that_died_mid_create_is_handed_back(two: TwoReplicas) -> None:
    # The dead replica had reserved the key and claimed its sandbox, but never answered.
    sandbox_id = new_sandbox_id("it")
    caller = Caller(namespace=NAMESPACE, team=two.team, user=two.user)
    await two.replicas[0].operator.sandboxes.create(CreateSandboxRequest(poolName=POOL, wait=True), caller,
                                                    sandbox_id=sandbox_id)
    await _record_left_by_a_dead_replica(two, "job-orphan", sandbox_id, in_flight_for=1.0)
    status, body = await two.create(1, "job-orphan")
    assert status == 201, body
    assert body["sandboxID"] == sandbox_id
    assert body["envdAccessToken"], "the adopted sandbox comes with its envd token"
    assert await two.claimed_pods() == {sandbox_id: 1}, "no second pod for the key"
    status, again = await two.create(0, "job-orphan")
    assert (status, again["sandboxID"]) == (201, sandbox_id)


async def test_a_dead_replicas_sandbox_still_starting_is_awaited_not_doubled(two: TwoReplicas) -> None:
    sandbox_id = new_sandbox_id("it")
    caller = Caller(namespace=NAMESPACE, team=two.team, user=two.user)
    # A slow image pull keeps the orphaned sandbox starting for a while after its replica "died".
    await two.replicas[0].operator.sandboxes.create(CreateSandboxRequest(
        poolName=POOL, image="idem/slow:1", annotations={"sim.agentsandbox.io/pull-delay": "1.5"}, wait=False),
        caller, sandbox_id=sandbox_id)
    await _record_left_by_a_dead_replica(two, "job-slow", sandbox_id, in_flight_for=0)
    assert await two.claimed_pods() == {sandbox_id: 1}
    status, body = await two.create(1, "job-slow")
    assert (status, body["sandboxID"]) == (201, sandbox_id), body
    assert await two.claimed_pods() == {sandbox_id: 1}


async def test_a_dead_replicas_claim_that_never_landed_gives_way_to_a_fresh_attempt(two: TwoReplicas) -> None:
    lost = new_sandbox_id("it")
    await _record_left_by_a_dead_replica(two, "job-lost", lost, in_flight_for=1.0)
    status, body = await two.create(0, "job-lost")
    assert status == 201, body
    assert body["sandboxID"] != lost
    assert await two.claimed_pods() == {body["sandboxID"]: 1}


async def test_the_sweep_removes_expired_records_only(two: TwoReplicas) -> None:
    await _record_left_by_a_dead_replica(two, "job-old", new_sandbox_id("it"), in_flight_for=-20, expires_in=-10)
    status, body = await two.create(0, "job-young")
    assert status == 201, body
    sweeper = kr.KeyReservations(two.kube, NAMESPACE, SECRET.encode())
    assert await sweeper.sweep() >= 1
    names = {r["metadata"]["name"] for r in await two.key_records()}
    scope = f"{NAMESPACE}/{two.team}/{two.user}"
    assert kr.lease_name(SECRET.encode(), scope, "job-old") not in names
    assert kr.lease_name(SECRET.encode(), scope, "job-young") in names


async def test_only_the_leader_sweeps(two: TwoReplicas) -> None:
    await _record_left_by_a_dead_replica(two, "job-stale", new_sandbox_id("it"), in_flight_for=-20, expires_in=-10)
    stale = kr.lease_name(SECRET.encode(), f"{NAMESPACE}/{two.team}/{two.user}", "job-stale")
    leader = False
    sweeper = kr.KeyReservations(two.kube, NAMESPACE, SECRET.encode(), sweep_interval_s=0.05)
    task = asyncio.create_task(sweeper.run_sweeper(lambda: leader))
    try:
        await asyncio.sleep(0.3)
        assert stale in {r["metadata"]["name"] for r in await two.key_records()}
        leader = True
        for _ in range(100):
            if stale not in {r["metadata"]["name"] for r in await two.key_records()}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the leader's sweeper did not remove the expired record")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
