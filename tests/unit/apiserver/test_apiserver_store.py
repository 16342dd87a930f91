"""Store semantics without HTTP: versions, event log, watch fan-out, deletion, GC, strategies."""

from __future__ import annotations

import orjson
import pytest

from agent_sandbox.localcluster.apiserver.errors import StatusError
from agent_sandbox.localcluster.apiserver.resources import Registry
from agent_sandbox.localcluster.apiserver.selectors import parse_label_selector
from agent_sandbox.localcluster.apiserver.store import Store
from agent_sandbox.localcluster.apiserver.strategy import prepare_create, prepare_update

REG = Registry()
NS = REG.lookup("", "v1", "namespaces")
CM = REG.lookup("", "v1", "configmaps")
POD = REG.lookup("", "v1", "pods")


def _store(**kw: int) -> Store:
    store = Store(**kw)
    store.create(NS, prepare_create(NS, {"metadata": {"name": "default"}}, None))
    return store


def _cm(store: Store, name: str, **meta: object):
    return store.create(CM, prepare_create(CM, {"metadata": {"name": name, **meta}}, "default"))


def _update(store: Store, rt, entry, mutate):
    new = orjson.loads(entry.raw)
    mutate(new)
    return store.replace(rt, entry, prepare_update(rt, entry.obj, new, None))


def test_versions_increase_and_duplicates_conflict() -> None:
    store = _store()
    a = _cm(store, "a")
    b = _cm(store, "b")
    assert int(b.obj["metadata"]["resourceVersion"]) > int(a.obj["metadata"]["resourceVersion"])
    with pytest.raises(StatusError) as err:
        _cm(store, "a")
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"
    with pytest.raises(StatusError) as err:
        store.create(CM, prepare_create(CM, {"metadata": {"name": "x"}}, "missing"))
    assert err.value.code == 404


def test_replay_and_compaction() -> None:
    store = _store(event_log_size=3)
    start = store.rv
    for name in ("a", "b"):
        _cm(store, name)
    watcher = store.watch(CM, "default", (), (), str(start))
    assert [(k, o["metadata"]["name"]) for k, o, _ in watcher.pending] == [("ADDED", "a"), ("ADDED", "b")]
    for name in ("c", "d", "e"):
        _cm(store, name)
    assert len(watcher.pending) == 5
    with pytest.raises(StatusError) as err:
        store.watch(CM, "default", (), (), str(start))
    assert err.value.code == 410


def test_selector_transitions_and_slow_watcher_drop() -> None:
    store = _store(watch_queue_size=3)
    entry = _cm(store, "m", labels={"phase": "idle"})
    watcher = store.watch(CM, None, parse_label_selector("phase=idle"), (), str(store.rv))
    entry = _update(store, CM, entry, lambda o: o["metadata"]["labels"].update(phase="running"))
    entry = _update(store, CM, entry, lambda o: o["metadata"]["labels"].update(phase="idle"))
    assert [k for k, _, _ in watcher.pending] == ["DELETED", "ADDED"]
    for i in range(3):
        _cm(store, f"x{i}", labels={"phase": "idle"})
    assert watcher.dropped and not watcher.pending


def test_generation_and_status_separation() -> None:
    store = _store()
    pod = store.create(POD, prepare_create(POD, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "i:1"}]}, "status": {"phase": "Running"}}, "default"))
    assert pod.obj["status"]["phase"] == "Pending" and pod.obj["metadata"]["generation"] == 1
    relabeled = _update(store, POD, pod, lambda o: o["metadata"].setdefault("labels", {}).update(a="b"))
    assert relabeled.obj["metadata"]["generation"] == 1
    new = orjson.loads(relabeled.raw)
    new["status"] = {"phase": "Running"}
    new["spec"]["containers"][0]["image"] = "i:2"
    status_only = store.replace(POD, relabeled, prepare_update(POD, relabeled.obj, new, "status"))
    assert status_only.obj["status"]["phase"] == "Running"
    assert status_only.obj["spec"]["containers"][0]["image"] == "i:1"
    image = _update(store, POD, status_only, lambda o: o["spec"]["containers"][0].update(image="i:2"))
    assert image.obj["metadata"]["generation"] == 2 and image.obj["status"]["phase"] == "Running"


def test_finalizers_gc_and_namespace_termination() -> None:
    store = _store()
    store.create(NS, prepare_create(NS, {"metadata": {"name": "team"}}, None))
    owner = store.create(CM, prepare_create(CM, {"metadata": {"name": "owner"}}, "team"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.obj["metadata"]["uid"]}
    store.create(CM, prepare_create(CM, {"metadata": {"name": "child", "ownerReferences": [ref]}}, "team"))
    held = store.create(CM, prepare_create(CM, {"metadata": {"name": "held", "finalizers": ["x/y"]}}, "team"))
    _, removed = store.delete(CM, "team", "owner")
    assert removed and store.find("configmaps", "team", "child") is None
    ns, removed = store.delete(NS, None, "team")
    assert not removed and ns.obj["status"]["phase"] == "Terminating"
    held = store.get(CM, "team", "held")
    assert held.obj["metadata"]["deletionTimestamp"]
    _update(store, CM, held, lambda o: o["metadata"].pop("finalizers"))
    assert store.find("configmaps", "team", "held") is None
    assert store.find("namespaces", None, "team") is None


def test_paging_is_stable() -> None:
    store = _store()
    for i in range(5):
        _cm(store, f"c{i}")
    first = store.list(CM, "default", limit=2)
    second = store.list(CM, "default", limit=2, continue_token=first.continue_token)
    third = store.list(CM, "default", limit=2, continue_token=second.continue_token)
    names = [e.obj["metadata"]["name"] for page in (first, second, third) for e in page.items]
    assert names == ["c0", "c1", "c2", "c3", "c4"] and third.continue_token is None
    assert first.remaining == 3
    with pytest.raises(StatusError) as err:
        store.list(CM, "default", continue_token="!!notbase64")
    assert err.value.code == 400
