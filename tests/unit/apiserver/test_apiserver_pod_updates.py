"""Pod update rules: only images, tolerations, deadlines and grace may change in a pod's spec."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent_sandbox.localcluster.apiserver import patches, strategy
from agent_sandbox.localcluster.apiserver.errors import StatusError
from agent_sandbox.localcluster.apiserver.resources import Registry

PODS = Registry().lookup("", "v1", "pods")


def _stored() -> dict[str, Any]:
    assert PODS is not None
    containers = [{"name": "c", "image": "i:1", "env": [{"name": "E", "value": "v"}]}, {"name": "d", "image": "j:1"}]
    pod = {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"nodeName": "n1", "containers": containers}}
    return strategy.prepare_create(PODS, pod, "default")


def _update(old: dict[str, Any], spec_patch: dict[str, Any]) -> dict[str, Any]:
    assert PODS is not None
    return strategy.prepare_update(PODS, old, patches.apply_patch(patches.STRATEGIC, old, {"spec": spec_patch}), None)


@pytest.mark.parametrize("spec_patch", [
    {"containers": [{"name": "c", "image": "i:2"}]},
    {"containers": [{"name": "d", "image": "j:2"}], "activeDeadlineSeconds": 60},
    {"tolerations": [{"key": "k", "operator": "Exists"}], "terminationGracePeriodSeconds": 5},
])
def test_allowed_pod_spec_changes(spec_patch: dict[str, Any]) -> None:
    old = _stored()
    snapshot = orjson.loads(orjson.dumps(old))
    new = _update(old, spec_patch)
    assert new["metadata"]["generation"] == 2
    assert old == snapshot  # the stored object is untouched


@pytest.mark.parametrize("spec_patch", [
    {"containers": [{"name": "c", "env": [{"name": "F", "value": "w"}]}]},
    {"containers": [{"name": "e", "image": "k:1"}]},
    {"containers": [{"name": "d", "$patch": "delete"}]},
    {"restartPolicy": "Never"},
    {"hostname": "h"},
    {"nodeName": "n2"},
])
def test_forbidden_pod_spec_changes(spec_patch: dict[str, Any]) -> None:
    with pytest.raises(StatusError) as err:
        _update(_stored(), spec_patch)
    assert err.value.code == 422
    assert err.value.body()["details"]["causes"][0]["reason"] == "FieldValueForbidden"
