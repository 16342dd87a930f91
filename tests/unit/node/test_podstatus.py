"""Pod phase, conditions and the status patch, as a kubelet reports them."""

from __future__ import annotations

from agent_sandbox.localcluster.node.podstatus import (
    Eviction,
    PodFacts,
    build_pod_status,
    pod_phase,
    qos_class,
    status_patch,
)

RUNNING = {"state": {"running": {"startedAt": "x"}}, "ready": True}
WAITING_NEW = {"state": {"waiting": {"reason": "ContainerCreating"}}, "ready": False, "lastState": {}}
RESTARTING = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "ready": False,
              "lastState": {"terminated": {"exitCode": 1}}}


def done(code: int) -> dict:
    return {"state": {"terminated": {"exitCode": code}}, "ready": False}


def test_phase_rules() -> None:
    assert pod_phase("Always", [WAITING_NEW]) == "Pending"
    assert pod_phase("Always", [RUNNING, WAITING_NEW]) == "Pending"
    assert pod_phase("Always", [RUNNING]) == "Running"
    assert pod_phase("Always", [RESTARTING]) == "Running"
    assert pod_phase("Never", [done(0), done(0)]) == "Succeeded"
    assert pod_phase("Never", [done(0), done(2)]) == "Failed"
    assert pod_phase("OnFailure", [done(0)]) == "Succeeded"


def test_status_ready_conditions_keep_transition_time() -> None:
    facts = PodFacts(spec={"containers": [{"name": "c"}]}, host_ip="127.0.0.1", start_time=0, pod_ip="10.0.0.5")
    pending = build_pod_status(facts, [WAITING_NEW], now=100)
    assert pending["phase"] == "Pending"
    ready = {c["type"]: c for c in pending["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    facts.prev_conditions = pending["conditions"]
    running = build_pod_status(facts, [RUNNING], now=200)
    conds = {c["type"]: c for c in running["conditions"]}
    assert running["phase"] == "Running" and running["podIP"] == "10.0.0.5"
    assert running["podIPs"] == [{"ip": "10.0.0.5"}] and running["hostIP"] == "127.0.0.1"
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["lastTransitionTime"] == "1970-01-01T00:03:20Z"
    assert conds["PodScheduled"]["lastTransitionTime"] == "1970-01-01T00:01:40Z"  # unchanged since first


def test_eviction_status() -> None:
    facts = PodFacts(spec={"containers": [{"name": "c"}]}, host_ip="h", start_time=0, pod_ip="1.2.3.4",
                     eviction=Eviction(message="low memory"))
    st = build_pod_status(facts, [done(137)], now=5)
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "Evicted", "low memory")
    assert {c["type"]: c["status"] for c in st["conditions"]}["DisruptionTarget"] == "True"


def test_init_containers_reported_completed() -> None:
    spec = {"initContainers": [{"name": "envd-injector", "image": "envd:1"}], "containers": [{"name": "c"}]}
    st = build_pod_status(PodFacts(spec=spec, host_ip="h", start_time=0), [RUNNING], now=1)
    (init,) = st["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed"


def test_patch_nulls_absent_keys() -> None:
    patch = status_patch({"phase": "Running"})["status"]
    assert patch["phase"] == "Running" and patch["reason"] is None and "podIP" in patch


def test_qos() -> None:
    assert qos_class({"containers": [{}]}) == "BestEffort"
    lim = {"cpu": "1", "memory": "1Gi"}
    assert qos_class({"containers": [{"resources": {"limits": lim}}]}) == "Guaranteed"
    assert qos_class({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}) == "Burstable"


def test_observed_generation_is_reported_and_cleared_when_unknown() -> None:
    """Readers compare it with the pod's generation: a status older than a spec change says so."""
    facts = PodFacts(spec={"containers": [{"name": "c"}]}, host_ip="127.0.0.1", start_time=0, pod_ip="10.0.0.5",
                     observed_generation=4)
    status = build_pod_status(facts, [RUNNING], now=1)
    assert status["observedGeneration"] == 4
    assert status_patch(status)["status"]["observedGeneration"] == 4
    facts.observed_generation = None
    assert status_patch(build_pod_status(facts, [RUNNING], now=2))["status"]["observedGeneration"] is None
