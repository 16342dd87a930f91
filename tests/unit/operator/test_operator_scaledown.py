from datetime import timedelta

from operator_pods import T0, pod, ts

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.controllers.scaledown import plan_scale_down


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_priority_idle_then_stopping_then_failed_oldest_first_never_running_or_starting():
    pods = [pod("run", "running", created=0), pod("start", "starting", created=0), pod("failed", "failed", created=1),
            pod("stop", "stopping", created=2), pod("idle-new", created=5), pod("idle-old", created=3),
            pod("gone", deleting=True)]
    plan = plan_scale_down(pods, 10, T0, None)
    assert names(plan.delete) == ["idle-old", "idle-new", "stop", "failed"]
    assert plan_scale_down(pods, 0, T0, None).delete == []
    assert names(plan_scale_down(pods, 1, T0, None).delete) == ["idle-old"]


def test_protection_window_marks_then_deletes_after_window():
    fresh = pod("a", created=0)
    plan = plan_scale_down([fresh, pod("b", "stopping", created=1)], 2, T0, 10)
    assert names(plan.protect) == ["a"]
    assert names(plan.delete) == ["b"]
    assert plan.requeue_after_s == 11
    marked = pod("a", annotations={v.ANN_SCALE_DOWN_PROTECTED: ts(0)})
    waiting = plan_scale_down([marked], 1, T0 + timedelta(seconds=4), 10)
    assert waiting.delete == [] and waiting.protect == [] and waiting.requeue_after_s == 7
    done = plan_scale_down([marked], 1, T0 + timedelta(seconds=10), 10)
    assert names(done.delete) == ["a"]
