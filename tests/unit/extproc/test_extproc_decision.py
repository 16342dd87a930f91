"""The per-request decision: auth, status codes and bodies, tokens, cross-cluster forwarding."""

from __future__ import annotations

import base64
import hashlib

import orjson

from agent_sandbox.common.apikeys import generate_api_key, key_secret
from agent_sandbox.common.clusters import parse_cluster_config
from agent_sandbox.common.envd_token import derive_envd_token, verify_envd_token
from agent_sandbox.extproc.activity import ActivityTracker
from agent_sandbox.extproc.clusters import data_gateways, host_aliases
from agent_sandbox.extproc.decision import Decider, Forward, Outcome, Policy, Reject, Route
from agent_sandbox.extproc.keys import KeyIndex
from agent_sandbox.extproc.routes import PodView, RouteTable

SID = "home-01jc3k5m7n9p2q4r6s8t0v1w2x"
FOREIGN = "eu2-01jc3k5m7n9p2q4r6s8t0v1w2x"
SECRET = b"s3cret"


def decider(policy: Policy | None = None) -> Decider:
    routes = RouteTable()
    routes.upsert_pod(PodView("ns", "p", "10.0.0.7", "running", SID, running=True))
    return Decider(routes, ActivityTracker(), policy or Policy())


def test_route_sets_destination_and_touches_activity() -> None:
    d = decider()
    got = d.decide({"x-sandbox-id": SID, "x-sandbox-port": "8080", ":path": "/x"}, now=5)
    assert got == Route(SID, "10.0.0.7:8080", None, "10.0.0.7")
    assert d.activity.get(SID) == 5
    assert d.decide({":path": f"/sandboxes/{SID}/80/a?b"}, now=6) == Route(SID, "10.0.0.7:80", "/a?b", "10.0.0.7")


def test_error_shapes() -> None:
    d = decider()
    other = "home-01jc3k5m7n9p2q4r6s8t0v1w2y"
    got = d.decide({"x-sandbox-id": other, "x-sandbox-port": "1"}, 0)
    assert isinstance(got, Reject) and (got.status, orjson.loads(got.body)) == (404, {"error": "sandbox not found"})
    got = d.decide({"e2b-sandbox-id": other}, 0)
    assert isinstance(got, Reject) and got.status == 502 and got.outcome is Outcome.NOT_FOUND
    assert orjson.loads(got.body) == {"sandboxId": other, "message": "The sandbox was not found", "code": 502}
    got = d.decide({":path": "/"}, 0)
    assert isinstance(got, Reject) and got.status == 400 and got.outcome is Outcome.BAD_REQUEST
    assert d.activity.get(other) is None


def test_api_key_check() -> None:
    tenant = generate_api_key()
    secret = {"metadata": {"namespace": "sys", "name": "k"},
              "data": {"token": base64.b64encode(hashlib.sha256(key_secret(tenant).encode()).hexdigest()
                                                 .encode()).decode()}}
    keys = KeyIndex("admin-key")
    keys.upsert(secret)
    d = decider(Policy(keys=keys))
    target = {"x-sandbox-id": SID, "x-sandbox-port": "1"}
    for key in (None, "nope", generate_api_key()):
        got = d.decide({**target, **({"x-api-key": key} if key else {})}, 0)
        assert isinstance(got, Reject) and got.status == 401
    assert isinstance(d.decide({**target, "x-api-key": "admin-key"}, 0), Route)
    assert isinstance(d.decide({**target, "x-api-key": tenant.replace("asb_", "e2b_")}, 0), Route)
    keys.delete(secret)
    assert isinstance(d.decide({**target, "x-api-key": tenant}, 0), Reject)


def test_expired_tenant_key_is_refused() -> None:
    tenant = generate_api_key()
    h = hashlib.sha256(key_secret(tenant).encode()).hexdigest()
    keys = KeyIndex(None)
    keys.replace([{"metadata": {"name": "k"}, "data": {
        "token": base64.b64encode(h.encode()).decode(),
        "expiresAt": base64.b64encode(b"2026-01-01T00:00:00Z").decode()}}])
    assert keys.allows(tenant, now=0) and not keys.allows(tenant, now=2e9)


def test_envd_token_is_required_on_envd_port_except_open_paths() -> None:
    d = decider(Policy(envd_secret=SECRET))
    base = {"e2b-sandbox-id": SID, ":path": "/process.Process/Start"}
    got = d.decide(base, 0)
    assert isinstance(got, Reject) and got.status == 401
    assert isinstance(d.decide({**base, "x-access-token": "wrong"}, 0), Reject)
    assert isinstance(d.decide({**base, "x-access-token": derive_envd_token(SECRET, SID)}, 0), Route)
    assert isinstance(d.decide({**base, ":path": "/health"}, 0), Route)
    assert isinstance(d.decide({**base, ":path": "/files?path=a"}, 0), Route)
    assert isinstance(d.decide({"e2b-sandbox-id": SID, "e2b-sandbox-port": "8080", ":path": "/"}, 0), Route)


def test_envd_token_derivation() -> None:
    token = derive_envd_token("k", SID)
    assert len(token) == 64 and token == derive_envd_token(b"k", SID)
    assert verify_envd_token("k", SID, token)
    assert not verify_envd_token("k", SID.replace("x", "y"), token)
    assert not verify_envd_token("other", SID, token) and not verify_envd_token("k", SID, None)


CLUSTERS = """
clusters:
- id: eu2
  name: Europe
  gateway:
    dataURL: https://gw.eu2.example.com:8443/agent-sandbox/api/data/
    headers: {X-Gateway: g, X-Both: base}
    dataHeaders: {X-Both: data}
- id: nodata
  gateway: {nativeURL: http://x}
hostAliases:
- ip: 10.9.9.9
  hostnames: [gw.eu2.example.com]
"""


def test_cluster_config_and_cross_cluster_forward() -> None:
    config = parse_cluster_config(CLUSTERS)
    gateways = data_gateways(config)
    assert set(gateways) == {"eu2"}
    gw = gateways["eu2"]
    assert (gw.scheme, gw.authority, gw.host, gw.port, gw.path_prefix) == (
        "https", "gw.eu2.example.com:8443", "gw.eu2.example.com", 8443, "/agent-sandbox/api/data")
    assert dict(gw.headers) == {"x-gateway": "g", "x-both": "data"}
    assert host_aliases(config) == {"gw.eu2.example.com": "10.9.9.9"}

    d = decider(Policy(local_cluster_id="home"))
    d.gateways = gateways
    got = d.decide({":path": f"/sandboxes/{FOREIGN}/8080/x", "x-sandbox-id": FOREIGN, "x-sandbox-port": "8080"}, 0)
    assert isinstance(got, Forward) and got.path == f"/agent-sandbox/api/data/sandboxes/{FOREIGN}/8080/x"
    got = d.decide({"e2b-sandbox-id": "nowhere-01jc3k5m7n9p2q4r6s8t0v1w2x"}, 0)
    assert isinstance(got, Reject) and got.status == 502 and got.outcome is Outcome.UNKNOWN_CLUSTER
    assert isinstance(d.decide({"e2b-sandbox-id": SID}, 0), Route)
