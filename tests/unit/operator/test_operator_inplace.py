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


def swap_started(p=None, opts=None, generation=3):
    """The pod right after a claim's trigger write (spec generation bumped, status still the old container)."""
    p = p or pod()
    p["metadata"]["generation"] = generation
    p["status"]["observedGeneration"] = generation
    return apply_merge_patch(p, inplace.build_trigger_patch(p, opts or claim_opts(), T0)[0])


def observed(p, generation=4):
    p["status"]["observedGeneration"] = generation
    return p


def test_new_container_on_target_image_completes_once_ready():
    after = swap_started()
    assert inplace.read_state(after)["specGeneration"] == 4
    swapped = kubelet_swap(after, container_id="cid-2")
    swapped["status"]["containerStatuses"][0]["ready"] = False
    assert not inplace.update_complete(observed(swapped))
    swapped["status"]["containerStatuses"][0]["ready"] = True
    assert inplace.update_complete(swapped)


def test_stale_status_of_the_old_container_never_completes():
    """The status written before the node saw the new spec still names the old container: not done."""
    after = swap_started()
    assert not inplace.update_complete(after)  # old image, old ID
    # Even a node that reports the target image on the old container ID must not finish the swap
    # while its status predates the spec change.
    s = after["status"]["containerStatuses"][0]
    s.update(image=WORK_IMAGE)
    assert not inplace.update_complete(after)


def test_old_container_being_stopped_is_not_the_swap_result():
    """Release during Starting: the idle container still reports running (not ready) while the kubelet
    kills it; it runs the release's target image under the recorded ID, which must not count."""
    claimed = swap_started()
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="starting")
    claimed["metadata"]["generation"] = 4
    stopping = apply_merge_patch(claimed, inplace.build_trigger_patch(claimed, release, T0)[0])
    assert inplace.read_state(stopping)["lastContainerStatuses"]["main"]["containerID"] == "cid-1"
    being_killed = observed(stopping, 5)
    being_killed["status"]["containerStatuses"][0].update(image=IDLE_IMAGE, ready=False)
    assert not inplace.update_complete(being_killed)
    assert inplace.update_complete(_ready(kubelet_swap(being_killed, "cid-3", IDLE_IMAGE)))


def _ready(p):
    p["status"]["containerStatuses"][0]["ready"] = True
    return p


def test_intermediate_container_with_a_new_id_but_the_wrong_image_does_not_complete():
    """The kubelet caught up with claim+release at once: it briefly runs the workload image in a new
    container before replacing it with the idle one. New ID alone is not enough without the node
    confirming it acted on the release's spec."""
    claimed = swap_started()
    claimed["metadata"]["generation"] = 4
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="starting")
    stopping = apply_merge_patch(claimed, inplace.build_trigger_patch(claimed, release, T0)[0])
    intermediate = kubelet_swap(stopping, container_id="cid-2", image=WORK_IMAGE)
    assert not inplace.update_complete(observed(intermediate, 4))


def test_container_id_change_alone_completes_once_the_node_observed_the_spec():
    after = swap_started()
    renamed = kubelet_swap(after, container_id="cid-9", image="something/else:1")
    assert not inplace.update_complete(renamed)  # status from before the node saw the swap
    assert inplace.update_complete(observed(renamed))
    pulling = swap_started()
    pulling["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}}
    pulling["status"]["containerStatuses"][0]["containerID"] = ""
    assert not inplace.update_complete(observed(pulling))
    assert inplace.image_pull_failure(pulling) == ("ImagePullBackOff", "nope")


def test_empty_recorded_container_id_needs_a_running_container():
    with pytest.raises(inplace.PodNotReady):  # a claim never starts from a pod without a container
        inplace.build_trigger_patch(pod(container_id=""), claim_opts(), T0)
    running = pod(phase="running", image=WORK_IMAGE, container_id="")
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="running")
    after = swap_started(running, release)
    assert inplace.read_state(after)["lastContainerStatuses"]["main"]["containerID"] == ""
    assert not inplace.update_complete(observed(after))  # still no container ID: nothing runs
    assert inplace.update_complete(kubelet_swap(after, container_id="cid-2", image=IDLE_IMAGE))


def test_rollback_from_unpullable_image_completes():
    """idle -> workload (unpullable) -> release -> idle must not deadlock (openkruise/agents#773)."""
    claimed = swap_started(opts=claim_opts("bad/image:x"))
    claimed["status"]["containerStatuses"][0].update(image="bad/image:x", containerID="",
                                                       state={"waiting": {"reason": "ErrImagePull"}})
    claimed["metadata"]["generation"] = 4
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="starting")
    stopping = apply_merge_patch(claimed, inplace.build_trigger_patch(claimed, release, T0)[0])
    assert stopping["metadata"]["labels"][v.LABEL_SANDBOX_PHASE] == "stopping"
    assert not inplace.update_complete(stopping)
    rolled = kubelet_swap(stopping, container_id="cid-3", image=IDLE_IMAGE)
    assert inplace.update_complete(observed(rolled, 5))


def test_rollback_where_the_old_container_was_never_replaced_completes():
    """The node never restarted the idle container (it saw the release before acting on the claim):
    nothing to swap, so the release completes on the recorded container once the node observed it."""
    claimed = swap_started()
    claimed["metadata"]["generation"] = 4
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="starting")
    stopping = apply_merge_patch(claimed, inplace.build_trigger_patch(claimed, release, T0)[0])
    untouched = observed(stopping, 4)
    assert not inplace.update_complete(untouched)  # status predates the release
    assert inplace.update_complete(observed(stopping, 5))


def test_digest_identical_images_complete_by_name():
    """Same digest, different reference: the kubelet still restarts into a new container, found by name.
    A node that kept the very container and reports it under the target name has nothing to swap."""
    after = swap_started()
    assert inplace.update_complete(observed(kubelet_swap(after, container_id="cid-2", image=WORK_IMAGE)))
    kept = swap_started()
    kept["status"]["containerStatuses"][0].update(image=WORK_IMAGE)  # same imageID and containerID
    assert not inplace.update_complete(kept)
    assert inplace.update_complete(observed(kept))


def test_claim_refuses_a_pod_still_settling():
    """Claimable only once fully idle on the idle image: not while the old workload container is reported."""
    leftover = pod(status_image=WORK_IMAGE)
    with pytest.raises(inplace.PodNotReady):
        inplace.build_trigger_patch(leftover, claim_opts(), T0)
    stopping = pod()
    stopping["status"]["containerStatuses"][0]["ready"] = False
    with pytest.raises(inplace.PodNotReady):
        inplace.build_trigger_patch(stopping, claim_opts(), T0)
    release = UpdateOptions(target_phase="idle", images={"main": IDLE_IMAGE}, expected_phase="running")
    assert inplace.build_trigger_patch(pod(phase="running", image=WORK_IMAGE, status_image=IDLE_IMAGE),
                                       release, T0)[0]


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
