"""Pool scaling, replacement of broken pods, templates, deletion, autoscaling and probes."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import aiohttp
import pytest
from operator_stack import ADMIN_KEY, CALLER, IDLE, WORK, OpEnv, wait_until

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.kube.client import events_path, pods_path, pools_path, templates_path
from agent_sandbox.operator.services.errors import AlreadyExists, InvalidRequest, NotFound
from agent_sandbox.operator.services.models import CreatePoolRequest, CreateSandboxRequest, UpdatePoolRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_scale_up_and_down_never_deletes_a_running_sandbox(env: OpEnv) -> None:
    await env.create_pool("scale", replicas=2)
    await env.wait_idle("scale", 2)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="scale", wait=True), CALLER)
    await env.operator.pool_service.scale("default", "scale", 4)
    await wait_until(lambda: env.counts("scale")["idle"] == 3, 10, "scaled up to 4")
    await env.operator.pool_service.scale("default", "scale", 0)
    await wait_until(lambda: sum(env.counts("scale").values()) - env.counts("scale")["unavailableIdle"] == 1,
                     10, "idle pods deleted")
    await wait_until(lambda: _live_pod_names(env, "scale"), 10, "deleted pods gone from the API")
    pods = [p for p in await env.pods("scale") if not p["metadata"].get("deletionTimestamp")]
    assert [p["metadata"]["name"] for p in pods] == [rec["podName"]]
    assert pods[0]["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "running"
    await env.operator.sandboxes.delete(rec["sandboxId"])
    await wait_until(lambda: len(env.operator.pods.by_index("pool", "default/scale")) == 0, 10,
                     "recycled pod removed once idle")
    with pytest.raises(InvalidRequest):
        await env.operator.pool_service.scale("default", "scale", 100_000)


async def _live_pod_names(env: OpEnv, pool: str) -> bool:
    return len([p for p in await env.pods(pool) if not p["metadata"].get("deletionTimestamp")]) == 1


async def test_evicted_pod_is_recorded_and_replaced(env: OpEnv) -> None:
    await env.create_pool("evict", replicas=2)
    await env.wait_idle("evict", 2)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="evict", wait=True), CALLER)
    await env.kube.merge_patch(pods_path("default", rec["podName"]),
                               {"metadata": {"annotations": {"sim.agentsandbox.io/evict": "true"}}})
    await wait_until(lambda: (env.operator.lifecycle.history.find(rec["sandboxId"]) or {}).get("status") == "Failed",
                     10, "failed record for the evicted sandbox")
    assert env.operator.lifecycle.history.find(rec["sandboxId"])["failureReason"] == "Evicted"
    await env.wait_idle("evict", 2)
    names = {p["metadata"]["name"] for p in await env.pods("evict")}
    assert rec["podName"] not in names


async def test_external_delete_of_a_running_sandbox_pod_is_recorded_and_not_stranded(env: OpEnv) -> None:
    await env.create_pool("extdel", replicas=1)
    await env.wait_idle("extdel", 1)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="extdel", wait=True), CALLER)
    await env.kube.delete(pods_path("default", rec["podName"]))
    await wait_until(lambda: (env.operator.lifecycle.history.find(rec["sandboxId"]) or {}).get("status") == "Failed",
                     10, "failed record for the deleted sandbox")
    assert "deleted" in env.operator.lifecycle.history.find(rec["sandboxId"])["failureMessage"]
    await env.wait_idle("extdel", 1)
    assert rec["podName"] not in {p["metadata"]["name"] for p in await env.pods("extdel")}, "finalizer not stranded"


async def test_idle_pods_stuck_in_image_pull_backoff_are_replaced_without_overcreation(env: OpEnv) -> None:
    await env.create_pool("broken", replicas=2, idle="idle/broken:pullerror")
    seen: set[str] = set()
    max_live = 0

    async def replaced() -> bool:
        nonlocal max_live
        pods = await env.pods("broken")
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        max_live = max(max_live, len(live))

        seen.update(p["metadata"]["name"] for p in pods)
        return len(seen) >= 4

    await wait_until(replaced, 20, "stuck idle pods replaced", interval=0.1)
    assert max_live <= 2, "never more live pods than replicas"
    pool = env.operator.pools.get("default/broken")
    await wait_until(lambda: (env.operator.pools.get("default/broken") or {}).get("status", {}).get("phase")
                     == "Degraded", 10, "pool reports Degraded")
    assert pool is not None


async def test_pool_from_template_with_overrides(env: OpEnv) -> None:
    template = {
        "apiVersion": v.API_VERSION, "kind": v.TEMPLATE_KIND,
        "metadata": {"name": "py-tpl", "annotations": {v.ANN_DOCS: "# docs"}},
        "spec": {"version": "v1.2.0", "idleImage": IDLE, "runtimes": [{"name": "envd", "port": 49983}],
                 "template": {"spec": {"containers": [{"name": "main", "image": WORK, "resources": {
                     "requests": {"cpu": "250m", "memory": "256Mi"}}}]}}},
    }
    await env.kube.create(templates_path(), template)
    req = CreatePoolRequest(name="tpl", templateName="py-tpl", replicas=1,
                            overrides={"image": "python:3.12", "resourceMultiplier": 2})
    pool = await env.operator.pool_service.create(req, CALLER)
    assert pool["metadata"]["annotations"][v.ANN_TEMPLATE_VERSION] == "v1.2.0"
    assert pool["metadata"]["labels"][v.LABEL_TEAM] == "team-a"
    await env.wait_idle("tpl", 1)
    pod = (await env.pods("tpl"))[0]
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert pod["spec"]["containers"][0]["image"] == IDLE
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="tpl", wait=True), CALLER)
    assert rec["containerImages"]["main"] == "python:3.12"
    await env.operator.sandboxes.delete(rec["sandboxId"])
    with pytest.raises(AlreadyExists):
        await env.operator.pool_service.create(req, CALLER)
    with pytest.raises(NotFound):
        await env.operator.pool_service.create(CreatePoolRequest(name="x", templateName="missing"), CALLER)


async def test_update_changes_the_workload_image_for_new_claims_only(env: OpEnv) -> None:
    await env.create_pool("upd", replicas=2)
    await env.wait_idle("upd", 2)
    before = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="upd", wait=True), CALLER)
    pool = await env.operator.pool_service.update("default", "upd", UpdatePoolRequest(
        overrides={"image": "python:3.13"}))
    assert pool["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.13"
    await wait_until(lambda: env.operator.pools.get("default/upd")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "python:3.13", 10, "cache sees the update")
    after = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="upd", wait=True), CALLER)
    assert after["containerImages"]["main"] == "python:3.13"
    running = await env.kube.get(pods_path("default", before["podName"]))
    assert running["spec"]["containers"][0]["image"] == WORK, "running sandboxes are untouched"
    for rec in (before, after):
        await env.operator.sandboxes.delete(rec["sandboxId"])


async def test_pool_validation(env: OpEnv) -> None:
    spec = {"template": {"spec": {"containers": [{"name": "main", "image": WORK}]}}}
    with pytest.raises(InvalidRequest, match="idleImage"):
        await env.operator.pool_service.create(CreatePoolRequest(name="v1", spec=spec), CALLER)
    with pytest.raises(InvalidRequest, match="differ"):
        await env.operator.pool_service.create(
            CreatePoolRequest(name="v2", spec={**spec, "idleImage": "docker.io/library/python:3.11"}), CALLER)
    with pytest.raises(InvalidRequest, match="within"):
        await env.operator.pool_service.create(CreatePoolRequest(name="v3", replicas=5, minReplicas=0, maxReplicas=2,
                                                                 spec={**spec, "idleImage": IDLE,
                                                                       "autoscaling": {"enabled": True}}), CALLER)


async def test_pool_deletion_cleans_every_pod_and_finalizer(env: OpEnv) -> None:
    await env.create_pool("doomed", replicas=2)
    await env.wait_idle("doomed", 2)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="doomed", wait=True), CALLER)
    await env.operator.pool_service.delete("default", "doomed")
    await wait_until(lambda: env.operator.pools.get("default/doomed") is None, 15, "pool gone")
    assert await env.pods("doomed") == []
    assert env.operator.lifecycle.history.find(rec["sandboxId"])["failureReason"] == "PoolDeleted"
    with pytest.raises(NotFound):
        await env.operator.pool_service.get("default", "doomed")


async def test_scale_to_zero_wakes_on_a_request_and_shrinks_back(env: OpEnv) -> None:
    auto = {"enabled": True,
            "scaleUpPolicy": {"mode": "Default", "cooldownSeconds": 0, "idleThresholdSeconds": 0},
            "scaleDownPolicy": {"idleTimeoutSeconds": 1, "stabilizationSeconds": 0, "protectionWindowSeconds": 1}}
    await env.create_pool("zero", replicas=0, minReplicas=0, maxReplicas=2, autoscaling=auto)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="zero", startupTimeout="20s",
                                                                   wait=True), CALLER)
    assert rec["status"] == "Running"
    pool = await env.operator.pool_service.get("default", "zero")
    assert pool["status"].get("lastScaleUpTime"), "the autoscaler woke the pool"
    await env.operator.sandboxes.delete(rec["sandboxId"])
    await wait_until(lambda: (env.operator.pools.get("default/zero") or {}).get("spec", {}).get("replicas") == 0,
                     20, "autoscaler scaled back to zero")
    await wait_until(lambda: len(env.operator.pods.by_index("pool", "default/zero")) == 0, 20, "pods removed")
    with pytest.raises(InvalidRequest):
        await env.operator.pool_service.update("default", "zero", UpdatePoolRequest(replicas=5))


async def test_status_subresource_and_kubectl_visible_counts(env: OpEnv) -> None:
    await env.create_pool("stat", replicas=1)
    await env.wait_idle("stat", 1)
    await wait_until(lambda: (env.operator.pools.get("default/stat") or {}).get("status", {}).get("idleReplicas")
                     == 1, 10, "status written")
    raw = await env.kube.get(pools_path("default", "stat"))
    assert v.FINALIZER_POOL in raw["metadata"]["finalizers"]
    assert raw["status"]["phaseSelectors"]["running"].endswith("sandbox-phase=running")


async def test_probe_endpoints_and_metrics(env: OpEnv) -> None:
    base = f"http://{env.operator.probes.address}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with session.get(f"{base}/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["leader"] is True
        async with session.get(f"{base}/metrics") as resp:
            assert resp.status == 401, "metrics need the admin key"
        async with session.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as resp:
            text = await resp.text()
    for name in ("agentsandbox_sandbox_create_total", "agentsandbox_sandboxpool_replicas_idle",
                 "agentsandbox_schedule_cas_outcome_total", "agentsandbox_sandbox_claim_duration_seconds_bucket",
                 "agentsandbox_inplace_update_total"):
        assert name in text, name


async def kubectl(env: OpEnv, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(pathlib.Path(sys.executable).parent / "kubectl"), "--kubeconfig", str(env.cluster.kubeconfig), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_kubectl_scale_and_phase_selectors_drive_the_pool(env: OpEnv) -> None:
    await env.create_pool("kctl", replicas=1)
    await env.wait_idle("kctl", 1)
    await kubectl(env, "scale", "sbp/kctl", "--replicas=3", "-n", "default")
    await env.wait_idle("kctl", 3)
    await wait_until(lambda: (env.operator.pools.get("default/kctl") or {}).get("status", {}).get("phase") == "Ready"
                     and env.operator.pools.get("default/kctl")["status"].get("idleReplicas") == 3, 10,
                     "status caught up (the new pods ready)")
    table = await kubectl(env, "get", "sbp", "kctl", "-n", "default")
    assert "kctl" in table and "Ready" in table
    selector = env.operator.pools.get("default/kctl")["status"]["phaseSelectors"]["idle"]
    names = await kubectl(env, "get", "pods", "-n", "default", "-l", selector, "-o", "name")
    assert len(names.split()) == 3


async def test_missing_protection_finalizer_is_restored(env: OpEnv) -> None:
    await env.create_pool("fin", replicas=1)
    await env.wait_idle("fin", 1)
    name = (await env.pods("fin"))[0]["metadata"]["name"]
    await env.kube.merge_patch(pods_path("default", name), {"metadata": {"finalizers": None}})

    async def restored() -> bool:
        pod = await env.kube.get(pods_path("default", name))
        return v.FINALIZER_SANDBOX_PROTECTION in (pod["metadata"].get("finalizers") or [])

    await wait_until(restored, 10, "finalizer back-filled")


async def test_proactive_scale_up_when_idle_pods_run_out(env: OpEnv) -> None:
    auto = {"enabled": True,
            "scaleUpPolicy": {"mode": "Aggressive", "cooldownSeconds": 3, "idleThresholdSeconds": 1},
            "scaleDownPolicy": {"idleTimeoutSeconds": 300, "stabilizationSeconds": 60}}
    await env.create_pool("pro", replicas=1, minReplicas=1, maxReplicas=3, autoscaling=auto)
    await env.wait_idle("pro", 1)
    rec = await env.operator.sandboxes.create(CreateSandboxRequest(poolName="pro", wait=True), CALLER)
    await wait_until(lambda: (env.operator.pools.get("default/pro") or {}).get("spec", {}).get("replicas") == 2,
                     15, "proactive scale-up after idle stayed at zero")
    await wait_until(lambda: env.counts("pro")["idle"] == 1, 15, "the added pod is idle")
    await asyncio.sleep(3.5)  # past the cooldown: with an idle pod again, no further scale-up
    assert env.operator.pools.get("default/pro")["spec"]["replicas"] == 2
    events = await env.kube.list(events_path("default"))
    assert any(e["involvedObject"]["name"] == "pro" and e["reason"] == "AutoscalerScaleUp"
               and "idleZero" in e["message"] for e in events["items"])
    await env.operator.sandboxes.delete(rec["sandboxId"])
