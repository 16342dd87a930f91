import orjson
from operator_pods import IDLE_IMAGE, T0, WORK_IMAGE, pod, pool, ts

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.lifecycle.history import HistoryStore, merge_records
from agent_sandbox.operator.lifecycle.records import finished_record, sandbox_record
from agent_sandbox.operator.lifecycle.release import StopDetails, delete_stop_reason, release_options


def claimed_pod(phase="running"):
    return pod(phase=phase, image=WORK_IMAGE,
               labels={v.LABEL_SANDBOX_ID: "c-1", v.LABEL_MANAGED_BY: v.MANAGED_BY_VALUE, "caller/l": "x"},
               annotations={v.ANN_SANDBOX_ID: "c-1", v.ANN_CLAIMED_AT: ts(0), v.ANN_STARTED_AT: ts(1),
                            v.ANN_IDLE_TIMEOUT: "60", v.ANN_LAST_ACTIVE: ts(2), "caller/a": "y",
                            v.ANN_MANAGED_LABEL_KEYS: '["caller/l"]', v.ANN_MANAGED_ANNOTATION_KEYS: '["caller/a"]'})


def test_release_strips_caller_keys_and_returns_to_idle_images():
    opts = release_options(claimed_pod(), pool(), StopDetails(v.StopReason.FAILED, "OOMKilled", "boom", 137), T0)
    assert opts.target_phase == "idle" and opts.expected_phase == "running"
    assert opts.images == {"main": IDLE_IMAGE, "side": "busybox:1"}
    assert set(opts.remove_labels) == {v.LABEL_MANAGED_BY, "caller/l"}
    assert set(opts.remove_annotations) == {v.ANN_IDLE_TIMEOUT, v.ANN_LAST_ACTIVE, v.ANN_MANAGED_LABEL_KEYS,
                                            v.ANN_MANAGED_ANNOTATION_KEYS, "caller/a"}
    assert opts.annotations[v.ANN_STOP_REASON] == "Failed"
    assert opts.annotations[v.ANN_EXIT_CODE] == "137"
    assert orjson.loads(opts.annotations[v.ANN_RUNNING_IMAGES])["main"] == WORK_IMAGE
    assert opts.annotations[v.ANN_CONTAINER_ID] == "cid-1"


def test_delete_of_a_never_started_sandbox_is_canceled():
    assert delete_stop_reason(pod(phase="starting")) == v.StopReason.CANCELED
    assert delete_stop_reason(claimed_pod()) == v.StopReason.COMPLETED


def test_records_live_and_finished():
    live = sandbox_record(claimed_pod(), T0.replace(second=11), gateway_base_url="http://gw/",
                          runtimes=[{"name": "envd", "port": 49983}])
    assert live["status"] == "Running" and live["durationSeconds"] == 10
    assert live["endpoints"]["envd"]["url"] == "http://gw/sandboxes/c-1/49983"
    p = claimed_pod("stopping")
    p["metadata"]["annotations"].update({v.ANN_STOP_REASON: "Released", v.ANN_TERMINATED_AT: ts(5)})
    done = finished_record(p, T0)
    assert done["status"] == "Released" and done["durationSeconds"] == 4


def test_history_ttl_cap_and_merge():
    clock = type("C", (), {"t": 0.0, "__call__": lambda self: self.t})()
    store = HistoryStore(ttl_s=10, max_records=2, clock=clock)
    for i in range(3):
        store.put({"namespace": "ns", "sandboxId": f"s{i}", "claimedAt": ts(i), "status": "Completed"})
    assert len(store) == 2 and store.get("ns", "s0") is None and store.find("s2")["sandboxId"] == "s2"
    clock.t = 10
    assert store.get("ns", "s1") is None and store.find("s2") is None and list(store.records()) == []
    merged = merge_records([{"namespace": "ns", "sandboxId": "a", "claimedAt": ts(1), "status": "Running"}],
                           [{"namespace": "ns", "sandboxId": "a", "claimedAt": ts(1), "status": "Completed"},
                            {"namespace": "ns", "sandboxId": "b", "claimedAt": ts(2), "status": "Failed"}])
    assert [(r["sandboxId"], r["status"]) for r in merged] == [("b", "Failed"), ("a", "Completed")], \
        "a finished record wins over the pod still holding its id on the way out"
