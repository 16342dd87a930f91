"""Durable history records: object naming, record <-> ConfigMap, sweep and repair plans, the write queue bound."""

from datetime import timedelta

import orjson
import pytest
from operator_pods import T0, WORK_IMAGE, pod, ts

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.ids import MAX_CLUSTER_ID_LEN, new_sandbox_id
from agent_sandbox.operator.kube.client import KubeError
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_objects import (
    HISTORY_SELECTOR,
    from_configmap,
    history_path,
    missing_records,
    object_name,
    record_key,
    remaining_ttl,
    sweep_plan,
    to_configmap,
)
from agent_sandbox.operator.lifecycle.history_writer import PendingWrites, transient
from agent_sandbox.operator.lifecycle.records import finished_record

SECRET = "s3cr3t-token-value"


def record(sid: str = "it-01", ended: float = 5, ns: str = "ns") -> dict:
    return {"sandboxId": sid, "namespace": ns, "poolName": "pool", "status": "Completed",
            "claimedAt": ts(0), "terminatedAt": ts(ended)}


def test_object_name_is_a_dns_label_for_the_longest_sandbox_id():
    sid = new_sandbox_id("c" * MAX_CLUSTER_ID_LEN)
    name = object_name(sid)
    assert name == f"sbh-{sid}" and len(name) <= 63
    assert history_path() == "/api/v1/configmaps"
    assert history_path("ns", name) == f"/api/v1/namespaces/ns/configmaps/{name}"
    assert HISTORY_SELECTOR == "agentsandbox.io/sandbox-history=true"


def test_record_round_trips_through_its_configmap():
    rec = record()
    cm = to_configmap(rec)
    meta = cm["metadata"]
    assert (meta["name"], meta["namespace"]) == ("sbh-it-01", "ns") and cm["immutable"] is True
    assert meta["labels"] == {v.LABEL_SANDBOX_HISTORY: "true", v.LABEL_SANDBOX_ID: "it-01",
                              v.LABEL_SANDBOX_POOL: "pool"}
    assert meta["annotations"] == {v.ANN_TERMINATED_AT: ts(5)}
    assert from_configmap(cm) == rec
    assert record_key(rec) == "ns/sbh-it-01"


@pytest.mark.parametrize("damage", [
    lambda cm: cm["data"].update(record="{not json"),
    lambda cm: cm["data"].pop("record"),
    lambda cm: cm["data"].update(record="[1, 2]"),
    lambda cm: cm["metadata"].update(name="sbh-someone-else"),
    lambda cm: cm["metadata"].update(namespace="other"),
])
def test_malformed_or_mismatched_objects_hold_no_record(damage):
    cm = to_configmap(record())
    damage(cm)
    assert from_configmap(cm) is None


def test_a_stored_record_carries_no_env_vars_tokens_or_hook_bodies():
    sealed_hooks = orjson.dumps([{"httpPost": {"path": "/init", "body": SECRET}}]).decode()
    p = pod(phase="running", image=WORK_IMAGE, labels={v.LABEL_SANDBOX_ID: "it-01"},
            annotations={v.ANN_SANDBOX_ID: "it-01", v.ANN_CLAIMED_AT: ts(0), v.ANN_STARTED_AT: ts(1),
                         v.ANN_POST_START_HOOKS: sealed_hooks, v.ANN_STOP_REASON: "Completed",
                         v.ANN_TERMINATED_AT: ts(4)}, deleting=True)
    p["spec"]["containers"][0]["env"] = [{"name": "API_TOKEN", "value": SECRET}]
    cm = to_configmap(finished_record(p, T0.replace(minute=5)))
    text = orjson.dumps(cm).decode()
    assert SECRET not in text and "API_TOKEN" not in text and "postStartHooks" not in text
    assert from_configmap(cm)["status"] == "Completed"


def test_remaining_ttl_counts_from_the_end_of_the_sandbox():
    assert remaining_ttl(record(ended=0), T0 + timedelta(seconds=60), 100) == 40
    assert remaining_ttl(record(ended=0), T0 + timedelta(seconds=200), 100) == -100
    assert remaining_ttl({"sandboxId": "x"}, T0, 100) == 100


def test_store_keeps_a_read_back_record_only_for_what_is_left_of_its_ttl():
    clock = [0.0]
    store = HistoryStore(ttl_s=100, clock=lambda: clock[0])
    store.put(record("a"), ttl_s=10)
    store.put(record("b"))
    clock[0] = 11
    assert store.find("a") is None and store.find("b") is not None
    store.discard("ns", "b")
    assert store.find("b") is None and len(store) == 1


def objects(*ended: float) -> list[dict]:
    return [to_configmap(record(f"it-{i:02d}", e)) for i, e in enumerate(ended)]


def test_sweep_deletes_expired_objects_oldest_first_then_the_oldest_beyond_the_cap():
    now = T0 + timedelta(seconds=100)
    objs = objects(90, 10, 50, 95, 20)  # ended 10 s, 90 s, 50 s, 5 s and 80 s ago
    plan = sweep_plan(objs, now, ttl_s=60, max_records=10, limit=100)
    assert [(r.name, r.reason) for r in plan] == [("sbh-it-01", "expired"), ("sbh-it-04", "expired")]
    plan = sweep_plan(objs, now, ttl_s=60, max_records=2, limit=100)
    assert [(r.name, r.reason) for r in plan] == [("sbh-it-01", "expired"), ("sbh-it-04", "expired"),
                                                  ("sbh-it-02", "cap")]
    assert [r.name for r in sweep_plan(objs, now, ttl_s=60, max_records=2, limit=1)] == ["sbh-it-01"]
    assert sweep_plan(objs, now, ttl_s=1000, max_records=10, limit=100) == []


def test_sweep_ages_objects_without_a_finish_annotation_by_creation_time_else_removes_them():
    now = T0 + timedelta(seconds=100)
    dated, undated = objects(90, 90)
    del dated["metadata"]["annotations"][v.ANN_TERMINATED_AT]
    dated["metadata"]["creationTimestamp"] = ts(90)
    del undated["metadata"]["annotations"][v.ANN_TERMINATED_AT]
    assert [r.name for r in sweep_plan([dated, undated], now, ttl_s=60, max_records=10, limit=10)] == ["sbh-it-01"]


def test_repair_resubmits_only_settled_unstored_live_records_oldest_first():
    now = T0 + timedelta(seconds=100)
    recs = [record("fresh", 98), record("stored", 50), record("late", 60), record("later", 80),
            record("expired", 0)]
    stored = {record_key(record("stored"))}
    out = missing_records(recs, stored.__contains__, now, ttl_s=90, grace_s=10, limit=10)
    assert [r["sandboxId"] for r in out] == ["late", "later"]
    assert [r["sandboxId"] for r in missing_records(recs, stored.__contains__, now, ttl_s=90, grace_s=10,
                                                    limit=1)] == ["late"]


def test_write_queue_is_bounded_drops_its_oldest_and_holds_each_record_once():
    queue = PendingWrites(limit=3)
    assert [queue.push(record(f"r{i}")) for i in range(3)] == [None, None, None]
    assert queue.push(record("r1")) is None and len(queue) == 3, "a record already waiting is not queued twice"
    dropped = queue.push(record("r3"))
    assert dropped is not None and dropped["sandboxId"] == "r0"
    assert [queue.pop()["sandboxId"] for _ in range(3)] == ["r1", "r2", "r3"]
    assert queue.pop() is None
    burst = PendingWrites(limit=100)
    drops = [burst.push(record(f"b{i}")) for i in range(1000)]
    assert len(burst) == 100 and sum(d is not None for d in drops) == 900
    with pytest.raises(ValueError):
        PendingWrites(limit=0)


def test_only_throttling_server_and_connection_errors_are_retried():
    assert transient(KubeError(503, "ServiceUnavailable", "")) and transient(KubeError(429, "TooMany", ""))
    assert transient(ConnectionResetError()) and transient(TimeoutError())
    assert not transient(KubeError(404, "NotFound", "namespace gone"))
    assert not transient(KubeError(422, "Invalid", ""))
