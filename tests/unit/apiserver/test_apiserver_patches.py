"""Merge, JSON, strategic-merge and apply patches."""

from __future__ import annotations

import orjson
import pytest

from agent_sandbox.localcluster.apiserver import patches


def test_merge_patch_rfc7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "x": 1}
    result = patches.apply_patch(patches.MERGE, target, {"a": {"b": None, "d": 4}, "l": [3], "x": None})
    assert result == {"a": {"c": 2, "d": 4}, "l": [3]}


def test_json_patch_ops_and_failures() -> None:
    doc = {"spec": {"items": [1, 2]}}
    out = patches.apply_patch(patches.JSON_PATCH, doc, [{"op": "add", "path": "/spec/items/-", "value": 3},
                                                        {"op": "test", "path": "/spec/items/0", "value": 1}])
    assert out["spec"]["items"] == [1, 2, 3]
    with pytest.raises(patches.PatchError) as err:
        patches.apply_patch(patches.JSON_PATCH, out, [{"op": "test", "path": "/spec/items/0", "value": 9}])
    assert err.value.status == 422
    with pytest.raises(patches.PatchError):
        patches.apply_patch(patches.JSON_PATCH, out, {"op": "add"})
    with pytest.raises(patches.PatchError):
        patches.apply_patch(patches.JSON_PATCH, out, [{"op": "remove", "path": "/nope"}])


def test_strategic_merge_lists_by_name_and_directives() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                   {"name": "b", "image": "b:1"}],
                    "tolerations": [{"key": "t"}]}}
    out = patches.apply_patch(patches.STRATEGIC, pod, {"spec": {
        "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "b", "$patch": "delete"},
                       {"name": "c", "image": "c:1"}],
        "tolerations": [{"key": "u"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["a", "c"]
    assert out["spec"]["containers"][0] == {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"},
                                                                                 {"name": "Y", "value": "2"}]}
    assert out["spec"]["tolerations"] == [{"key": "u"}]
    replaced = patches.apply_patch(patches.STRATEGIC, {"m": {"a": 1, "b": 2}}, {"m": {"$patch": "replace", "c": 3}})
    assert replaced == {"m": {"c": 3}}
    conds = patches.apply_patch(patches.STRATEGIC, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                                {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert conds["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_parse_body_errors() -> None:
    with pytest.raises(patches.PatchError) as err:
        patches.parse_body(patches.MERGE, b"{oops")
    assert err.value.status == 400
    assert patches.parse_body(patches.APPLY, b"spec:\n  replicas: 2\n") == {"spec": {"replicas": 2}}
    with pytest.raises(patches.PatchError):
        patches.apply_patch(patches.MERGE, {}, [1, 2])


def test_patches_leave_the_stored_object_alone_and_share_what_they_do_not_change() -> None:
    """The store's objects are immutable: a patch copies only the paths it changes."""
    stored = {"metadata": {"labels": {"a": "1"}, "annotations": {"n": "x"}},
              "spec": {"containers": [{"name": "c", "image": "i:1", "env": [{"name": "E", "value": "v"}]}],
                       "volumes": [{"name": "v"}]},
              "status": {"phase": "Running"}}
    snapshot = orjson.loads(orjson.dumps(stored))
    merged = patches.apply_patch(patches.MERGE, stored, {"metadata": {"labels": {"a": None, "b": "2"}}})
    strategic = patches.apply_patch(patches.STRATEGIC, stored,
                                    {"spec": {"containers": [{"name": "c", "image": "i:2"}]}})
    jsonp = patches.apply_patch(patches.JSON_PATCH, stored, [{"op": "replace", "path": "/status/phase", "value": "X"}])
    assert stored == snapshot
    assert merged["metadata"]["labels"] == {"b": "2"} and merged["spec"] is stored["spec"]
    assert merged["metadata"]["annotations"] is stored["metadata"]["annotations"]
    assert strategic["spec"]["containers"] == [{"name": "c", "image": "i:2", "env": [{"name": "E", "value": "v"}]}]
    assert strategic["spec"]["volumes"] is stored["spec"]["volumes"] and strategic["metadata"] is stored["metadata"]
    assert jsonp["status"] == {"phase": "X"}
