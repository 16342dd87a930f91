"""Sandbox logs over a real operator (sim node, whose containers print nothing): native and E2B shapes."""

from __future__ import annotations

import time

import requests
from native_stack import NativeStack, V

TIMEOUT = 30


def test_logs_routes_answer_documented_shapes(stack: NativeStack) -> None:
    stack.create_pool("logs", 1)
    key = stack.tenant_key("logs-u", "logs-t")
    native = {"X-API-Key": key, **V}
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": "logs", "wait": True}, headers=native,
                      timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    sandbox = r.json()["sandbox"]
    sid = sandbox["sandboxId"]
    try:
        r = requests.get(f"{stack.url}/v1/sandboxes/{sid}/logs", params={"lines": 10}, headers=native,
                         timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sandboxId"] == sid and body["podName"] == sandbox["podName"]
        assert body["source"] == "live" and body["entries"] == [] and body["truncated"] is False
        assert body["capturedAt"]
        bad = requests.get(f"{stack.url}/v1/sandboxes/{sid}/logs", params={"container": "nope"},
                           headers=native, timeout=TIMEOUT)
        assert bad.status_code == 400 and "container 'nope'" in bad.json()["error"]
        bad = requests.get(f"{stack.url}/v1/sandboxes/{sid}/logs", params={"source": "jupyter"},
                           headers=native, timeout=TIMEOUT)
        assert bad.status_code == 400 and "only 'stdout'" in bad.json()["error"]
        other = {"X-API-Key": stack.tenant_key("other-u", "other-t"), **V}
        assert requests.get(f"{stack.url}/v1/sandboxes/{sid}/logs", headers=other,
                            timeout=TIMEOUT).status_code == 404

        e2b = {"X-API-KEY": "e2b_" + key[4:]}
        r = requests.get(f"{stack.e2b_url}/sandboxes/{sid}/logs", params={"limit": 5}, headers=e2b,
                         timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        assert r.json() == {"logs": [], "logEntries": []}
        r = requests.get(f"{stack.e2b_url}/v2/sandboxes/{sid}/logs", params={"direction": "backward"},
                         headers=e2b, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json() == {"logs": []}
        r = requests.get(f"{stack.e2b_url}/v2/sandboxes/{sid}/logs", params={"direction": "sideways"},
                         headers=e2b, timeout=TIMEOUT)
        assert r.status_code == 400
    finally:
        requests.delete(f"{stack.url}/v1/sandboxes/{sid}", headers=native, timeout=TIMEOUT)
    deadline = time.monotonic() + 15
    while requests.get(f"{stack.url}/v1/sandboxes/{sid}/logs", headers=native, timeout=TIMEOUT).status_code != 404:
        assert time.monotonic() < deadline, "logs still served after the sandbox ended"
        time.sleep(0.1)
