from datetime import timedelta

from operator_pods import T0, pod

from agent_sandbox.operator.controllers.podhealth import stuck_idle


def test_idle_pod_stuck_in_image_pull_backoff_is_replaced_after_grace():
    stuck = pod(waiting="ImagePullBackOff", ready=False)
    assert stuck_idle(stuck, T0 + timedelta(seconds=30), 60) == ""
    assert stuck_idle(stuck, T0 + timedelta(seconds=61), 60) == "ImagePullBackOff"
    assert stuck_idle(pod(waiting="CrashLoopBackOff"), T0 + timedelta(hours=1)) == "CrashLoopBackOff"
    assert stuck_idle(pod(waiting="ContainerCreating"), T0 + timedelta(hours=1)) == ""
    assert stuck_idle(pod(phase="running", waiting="CrashLoopBackOff"), T0 + timedelta(hours=1)) == ""
