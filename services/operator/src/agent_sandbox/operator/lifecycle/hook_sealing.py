"""Sealed post-start hook bodies: what a hook sends stays readable only to the operator.

Hooks live in a pod annotation so whichever replica runs them can (behaviour §11), but an ``httpPost``
body often carries secrets — E2B ``envVars`` (API tokens) and the sandbox's envd access token on their
way to envd ``/init``. Anyone allowed to read pods would read them. So when the deployment has a
secret, the service layer stores each body as ``sealedBody``: AES-256-GCM under a key derived from the
operator secret, with the sandbox id as associated data, so a sealed body only opens for the sandbox
it was written for (copying it onto another pod fails). Every replica shares the secret and can open it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
_NONCE_BYTES = 12
_KEY_CONTEXT = b"agentsandbox.io/post-start-hook-body"


class SealError(ValueError):
    """A sealed body that this operator cannot open (wrong secret, other sandbox, tampered)."""


class HookSealer:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("sealing hook bodies needs a non-empty secret")
        self._aead = AESGCM(hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest())

    def seal(self, body: Any, sandbox_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(body), sandbox_id.encode())
        return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, sandbox_id: str) -> Any:
        version, _, payload = sealed.partition(".")
        if version != VERSION:
            raise SealError(f"sealed hook body has unknown format {version!r}")
        try:
            raw = base64.urlsafe_b64decode(payload.encode())
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], sandbox_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError("sealed hook body does not open with this operator's secret for this sandbox") from exc
        return orjson.loads(plain)
