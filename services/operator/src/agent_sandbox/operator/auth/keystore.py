"""API-key store: validate, create, import, list and delete keys kept as hashed Secrets.

Validation is on every authenticated request, so results are cached for ``cache_ttl`` (1 min by
default) in a bounded map keyed by the key's hash; deleting a key through this store drops it from the
cache at once (another replica notices within the TTL). Unknown keys are cached briefly too, so a
client hammering with a wrong key does not turn into one Secret list per request.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import replace
from datetime import datetime

from agent_sandbox.common import apikeys
from agent_sandbox.common.errors import ApiError, conflict, not_found, unauthorized
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.auth.identity import Role
from agent_sandbox.operator.auth.keys import (
    KeyRecord,
    hash_selector,
    list_selector,
    record_from_secret,
    secret_for_record,
    secret_name,
)
from agent_sandbox.operator.auth.kube_secrets import AuthBackend, SecretExists
from agent_sandbox.operator.timeutil import now_utc
from agent_sandbox.operator.ttlmap import TTLMap

log = get_logger(__name__)

NEGATIVE_CACHE_TTL = 5.0


class ApiKeyStore:
    def __init__(self, backend: AuthBackend, namespace: str, *, cache_ttl: float = 60.0,
                 max_cache_entries: int = 10_000, max_keys_per_user: int = 0) -> None:
        self._backend = backend
        self.namespace = namespace
        self._cache: TTLMap[str, KeyRecord] = TTLMap(cache_ttl, max_cache_entries)
        self._negative: TTLMap[str, bool] = TTLMap(NEGATIVE_CACHE_TTL, max_cache_entries)
        self.max_keys_per_user = max_keys_per_user

    async def validate(self, key: str, now: datetime | None = None) -> KeyRecord:
        """The record of ``key``; :class:`ApiError` 401 when unknown, malformed or expired."""
        try:
            token_hash = apikeys.hash_api_key(key)
        except apikeys.InvalidApiKey as exc:
            raise unauthorized("invalid api key") from exc
        record = self._cache.get(token_hash)
        if record is None and self._negative.get(token_hash) is None:
            try:
                record = await self._lookup(token_hash)
            except Exception as exc:
                log.warning("api key lookup failed", error=str(exc))
                raise ApiError(503, "api key store unavailable; retry", code="Unavailable") from exc
            if record is None:
                self._negative.put(token_hash, True)
            else:
                self._cache.put(token_hash, record)
        if record is None:
            raise unauthorized("invalid api key")
        if record.expired(now or now_utc()):
            raise unauthorized("api key expired")
        return record

    async def _lookup(self, token_hash: str) -> KeyRecord | None:
        for secret in await self._backend.list_secrets(self.namespace, hash_selector(token_hash)):
            record = record_from_secret(secret)
            if record is not None and hmac.compare_digest(record.token_hash, token_hash):
                return record
        return None

    async def create(self, *, role: Role, namespace: str, user: str, team: str, description: str = "",
                     quota_url: str = "", expires_at: datetime | None = None,
                     sync_source: str = "") -> tuple[str, KeyRecord]:
        """Mint a new key; returns the raw key (shown once) and its stored record."""
        if self.max_keys_per_user and user:
            existing = await self.list(user=user, team=team or None)
            if len(existing) >= self.max_keys_per_user:
                raise conflict(f"user {user!r} already has {len(existing)} keys (maximum {self.max_keys_per_user})")
        raw = apikeys.generate_api_key()
        token_hash = apikeys.hash_api_key(raw)
        record = KeyRecord(name=secret_name(token_hash), token_hash=token_hash, role=role, namespace=namespace,
                           user=user, team=team, quota_url=quota_url, description=description,
                           issued_at=now_utc(), expires_at=expires_at, sync_source=sync_source)
        await self._backend.create_secret(self.namespace, secret_for_record(record, self.namespace))
        log.info("api key created", key_id=record.name, user=user, team=team, role=role.value)
        return raw, record

    async def import_hash(self, record: KeyRecord) -> KeyRecord:
        """Store a key known only by its hash (hub sync, admin import). Idempotent; upgrades to global."""
        record = replace(record, name=secret_name(record.token_hash), issued_at=record.issued_at or now_utc())
        body = secret_for_record(record, self.namespace)
        try:
            await self._backend.create_secret(self.namespace, body)
        except SecretExists:
            current = await self._backend.read_secret(self.namespace, record.name)
            if current is None:
                raise ApiError(409, "api key secret changed concurrently; retry", code="Conflict") from None
            body["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
            await self._backend.replace_secret(self.namespace, record.name, body)
        self._cache.discard(record.token_hash)
        self._negative.discard(record.token_hash)
        return record

    async def list(self, *, user: str | None = None, team: str | None = None,
                   namespace: str | None = None) -> list[KeyRecord]:
        records = [r for s in await self._backend.list_secrets(self.namespace, list_selector(user, team))
                   if (r := record_from_secret(s)) is not None]
        if user is not None:
            records = [r for r in records if r.user == user]
        if team is not None:
            records = [r for r in records if r.team == team]
        if namespace is not None:
            records = [r for r in records if r.namespace == namespace]
        return sorted(records, key=lambda r: (r.issued_at.timestamp() if r.issued_at else 0.0, r.name))

    async def get(self, name: str) -> KeyRecord:
        secret = await self._backend.read_secret(self.namespace, name) if _plausible_name(name) else None
        record = record_from_secret(secret) if secret else None
        if record is None:
            raise not_found(f"api key {name!r} not found")
        return record

    async def delete(self, name: str) -> KeyRecord:
        record = await self.get(name)
        await self._backend.delete_secret(self.namespace, name)
        self._cache.discard(record.token_hash)
        log.info("api key deleted", key_id=name)
        return record


_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def _plausible_name(name: str) -> bool:
    """Whether ``name`` can be a Secret name at all (anything else is a 404 without an API call)."""
    return bool(_NAME_RE.match(name))
