"""A sandbox that cannot be made usable: the caller gets the reason, and the broken pod leaves the pool.

Post-start hooks (e.g. envd ``/init``) that keep failing mean the pod cannot serve a sandbox; returning
it to idle would hand the same broken pod to the next caller (field-lessons §3.4). It is replaced.
"""

from __future__ import annotations

import time

import requests
from native_stack import NativeStack, V

TIMEOUT = 30


def _pod_names(stack: NativeStack, pool: str) -> set[str]:
    assert stack.operator is not None
    return {p["metadata"]["name"] for p in stack.operator.pods.by_index("pool", f"default/{pool}")}


def test_failing_post_start_hook_is_reported_and_its_pod_replaced(stack: NativeStack):
    stack.create_pool("flaky", 2)
    before = _pod_names(stack, "flaky")
    headers = {"X-API-Key": stack.tenant_key("hooky", "red"), **V}
    r = requests.post(f"{stack.url}/v1/sandboxes", headers=headers, timeout=TIMEOUT, json={
        "poolName": "flaky", "wait": True, "postStartHooks": [{"httpPost": {"port": 49983, "path": "/fail"}}]})
    assert r.status_code == 500, r.text
    body = r.json()
    assert body["errorCode"] == "SandboxStartFailed" and "post-start hooks failed" in body["error"]
    sid = body["detail"]["sandboxId"]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = _pod_names(stack, "flaky")
        if len(now) == 2 and len(now & before) == 1:
            break
        time.sleep(0.05)
    assert len(now) == 2 and len(now & before) == 1, f"the broken pod was replaced by a new one: {before} -> {now}"
    stack.wait_idle("flaky", 2)

    got = requests.get(f"{stack.url}/v1/sandboxes/{sid}", headers=headers, timeout=TIMEOUT).json()["sandbox"]
    assert got["status"] == "Failed" and got.get("failureReason") == "PostStartHookFailed"
    # Callers may not smuggle a pre-sealed body into a hook.
    r = requests.post(f"{stack.url}/v1/sandboxes", headers=headers, timeout=TIMEOUT, json={
        "poolName": "flaky", "postStartHooks": [{"httpPost": {"port": 49983, "sealedBody": "v1.AAAA"}}]})
    assert r.status_code == 400 and "sealedBody" in r.json()["error"]
