"""Pure parts of authentication: key Secrets, JWT claims, version gate, namespace names, credentials."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from agent_sandbox.common import apikeys
from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.errors import ApiError
from agent_sandbox.operator.auth.authenticator import Authenticator, InsecureConfiguration, extract_credential
from agent_sandbox.operator.auth.client_version import client_version_ok, parse_version
from agent_sandbox.operator.auth.iam import tenant_namespace_name
from agent_sandbox.operator.auth.identity import Role
from agent_sandbox.operator.auth.jwt_tokens import decode_jwt
from agent_sandbox.operator.auth.keys import KeyRecord, record_from_secret, secret_for_record, secret_name

SECRET = b"s3cret-for-tests-0123456789abcdef-xyz"


def _record(**kw) -> KeyRecord:
    key = apikeys.generate_api_key()
    h = apikeys.hash_api_key(key)
    base = dict(name=secret_name(h), token_hash=h, role=Role.TENANT, namespace="t-team-alice", user="alice",
                team="team", issued_at=datetime(2026, 1, 1, tzinfo=UTC))
    base.update(kw)
    return KeyRecord(**base)


def test_secret_roundtrip_keeps_only_the_hash():
    rec = _record(expires_at=datetime(2027, 1, 1, tzinfo=UTC), description="ci")
    secret = secret_for_record(rec, v.SYSTEM_NAMESPACE)
    labels = secret["metadata"]["labels"]
    assert labels[v.LABEL_TYPE] == v.TYPE_API_KEY
    assert labels[v.LABEL_TOKEN_HASH] == rec.token_hash[:16]
    assert labels[v.LABEL_USER] == "alice" and labels[v.LABEL_TEAM] == "team"
    assert secret["metadata"]["name"] == "agentsandbox-apikey-" + rec.token_hash[:16]
    assert record_from_secret(secret) == rec


def test_malformed_secrets_are_ignored():
    assert record_from_secret({"metadata": {"labels": {}}}) is None
    bad = secret_for_record(_record(), "ns")
    bad["data"]["token"] = "bm90LWEtaGFzaA=="
    assert record_from_secret(bad) is None


def test_expiry():
    rec = _record(expires_at=datetime(2026, 6, 1, tzinfo=UTC))
    assert not rec.expired(datetime(2026, 5, 31, tzinfo=UTC))
    assert rec.expired(datetime(2026, 6, 1, tzinfo=UTC))
    assert not _record().expired(datetime(2099, 1, 1, tzinfo=UTC))


def test_jwt_claims_defaults_and_rejections():
    token = jwt.encode({"sub": "bob", "team": "red"}, SECRET, algorithm="HS256")
    claims = decode_jwt(token, SECRET)
    assert (claims.user, claims.team, claims.role) == ("bob", "red", Role.TENANT)
    admin = jwt.encode({"sub": "x", "user": "root", "role": "admin"}, SECRET, algorithm="HS256")
    assert decode_jwt(admin, SECRET).role is Role.ADMIN and decode_jwt(admin, SECRET).user == "root"
    expired = jwt.encode({"sub": "bob", "exp": datetime.now(UTC) - timedelta(minutes=5)}, SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": "bob"}, b"other-secret-0123456789abcdef-012345", algorithm="HS256")
    for bad in (expired, forged, "not-a-jwt",
                jwt.encode({"sub": "bob", "role": "superuser"}, SECRET, algorithm="HS256")):
        with pytest.raises(ApiError) as err:
            decode_jwt(bad, SECRET)
        assert err.value.status == 401 and err.value.message == "invalid or expired jwt token"


def test_client_version_gate():
    assert parse_version("v1.2.3-rc1") == (1, 2, 3)
    assert client_version_ok(None, "0.0.0")
    assert client_version_ok("1.4", "1.2.0")
    assert not client_version_ok("1.1.9", "1.2.0")
    assert not client_version_ok("garbage", "0.1.0")


def test_tenant_namespace_name():
    assert tenant_namespace_name("Red Team", "Alice@Example.com") == "t-red-team-alice-example-com"
    assert tenant_namespace_name("", "bob") == "t-default-bob"
    assert len(tenant_namespace_name("t" * 80, "u")) <= 63


def test_extract_credential():
    assert extract_credential({"X-API-Key": " k "}) == ("k", False)
    assert extract_credential({"Authorization": "Bearer abc"}) == ("abc", True)
    assert extract_credential({"Authorization": "Basic abc"}) == (None, False)
    assert extract_credential({}) == (None, False)


def test_no_admin_key_without_dev_mode_refuses_to_start():
    with pytest.raises(InsecureConfiguration):
        Authenticator(admin_key="", keys=None, resolver=None)  # type: ignore[arg-type]
