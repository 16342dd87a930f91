"""API-key Secrets: how a key record is written to and read from a Kubernetes Secret (behaviour.md §15.6).

Only the SHA-256 of a key's secret is stored (data ``token``); the raw key is shown once, at creation.
Lookups go by the label ``agentsandbox.io/token-hash=<hash prefix>`` and then compare the full hash,
so a cache miss costs one label-selected list, never a scan of every key. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from agent_sandbox.common import apikeys
from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.auth.identity import Role
from agent_sandbox.operator.timeutil import format_time, parse_time

SECRET_NAME_PREFIX = "agentsandbox-apikey-"
#: Hash characters in the Secret name (the label carries the shorter common hash prefix).
SECRET_NAME_HASH_LEN = 16


@dataclass(frozen=True, slots=True)
class KeyRecord:
    name: str
    token_hash: str
    role: Role
    namespace: str = ""
    user: str = ""
    team: str = ""
    quota_url: str = ""
    description: str = ""
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    sync_source: str = ""

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def with_global_source(self) -> KeyRecord:
        return replace(self, sync_source=v.SYNC_SOURCE_GLOBAL)


def secret_name(token_hash: str) -> str:
    return SECRET_NAME_PREFIX + token_hash[:SECRET_NAME_HASH_LEN]


def hash_selector(token_hash: str) -> str:
    return f"{v.LABEL_TYPE}={v.TYPE_API_KEY},{v.LABEL_TOKEN_HASH}={apikeys.hash_prefix(token_hash)}"


_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


def label_safe(value: str) -> bool:
    """Whether ``value`` can be a label value (e-mail style user names cannot; they stay in the data only)."""
    return bool(_LABEL_VALUE_RE.match(value))


def list_selector(user: str | None = None, team: str | None = None) -> str:
    """Selector narrowing a key listing; values that cannot be labels are filtered by the caller instead."""
    parts = [f"{v.LABEL_TYPE}={v.TYPE_API_KEY}"]
    if user and label_safe(user):
        parts.append(f"{v.LABEL_USER}={user}")
    if team and label_safe(team):
        parts.append(f"{v.LABEL_TEAM}={team}")
    return ",".join(parts)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_for_record(record: KeyRecord, namespace: str) -> dict[str, Any]:
    """The Secret object that stores ``record`` in the API-key namespace ``namespace``."""
    labels = {
        v.LABEL_TYPE: v.TYPE_API_KEY,
        v.LABEL_NAMESPACE: record.namespace,
        v.LABEL_TOKEN_HASH: apikeys.hash_prefix(record.token_hash),
    }
    if record.user and label_safe(record.user):
        labels[v.LABEL_USER] = record.user
    if record.team and label_safe(record.team):
        labels[v.LABEL_TEAM] = record.team
    if record.sync_source:
        labels[v.LABEL_SYNC_SOURCE] = record.sync_source
    data = {
        "token": record.token_hash,
        "namespace": record.namespace,
        "role": record.role.value,
        "user": record.user,
        "team": record.team,
        "quotaURL": record.quota_url,
        "description": record.description,
        "issuedAt": format_time(record.issued_at) if record.issued_at else "",
    }
    if record.expires_at:
        data["expiresAt"] = format_time(record.expires_at)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": record.name, "namespace": namespace, "labels": labels},
        "data": {k: _b64(val) for k, val in data.items()},
    }


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(raw or "").decode()
        except (ValueError, UnicodeDecodeError):
            continue
    out.update({k: str(val) for k, val in (secret.get("stringData") or {}).items()})
    return out


def record_from_secret(secret: dict[str, Any]) -> KeyRecord | None:
    """The key stored in ``secret``; ``None`` if it is not a well-formed API-key Secret."""
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(v.LABEL_TYPE) != v.TYPE_API_KEY:
        return None
    data = _secret_data(secret)
    token_hash = data.get("token", "").strip().lower()
    if len(token_hash) != 64:
        return None
    try:
        role = Role(data.get("role") or Role.TENANT.value)
    except ValueError:
        return None
    return KeyRecord(
        name=meta.get("name", ""),
        token_hash=token_hash,
        role=role,
        namespace=data.get("namespace", ""),
        user=data.get("user", ""),
        team=data.get("team", ""),
        quota_url=data.get("quotaURL", ""),
        description=data.get("description", ""),
        issued_at=parse_time(data.get("issuedAt")),
        expires_at=parse_time(data.get("expiresAt")),
        sync_source=labels.get(v.LABEL_SYNC_SOURCE, ""),
    )
