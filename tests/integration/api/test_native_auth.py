"""Authentication and tenant isolation on a running native API over the embedded control plane."""

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import jwt
import requests
from native_stack import JWT_SECRET, NativeStack

from agent_sandbox.operator.auth.identity import Role

V = {"X-Agent-Sandbox-Client-Version": "1.0.0"}


def _admin(stack: NativeStack) -> dict[str, str]:
    return {"X-API-Key": stack.admin_key, **V}


def _tenant_key(stack: NativeStack, user: str, team: str) -> tuple[str, str]:
    r = requests.post(f"{stack.url}/v1/admin/api-keys", json={"user": user, "team": team}, headers=_admin(stack),
                      timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["apiKey"], r.json()["keyId"]


def test_public_routes_need_no_credentials(stack: NativeStack):
    assert requests.get(f"{stack.url}/ping", timeout=5).json() == {"status": "ok"}
    doc = requests.get(f"{stack.url}/openapi.json", timeout=5).json()
    assert doc["openapi"] == "3.1.0" and "/v1/sandboxes" in doc["paths"]


def test_missing_and_wrong_credentials_are_401(stack: NativeStack):
    r = requests.get(f"{stack.url}/v1/auth/whoami", timeout=5)
    assert r.status_code == 401 and r.json() == {"error": "missing api key", "errorCode": "Unauthorized"}
    wrong = "asb_" + "0" * 40
    assert requests.get(f"{stack.url}/v1/auth/whoami", headers={"X-API-Key": wrong}, timeout=5).status_code == 401
    assert requests.get(f"{stack.url}/v1/auth/whoami", headers={"Authorization": "Bearer nonsense"},
                        timeout=5).json()["error"] == "invalid or expired jwt token"


def test_tenant_key_identifies_the_tenant_and_e2b_spelling_works(stack: NativeStack):
    key, _ = _tenant_key(stack, "alice", "red")
    assert key.startswith("asb_") and len(key) == 44
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}, {"X-API-Key": "e2b_" + key[4:]}):
        me = requests.get(f"{stack.url}/v1/auth/whoami", headers=headers, timeout=5).json()
        assert me == {"role": "tenant", "user": "alice", "team": "red", "namespace": "default"}


def test_tenant_cannot_use_admin_routes_or_other_tenants_keys(stack: NativeStack):
    alice, alice_id = _tenant_key(stack, "alice2", "red")
    bob, bob_id = _tenant_key(stack, "bob", "blue")
    r = requests.get(f"{stack.url}/v1/admin/api-keys", headers={"X-API-Key": alice}, timeout=5)
    assert r.status_code == 403 and r.json()["error"] == "admin api key required"
    r = requests.delete(f"{stack.url}/v1/api-keys/{bob_id}", headers={"X-API-Key": alice, **V}, timeout=5)
    assert r.status_code == 403
    mine = requests.get(f"{stack.url}/v1/api-keys", headers={"X-API-Key": alice}, timeout=5).json()
    assert [k["keyId"] for k in mine["items"]] == [alice_id]
    assert "apiKey" not in mine["items"][0]
    assert requests.get(f"{stack.url}/v1/auth/whoami", headers={"X-API-Key": bob}, timeout=5).status_code == 200


def test_deleted_key_is_refused_at_once(stack: NativeStack):
    key, key_id = _tenant_key(stack, "carol", "red")
    assert requests.get(f"{stack.url}/v1/auth/whoami", headers={"X-API-Key": key}, timeout=5).status_code == 200
    r = requests.delete(f"{stack.url}/v1/api-keys/{key_id}", headers={"X-API-Key": key, **V}, timeout=5)
    assert r.json() == {"keyId": key_id, "status": "Deleted"}
    assert requests.get(f"{stack.url}/v1/auth/whoami", headers={"X-API-Key": key}, timeout=5).status_code == 401


def test_expired_key_is_refused(stack: NativeStack):
    assert stack.keys is not None
    raw, _ = stack.run(stack.keys.create(role=Role.TENANT, namespace="", user="dave", team="red",
                                         expires_at=datetime.now(UTC) + timedelta(seconds=1)))
    assert requests.get(f"{stack.url}/v1/auth/whoami", headers={"X-API-Key": raw}, timeout=5).status_code == 200
    stack.run(asyncio.sleep(1.2))
    r = requests.get(f"{stack.url}/v1/auth/whoami", headers={"X-API-Key": raw}, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "api key expired"


def test_key_secret_stores_only_the_hash(stack: NativeStack):
    key, key_id = _tenant_key(stack, "erin", "red")
    assert stack.keys is not None
    secret = stack.run(stack.keys._backend.read_secret("agent-sandbox-system", key_id))
    stored = {k: base64.b64decode(val).decode() for k, val in secret["data"].items()}
    assert key[4:] not in str(stored) and key not in str(secret)
    assert secret["metadata"]["labels"]["agentsandbox.io/type"] == "api-key"


def test_jwt_and_admin_impersonation(stack: NativeStack):
    token = jwt.encode({"sub": "frank", "team": "green"}, JWT_SECRET, algorithm="HS256")
    me = requests.get(f"{stack.url}/v1/auth/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert me.json() == {"role": "tenant", "user": "frank", "team": "green", "namespace": "default"}
    imp = requests.get(f"{stack.url}/v1/auth/whoami", timeout=5, headers={
        "X-API-Key": stack.admin_key, "X-Impersonate-Team": "green", "X-Impersonate-User": "frank"})
    assert imp.json()["user"] == "frank" and imp.json()["role"] == "tenant"


def test_client_version_gate_on_writes(stack: NativeStack):
    r = requests.post(f"{stack.url}/v1/admin/api-keys", json={"role": "admin"}, timeout=5,
                      headers={"X-API-Key": stack.admin_key, "X-Agent-Sandbox-Client-Version": "garbage"})
    assert r.status_code == 426 and r.json()["detail"]["minimumVersion"] == "0.0.0"


def test_malformed_input_is_400_never_500(stack: NativeStack):
    h = _admin(stack)
    for body in (b"{", b"[]", b'{"role": "king"}', b'{"user": "x"}'):
        r = requests.post(f"{stack.url}/v1/admin/api-keys", data=body, timeout=5,
                          headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json(), (body, r.text)
    r = requests.get(f"{stack.url}/v1/api-keys?limit=0", headers=h, timeout=5)
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "limit"
    assert requests.get(f"{stack.url}/v1/nowhere", headers=h, timeout=5).json() == {
        "error": "route not found", "errorCode": "NotFound"}
    assert requests.delete(f"{stack.url}/v1/api-keys/NOT_A_NAME", headers=h, timeout=5).status_code == 404
