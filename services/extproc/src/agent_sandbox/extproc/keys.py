"""Tenant API keys known to the data plane (optional data-plane auth).

The operator stores each key as a Secret labelled ``agentsandbox.io/type=api-key``
holding only the SHA-256 of the key (data ``token``) and an optional
``expiresAt``. extproc watches those Secrets and keeps hash -> expiry in
memory, so checking a request's ``x-api-key`` is one hash and one dict look-up.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Any

from agent_sandbox.common.apikeys import InvalidApiKey, hash_api_key

_NO_EXPIRY = float("inf")


def _decode(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def key_entry(secret: dict[str, Any]) -> tuple[str, float] | None:
    """``(full hash, expiry epoch)`` of an API-key Secret, or ``None`` if it holds no usable hash."""
    data = secret.get("data") or {}
    token_hash = _decode(data, "token").strip().lower()
    if len(token_hash) != 64:
        return None
    expires = _decode(data, "expiresAt").strip()
    if not expires:
        return token_hash, _NO_EXPIRY
    try:
        return token_hash, datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class KeyIndex:
    def __init__(self, admin_key: str | None) -> None:
        self._admin = admin_key.encode() if admin_key else None
        self._by_secret: dict[tuple[str, str], tuple[str, float]] = {}
        self._hashes: dict[str, float] = {}

    def _rebuild(self) -> None:
        self._hashes = {h: exp for h, exp in self._by_secret.values()}

    def upsert(self, secret: dict[str, Any]) -> None:
        meta = secret.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        entry = key_entry(secret)
        if entry is None:
            self._by_secret.pop(key, None)
        else:
            self._by_secret[key] = entry
        self._rebuild()

    def delete(self, secret: dict[str, Any]) -> None:
        meta = secret.get("metadata") or {}
        self._by_secret.pop((meta.get("namespace") or "", meta.get("name") or ""), None)
        self._rebuild()

    def replace(self, secrets: list[dict[str, Any]]) -> None:
        self._by_secret = {}
        for secret in secrets:
            meta = secret.get("metadata") or {}
            entry = key_entry(secret)
            if entry is not None:
                self._by_secret[(meta.get("namespace") or "", meta.get("name") or "")] = entry
        self._rebuild()

    def __len__(self) -> int:
        return len(self._hashes)

    def allows(self, key: str | None, now: float) -> bool:
        """True for the admin key or an unexpired tenant key."""
        if not key:
            return False
        if self._admin is not None and hmac.compare_digest(key.encode(), self._admin):
            return True
        try:
            token_hash = hash_api_key(key)
        except InvalidApiKey:
            return False
        expires = self._hashes.get(token_hash)
        return expires is not None and now < expires
