"""Every replica derives the same history record from the same pod versions (lifecycle.history_feed)."""

import copy

import orjson
from operator_pods import T0, WORK_IMAGE, apply_merge_patch, pod, ts

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_feed import HistoryFeed, sandbox_ending
from agent_sandbox.operator.lifecycle.inplace import build_complete_patch
from agent_sandbox.operator.lifecycle.release import StopDetails, stop_annotations


def running(**kw):
    return pod(phase="running", image=WORK_IMAGE, labels={v.LABEL_SANDBOX_ID: "c-1"},
               annotations={v.ANN_SANDBOX_ID: "c-1", v.ANN_CLAIMED_AT: ts(0), v.ANN_STARTED_AT: ts(1)}, **kw)


def released(stop: StopDetails, at: float = 5):
    p = running()
    p["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] = "stopping"
    p["metadata"]["annotations"].update(stop_annotations(p, stop, T0.replace(second=int(at))))
    p["metadata"]["annotations"][v.ANN_INPLACE_UPDATE_STATE] = orjson.dumps(
        {"phase": "stopping", "targetPodPhase": "idle", "targetImages": {}}).decode()
    return p


def recycled(stopping):
    return apply_merge_patch(stopping, build_complete_patch(stopping, T0.replace(second=9)))


def replicas(n=2):
    """``n`` feeds, each with its own store and a different clock (replicas never agree on 'now')."""
    feeds = [HistoryFeed(HistoryStore(), now=lambda i=i: T0.replace(minute=10 + i)) for i in range(n)]
    return feeds, lambda event, old, new: [f.on_pod_event(event, old, new) for f in feeds]


def records(feeds):
    return [f.store.find("c-1") for f in feeds]


def test_claim_and_running_events_end_nothing():
    idle = pod()
    assert sandbox_ending(idle, running()) is None
    assert sandbox_ending(running(), running(rv="11")) is None
    assert sandbox_ending(None, running()) is None
    assert sandbox_ending(released(StopDetails(v.StopReason.COMPLETED)), None) is not None


def test_recycle_records_the_release_on_every_replica_identically():
    feeds, emit = replicas()
    stopping = released(StopDetails(v.StopReason.COMPLETED))
    emit("MODIFIED", running(), stopping)
    assert records(feeds) == [None, None], "stopping is not the end yet"
    emit("MODIFIED", stopping, recycled(stopping))
    one, two = records(feeds)
    assert one == two
    assert one["status"] == "Completed" and one["terminatedAt"] == "2026-01-01T12:00:05Z"
    assert one["recycledAt"] == "2026-01-01T12:00:09Z" and one["durationSeconds"] == 4
    assert one["containerImages"]["main"] == WORK_IMAGE


def test_first_ending_wins_over_later_versions_of_a_dying_pod():
    feeds, emit = replicas()
    alive = running()
    deleting = copy.deepcopy(alive)
    deleting["metadata"].update(deletionTimestamp=ts(30), deletionGracePeriodSeconds=20)
    emit("MODIFIED", alive, deleting)
    gone = copy.deepcopy(deleting)
    gone["metadata"]["annotations"][v.ANN_STOP_REASON] = "Completed"
    emit("MODIFIED", deleting, gone)
    emit("DELETED", gone, None)
    one, two = records(feeds)
    assert one == two
    assert one["status"] == "Failed" and one["failureReason"] == "Evicted"
    assert "deleted" in one["failureMessage"]
    assert one["terminatedAt"] == ts(10), "the time the delete was asked for, not the grace deadline"


def test_pod_failed_by_its_node_ends_the_sandbox_with_the_node_reason():
    feeds, emit = replicas()
    failed = running(kube_phase="Failed")
    failed["status"].update(reason="OutOfMemory", message="node low on memory")
    failed["status"]["containerStatuses"][0]["state"] = {"terminated": {"finishedAt": ts(7), "exitCode": 137}}
    emit("MODIFIED", running(), failed)
    one, two = records(feeds)
    assert one == two
    assert (one["status"], one["failureReason"], one["terminatedAt"]) == ("Failed", "OutOfMemory", ts(7))


def test_finalizer_removal_with_stop_details_is_what_every_replica_records():
    feeds, emit = replicas()
    alive = running()
    hooks_failed = copy.deepcopy(alive)
    hooks_failed["metadata"]["annotations"].update(
        stop_annotations(alive, StopDetails(v.StopReason.FAILED, "PostStartHookFailed", "init: 500"), T0))
    hooks_failed["metadata"]["finalizers"] = []
    emit("MODIFIED", alive, hooks_failed)
    assert records(feeds) == [None, None]
    emit("DELETED", hooks_failed, None)
    one, two = records(feeds)
    assert one == two
    assert (one["status"], one["failureReason"], one["failureMessage"]) == ("Failed", "PostStartHookFailed",
                                                                            "init: 500")


def test_a_replica_starting_late_records_pods_already_dying():
    feeds, emit = replicas(1)
    dying = running(deleting=True)
    emit("ADDED", None, dying)
    assert records(feeds)[0]["status"] == "Failed"
    emit("ADDED", None, pod(deleting=True))
    assert len(feeds[0].store) == 1, "an idle pod held no sandbox"
