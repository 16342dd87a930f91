"""Who may call envd, and as whom: access token, signed file URLs, user selection.

Pure functions (no I/O) so the rules in e2b-contract §8 are unit-tested directly:

* ``X-Access-Token`` must equal the sandbox's token once one is configured;
* ``/files`` also accepts a ``v1_`` signature (``download_url``/``upload_url``)
  instead of the header, optionally with an expiry;
* the caller picks the user with ``Authorization: Basic base64("<user>:")`` on
  RPCs or ``username=`` on ``/files``; absent means the default user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

Operation = Literal["read", "write"]


class AuthError(Exception):
    """The caller is not allowed in; ``str(exc)`` is safe to show to the caller."""


def token_matches(expected: str | None, presented: str | None) -> bool:
    """True when no token is configured or the presented one equals it (constant time)."""
    if not expected:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def file_signature(path: str, operation: Operation, username: str, token: str, expiration: int | None) -> str:
    """The ``v1_`` signature the SDK puts on signed file URLs."""
    raw = f"{path}:{operation}:{username}:{token}"
    if expiration is not None:
        raw = f"{raw}:{expiration}"
    digest = hashlib.sha256(raw.encode()).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class FileAccess:
    """The auth-relevant parts of one ``/files`` request."""

    path: str
    operation: Operation
    username: str
    header_token: str | None
    signature: str | None
    signature_expiration: str | None


def check_file_access(expected_token: str | None, access: FileAccess, now: float) -> None:
    """Raise :class:`AuthError` unless the ``/files`` request may proceed.

    A present header must be right; without a header a valid, unexpired signature is required.
    """
    if not expected_token:
        return
    if access.header_token is not None:
        if not token_matches(expected_token, access.header_token):
            raise AuthError("invalid access token")
        return
    if not access.signature:
        raise AuthError("missing access token or signature")
    expiration: int | None = None
    if access.signature_expiration:
        try:
            expiration = int(access.signature_expiration)
        except ValueError as exc:
            raise AuthError("invalid signature expiration") from exc
        if expiration < now:
            raise AuthError("signature has expired")
    wanted = file_signature(access.path, access.operation, access.username, expected_token, expiration)
    if not hmac.compare_digest(wanted.encode(), access.signature.encode()):
        raise AuthError("invalid signature")


def basic_auth_user(header: str | None) -> str | None:
    """The user named by ``Authorization: Basic base64("<user>:")``, or None when absent."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise AuthError("authorization header must be Basic <base64(user:)>")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError("authorization header is not valid base64") from exc
    user = decoded.partition(":")[0]
    return user or None
