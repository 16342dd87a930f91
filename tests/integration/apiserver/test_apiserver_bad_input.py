"""Malformed and hostile requests get a 4xx Kubernetes Status, never a 500."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession

pytestmark = pytest.mark.asyncio(loop_scope="module")

JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONP = {"Content-Type": "application/json-patch+json"}
PODS = "/api/v1/namespaces/default/pods"

CASES = [
    ("POST", PODS, JSON, b"[]"),
    ("POST", PODS, JSON, b'{"metadata": "x"}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p"}, "spec": "s"}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p"}, "spec": {"containers": 5}}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p"}, "spec": {"containers": [{"name": 1, "image": 2}]}}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p", "labels": ["a"]}, "spec": {}}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p", "finalizers": "f"}, "spec": {}}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p", "ownerReferences": [1]}, "spec": {}}'),
    ("POST", PODS, JSON, b'{"kind": "ConfigMap", "metadata": {"name": "p"}}'),
    ("POST", PODS, JSON, b'{"metadata": {"name": "p", "namespace": "other"}}'),
    ("POST", PODS, {"Content-Type": "application/xml"}, b"<pod/>"),
    ("POST", PODS, JSON, b""),
    ("PUT", f"{PODS}/bad-target", JSON, b'{"metadata": {"name": "other"}}'),
    ("PATCH", f"{PODS}/bad-target", MERGE, b'{"metadata": null}'),
    ("PATCH", f"{PODS}/bad-target", MERGE, b'{"spec": "text"}'),
    ("PATCH", f"{PODS}/bad-target", MERGE, b'{"spec": {"containers": "x"}}'),
    ("PATCH", f"{PODS}/bad-target", MERGE, b'{"metadata": {"labels": {"a": 5}}}'),
    ("PATCH", f"{PODS}/bad-target", MERGE, b"[1]"),
    ("PATCH", f"{PODS}/bad-target", JSONP, b'{"op": "add"}'),
    ("PATCH", f"{PODS}/bad-target", JSONP, b'[{"op": "replace", "path": "", "value": [1]}]'),
    ("PATCH", f"{PODS}/bad-target", JSONP, b'[{"op": "bogus", "path": "/x"}]'),
    ("PATCH", f"{PODS}/bad-target", {"Content-Type": "application/apply-patch+yaml"}, b"a: [b"),
    ("PATCH", f"{PODS}/bad-target/status", MERGE, b'{"status": null, "metadata": {"resourceVersion": "1"}}'),
    ("DELETE", f"{PODS}/bad-target", JSON, b"{broken"),
    ("DELETE", f"{PODS}/bad-target?gracePeriodSeconds=soon", JSON, b""),
    ("DELETE", f"{PODS}/bad-target?propagationPolicy=Sideways", JSON, b""),
    ("GET", f"{PODS}?limit=many", {}, b""),
    ("GET", f"{PODS}?watch=1&resourceVersion=abc", {}, b""),
    ("GET", f"{PODS}?watch=1&timeoutSeconds=x", {}, b""),
    ("GET", f"{PODS}?continue=garbage", {}, b""),
    ("GET", f"{PODS}/bad-target/scale", {}, b""),
    ("GET", "/api/v1/namespaces/default/pods/a/b/c/d", {}, b""),
    ("GET", "/apis/nope.example.com/v1/things", {}, b""),
    ("POST", "/api/v1/namespaces/default/pods/bad-target/binding", JSON, b'{"target": {}}'),
    ("PUT", "/localcluster/v1/faults", JSON, b"[1,2]"),
    ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", JSON, b'{"metadata": {"name": "x"}}'),
]


async def test_bad_requests_answer_4xx_status(http: ClientSession) -> None:
    async with http.post(PODS, json={"metadata": {"name": "bad-target"},
                                     "spec": {"containers": [{"name": "c", "image": "i:1"}]}}) as resp:
        assert resp.status == 201
    for method, path, headers, body in CASES:
        async with http.request(method, path, headers=headers, data=body) as resp:
            payload = await resp.json()
            assert 400 <= resp.status < 500, (method, path, body, resp.status, payload)
            assert payload["kind"] == "Status" and payload["message"], (method, path, body)
            assert resp.headers["Content-Type"] == "application/json"
    async with http.get(f"{PODS}/bad-target") as resp:
        assert resp.status == 200  # the target survived every bad write unchanged
        assert (await resp.json())["metadata"]["generation"] == 1
