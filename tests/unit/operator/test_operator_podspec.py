import orjson
import pytest
from operator_pods import IDLE_IMAGE, WORK_IMAGE, pool

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.durations import InvalidDuration, format_duration, parse_duration
from agent_sandbox.operator.images import normalize_image, same_image
from agent_sandbox.operator.pooltemplate import apply_overrides, build_idle_pod, pool_from_template
from agent_sandbox.operator.quantities import InvalidQuantity, scale_quantity


def test_idle_pod_gets_idle_image_labels_owner_and_finalizer():
    p = pool()
    p["metadata"]["annotations"][v.ANN_SCALE_UP_PENDING] = "x"
    pod = build_idle_pod(p)
    assert pod["metadata"]["generateName"] == "pool-"
    assert pod["spec"]["containers"][0]["image"] == IDLE_IMAGE
    assert pod["metadata"]["labels"] == {"app": "x", v.LABEL_TEAM: "t1", v.LABEL_SANDBOX_POOL: "pool",
                                         v.LABEL_SANDBOX_PHASE: "idle"}
    assert v.ANN_SCALE_UP_PENDING not in pod["metadata"]["annotations"]
    assert pod["metadata"]["finalizers"] == [v.FINALIZER_SANDBOX_PROTECTION]
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "pool-uid"
    fast = build_idle_pod(pool(podCreationImagePolicy="PoolDefaultImage"))
    assert fast["spec"]["containers"][0]["image"] == WORK_IMAGE
    assert p["spec"]["template"]["spec"]["containers"][0]["image"] == WORK_IMAGE  # not mutated


def test_pool_from_template_applies_overrides():
    template = {"metadata": {"name": "py", "labels": {v.LABEL_SYNC_SOURCE: "global", "k": "v"},
                             "annotations": {v.ANN_DOCS: "# docs"}},
                "spec": {"version": "v1", "idleImage": IDLE_IMAGE, "runtimes": [{"name": "envd", "port": 49983}],
                         "template": {"spec": {"containers": [{"name": "main", "image": WORK_IMAGE, "resources": {
                             "requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1"}}}]}}}}
    out = pool_from_template(template, "p1", "ns", {"replicas": 2}, {v.LABEL_TEAM: "t"}, {}, "python:3.12", 2)
    c = out["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "python:3.12"
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2"}}
    assert out["metadata"]["labels"] == {"k": "v", v.LABEL_TEAM: "t"}
    ann = out["metadata"]["annotations"]
    assert v.ANN_DOCS not in ann and ann[v.ANN_TEMPLATE_VERSION] == "v1"
    assert orjson.loads(ann[v.ANN_OVERRIDES]) == {"image": "python:3.12", "resourceMultiplier": 2}
    assert out["spec"]["replicas"] == 2 and out["spec"]["templateName"] == "py"
    assert template["spec"]["template"]["spec"]["containers"][0]["image"] == WORK_IMAGE
    assert apply_overrides({}, "x", None) == {}


def test_quantities_durations_images():
    assert scale_quantity("cpu", "250m", 3) == "750m"
    assert scale_quantity("memory", "1G", 1) == "1000000000"
    with pytest.raises(InvalidQuantity):
        scale_quantity("cpu", "lots", 2)
    assert parse_duration("1h30m") == 5400 and parse_duration("90s") == 90 and parse_duration("0") == 0
    assert parse_duration("1.5s") == 1.5
    for bad in ("", "5", "1x", "s"):
        with pytest.raises(InvalidDuration):
            parse_duration(bad)
    assert format_duration(5400) == "1h30m" and format_duration(0) == "0"
    assert normalize_image("ubuntu") == "docker.io/library/ubuntu:latest"
    assert same_image("ubuntu:22.04", "docker.io/library/ubuntu:22.04")
    assert same_image("localhost:5000/a/b", "localhost:5000/a/b:latest")
    assert not same_image("ubuntu:22.04", "ubuntu:24.04")
    assert normalize_image("ghcr.io/x/y@sha256:ab") == "ghcr.io/x/y@sha256:ab"
