"""Template sync and per-pool image-pull Secrets: the pure pieces (behaviour §13)."""

import base64

import orjson
from operator_pods import IDLE_IMAGE, WORK_IMAGE

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.pooltemplate import pool_from_template, stored_overrides, synced_pool, template_name_of
from agent_sandbox.operator.pullsecrets import (
    pull_secret,
    pull_secret_name,
    referenced_secrets,
    with_pull_secret,
)
from agent_sandbox.operator.services.models import ImagePullSecret


def _template(image: str, version: str = "v1", **spec: object) -> dict:
    return {"metadata": {"name": "py"},
            "spec": {"version": version, "idleImage": IDLE_IMAGE, "runtimes": [{"name": "envd", "port": 49983}],
                     "template": {"spec": {"containers": [{"name": "main", "image": image, "resources": {
                         "requests": {"cpu": "500m"}}}]}}, **spec}}


def _pool(**overrides: object) -> dict:
    pool = pool_from_template(_template(WORK_IMAGE), "p1", "ns", {"replicas": 3, "defaultIdleTimeout": "5m"},
                              {v.LABEL_TEAM: "t"}, {"note": "kept"}, **overrides)
    pool["metadata"].update(uid="uid-1", resourceVersion="7")
    return pool


def test_sync_recopies_the_template_and_reapplies_stored_overrides():
    pool = _pool(multiplier=2)
    pool["spec"]["replicas"] = 5  # changed after create (scaling): the pool's own, not the template's
    out = synced_pool(pool, _template("python:3.13", version="v2", runtimes=[]))
    main = out["spec"]["template"]["spec"]["containers"][0]
    assert main["image"] == "python:3.13" and main["resources"]["requests"]["cpu"] == "1"
    assert out["spec"]["replicas"] == 5 and out["spec"]["defaultIdleTimeout"] == "5m"
    assert "runtimes" not in out["spec"]
    ann = out["metadata"]["annotations"]
    assert ann[v.ANN_TEMPLATE_VERSION] == "v2" and ann["note"] == "kept"
    assert out["metadata"]["resourceVersion"] == "7" and out["metadata"]["labels"][v.LABEL_TEAM] == "t"
    assert pool["spec"]["template"]["spec"]["containers"][0]["image"] == WORK_IMAGE, "input not mutated"


def test_sync_keeps_the_image_override_and_the_pull_secret_reference():
    pool = _pool(image="python:3.12")
    pool["spec"]["template"] = with_pull_secret(pool["spec"]["template"], pull_secret_name("p1"))
    template = _template("python:3.13")
    template["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "shared-creds"}]
    out = synced_pool(pool, template)
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.12"
    assert referenced_secrets(out["spec"]["template"]) == ["shared-creds", "ips-p1"]
    # A pool without its own Secret does not gain a reference on sync.
    assert referenced_secrets(synced_pool(_pool(), template)["spec"]["template"]) == ["shared-creds"]


def test_stored_overrides_tolerate_missing_and_broken_annotations():
    assert stored_overrides(_pool(image="x:1", multiplier=1.5)) == ("x:1", 1.5)
    broken = _pool()
    broken["metadata"]["annotations"][v.ANN_OVERRIDES] = "{not json"
    assert stored_overrides(broken) == (None, None)
    broken["metadata"]["annotations"][v.ANN_OVERRIDES] = '["x"]'
    assert stored_overrides(broken) == (None, None)
    assert stored_overrides({"metadata": {}}) == (None, None)


def test_template_name_comes_from_the_spec_or_the_annotation():
    assert template_name_of(_pool()) == "py"
    inline = {"metadata": {"annotations": {}}, "spec": {}}
    assert template_name_of(inline) == ""
    inline["metadata"]["annotations"][v.ANN_TEMPLATE_NAME] = "old"
    assert template_name_of(inline) == "old"


def test_pull_secret_is_a_dockerconfigjson_owned_by_the_pool():
    creds = ImagePullSecret.model_validate({"registries": [
        {"registry": "registry.example.com", "username": "bot", "password": "s3cret"},
        {"registry": "ghcr.io", "username": "me", "password": "tok"}]})
    secret = pull_secret(_pool(), creds.registries)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["name"] == "ips-p1" and secret["metadata"]["namespace"] == "ns"
    assert secret["metadata"]["labels"] == {v.LABEL_TYPE: v.TYPE_IMAGE_PULL_SECRET}
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (v.POOL_KIND, "p1", "uid-1")
    config = orjson.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example.com"] == {
        "username": "bot", "password": "s3cret", "auth": base64.b64encode(b"bot:s3cret").decode()}
    assert set(config["auths"]) == {"registry.example.com", "ghcr.io"}


def test_credentials_never_show_in_reprs():
    creds = ImagePullSecret.model_validate({"registries": [
        {"registry": "r.example", "username": "bot", "password": "hunter2-secret"}]})
    assert "hunter2-secret" not in repr(creds) and "hunter2-secret" not in str(creds.model_dump())


def test_with_pull_secret_adds_the_reference_once():
    template = {"spec": {"containers": [{"name": "main", "image": WORK_IMAGE}]}}
    once = with_pull_secret(template, "ips-p")
    assert referenced_secrets(with_pull_secret(once, "ips-p")) == ["ips-p"]
    assert "imagePullSecrets" not in template["spec"]
    assert referenced_secrets(with_pull_secret({}, "ips-p")) == ["ips-p"]
