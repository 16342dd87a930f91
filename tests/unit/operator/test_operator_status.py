from datetime import timedelta

from operator_pods import T0, pod, pool

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.controllers.status import compute_status, count_pods, pool_phase


def test_counts_by_phase_and_readiness():
    pods = [pod("a"), pod("b", ready=False), pod("c", "running"), pod("d", "starting"), pod("e", "stopping"),
            pod("f", "failed"), pod("g", kube_phase="Failed"), pod("h", deleting=True)]
    c = count_pods(pods)
    assert (c.total, c.idle, c.unavailable_idle, c.running, c.starting, c.stopping, c.failed) == (7, 2, 1, 1, 1, 1, 2)


def test_phase_rules_first_match_wins():
    c = count_pods([pod("a"), pod("b", ready=False)])
    assert pool_phase(True, 2, c) == v.PoolPhase.TERMINATING
    assert pool_phase(False, 0, count_pods([])) == v.PoolPhase.PENDING
    assert pool_phase(False, 3, c) == v.PoolPhase.SCALING_UP
    assert pool_phase(False, 1, c) == v.PoolPhase.SCALING_DOWN
    assert pool_phase(False, 2, c) == v.PoolPhase.DEGRADED
    assert pool_phase(False, 2, count_pods([pod("a"), pod("b")])) == v.PoolPhase.READY


def test_status_conditions_selectors_and_stable_transition_times():
    p = pool(replicas=2)
    status = compute_status(p, [pod("a"), pod("b", "failed")], T0)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "IdlePodsAvailable"
    assert conds["Degraded"]["reason"] == "FailedPodsPresent"
    assert conds["Scaling"]["reason"] == "ReplicasReady"
    assert status["phase"] == "Degraded"
    assert status["selector"] == "agentsandbox.io/sandbox-pool=pool"
    assert status["phaseSelectors"]["idle"] == "agentsandbox.io/sandbox-pool=pool,agentsandbox.io/sandbox-phase=idle"
    p["status"] = {**status, "lastScaleUpTime": "x"}
    again = compute_status(p, [pod("a"), pod("b", "failed")], T0 + timedelta(seconds=30))
    assert again == {**status, "lastScaleUpTime": "x"}
    healed = compute_status(p, [pod("a"), pod("b")], T0 + timedelta(seconds=60))
    hconds = {c["type"]: c for c in healed["conditions"]}
    assert hconds["Degraded"]["reason"] == "AllPodsHealthy"
    assert hconds["Degraded"]["lastTransitionTime"] != conds["Degraded"]["lastTransitionTime"]
    assert hconds["Available"]["lastTransitionTime"] == conds["Available"]["lastTransitionTime"]


def test_no_idle_pods_is_not_available():
    status = compute_status(pool(replicas=1), [pod("a", "running")], T0)
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Available"] == "NoIdlePodsAvailable"
