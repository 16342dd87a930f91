"""Cross-cluster API forwarding (behaviour.md §20.2) between two real stacks.

Two embedded control planes with different cluster ids (``c1``, ``c2``), each with a real operator
serving the native and the E2B API. The ConfigMap ``agentsandbox-clusters`` written into ``c1``
points at ``c2``'s URLs; the unmodified E2B SDK and plain HTTP clients talk only to ``c1``. A third
"cluster" ``c3`` is a recording HTTP server, to see exactly what a forwarded request looks like.
The API key is copied from ``c1`` to ``c2`` as the hub's key sync would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from native_stack import NativeStack, V
from two_clusters import copy_keys, gateway_of, start_pair, write_config, write_raw_config

from agent_sandbox.common.ids import new_sandbox_id

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envd"))

from envd_harness import sdk_python

pytestmark = pytest.mark.timeout(240)
TIMEOUT = 30
DRIVER = Path(__file__).resolve().parent / "e2b_sdk_driver.py"


class Recorder:
    """Stands in for a foreign cluster's gateway: records each request, answers 418 with a marker."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"method": request.method, "path": request.raw_path, "headers": dict(request.headers),
                              "body": await request.read()})
        response = web.StreamResponse(status=418, headers={"X-Upstream": "recorder", "Content-Type": "text/plain"})
        await response.prepare(request)
        for part in (b"streamed ", b"from ", b"c3"):
            await response.write(part)
        await response.write_eof()
        return response

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner


def _config(two: NativeStack, recorder: Recorder, extra: list[dict[str, Any]] | None = None) -> list[dict]:
    return [
        {"id": "c1", "name": "one"},
        gateway_of(two, "two", headers={"X-Gateway-Token": "gw-two"}),
        {"id": "c3", "name": "recorder", "gateway": {
            "nativeURL": recorder.url + "/native-prefix", "e2bURL": recorder.url + "/e2b-prefix",
            "headers": {"X-Gateway-Token": "gw-three", "X-Shared": "base"}, "nativeHeaders": {"X-Shared": "native"}}},
        *(extra or []),
    ]


def _clusters(stack: NativeStack, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = requests.get(f"{stack.url}/v1/clusters", headers=headers, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["clusters"]


def _wait_clusters(stack: NativeStack, headers: dict[str, str], ids: list[str], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if [c["id"] for c in _clusters(stack, headers)] == ids:
            return
        time.sleep(0.1)
    raise AssertionError(f"/v1/clusters never listed {ids}: {_clusters(stack, headers)}")


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    one, two = start_pair()
    recorder = Recorder()
    try:
        two.create_pool("xpool", 3)
        key = one.tenant_key("cross", "red")
        copy_keys(one, two)
        runner = one.run(recorder.start())
        write_config(one, _config(two, recorder))
        tenant = {"X-API-Key": key, **V}
        _wait_clusters(one, tenant, ["c1", "c2", "c3"])
        yield {"one": one, "two": two, "recorder": recorder, "key": key, "tenant": tenant}
        one.run(runner.cleanup())
    finally:
        one.stop()
        two.stop()


def test_clusters_are_listed_from_the_config_map(world):
    listed = _clusters(world["one"], world["tenant"])
    assert listed == [{"id": "c1", "name": "one", "local": True}, {"id": "c2", "name": "two", "local": False},
                      {"id": "c3", "name": "recorder", "local": False}]
    # Cluster 2 has no configuration: it knows only itself.
    assert _clusters(world["two"], world["tenant"]) == [{"id": "c2", "name": "c2", "local": True}]


def test_e2b_sdk_creates_gets_and_kills_in_the_other_cluster(world):
    one, two = world["one"], world["two"]
    env = {k: val for k, val in os.environ.items() if not k.startswith("E2B_")}
    env.update(E2B_API_KEY="e2b_" + world["key"][4:], E2B_API_URL=one.e2b_url, E2B_SANDBOX_URL=one.e2b_url)
    result = subprocess.run([str(sdk_python("2.63.0")), str(DRIVER), "cross", "c2::xpool"], env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, f"driver failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    seen = json.loads(lines[-1])
    sid = seen["id"]
    assert sid.startswith("c2-"), "the sandbox id names the cluster it lives in"
    assert seen["template"] == "xpool" and seen["via"] == "forwarding", "get_info through c1 read c2's sandbox"
    assert seen["kill"] is True and seen["kill_again"] is False
    assert seen["get_info_after_kill"] in ("SandboxNotFoundException", "NotFoundException")
    assert seen["unknown_cluster"] == "SandboxException"
    assert one.operator is not None and two.operator is not None
    deadline = time.monotonic() + 10
    while two.operator.lifecycle.history.find(sid) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert two.operator.lifecycle.history.find(sid) is not None, "the sandbox lived (and ended) in cluster 2"
    assert one.operator.lifecycle.history.find(sid) is None and not one.operator.pods.by_index("sandbox-id", sid)


def test_native_create_get_delete_through_the_other_cluster(world):
    one, tenant = world["one"], world["tenant"]
    r = requests.post(f"{one.url}/v1/sandboxes", json={"poolName": "c2::xpool", "wait": True}, headers=tenant,
                      timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    sid = r.json()["sandbox"]["sandboxId"]
    assert sid.startswith("c2-") and r.json()["sandbox"]["poolName"] == "xpool"
    got = requests.get(f"{one.url}/v1/sandboxes/{sid}", headers=tenant, timeout=TIMEOUT)
    assert got.status_code == 200 and got.json()["sandbox"]["status"] == "Running"
    gone = requests.delete(f"{one.url}/v1/sandboxes/{sid}", headers=tenant, timeout=TIMEOUT)
    assert gone.status_code < 300, gone.text
    after = requests.get(f"{one.url}/v1/sandboxes/{sid}", headers=tenant, timeout=TIMEOUT)
    assert after.status_code == 200 and after.json()["sandbox"]["status"] != "Running"
    # Without valid credentials nothing is forwarded.
    assert requests.get(f"{one.url}/v1/sandboxes/{sid}", headers={"X-API-Key": "asb_" + "0" * 40, **V},
                        timeout=TIMEOUT).status_code == 401


def test_unknown_cluster_is_502_with_a_clear_message(world):
    one, tenant = world["one"], world["tenant"]
    e2b = {"X-API-Key": "e2b_" + world["key"][4:]}
    stranger = new_sandbox_id("zz")
    cases = [
        ("POST", f"{one.url}/v1/sandboxes", {"poolName": "zz::xpool"}, tenant),
        ("GET", f"{one.url}/v1/sandboxes/{stranger}", None, tenant),
        ("POST", f"{one.e2b_url}/v2/sandboxes", {"templateID": "zz::xpool"}, e2b),
        ("DELETE", f"{one.e2b_url}/sandboxes/{stranger}", None, e2b),
    ]
    for method, url, body, headers in cases:
        r = requests.request(method, url, json=body, headers=headers, timeout=TIMEOUT)
        assert r.status_code == 502, (url, r.text)
        assert "unknown cluster 'zz'" in r.text and "agentsandbox-clusters" in r.text
    r = requests.delete(f"{one.e2b_url}/sandboxes/{stranger}", headers=e2b, timeout=TIMEOUT)
    assert r.json()["code"] == 502 and r.headers.get("Should-Retry") == "false"


def test_forwarding_is_verbatim_with_gateway_headers_and_streams_back(world):
    one, recorder, tenant = world["one"], world["recorder"], world["tenant"]
    sid = new_sandbox_id("c3")
    recorder.requests.clear()
    r = requests.get(f"{one.url}/v1/sandboxes/{sid}/logs?lines=5&container=main",
                     headers={**tenant, "X-Not-Copied": "1"}, timeout=TIMEOUT)
    assert (r.status_code, r.headers["X-Upstream"], r.text) == (418, "recorder", "streamed from c3")
    body = b'{"templateID": "c3::base//img:1", "envVars": {"A": "1"}}'
    r = requests.post(f"{one.e2b_url}/v2/sandboxes?x=%2F", data=body, timeout=TIMEOUT,
                      headers={"X-API-Key": "e2b_" + world["key"][4:], "Content-Type": "application/json",
                               "Idempotency-Key": "abc"})
    assert r.status_code == 418 and r.text == "streamed from c3"
    native, e2b = recorder.requests
    assert native["method"] == "GET"
    assert native["path"] == f"/native-prefix/v1/sandboxes/{sid}/logs?lines=5&container=main"
    assert native["headers"]["X-API-Key"] == world["key"] and native["headers"]["X-Source-Cluster"] == "c1"
    assert native["headers"]["x-gateway-token"] == "gw-three" and native["headers"]["x-shared"] == "native"
    assert "X-Not-Copied" not in native["headers"]
    assert e2b["method"] == "POST" and e2b["path"] == "/e2b-prefix/v2/sandboxes?x=%2F" and e2b["body"] == body
    assert e2b["headers"]["x-shared"] == "base" and e2b["headers"]["Idempotency-Key"] == "abc"
    # A request that was already forwarded once is never forwarded again (no loops).
    r = requests.get(f"{one.url}/v1/sandboxes/{sid}", headers={**tenant, "X-Source-Cluster": "c9"}, timeout=TIMEOUT)
    assert r.status_code == 502 and "already forwarded" in r.text and len(recorder.requests) == 2


def test_config_changes_arrive_through_dropped_watches_and_bad_documents_are_ignored(world):
    one, two, recorder, tenant = world["one"], world["two"], world["recorder"], world["tenant"]
    assert one.cluster is not None
    one.run(one.cluster.set_faults({"watch_drop_after_events": 1}))
    try:
        write_config(one, _config(two, recorder, [{"id": "c4", "name": "four"}]))
        _wait_clusters(one, tenant, ["c1", "c2", "c3", "c4"])
        write_raw_config(one, "clusters: [unclosed")
        time.sleep(1.0)
        assert [c["id"] for c in _clusters(one, tenant)] == ["c1", "c2", "c3", "c4"], "last valid config kept"
    finally:
        one.run(one.cluster.set_faults({}))
        write_config(one, _config(two, recorder))
    _wait_clusters(one, tenant, ["c1", "c2", "c3"])
