"""Template sync of a pool over a real operator (sim node): preview writes nothing, sync changes the pool
(with its stored overrides) and new claims, never a running sandbox."""

from __future__ import annotations

import requests
import yaml
from native_stack import NativeStack

TIMEOUT = 30
IDLE = "registry.local/idle:1"


def _template_yaml(image: str, version: str) -> str:
    return yaml.safe_dump({"kind": "SandboxTemplate", "spec": {
        "version": version, "description": "sync test", "idleImage": IDLE,
        "template": {"spec": {"containers": [{"name": "main", "image": image,
                                              "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]}}}})


def _pool(stack: NativeStack, name: str) -> dict:
    r = requests.get(f"{stack.url}/v1/sandboxpools/{name}", headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["template"]


def _claim(stack: NativeStack, pool: str) -> dict:
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": pool, "wait": True}, headers=stack.admin(),
                      timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    return r.json()["sandbox"]


def test_sync_template_updates_the_pool_not_running_sandboxes(stack: NativeStack) -> None:
    admin, url = stack.admin(), stack.url
    r = requests.post(f"{url}/v1/admin/sandbox-templates", headers=admin, timeout=TIMEOUT,
                      json={"name": "sync-tpl", "crdYaml": _template_yaml("python:3.11", "1")})
    assert r.status_code == 201, r.text
    rv = r.json()["template"]["resourceVersion"]
    r = requests.post(f"{url}/v1/sandboxpools", headers=admin, timeout=TIMEOUT, json={
        "name": "synced", "templateName": "sync-tpl", "replicas": 2, "overrides": {"resourceMultiplier": 2}})
    assert r.status_code == 201, r.text
    stack.wait_idle("synced", 2)
    before = _claim(stack, "synced")
    assert before["containerImages"]["main"] == "python:3.11"

    r = requests.put(f"{url}/v1/admin/sandbox-templates/sync-tpl", headers=admin, timeout=TIMEOUT,
                     json={"name": "sync-tpl", "crdYaml": _template_yaml("python:3.12", "2"), "resourceVersion": rv})
    assert r.status_code == 200, r.text

    # Preview: the spec a sync would write, overrides re-applied; the pool itself is unchanged.
    r = requests.post(f"{url}/v1/sandboxpools/synced/sync-template/preview", headers=admin, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "2"
    main = yaml.safe_load(r.json()["specYaml"])["template"]["spec"]["containers"][0]
    assert main["image"] == "python:3.12" and main["resources"]["requests"] == {"cpu": "1", "memory": "512Mi"}
    pool = _pool(stack, "synced")
    assert pool["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.11"
    assert pool["templateVersion"] == "1"

    r = requests.post(f"{url}/v1/sandboxpools/synced/sync-template", headers=admin, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    synced = r.json()["template"]
    main = synced["spec"]["template"]["spec"]["containers"][0]
    assert main["image"] == "python:3.12" and main["resources"]["requests"]["cpu"] == "1"
    assert synced["templateVersion"] == "2" and synced["spec"]["replicas"] == 2
    assert synced["overrides"] == {"resourceMultiplier": 2}

    # The running sandbox keeps its image; the next claim gets the synced one.
    still = requests.get(f"{url}/v1/sandboxes/{before['sandboxId']}", headers=admin, timeout=TIMEOUT).json()
    assert still["sandbox"]["status"] == "Running" and still["sandbox"]["containerImages"]["main"] == "python:3.11"
    assert _claim(stack, "synced")["containerImages"]["main"] == "python:3.12"


def test_sync_refuses_pools_without_a_template(stack: NativeStack) -> None:
    stack.create_pool("inline-sync", 0)
    for path in ("sync-template", "sync-template/preview"):
        r = requests.post(f"{stack.url}/v1/sandboxpools/inline-sync/{path}", headers=stack.admin(),
                          timeout=TIMEOUT)
        assert r.status_code == 400 and "not created from a template" in r.json()["error"], r.text
        r = requests.post(f"{stack.url}/v1/sandboxpools/no-such-pool/{path}", headers=stack.admin(),
                          timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["error"] == "sandbox pool 'no-such-pool' not found"
