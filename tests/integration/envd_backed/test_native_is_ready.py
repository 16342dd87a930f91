"""``GET /v1/sandboxes/{id}/is_ready`` over a real operator (sim node) whose sandboxes' envd is a real envd.

Ready means usable: the pod runs the target image and envd answers its health check. Another
tenant's or an unknown id is 404; a sandbox that exists but is not usable is 503 with the reason.
"""

from __future__ import annotations

import requests
from envd_harness import Envd, stop
from native_stack import NativeStack, V

TIMEOUT = 30


def _is_ready(stack: NativeStack, sid: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{stack.url}/v1/sandboxes/{sid}/is_ready", headers=headers, timeout=TIMEOUT)


def test_is_ready_reports_pod_and_envd(stack: NativeStack, pool: str, envd: Envd) -> None:
    alice = {"X-API-Key": stack.tenant_key("ready-a", "red"), **V}
    bob = {"X-API-Key": stack.tenant_key("ready-b", "blue"), **V}
    r = requests.post(f"{stack.url}/v1/sandboxes", json={"poolName": pool, "wait": True}, headers=alice,
                      timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    sid = r.json()["sandbox"]["sandboxId"]

    r = _is_ready(stack, sid, alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sandboxId"] == sid and body["ready"] is True
    assert body["endpoints"]["pod"]["ready"] and body["endpoints"]["envd"]["ready"]
    assert stack.images[1] in body["endpoints"]["pod"]["message"]

    # Tenant isolation and unknown ids: not found, exactly like GET /v1/sandboxes/{id}.
    assert _is_ready(stack, sid, bob).status_code == 404
    unknown = _is_ready(stack, "it-01jzzzzzzzzzzzzzzzzzzzzzzz", alice)
    assert unknown.status_code == 404 and "error" in unknown.json()

    # envd gone: the sandbox is Running but not usable.
    stop(envd.proc)
    r = _is_ready(stack, sid, alice)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["endpoints"]["pod"]["ready"] is True
    assert body["endpoints"]["envd"]["ready"] is False and "unreachable" in body["endpoints"]["envd"]["message"]

    # Released: still known to its owner (GET answers Completed), never ready again.
    assert requests.delete(f"{stack.url}/v1/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).status_code == 202
    stack.wait_idle(pool, 2)
    r = _is_ready(stack, sid, alice)
    assert r.status_code == 503, r.text
    assert r.json()["ready"] is False and r.json()["endpoints"]["pod"]["message"] == "sandbox is Completed"
    assert r.json()["endpoints"]["envd"]["ready"] is False
