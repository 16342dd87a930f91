"""Kubelet container-status rules, driven event by event without a node."""

from __future__ import annotations

import itertools

from agent_sandbox.localcluster.node.container import ContainerMachine, Pull, Start, Stop, Timing, Wake

TIMING = Timing(crash_backoff_base=10, crash_backoff_cap=40, pull_backoff_base=10, pull_backoff_cap=40,
                err_image_pull_display=1)


_IDS = (f"{i:064x}" for i in itertools.count(1))


def machine(image: str = "busybox:1", policy: str = "Always") -> ContainerMachine:
    ids = _IDS
    return ContainerMachine("main", image, restart_policy=policy, timing=TIMING, pod_label="p_ns(uid)",
                            new_id=lambda: next(ids))


def run_to_running(m: ContainerMachine, now: float = 100.0, image_id: str = "id-1") -> Start:
    (pull,) = m.begin()
    assert isinstance(pull, Pull)
    (start,) = m.pulled(pull.token, image_id)
    assert isinstance(start, Start)
    assert m.started(start.container_id, now) == []
    return start


def test_new_container_waits_in_container_creating_then_runs() -> None:
    m = machine()
    (pull,) = m.begin()
    st = m.status()
    assert st["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert st["image"] == "busybox:1" and st["imageID"] == "" and "containerID" not in st
    assert st["ready"] is False and st["restartCount"] == 0
    (start,) = m.pulled(pull.token, "docker-pullable://busybox@sha256:1")
    assert m.status()["state"]["waiting"]["reason"] == "ContainerCreating"
    m.started(start.container_id, 1_700_000_000)
    st = m.status()
    assert st["state"] == {"running": {"startedAt": "2023-11-14T22:13:20Z"}}
    assert st["containerID"] == f"containerd://{start.container_id}"
    assert st["imageID"] == "docker-pullable://busybox@sha256:1"
    assert st["ready"] is True and st["started"] is True and st["lastState"] == {}


def test_image_swap_keeps_old_identity_until_new_container_runs() -> None:
    m = machine("idle:1")
    first = run_to_running(m)
    (stop,) = m.set_image("python:3")
    assert stop == Stop(first.container_id, 30.0)
    st = m.status()
    assert st["image"] == "idle:1" and st["containerID"] == f"containerd://{first.container_id}"
    assert st["state"].get("running") and st["ready"] is False
    (pull,) = m.exited(first.container_id, 143, None, 200.0)
    assert pull.image == "python:3"
    st = m.status()
    assert st["image"] == "idle:1" and st["imageID"] == "id-1" and st["restartCount"] == 0
    assert st["lastState"]["terminated"]["exitCode"] == 143
    assert st["lastState"]["terminated"]["reason"] == "Error"
    (start,) = m.pulled(pull.token, "id-2")
    m.started(start.container_id, 201.0)
    st = m.status()
    assert (st["image"], st["imageID"], st["restartCount"]) == ("python:3", "id-2", 1)
    assert st["containerID"] == f"containerd://{start.container_id}" != f"containerd://{first.container_id}"
    assert st["ready"] is True


def test_pull_error_then_backoff_then_retry_with_doubling() -> None:
    m = machine("x:pullerror")
    (pull,) = m.begin()
    (wake,) = m.pull_failed(pull.token, "manifest unknown", 10.0)
    assert wake.delay == 1
    assert m.status()["state"]["waiting"] == {"reason": "ErrImagePull", "message": "manifest unknown"}
    (wake2,) = m.timer(wake.token)
    assert m.status()["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert wake2.delay == 9  # 10 s back-off minus the ErrImagePull display
    (retry,) = m.timer(wake2.token)
    assert isinstance(retry, Pull) and retry.token != pull.token
    (wake3,) = m.pull_failed(retry.token, "manifest unknown", 20.0)
    assert m.status()["state"]["waiting"]["reason"] == "ErrImagePull"
    (wake4,) = m.timer(wake3.token)
    assert wake4.delay == 19  # doubled
    assert m.timer(wake2.token) == []  # stale timers are ignored


def test_pull_error_on_swap_keeps_old_container_status() -> None:
    m = machine("idle:1")
    first = run_to_running(m)
    m.set_image("bad:pullerror")
    (pull,) = m.exited(first.container_id, 0, None, 50.0)
    m.pull_failed(pull.token, "nope", 51.0)
    st = m.status()
    assert st["state"]["waiting"]["reason"] == "ErrImagePull"
    assert st["image"] == "idle:1" and st["containerID"] == f"containerd://{first.container_id}"
    # Rolling back to a good image recovers at once.
    (pull2,) = m.set_image("good:1")
    assert pull2.image == "good:1"


def test_crash_restarts_at_once_then_crash_loop_backoff() -> None:
    m = machine()
    first = run_to_running(m)
    (pull,) = m.exited(first.container_id, 137, None, 100.0)
    assert isinstance(pull, Pull)  # first restart immediately
    (start,) = m.pulled(pull.token, "id-1")
    m.started(start.container_id, 101.0)
    assert m.status()["restartCount"] == 1
    (wake,) = m.exited(start.container_id, 137, None, 102.0)
    assert isinstance(wake, Wake) and wake.delay == 10
    st = m.status()
    assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert st["state"]["waiting"]["message"].startswith("back-off 10s restarting failed container=main")
    assert st["lastState"]["terminated"]["exitCode"] == 137
    assert st["restartCount"] == 1 and st["ready"] is False
    (pull3,) = m.timer(wake.token)
    (start3,) = m.pulled(pull3.token, "id-1")
    m.started(start3.container_id, 113.0)
    assert m.status()["restartCount"] == 2
    (wake2,) = m.exited(start3.container_id, 1, None, 114.0)
    assert wake2.delay == 20


def test_image_change_during_crash_backoff_restarts_immediately() -> None:
    m = machine()
    first = run_to_running(m)
    (pull,) = m.exited(first.container_id, 1, None, 100.0)
    (start,) = m.pulled(pull.token, "id")
    m.started(start.container_id, 100.5)
    (wake,) = m.exited(start.container_id, 1, None, 101.0)
    (pull2,) = m.set_image("fixed:1")
    assert pull2.image == "fixed:1"
    assert m.timer(wake.token) == []


def test_restart_policy_never_and_on_failure() -> None:
    m = machine(policy="Never")
    first = run_to_running(m)
    assert m.exited(first.container_id, 3, None, 100.0) == []
    assert m.is_stopped and m.status()["state"]["terminated"]["exitCode"] == 3
    ok = machine(policy="OnFailure")
    start = run_to_running(ok)
    assert ok.exited(start.container_id, 0, None, 100.0) == []
    assert ok.status()["state"]["terminated"]["reason"] == "Completed"


def test_start_failure_is_start_error_and_counts_as_a_container() -> None:
    m = machine()
    (pull,) = m.begin()
    (start,) = m.pulled(pull.token, "id")
    (again,) = m.start_failed(start.container_id, "exec: /bin/nope: not found", 10.0)
    assert isinstance(again, Pull)
    term = m.status()["lastState"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (128, "StartError", "exec: /bin/nope: not found")


def test_shutdown_stops_running_and_never_restarts() -> None:
    m = machine()
    first = run_to_running(m)
    (stop,) = m.shutdown(5)
    assert stop.grace == 5
    assert m.exited(first.container_id, 143, None, 50.0) == []
    assert m.is_stopped and m.status()["state"]["terminated"]["exitCode"] == 143
    assert m.set_image("other:1") == []


def test_shutdown_while_starting_stops_once_started() -> None:
    m = machine()
    (pull,) = m.begin()
    (start,) = m.pulled(pull.token, "id")
    assert m.shutdown() == []
    (stop,) = m.started(start.container_id, 5.0)
    assert stop.container_id == start.container_id


def test_shutdown_before_any_container_is_terminal_at_once() -> None:
    m = machine()
    (pull,) = m.begin()
    m.shutdown(0)
    assert m.is_stopped
    assert m.pulled(pull.token, "id") == []
    assert m.status()["state"]["terminated"]["reason"] == "ContainerStatusUnknown"


def test_restore_running_kept_or_lost() -> None:
    m = machine()
    first = run_to_running(m)
    reported = m.status()
    kept = machine()
    assert kept.restore(reported, alive=True, now=500.0) == []
    assert kept.status() == reported
    lost = machine()
    (pull,) = lost.restore(reported, alive=False, now=500.0)
    assert lost.status()["lastState"]["terminated"]["reason"] == "Unknown"
    (start,) = lost.pulled(pull.token, "id-1")
    lost.started(start.container_id, 501.0)
    st = lost.status()
    assert st["restartCount"] == 1 and st["containerID"] != f"containerd://{first.container_id}"


def test_rollback_while_new_image_is_pulling() -> None:
    m = machine("a:1")
    first = run_to_running(m)
    m.set_image("b:1")
    (pull_b,) = m.exited(first.container_id, 0, None, 10.0)
    (pull_a,) = m.set_image("a:1")  # rolled back before b ever ran
    assert pull_a.image == "a:1" and m.pulled(pull_b.token, "id-b") == []
    (start,) = m.pulled(pull_a.token, "id-1")
    m.started(start.container_id, 11.0)
    st = m.status()
    assert st["image"] == "a:1" and st["containerID"] != f"containerd://{first.container_id}"
    assert st["restartCount"] == 1


def test_same_digest_new_reference_still_restarts() -> None:
    m = machine("ubuntu:22.04")
    first = run_to_running(m, image_id="docker-pullable://docker.io/library/ubuntu@sha256:1")
    (stop,) = m.set_image("docker.io/library/ubuntu:22.04")
    (pull,) = m.exited(stop.container_id, 0, None, 5.0)
    (start,) = m.pulled(pull.token, "docker-pullable://docker.io/library/ubuntu@sha256:1")
    m.started(start.container_id, 6.0)
    st = m.status()
    assert st["imageID"] == "docker-pullable://docker.io/library/ubuntu@sha256:1"
    assert st["containerID"] != f"containerd://{first.container_id}"


def test_old_container_being_stopped_for_a_swap_is_running_but_never_ready() -> None:
    """The operator must be able to tell "old container still dying" from "swap done"."""
    m = machine("idle:1")
    first = run_to_running(m)
    (stop,) = m.set_image("work:1")
    assert isinstance(stop, Stop)
    st = m.status()
    assert st["containerID"] == f"containerd://{first.container_id}" and st["image"] == "idle:1"
    assert "running" in st["state"] and st["ready"] is False


def test_container_superseded_while_starting_is_stopped_without_ever_being_ready() -> None:
    """Claim then release before the workload container ran: it starts, is killed at once, and no
    status ever shows it ready — so it can never pass for the finished swap of either spec."""
    m = machine("idle:1")
    first = run_to_running(m)
    m.set_image("work:1")
    (pull,) = m.exited(first.container_id, 0, None, 10.0)
    (start,) = m.pulled(pull.token, "id-work")
    assert m.set_image("idle:1") == []  # the release lands while the workload container is created
    (stop,) = m.started(start.container_id, 11.0)
    assert stop.container_id == start.container_id
    st = m.status()
    assert st["image"] == "work:1" and st["ready"] is False
    (pull_idle,) = m.exited(start.container_id, 0, None, 12.0)
    (start_idle,) = m.pulled(pull_idle.token, "id-idle")
    m.started(start_idle.container_id, 13.0)
    st = m.status()
    assert st["image"] == "idle:1" and st["ready"] is True
    assert st["containerID"] not in (f"containerd://{first.container_id}", f"containerd://{start.container_id}")
