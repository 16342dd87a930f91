"""The E2B-compatible API with plain HTTP clients, over a real operator and scheduler (sim node)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import requests
from native_stack import NativeStack
from packaging.version import Version
from prometheus_client import REGISTRY

TIMEOUT = 30


@pytest.fixture(scope="module")
def keys(stack: NativeStack) -> dict[str, dict[str, str]]:
    stack.create_pool("base", 6)
    stack.create_pool("empty", 0)
    return {name: {"X-API-KEY": "e2b_" + stack.tenant_key(f"{name}-e2b", team)[4:]}
            for name, team in (("alice", "red"), ("bob", "blue"))}


def _create(stack: NativeStack, headers: dict[str, str], body: dict | None = None, path: str = "/v2/sandboxes",
            **extra: str) -> requests.Response:
    body = {"templateID": "base", "metadata": {}, "envVars": {}, **(body or {})}
    return requests.post(stack.e2b_url + path, json=body, headers={**headers, **extra}, timeout=TIMEOUT)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_create_answers_201_with_the_sandbox_shape(stack: NativeStack, keys):
    for path in ("/v2/sandboxes", "/sandboxes"):
        r = _create(stack, keys["alice"], {"envVars": {"A": "1"}, "timeout": 300, "secure": True,
                                           "autoPauseMemory": True}, path=path)
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) >= {"templateID", "sandboxID", "clientID", "envdVersion"}
        assert body["templateID"] == "base" and body["sandboxID"].startswith("it-")
        assert Version(body["envdVersion"]) >= Version("0.1.5")
        assert body["domain"] is None and body["trafficAccessToken"] is None
        assert all(v is not None for k, v in body.items() if k not in ("domain", "trafficAccessToken"))
        assert requests.delete(f"{stack.e2b_url}/sandboxes/{body['sandboxID']}", headers=keys["alice"],
                               timeout=TIMEOUT).status_code == 204
    # The /init hook carried the env vars to the sandbox's envd (through the data-plane gateway).
    init_calls = [body for path, body in stack.gateway.calls if path.endswith("/49983/init")]
    assert {"envVars": {"A": "1"}, "defaultUser": "user"} in init_calls


def test_get_timeout_connect_delete(stack: NativeStack, keys):
    alice, bob = keys["alice"], keys["bob"]
    sid = _create(stack, alice, {"metadata": {"job": "x"}, "timeout": 60}).json()["sandboxID"]
    detail = requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).json()
    assert detail["state"] == "running" and detail["metadata"]["job"] == "x"
    assert (detail["cpuCount"], detail["memoryMB"], detail["diskSizeMB"]) == (2, 1024, 0)
    end = _iso(detail["endAt"])
    assert 50 < (end - datetime.now(UTC)).total_seconds() <= 61
    time.sleep(0.3)
    again = requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).json()
    assert again["endAt"] == detail["endAt"], "endAt is the real deadline; it must not drift between reads"

    assert requests.post(f"{stack.e2b_url}/sandboxes/{sid}/timeout", json={"timeout": 600}, headers=alice,
                         timeout=TIMEOUT).status_code == 204
    end = _iso(requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).json()["endAt"])
    assert 590 < (end - datetime.now(UTC)).total_seconds() <= 601
    # connect only extends: a shorter timeout leaves the deadline alone, a longer one moves it.
    for path in (f"/sandboxes/{sid}/connect", f"/v2/sandboxes/{sid}/connect"):
        r = requests.post(stack.e2b_url + path, json={"timeout": 30}, headers=alice, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["sandboxID"] == sid
    same = _iso(requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).json()["endAt"])
    assert same == end
    requests.post(f"{stack.e2b_url}/v2/sandboxes/{sid}/connect", json={"timeout": 3600}, headers=alice,
                  timeout=TIMEOUT)
    later = _iso(requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).json()["endAt"])
    assert (later - datetime.now(UTC)).total_seconds() > 3500
    assert requests.post(f"{stack.e2b_url}/sandboxes/{sid}/refreshes", json={"duration": 120}, headers=alice,
                         timeout=TIMEOUT).status_code == 204

    # Another tenant can neither see nor kill it.
    assert requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=bob, timeout=TIMEOUT).status_code == 404
    assert requests.delete(f"{stack.e2b_url}/sandboxes/{sid}", headers=bob, timeout=TIMEOUT).status_code == 404

    assert requests.delete(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).status_code == 204
    gone = requests.delete(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT)
    assert gone.status_code == 404 and gone.json() == {"code": 404, "message": f"sandbox {sid} not found"}
    assert requests.get(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT).status_code == 404
    assert requests.post(f"{stack.e2b_url}/sandboxes/{sid}/timeout", json={"timeout": 5}, headers=alice,
                         timeout=TIMEOUT).status_code == 404
    listed = requests.get(f"{stack.e2b_url}/v2/sandboxes", headers=alice, timeout=TIMEOUT).json()
    assert sid not in [s["sandboxID"] for s in listed], "killed sandboxes are never listed"


def test_list_filters_order_and_paging(stack: NativeStack, keys):
    alice = keys["alice"]
    ids = [_create(stack, alice, {"metadata": {"suite": "paging", "n": str(i)}}).json()["sandboxID"]
           for i in range(3)]
    try:
        query = quote("suite=paging", safe="")
        everything = requests.get(f"{stack.e2b_url}/v2/sandboxes?metadata={query}", headers=alice,
                                  timeout=TIMEOUT)
        assert sorted(s["sandboxID"] for s in everything.json()) == sorted(ids)
        assert "x-next-token" not in everything.headers
        one = requests.get(f"{stack.e2b_url}/v2/sandboxes?metadata={quote('suite=paging&n=1', safe='')}",
                           headers=alice, timeout=TIMEOUT).json()
        assert [s["sandboxID"] for s in one] == [ids[1]]
        assert requests.get(f"{stack.e2b_url}/v2/sandboxes?state=paused", headers=alice,
                            timeout=TIMEOUT).json() == []
        seen, token = [], None
        while True:
            url = f"{stack.e2b_url}/v2/sandboxes?metadata={query}&limit=2&order=asc"
            r = requests.get(url + (f"&nextToken={token}" if token else ""), headers=alice, timeout=TIMEOUT)
            seen += [s["sandboxID"] for s in r.json()]
            token = r.headers.get("x-next-token")
            if not token:
                break
        assert seen == ids, "ascending start order across pages, each sandbox once"
        v1 = requests.get(f"{stack.e2b_url}/sandboxes?metadata={query}", headers=alice, timeout=TIMEOUT).json()
        assert sorted(s["sandboxID"] for s in v1) == sorted(ids)
        assert requests.get(f"{stack.e2b_url}/v2/sandboxes", headers=keys["bob"], timeout=TIMEOUT).json() == []
    finally:
        for sid in ids:
            requests.delete(f"{stack.e2b_url}/sandboxes/{sid}", headers=alice, timeout=TIMEOUT)


def test_idempotent_create_claims_one_pod_for_concurrent_duplicates(stack: NativeStack, keys):
    assert stack.operator is not None
    stack.wait_idle("base", 6)  # earlier tests' sandboxes are back in the pool
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _create(stack, keys["alice"], {"metadata": {"k": "v"}},
                                                  **{"Idempotency-Key": "job-42"}), range(8)))
    assert {r.status_code for r in answers} == {201}
    ids = {r.json()["sandboxID"] for r in answers}
    assert len(ids) == 1
    time.sleep(0.3)
    counts = stack.operator.pool_service.counts("default", "base")
    assert (counts["running"], counts["idle"]) == (1, 5), "one pod claimed, however many duplicates arrived"
    other = _create(stack, keys["alice"], {"metadata": {"k": "other"}}, **{"Idempotency-Key": "job-42"})
    assert other.status_code == 409, "reusing a key for a different request is refused"
    requests.delete(f"{stack.e2b_url}/sandboxes/{ids.pop()}", headers=keys["alice"], timeout=TIMEOUT)


def test_templates(stack: NativeStack, keys):
    listed = requests.get(f"{stack.e2b_url}/templates", headers=keys["alice"], timeout=TIMEOUT).json()
    base = next(t for t in listed if t["templateID"] == "base")
    assert base["buildStatus"] == "ready" and base["public"] is True and base["cpuCount"] == 2
    one = requests.get(f"{stack.e2b_url}/templates/base", headers=keys["alice"], timeout=TIMEOUT)
    assert one.status_code == 200 and one.json()["templateID"] == "base"
    assert requests.get(f"{stack.e2b_url}/templates/none", headers=keys["alice"], timeout=TIMEOUT).status_code == 404


@pytest.mark.parametrize(("method", "path", "operation"), [
    ("POST", "/sandboxes/{sid}/pause", "pause"),
    ("POST", "/sandboxes/{sid}/snapshots", "create_snapshot"),
    ("POST", "/sandboxes/{sid}/fork", "fork"),
    ("GET", "/snapshots", "list_snapshots"),
    ("POST", "/v3/templates", "create_template_v3"),
    ("GET", "/volumes", "list_volumes"),
])
def test_unsupported_operations_are_501_naming_the_alternative(stack: NativeStack, keys, method, path, operation):
    before = REGISTRY.get_sample_value("agentsandbox_e2b_unsupported_total",
                                       {"operation": operation, "category": _category(operation)}) or 0
    r = requests.request(method, stack.e2b_url + path.format(sid="it-x"), headers=keys["alice"], timeout=TIMEOUT)
    assert r.status_code == 501 and r.headers["Should-Retry"] == "false"
    assert r.json()["code"] == 501 and ":" in r.json()["message"]
    after = REGISTRY.get_sample_value("agentsandbox_e2b_unsupported_total",
                                      {"operation": operation, "category": _category(operation)})
    assert after == before + 1


def _category(operation: str) -> str:
    from agent_sandbox.operator.e2b.unsupported import UNSUPPORTED

    return next(u.category for u in UNSUPPORTED if u.operation == operation)


@pytest.mark.parametrize(("body", "needle"), [
    ({"autoPause": True}, "autoPause"),
    ({"autoResume": {"enabled": True}}, "autoResume"),
    ({"volumeMounts": [{"name": "v", "path": "/data"}]}, "volumeMounts"),
    ({"mcp": {"x": {}}}, "mcp"),
    ({"iam": {"tokens": ["t"]}}, "iam.tokens"),
    ({"network": {"egressProxy": {"url": "http://p"}}}, "egressProxy"),
    ({"network": {"rules": [{"host": "*.example.com"}]}}, "wildcard"),
    ({"templateID": "Not A Pool"}, "pool name"),
    ({"templateID": "no-such-pool"}, "not found"),
    ({"timeout": -1}, "timeout"),
    ({"metadata": {"agentsandbox.io/secret": "x"}}, "reserved"),
])
def test_refused_create_options_are_400(stack: NativeStack, keys, body, needle):
    r = _create(stack, keys["alice"], body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400 and needle in r.json()["message"]


def test_errors_always_have_code_and_message(stack: NativeStack, keys):
    r = requests.post(f"{stack.e2b_url}/v2/sandboxes", data=b"{", headers={**keys["alice"],
                                                                            "Content-Type": "application/json"},
                      timeout=TIMEOUT)
    assert r.status_code == 400 and set(r.json()) == {"code", "message"}
    r = requests.get(f"{stack.e2b_url}/v2/sandboxes", timeout=TIMEOUT)
    assert r.status_code == 401 and r.json() == {"code": 401, "message": "missing api key"}
    r = requests.get(f"{stack.e2b_url}/v2/sandboxes", headers={"X-API-KEY": "e2b_" + "0" * 40}, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["code"] == 401
    r = requests.get(f"{stack.e2b_url}/nowhere", headers=keys["alice"], timeout=TIMEOUT)
    assert r.json() == {"code": 404, "message": "route not found"}
    assert requests.get(f"{stack.e2b_url}/health", timeout=TIMEOUT).status_code == 200
    r = requests.get(f"{stack.e2b_url}/v2/sandboxes?nextToken=garbage!", headers=keys["alice"], timeout=TIMEOUT)
    assert r.status_code == 400 and "nextToken" in r.json()["message"]


def test_no_idle_sandbox_is_429_with_retry_after(stack: NativeStack, keys):
    r = _create(stack, keys["alice"], {"templateID": "empty", "metadata": {"agentsandbox.io/startup-timeout": "1"}})
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["code"] == 429


def test_a_create_abandoned_by_its_client_claims_nothing(stack: NativeStack, keys):
    stack.create_pool("late", 0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{stack.e2b_url}/v2/sandboxes", headers=keys["alice"], timeout=0.5, json={
            "templateID": "late", "metadata": {"agentsandbox.io/startup-timeout": "10"}})
    time.sleep(0.3)
    r = requests.put(f"{stack.url}/v1/sandboxpools/late", json={"replicas": 1}, headers=stack.admin(),
                     timeout=TIMEOUT)
    assert r.status_code == 200
    stack.wait_idle("late", 1)
    time.sleep(0.5)
    assert stack.operator is not None
    counts = stack.operator.pool_service.counts("default", "late")
    assert (counts["idle"], counts["running"], counts["starting"]) == (1, 0, 0), counts
    listed = requests.get(f"{stack.e2b_url}/v2/sandboxes", headers=keys["alice"], timeout=TIMEOUT).json()
    assert all(s["templateID"] != "late" for s in listed)


def test_a_failing_start_surfaces_once_and_is_not_replaced_behind_the_callers_back(stack: NativeStack):
    carol = {"X-API-KEY": "e2b_" + stack.tenant_key("carol-e2b", "green")[4:]}
    stack.create_pool("pulls", 2)
    t0 = time.monotonic()
    r = _create(stack, carol, {"templateID": "pulls//bad/img:pullerror"})
    assert r.status_code == 500 and r.headers.get("Should-Retry") == "false", r.text
    assert set(r.json()) == {"code", "message"} and "ImagePull" in r.json()["message"], "the reason reaches the user"
    assert time.monotonic() - t0 < 15
    assert stack.operator is not None
    deadline = time.monotonic() + 10
    while True:
        claims = [rec for rec in stack.operator.sandboxes.list(limit=1000).items if rec.get("user") == "carol-e2b"]
        if (claims and claims[0]["status"] == "Failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [rec["status"] for rec in claims] == ["Failed"], f"one claim, not a silent retry on another pod: {claims}"
    # The pod only failed to pull the caller's image: it is healthy and serves the next create.
    stack.wait_idle("pulls", 2)
    ok = _create(stack, carol, {"templateID": "pulls"})
    assert ok.status_code == 201, ok.text
    requests.delete(f"{stack.e2b_url}/sandboxes/{ok.json()['sandboxID']}", headers=carol, timeout=TIMEOUT)


def test_list_filters_by_template_and_start_time(stack: NativeStack, keys):
    dave = {"X-API-KEY": "e2b_" + stack.tenant_key("dave-e2b", "red")[4:]}
    stack.create_pool("other", 1)
    first = _create(stack, dave, {"templateID": "base"}).json()["sandboxID"]
    time.sleep(0.05)
    middle = datetime.now(UTC)
    time.sleep(0.05)
    second = _create(stack, dave, {"templateID": "other"}).json()["sandboxID"]
    third = _create(stack, dave, {"templateID": "base"}).json()["sandboxID"]
    try:
        def ids(query: str) -> list[str]:
            r = requests.get(f"{stack.e2b_url}/v2/sandboxes?{query}", headers=dave, timeout=TIMEOUT)
            assert r.status_code == 200, r.text
            return [s["sandboxID"] for s in r.json()]

        assert ids("template=base&order=asc") == [first, third]
        assert ids("template=other") == [second]
        # Exactly what the SDK sends: an aware datetime's isoformat(), percent-encoded.
        assert ids(f"startedAfter={quote(middle.isoformat())}&order=asc") == [second, third]
        assert ids(f"startedAfter={quote(middle.isoformat())}&template=base") == [third]
        for bad, needle in (("startedAfter=yesterday", "startedAfter"), ("startedAfter=2026-01-01", "startedAfter"),
                            ("template=Bad%20Name", "templateID")):
            r = requests.get(f"{stack.e2b_url}/v2/sandboxes?{bad}", headers=dave, timeout=TIMEOUT)
            assert r.status_code == 400 and set(r.json()) == {"code", "message"} and needle in r.json()["message"]
    finally:
        for sid in (first, second, third):
            requests.delete(f"{stack.e2b_url}/sandboxes/{sid}", headers=dave, timeout=TIMEOUT)
