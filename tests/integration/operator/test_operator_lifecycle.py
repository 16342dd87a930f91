"""Claim, in-place swap, release and recycle through the real client against the embedded API server."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from operator_stack import CALLER, IDLE, WORK, OpEnv, wait_until

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.controllers.pool_controller import POD_EVENT_WINDOW_S
from agent_sandbox.operator.kube.client import events_path
from agent_sandbox.operator.scheduling.errors import NoIdleSandbox
from agent_sandbox.operator.services.errors import InvalidRequest, NotFound, SandboxStartFailed
from agent_sandbox.operator.services.models import CreateSandboxRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def status_of(env: OpEnv, sandbox_id: str) -> str:
    return (await env.operator.sandboxes.get(sandbox_id))["status"]


async def status_is(env: OpEnv, sandbox_id: str, status: str) -> bool:
    return await status_of(env, sandbox_id) == status


def main_image(pod: dict) -> str:
    return pod["spec"]["containers"][0]["image"]


async def test_pool_fills_with_clean_idle_pods_and_reports_status(env: OpEnv) -> None:
    await env.create_pool("life", replicas=2)
    await env.wait_idle("life", 2)
    pods = await env.pods("life")
    assert [main_image(p) for p in pods] == [IDLE, IDLE]
    assert all(p["spec"]["containers"][1]["image"] == "busybox:1" for p in pods)
    assert all(v.FINALIZER_SANDBOX_PROTECTION in p["metadata"]["finalizers"] for p in pods)
    assert all(p["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "idle" for p in pods)
    await wait_until(lambda: (env.operator.pools.get("default/life") or {}).get("status", {}).get("phase") == "Ready",
                     10, "pool phase Ready")
    status = env.operator.pools.get("default/life")["status"]
    assert status["idleReplicas"] == 2 and status["selector"] == "agentsandbox.io/sandbox-pool=life"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Available"] == "True"
    events = await env.kube.list(events_path("default"))
    assert any(e["involvedObject"]["name"] == "life" and e["reason"] == "PhaseChanged" for e in events["items"])


async def test_claim_swaps_image_in_place_then_release_recycles_cleanly(env: OpEnv) -> None:
    await env.wait_idle("life", 2)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in await env.pods("life")}
    req = CreateSandboxRequest(poolName="life", labels={"job": "j1"}, annotations={"note/x": "y"},
                               metadata={"task": "t1"}, idleTimeout="30m", wait=True)
    rec = await env.operator.sandboxes.create(req, CALLER)
    assert rec["status"] == "Running" and rec["sandboxId"].startswith("it-")
    assert rec["metadata"] == {"task": "t1"} and rec["team"] == "team-a"
    pod = next(p for p in await env.pods("life") if p["metadata"]["name"] == rec["podName"])
    assert main_image(pod) == WORK
    assert pod["metadata"]["uid"] == before[rec["podName"]], "the claim must keep the same pod"
    assert pod["metadata"]["labels"]["job"] == "j1"
    assert pod["metadata"]["annotations"][v.ANN_IDLE_TIMEOUT] == "1800"
    assert await status_of(env, rec["sandboxId"]) == "Running"
    listed = env.operator.sandboxes.list("default", pool_name="life", statuses=["Running"])
    assert [r["sandboxId"] for r in listed.items] == [rec["sandboxId"]]

    out = await env.operator.sandboxes.delete(rec["sandboxId"])
    assert out["status"] == "Stopping"
    await wait_until(lambda: status_is(env, rec["sandboxId"], "Completed"), 10,
                     "history record")
    await env.wait_idle("life", 2)
    pod = next(p for p in await env.pods("life") if p["metadata"]["name"] == rec["podName"])
    assert main_image(pod) == IDLE
    assert "job" not in pod["metadata"]["labels"] and v.LABEL_SANDBOX_ID not in pod["metadata"]["labels"]
    leftover = set(pod["metadata"]["annotations"]) - {v.ANN_INPLACE_UPDATE_STATE}
    assert leftover == set(), f"previous tenant's annotations leaked: {leftover}"
    hist = await env.operator.sandboxes.get(rec["sandboxId"])
    assert hist["recycledAt"] and hist["containerImages"]["main"] == WORK and hist["durationSeconds"] >= 0
    assert {p["metadata"]["uid"] for p in await env.pods("life")} == set(before.values()), "no pod churn"


async def test_same_image_fast_path_returns_running_without_a_swap(env: OpEnv) -> None:
    await env.create_pool("fast", replicas=1, podCreationImagePolicy="PoolDefaultImage")
    await env.wait_idle("fast", 1)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="fast"), CALLER)
    assert rec["status"] == "Running" and rec["startedAt"]
    await env.operator.sandboxes.delete(rec["sandboxId"])
    await env.wait_idle("fast", 1)
    assert main_image((await env.pods("fast"))[0]) == IDLE


async def test_bad_requests_are_rejected_before_any_write(env: OpEnv) -> None:
    with pytest.raises(NotFound) as missing:
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="nope"), CALLER)
    assert any(p["name"] == "life" for p in missing.value.detail["availablePools"])
    with pytest.raises(InvalidRequest):
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="life", containerImages={"x": "a"}),
                                            CALLER)
    with pytest.raises(InvalidRequest):
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="life", image=IDLE), CALLER)
    with pytest.raises(NotFound):
        await env.operator.sandboxes.delete("it-01arz3ndektsv4rrffq69g5fav")


async def test_unpullable_image_fails_fast_and_pod_rolls_back_to_idle(env: OpEnv) -> None:
    await env.create_pool("pull", replicas=1)
    await env.wait_idle("pull", 1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(SandboxStartFailed) as err:
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="pull", image="bad/img:pullerror",
                                                                 startupTimeout="20s", wait=True), CALLER)
    assert err.value.reason == "ImagePullFailed" and "pull" in err.value.message.lower()
    assert loop.time() - t0 < 10
    await env.wait_idle("pull", 1)
    assert main_image((await env.pods("pull"))[0]) == IDLE
    assert await status_of(env, err.value.sandbox_id) == "Failed"
    # The rolled-back pod serves the next claim.
    ok = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="pull", wait=True), CALLER)
    assert ok["status"] == "Running"
    await env.operator.sandboxes.delete(ok["sandboxId"])


async def test_startup_timeout_bounds_a_slow_start(env: OpEnv) -> None:
    await env.create_pool("slow", replicas=1)
    await env.wait_idle("slow", 1)
    req = CreateSandboxRequest(poolName="slow", image="never/pulled:1", startupTimeout="1s", wait=True,
                               annotations={"sim.agentsandbox.io/pull-delay": "30"})
    with pytest.raises(SandboxStartFailed) as err:
        await env.operator.sandboxes.create(req, CALLER)
    assert err.value.reason == "StartupTimeout"
    await env.wait_idle("slow", 1, within=20)
    pod = (await env.pods("slow"))[0]
    assert "sim.agentsandbox.io/pull-delay" not in pod["metadata"]["annotations"]


async def test_crash_of_running_sandbox_marks_it_failed_and_recycles(env: OpEnv) -> None:
    await env.create_pool("crash", replicas=1)
    await env.wait_idle("crash", 1)
    rec = await env.operator.sandboxes.create(
        CreateSandboxRequest(poolName="crash", wait=True, annotations={"sim.agentsandbox.io/crash": "137"}), CALLER)
    await wait_until(lambda: status_is(env, rec["sandboxId"], "Failed"), 15,
                     "sandbox marked Failed after its container crashed")
    failed = await env.operator.sandboxes.get(rec["sandboxId"])
    assert failed["exitCode"] == 137 and failed["failureReason"]
    await env.wait_idle("crash", 1)


async def test_idle_timeout_and_set_timeout(env: OpEnv) -> None:
    await env.create_pool("idle", replicas=2)
    await env.wait_idle("idle", 2)
    short = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="idle", idleTimeout="1s", wait=True),
                                                CALLER)
    kept = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="idle", idleTimeout="1s", wait=True),
                                               CALLER)
    await env.operator.sandboxes.set_timeout(kept["sandboxId"], "0")
    await wait_until(lambda: status_is(env, short["sandboxId"], "Released"), 15,
                     "idle sandbox released")
    rec = await env.operator.sandboxes.get(short["sandboxId"])
    assert rec["failureReason"] == "IdleTimeout"
    await asyncio.sleep(1.5)
    assert await status_of(env, kept["sandboxId"]) == "Running"
    await env.operator.sandboxes.set_timeout(kept["sandboxId"], "1s")
    await wait_until(lambda: status_is(env, kept["sandboxId"], "Released"), 15,
                     "re-armed timeout fires")
    with pytest.raises(InvalidRequest):
        await env.operator.sandboxes.set_timeout(kept["sandboxId"], "soon")


async def test_post_start_http_hook_runs_before_create_returns(env: OpEnv) -> None:
    await env.create_pool("hooks", replicas=2)
    await env.wait_idle("hooks", 2)
    hook = {"httpPost": {"port": 49983, "path": "/init", "body": {"envVars": {"A": "1"}}}}
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="hooks", postStartHooks=[hook],
                                                                   wait=True), CALLER)
    assert (f"/sandboxes/{rec['sandboxId']}/49983/init", {"envVars": {"A": "1"}}) in env.gateway.calls
    bad = {"httpPost": {"port": 49983, "path": "/fail"}}
    with pytest.raises(SandboxStartFailed) as err:
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="hooks", postStartHooks=[bad],
                                                                 wait=True), CALLER)
    assert err.value.reason == "PostStartHookFailed"
    assert sum(1 for path, _ in env.gateway.calls if path.endswith("/fail")) == 5, "retried 5 times"
    with pytest.raises(InvalidRequest):
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="hooks", postStartHooks=[{"x": 1}]),
                                            CALLER)
    await env.operator.sandboxes.delete(rec["sandboxId"])


async def test_no_idle_pod_gives_typed_error_with_pool_status(env: OpEnv) -> None:
    await env.create_pool("tiny", replicas=1)
    await env.wait_idle("tiny", 1)
    first = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="tiny", wait=True), CALLER)
    with pytest.raises(NoIdleSandbox) as err:
        await env.operator.sandboxes.create(CreateSandboxRequest(poolName="tiny", startupTimeout="1s"), CALLER)
    assert err.value.detail["running"] == 1 and err.value.retry_after_s >= 1
    pool = await env.operator.pool_service.get("default", "tiny")
    assert v.ANN_SCALE_UP_PENDING in pool["metadata"]["annotations"], "scale-up requested"
    await env.operator.sandboxes.delete(first["sandboxId"])


async def test_caller_leaving_mid_create_releases_the_claim_as_canceled(env: OpEnv) -> None:
    await env.create_pool("gone", replicas=1)
    await env.wait_idle("gone", 1)
    task = asyncio.create_task(env.operator.sandboxes.create(
        CreateSandboxRequest(poolName="gone", image="gone/img:1", wait=True,
                             annotations={"sim.agentsandbox.io/pull-delay": "5"}), CALLER))
    await wait_until(lambda: env.counts("gone")["starting"] == 1, 10, "claim in flight")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await env.wait_idle("gone", 1, within=20)
    records = env.operator.sandboxes.list("default", pool_name="gone").items
    assert [r["status"] for r in records] == ["Canceled"]


async def test_history_keeps_stop_details_and_list_pages(env: OpEnv) -> None:
    records = env.operator.sandboxes.list("default", statuses=["Failed", "Released"]).items
    assert records and all(r["terminatedAt"] for r in records)
    assert all(orjson.dumps(r) for r in records)
    everything = env.operator.sandboxes.list("default", limit=1000)
    page = env.operator.sandboxes.list("default", limit=2, offset=1)
    assert page.total == everything.total >= 3
    assert [r["sandboxId"] for r in page.items] == [r["sandboxId"] for r in everything.items[1:3]]
    claimed = [r["claimedAt"] for r in everything.items]
    assert claimed == sorted(claimed, reverse=True), "newest first"
    with pytest.raises(InvalidRequest):
        env.operator.sandboxes.list("default", limit=0)


async def test_a_claim_burst_reaches_running_with_a_few_pool_reconciles(env: OpEnv) -> None:
    await env.create_pool("burst", replicas=30)
    await env.wait_idle("burst", 30)
    controller = env.operator.controller
    before = controller.reconciles
    t0 = time.monotonic()
    recs = await asyncio.gather(*(env.operator.sandboxes.create(CreateSandboxRequest(poolName="burst", wait=True),
                                                                CALLER) for _ in range(30)))
    elapsed = time.monotonic() - t0
    assert [r["status"] for r in recs] == ["Running"] * 30
    assert len({r["podName"] for r in recs}) == 30
    # 30 claims change their pods about 90 times; the pool is reconciled at most once per window
    # (plus the first event's and a requeue), and no sandbox waited for one to reach Running.
    assert controller.reconciles - before <= elapsed / POD_EVENT_WINDOW_S + 3
    await asyncio.gather(*(env.operator.sandboxes.delete(r["sandboxId"]) for r in recs))
    await env.wait_idle("burst", 30)
