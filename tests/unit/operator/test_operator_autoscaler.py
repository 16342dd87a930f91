from datetime import timedelta

from operator_pods import T0, pool, ts

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.autoscaling.policy import decide, scale_up_target

AUTO = {"enabled": True, "scaleUpPolicy": {"mode": "Default", "cooldownSeconds": 30, "idleThresholdSeconds": 30},
        "scaleDownPolicy": {"idleTimeoutSeconds": 300, "stabilizationSeconds": 60}}


def auto_pool(replicas=2, min_r=0, max_r=10, mode="Default", pending=None, **status):
    p = pool(replicas=replicas, minReplicas=min_r, maxReplicas=max_r,
             autoscaling={**AUTO, "scaleUpPolicy": {**AUTO["scaleUpPolicy"], "mode": mode}})
    if pending is not None:
        p["metadata"]["annotations"][v.ANN_SCALE_UP_PENDING] = pending
    p["status"] = status
    return p


def test_modes_and_cap():
    assert [scale_up_target("Conservative", n, None) for n in (0, 1, 4)] == [1, 2, 5]
    assert [scale_up_target("Default", n, None) for n in (0, 1, 3, 4)] == [1, 2, 5, 6]
    assert [scale_up_target("Aggressive", n, None) for n in (0, 1, 4)] == [1, 2, 8]
    assert scale_up_target("Aggressive", 6, 10) == 10


def test_idle_zero_since_is_maintained_even_when_disabled():
    d = decide(pool(), 0, None, T0)
    assert d.status == {"idleZeroSince": ts(0)} and d.replicas is None
    p = pool()
    p["status"] = {"idleZeroSince": ts(0)}
    assert decide(p, 2, None, T0).status == {"idleZeroSince": None}


def test_reactive_scale_up_from_zero_and_cooldown():
    d = decide(auto_pool(replicas=0, pending=ts(-5)), 0, None, T0)
    assert d.replicas == 1 and d.clear_pending and d.event[0] == "AutoscalerScaleUp"
    assert "createPending" in d.event[1]
    cooling = decide(auto_pool(replicas=1, pending=ts(-1), lastScaleUpTime=ts(-10)), 0, None, T0)
    assert cooling.replicas is None and cooling.requeue_after_s == 20
    stale = decide(auto_pool(replicas=1, pending=ts(-600)), 1, T0, T0)
    assert stale.replicas is None


def test_proactive_scale_up_after_idle_zero_threshold_and_max_bound():
    d = decide(auto_pool(replicas=4, idleZeroSince=ts(-31)), 0, None, T0)
    assert d.replicas == 6 and "idleZero" in d.event[1]
    assert decide(auto_pool(replicas=4, idleZeroSince=ts(-10)), 0, None, T0).replicas is None
    assert decide(auto_pool(replicas=10, idleZeroSince=ts(-100)), 0, None, T0).replicas is None


def test_scale_down_one_at_a_time_after_idle_timeout_and_stabilization():
    old = T0 - timedelta(seconds=400)
    d = decide(auto_pool(replicas=3, min_r=1), 2, old, T0)
    assert d.replicas == 2 and d.status["lastScaleDownTime"] == ts(0)
    assert decide(auto_pool(replicas=3, min_r=1), 2, T0 - timedelta(seconds=100), T0).replicas is None
    assert decide(auto_pool(replicas=3, min_r=1, lastScaleDownTime=ts(-30)), 2, old, T0).replicas is None
    assert decide(auto_pool(replicas=1, min_r=1), 1, old, T0).replicas is None
    assert decide(auto_pool(replicas=3, pending=ts(-1), max_r=3), 2, old, T0).replicas is None
