"""Access-token, signed-URL and user-selection rules (e2b-contract §8)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from agent_sandbox.envd.auth import (
    AuthError,
    FileAccess,
    basic_auth_user,
    check_file_access,
    file_signature,
    token_matches,
)


def test_token_matches_only_the_configured_token() -> None:
    assert token_matches(None, None) and token_matches(None, "anything")
    assert token_matches("secret", "secret")
    assert not token_matches("secret", "other") and not token_matches("secret", None)


def test_signature_is_the_sdk_formula() -> None:
    raw = "/home/user/a.txt:read::tok:1700000000"
    expected = "v1_" + base64.b64encode(hashlib.sha256(raw.encode()).digest()).rstrip(b"=").decode()
    assert file_signature("/home/user/a.txt", "read", "", "tok", 1700000000) == expected
    assert file_signature("a", "write", "root", "tok", None) != file_signature("a", "read", "root", "tok", None)


def _access(**kw: object) -> FileAccess:
    base = {"path": "/f", "operation": "read", "username": "", "header_token": None, "signature": None,
            "signature_expiration": None}
    base.update(kw)
    return FileAccess(**base)  # type: ignore[arg-type]


def test_file_access_rules() -> None:
    check_file_access(None, _access(), now=0)  # no token configured: open
    check_file_access("tok", _access(header_token="tok"), now=0)
    with pytest.raises(AuthError, match="invalid access token"):
        check_file_access("tok", _access(header_token="bad", signature=file_signature("/f", "read", "", "tok", None)),
                          now=0)
    with pytest.raises(AuthError, match="missing"):
        check_file_access("tok", _access(), now=0)
    check_file_access("tok", _access(signature=file_signature("/f", "read", "", "tok", None)), now=0)
    with pytest.raises(AuthError, match="invalid signature"):
        check_file_access("tok", _access(operation="write", signature=file_signature("/f", "read", "", "tok", None)),
                          now=0)


def test_signature_expiry() -> None:
    sig = file_signature("/f", "read", "", "tok", 100)
    check_file_access("tok", _access(signature=sig, signature_expiration="100"), now=99)
    with pytest.raises(AuthError, match="expired"):
        check_file_access("tok", _access(signature=sig, signature_expiration="100"), now=101)
    with pytest.raises(AuthError, match="expiration"):
        check_file_access("tok", _access(signature=sig, signature_expiration="soon"), now=0)


def test_basic_auth_user() -> None:
    assert basic_auth_user(None) is None
    assert basic_auth_user("Basic " + base64.b64encode(b"root:").decode()) == "root"
    assert basic_auth_user("Basic " + base64.b64encode(b":").decode()) is None
    with pytest.raises(AuthError):
        basic_auth_user("Bearer abc")
    with pytest.raises(AuthError):
        basic_auth_user("Basic !!!")
