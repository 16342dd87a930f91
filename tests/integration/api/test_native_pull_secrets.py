"""Image-pull Secrets on pool create over a real operator (sim node) and the embedded API server.

The Secret is a dockerconfigjson owned by the pool, every pod of the pool references it, deleting the
pool deletes it, a failed Secret write leaves no pool, and the password is never shown.
"""

from __future__ import annotations

import base64
import time

import orjson
import pytest
import requests
from native_stack import NativeStack

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.kube.client import KubeError, pods_path

TIMEOUT = 30
PASSWORD = "pw-" + "7f3a9c" * 4
CREDS = {"registries": [{"registry": "registry.example.com", "username": "robot", "password": PASSWORD}]}
SECRETS = "/api/v1/namespaces/default/secrets"


def _secret(stack: NativeStack, name: str) -> dict | None:
    assert stack.kube is not None
    try:
        return stack.run(stack.kube.get(f"{SECRETS}/{name}"))
    except KubeError as exc:
        if exc.not_found:
            return None
        raise


def test_pull_secret_is_created_referenced_and_deleted_with_the_pool(stack: NativeStack,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    body = {**stack.pool_body("pulling", 2), "imagePullSecret": CREDS}
    r = requests.post(f"{stack.url}/v1/sandboxpools", json=body, headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    assert PASSWORD not in r.text
    stack.wait_idle("pulling", 2)

    secret = _secret(stack, "ips-pulling")
    assert secret is not None and secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"][v.LABEL_TYPE] == "image-pull-secret"
    assert stack.kube is not None
    pool = stack.run(stack.kube.get("/apis/agentsandbox.io/v1alpha1/namespaces/default/sandboxpools/pulling"))
    assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [pool["metadata"]["uid"]]
    config = orjson.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example.com"]["auth"] == base64.b64encode(f"robot:{PASSWORD}".encode()).decode()

    pods = stack.run(stack.kube.list(pods_path("default"), label_selector=v.pool_selector("pulling")))["items"]
    assert len(pods) == 2
    assert all(p["spec"]["imagePullSecrets"] == [{"name": "ips-pulling"}] for p in pods)

    got = requests.get(f"{stack.url}/v1/sandboxpools/pulling", headers=stack.admin(), timeout=TIMEOUT)
    assert got.status_code == 200 and PASSWORD not in got.text
    listed = requests.get(f"{stack.url}/v1/sandboxpools", headers=stack.admin(), timeout=TIMEOUT)
    assert PASSWORD not in listed.text

    assert requests.delete(f"{stack.url}/v1/sandboxpools/pulling", headers=stack.admin(),
                           timeout=TIMEOUT).status_code == 202
    deadline = time.monotonic() + 20
    while _secret(stack, "ips-pulling") is not None:
        assert time.monotonic() < deadline, "the pool's Secret outlived the pool"
        time.sleep(0.1)
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err


def test_failed_secret_write_leaves_no_pool(stack: NativeStack) -> None:
    assert stack.kube is not None
    squatter = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ips-clash"}, "data": {}}
    stack.run(stack.kube.create(SECRETS, squatter))
    body = {**stack.pool_body("clash", 1), "imagePullSecret": CREDS}
    r = requests.post(f"{stack.url}/v1/sandboxpools", json=body, headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 409, r.text
    assert "ips-clash" in r.json()["error"] and "not created" in r.json()["error"] and PASSWORD not in r.text
    deadline = time.monotonic() + 20
    while requests.get(f"{stack.url}/v1/sandboxpools/clash", headers=stack.admin(),
                       timeout=TIMEOUT).status_code != 404:
        assert time.monotonic() < deadline, "the pool survived its failed Secret"
        time.sleep(0.1)
    assert _secret(stack, "ips-clash")["data"] == {}, "somebody else's Secret is left alone"
    stack.run(stack.kube.delete(f"{SECRETS}/ips-clash"))


def test_bad_credentials_are_400_without_echo(stack: NativeStack) -> None:
    bad = {"registries": [{"registry": "r.example", "username": "", "password": PASSWORD}]}
    r = requests.post(f"{stack.url}/v1/sandboxpools", json={**stack.pool_body("badcreds", 1), "imagePullSecret": bad},
                      headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 400 and "imagePullSecret.registries.0.username" in r.text and PASSWORD not in r.text
    dup = {"registries": CREDS["registries"] * 2}
    r = requests.post(f"{stack.url}/v1/sandboxpools", json={**stack.pool_body("badcreds", 1), "imagePullSecret": dup},
                      headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 400 and "only once" in r.text
    assert requests.get(f"{stack.url}/v1/sandboxpools/badcreds", headers=stack.admin(),
                        timeout=TIMEOUT).status_code == 404
