"""Native sandbox, pool, template and statistics routes over a real operator (sim node)."""

from __future__ import annotations

import requests
from native_stack import NativeStack, V

TIMEOUT = 30


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key, **V}


def test_pool_crud_and_scale(stack: NativeStack):
    stack.create_pool("crud", 2)
    got = requests.get(f"{stack.url}/v1/sandboxpools/crud", headers=stack.admin(), timeout=TIMEOUT).json()
    pool = got["template"]
    assert pool["name"] == "crud" and pool["spec"]["replicas"] == 2 and pool["status"]["idle"] == 2
    r = requests.post(f"{stack.url}/v1/sandboxpools", json=stack.pool_body("crud", 1), headers=stack.admin(),
                      timeout=TIMEOUT)
    assert r.status_code == 409, r.text
    r = requests.put(f"{stack.url}/v1/sandboxpools/crud", json={"replicas": 4}, headers=stack.admin(),
                     timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["template"]["spec"]["replicas"] == 4
    stack.wait_idle("crud", 4)
    names = [p["name"] for p in requests.get(f"{stack.url}/v1/sandboxpools", headers=stack.admin(),
                                             timeout=TIMEOUT).json()["items"]]
    assert "crud" in names
    stats = requests.get(f"{stack.url}/v1/admin/statistics/sandboxpools", headers=stack.admin(),
                         timeout=TIMEOUT).json()["statistics"]
    assert stats["totalReplicas"] >= 4 and stats["byNamespace"]["default"]["pools"] >= 1
    r = requests.delete(f"{stack.url}/v1/sandboxpools/crud", headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 202 and r.json()["status"] == "Terminating"
    r = requests.put(f"{stack.url}/v1/sandboxpools/nope", json={"replicas": 1}, headers=stack.admin(),
                     timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["error"] == "sandbox pool 'nope' not found"


def test_bad_pool_and_sandbox_requests_are_400(stack: NativeStack):
    body = stack.pool_body("same-image", 1)
    body["spec"]["idleImage"] = body["spec"]["template"]["spec"]["containers"][0]["image"]
    r = requests.post(f"{stack.url}/v1/sandboxpools", json=body, headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 400 and "idleImage must differ" in r.json()["error"]
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": "x", "idleTimeout": "soon"},
                      headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "idleTimeout"
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": "no-such-pool"}, headers=stack.admin(),
                      timeout=TIMEOUT)
    assert r.status_code == 404 and "availablePools" in r.json()["detail"]


def test_sandbox_lifecycle_and_tenant_isolation(stack: NativeStack):
    stack.create_pool("shared", 3)
    alice, bob = _h(stack.tenant_key("alice-n", "red")), _h(stack.tenant_key("bob-n", "blue"))
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": "shared", "wait": True,
                                                         "metadata": {"task": "t1"}, "idleTimeout": "10m"},
                      headers=alice, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    sandbox = r.json()["sandbox"]
    sid = sandbox["sandboxId"]
    assert sandbox["status"] == "Running" and sandbox["user"] == "alice-n" and sandbox["team"] == "red"
    assert sandbox["metadata"] == {"task": "t1"} and sandbox["containerImages"]["main"] == "python:3.11"

    got = requests.get(f"{stack.url}/v1/sandboxes/{sid}", headers=alice, timeout=TIMEOUT)
    assert got.status_code == 200 and got.json()["sandbox"]["sandboxId"] == sid
    listed = requests.get(f"{stack.url}/v1/sandboxes?status=Running", headers=alice, timeout=TIMEOUT).json()
    assert [s["sandboxId"] for s in listed["items"]] == [sid] and listed["total"] == 1

    # Bob shares the namespace but sees, kills and terminals nothing of Alice's.
    assert requests.get(f"{stack.url}/v1/sandboxes/{sid}", headers=bob, timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{stack.url}/v1/sandboxes", headers=bob, timeout=TIMEOUT).json()["total"] == 0
    assert requests.delete(f"{stack.url}/v1/sandboxes/{sid}", headers=bob, timeout=TIMEOUT).status_code == 404
    assert requests.put(f"{stack.url}/v1/sandboxes/{sid}/timeout", json={"timeout": "0"}, headers=bob,
                        timeout=TIMEOUT).status_code == 404
    assert requests.post(f"{stack.url}/v1/sandboxes/{sid}/exec-token", headers=bob,
                         timeout=TIMEOUT).status_code == 404
    stats = requests.get(f"{stack.url}/v1/statistics/sandboxes", headers=bob, timeout=TIMEOUT).json()
    assert stats["statistics"]["total"] == 0
    stats = requests.get(f"{stack.url}/v1/statistics/sandboxes", headers=alice, timeout=TIMEOUT).json()
    assert stats["statistics"]["byStatus"] == {"Running": 1}

    r = requests.put(f"{stack.url}/v1/sandboxes/{sid}/timeout", json={"timeout": "1h"}, headers=alice,
                     timeout=TIMEOUT)
    assert r.status_code == 204
    token = requests.post(f"{stack.url}/v1/sandboxes/{sid}/exec-token", headers=alice, timeout=TIMEOUT)
    assert token.status_code == 200 and len(token.json()["token"]) > 20

    r = requests.delete(f"{stack.url}/v1/sandboxes/{sid}", headers=alice, timeout=TIMEOUT)
    assert r.status_code == 202 and r.json()["sandboxId"] == sid and r.json()["status"] == "Stopping"
    stack.wait_idle("shared", 3)
    ended = requests.get(f"{stack.url}/v1/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).json()["sandbox"]
    assert ended["status"] == "Completed"
    assert requests.get(f"{stack.url}/v1/sandboxes/{sid}", headers=bob, timeout=TIMEOUT).status_code == 404
    # The admin sees every tenant's sandboxes.
    everything = requests.get(f"{stack.url}/v1/sandboxes?limit=1000", headers=stack.admin(), timeout=TIMEOUT)
    assert sid in [s["sandboxId"] for s in everything.json()["items"]]


def test_revoked_and_expired_keys_cannot_reach_sandboxes(stack: NativeStack):
    r = requests.post(f"{stack.url}/v1/admin/api-keys", json={"user": "gone", "team": "red"},
                      headers=stack.admin(), timeout=TIMEOUT)
    key, key_id = r.json()["apiKey"], r.json()["keyId"]
    assert requests.get(f"{stack.url}/v1/sandboxes", headers=_h(key), timeout=TIMEOUT).status_code == 200
    requests.delete(f"{stack.url}/v1/admin/api-keys/{key_id}", headers=stack.admin(), timeout=TIMEOUT)
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": "shared"}, headers=_h(key), timeout=TIMEOUT)
    assert r.status_code == 401
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": "shared"}, headers=_h("asb_" + "1" * 40),
                      timeout=TIMEOUT)
    assert r.status_code == 401


def test_admin_template_writes_and_visibility(stack: NativeStack):
    for name, rules in (("open-tpl", None), ("red-only", [{"team": "red"}])):
        spec = {"idleImage": "registry.local/idle:1", "description": name,
                "template": "spec:\n  containers:\n  - name: main\n    image: python:3.11\n",
                "runtimes": [{"name": "shell", "port": 49983}]}
        if rules:
            spec["visibility"] = {"rules": rules}
        r = requests.post(f"{stack.url}/v1/admin/sandbox-templates", json={"name": name, "spec": spec},
                          headers=stack.admin(), timeout=TIMEOUT)
        assert r.status_code == 201, r.text
    r = requests.post(f"{stack.url}/v1/admin/sandbox-templates", json={"name": "open-tpl", "spec": {}},
                      headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 409
    red, blue = _h(stack.tenant_key("tpl-red", "red")), _h(stack.tenant_key("tpl-blue", "blue"))
    assert requests.post(f"{stack.url}/v1/admin/sandbox-templates", json={"name": "x", "spec": {}}, headers=red,
                         timeout=TIMEOUT).status_code == 403
    seen_red = {t["name"] for t in requests.get(f"{stack.url}/v1/sandbox-templates", headers=red,
                                                timeout=TIMEOUT).json()["items"]}
    seen_blue = {t["name"] for t in requests.get(f"{stack.url}/v1/sandbox-templates", headers=blue,
                                                 timeout=TIMEOUT).json()["items"]}
    assert {"open-tpl", "red-only"} <= seen_red and "red-only" not in seen_blue and "open-tpl" in seen_blue
    one = requests.get(f"{stack.url}/v1/sandbox-templates/open-tpl", headers=blue, timeout=TIMEOUT).json()
    assert one["template"]["name"] == "open-tpl" and one["template"]["description"] == "open-tpl"
    assert requests.get(f"{stack.url}/v1/sandbox-templates/red-only", headers=blue,
                        timeout=TIMEOUT).status_code == 404

    rv = one["template"]["resourceVersion"]
    crd = "kind: SandboxTemplate\nspec:\n  description: updated\n  idleImage: registry.local/idle:1\n" \
          "  template:\n    spec:\n      containers:\n      - name: main\n        image: python:3.12\n"
    r = requests.put(f"{stack.url}/v1/admin/sandbox-templates/open-tpl", headers=stack.admin(), timeout=TIMEOUT,
                     json={"name": "open-tpl", "crdYaml": crd, "resourceVersion": rv})
    assert r.status_code == 200 and r.json()["template"]["description"] == "updated"
    stale = requests.put(f"{stack.url}/v1/admin/sandbox-templates/open-tpl", headers=stack.admin(),
                         timeout=TIMEOUT, json={"name": "open-tpl", "crdYaml": crd, "resourceVersion": rv})
    assert stale.status_code == 409

    r = requests.post(f"{stack.url}/v1/sandboxpools", json={"name": "from-tpl", "templateName": "open-tpl",
                                                            "replicas": 1}, headers=red, timeout=TIMEOUT)
    assert r.status_code == 201 and r.json()["template"]["team"] == "red"
    assert r.json()["template"]["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.12"
    namespaces = requests.get(f"{stack.url}/v1/admin/namespaces", headers=stack.admin(), timeout=TIMEOUT).json()
    assert "default" in namespaces["items"]
    r = requests.delete(f"{stack.url}/v1/admin/sandbox-templates/red-only", headers=stack.admin(), timeout=TIMEOUT)
    assert r.status_code == 202 and r.json() == {"name": "red-only", "status": "Deleted"}
    assert requests.get(f"{stack.url}/v1/sandbox-templates/red-only", headers=red,
                        timeout=TIMEOUT).status_code == 404
