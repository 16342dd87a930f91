"""envd access tokens: derived from the sandbox id, never stored.

The token a sandbox's envd expects in ``X-Access-Token`` is HMAC-SHA256 of the
sandbox id under the deployment's shared secret. Deriving instead of storing
means any operator replica can hand it out and extproc can verify it at the
edge without a lookup, and a recycled pod's next tenant gets a different token
because its sandbox id differs.
"""

from __future__ import annotations

import hashlib
import hmac


def derive_envd_token(secret: str | bytes, sandbox_id: str) -> str:
    """The access token of ``sandbox_id`` (64 lowercase hex characters)."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("envd token secret must not be empty")
    return hmac.new(key, sandbox_id.encode(), hashlib.sha256).hexdigest()


def verify_envd_token(secret: str | bytes, sandbox_id: str, token: str | None) -> bool:
    """Constant-time check that ``token`` is the access token of ``sandbox_id``."""
    if not token:
        return False
    return hmac.compare_digest(derive_envd_token(secret, sandbox_id), token)
