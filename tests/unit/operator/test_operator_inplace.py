import orjson
import pytest
from operator_pods import IDLE_IMAGE, T0, WORK_IMAGE, apply_merge_patch, pod

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.lifecycle.inplace import UpdateOptions


def claim_opts(image=WORK_IMAGE, **kw):
    return UpdateOptions(target_phase="running", images={"main": image}, expected_phase="idle",
                         labels={v.LABEL_SANDBOX_ID: "c-1"}, annotations={v.ANN_CLAIMED_AT: "now"}, **kw)


def kubelet_swap(p, container_id="cid-2", image=None):
    """What the kubelet reports once it restarted 'main' with the new spec image."""
    status = p["status"]["containerStatuses"][0]
    status.update(image=image or p["spec"]["containers"][0]["image"], containerID=container_id,
                  state={"running": {}})
    return p


def test_claim_with_image_change_swaps_only_main_and_completes_on_kubelet_report():
    p = pod()
    patch, done = inplace.build_trigger_patch(p, claim_opts(), T0)
    assert not done
    assert patch["metadata"]["resourceVersion"] == "10"
    assert patch["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "starting"
    assert [c["image"] for c in patch["spec"]["containers"]] == [WORK_IMAGE, "busybox:1"]
    after = apply_merge_patch(p, patch)
    state = inplace.read_state(after)
    assert state["lastContainerStatuses"] == {"main": {"imageID": "docker-pullable://x@sha256:p-1",
                                                       "containerID": "cid-1"}}
    assert not inplace.update_complete(after)
    swapped = kubelet_swap(after)
    assert inplace.update_complete(swapped)
    done_patch = inplace.build_complete_patch(swapped, T0)
    running = apply_merge_patch(swapped, done_patch)
    assert running["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "running"
    assert running["metadata"]["annotations"][v.ANN_STARTED_AT]
    assert inplace.read_state(running)["stableContainerStatuses"]["main"]["containerID"] == "cid-2"
    assert inplace.has_unexpected_restart(running) is None


def test_normalised_image_names_match_and_fast_path_needs_a_ready_pod():
    p = pod(image="docker.io/library/python:3.11")
    patch, done = inplace.build_trigger_patch(p, claim_opts("python:3.11"), T0)
    assert done and "spec" not in patch
    fast = apply_merge_patch(p, patch)
    assert fast["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "running"
    assert inplace.read_state(fast)["phase"] == "completed"
    with pytest.raises(inplace.PodNotReady):
        inplace.build_trigger_patch(pod(image=WORK_IMAGE, ready=False), claim_opts(), T0)


def test_unexpected_phase_is_rejected():
    with pytest.raises(inplace.UnexpectedPodPhase):
        inplace.build_trigger_patch(pod(phase="running"), claim_opts(), T0)


def test_container_id_change_alone_completes_but_a_waiting_container_does_not():
    after = apply_merge_patch(pod(), inplace.build_trigger_patch(pod(), claim_opts(), T0)[0])
    stale_name = kubelet_swap(after, container_id="cid-9", image="something/else:1")
    assert inplace.update_complete(stale_name)
    pulling = apply_merge_patch(pod(), inplace.build_trigger_patch(pod(), claim_opts(), T0)[0])
    pulling["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}}
    pulling["status"]["containerStatuses"][0]["containerID"] = ""
    assert not inplace.update_complete(pulling)
    assert inplace.image_pull_failure(pulling) == ("ImagePullBackOff", "nope")


def test_rollback_from_unpullable_image_completes():
    """idle -> workload (unpullable) -> release -> idle must not deadlock (openkruise/agents#773)."""
    claimed = apply_merge_patch(pod(), inplace.build_trigger_patch(pod(), claim_opts("bad/image:x"), T0)[0])
    claimed["status"]["containerStatuses"][0].update(image="bad/image:x", containerID="",
                                                       state={"waiting": {"reason": "ErrImagePull"}})
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="starting")
    stopping = apply_merge_patch(claimed, inplace.build_trigger_patch(claimed, release, T0)[0])
    assert stopping["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "stopping"
    assert not inplace.update_complete(stopping)
    rolled = kubelet_swap(stopping, container_id="cid-3", image=IDLE_IMAGE)
    assert inplace.update_complete(rolled)


def test_digest_identical_images_complete_by_name():
    p = pod()
    after = apply_merge_patch(p, inplace.build_trigger_patch(p, claim_opts(), T0)[0])
    s = after["status"]["containerStatuses"][0]
    s.update(image=WORK_IMAGE, state={"running": {}})  # same imageID and containerID as before
    assert inplace.update_complete(after)


def test_no_state_is_complete_and_spec_mismatch_is_not():
    assert inplace.update_complete(pod())
    after = apply_merge_patch(pod(), inplace.build_trigger_patch(pod(), claim_opts(), T0)[0])
    after["spec"]["containers"][0]["image"] = IDLE_IMAGE
    assert not inplace.update_complete(kubelet_swap(after, image=WORK_IMAGE))


def test_going_idle_clears_every_sandbox_key_in_one_write():
    state = {"phase": "stopping", "targetPodPhase": "idle", "targetImages": {"main": IDLE_IMAGE},
             "lastContainerStatuses": {}}
    p = pod(phase="stopping", state=state, labels={v.LABEL_SANDBOX_ID: "c-1", v.LABEL_MANAGED_BY: "x",
                                                  v.LABEL_TEAM: "caller-team"},
            annotations={v.ANN_SANDBOX_ID: "c-1", v.ANN_STOP_REASON: "Completed", v.ANN_POST_START_HOOKS: "[]"})
    idle = apply_merge_patch(p, inplace.build_complete_patch(p, T0, idle_labels={v.LABEL_TEAM: "pool-team"}))
    labels, ann = idle["metadata"]["labels"], idle["metadata"]["annotations"]
    assert labels[v.LABEL_SANDBOX_PHASE] == "idle"
    assert v.LABEL_SANDBOX_ID not in labels and v.LABEL_MANAGED_BY not in labels
    assert labels[v.LABEL_TEAM] == "pool-team"
    assert set(ann) == {v.ANN_INPLACE_UPDATE_STATE}
    assert orjson.loads(ann[v.ANN_INPLACE_UPDATE_STATE])["phase"] == "completed"
    assert inplace.build_complete_patch(idle, T0) is None


def test_restart_of_targeted_container_is_detected_sidecar_is_not():
    state = {"phase": "completed", "targetPodPhase": "running",
             "stableContainerStatuses": {"main": {"containerID": "cid-1", "restartCount": 0}}}
    p = pod(phase="running", state=state)
    assert inplace.has_unexpected_restart(p) is None
    p["status"]["containerStatuses"][1]["containerID"] = "side-2"
    assert inplace.has_unexpected_restart(p) is None
    p["status"]["containerStatuses"][0]["containerID"] = "cid-2"
    assert inplace.has_unexpected_restart(p)[0] == "main"


def test_phase_since_prefers_state_timestamp():
    assert inplace.phase_since(pod(created=5)).second == 5
    assert inplace.phase_since(pod(state={"phase": "starting", "updateTimestamp": "2026-01-01T12:00:09Z"})).second == 9


def test_idle_since_waits_for_readiness():
    p = pod(created=0)
    p["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T12:00:40Z"
    assert inplace.idle_since(p).second == 40
    assert inplace.idle_since(pod(created=3, ready=False)).second == 3
