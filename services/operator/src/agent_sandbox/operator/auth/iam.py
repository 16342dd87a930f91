"""Tenant namespace resolution: ``t-<team>-<user>`` when that Namespace exists, else ``default``.

Keys and JWTs without an explicit namespace land in their team/user namespace if an administrator
created one. Found namespaces are remembered (bounded); misses only briefly, so creating the namespace
takes effect within a minute without a restart.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from agent_sandbox.operator.auth.identity import DEFAULT_NAMESPACE
from agent_sandbox.operator.ttlmap import TTLMap

_UNSAFE = re.compile(r"[^a-z0-9-]")
MAX_NAMESPACE_LEN = 63


def tenant_namespace_name(team: str, user: str) -> str:
    """``t-<team>-<user>`` lower-cased, other characters replaced by ``-``, trimmed to a DNS label."""
    raw = f"t-{team or 'default'}-{user}".lower()
    return _UNSAFE.sub("-", raw)[:MAX_NAMESPACE_LEN].strip("-")


class NamespaceResolver:
    def __init__(self, exists: Callable[[str], Awaitable[bool]], *, hit_ttl: float = 86_400.0,
                 miss_ttl: float = 60.0, max_entries: int = 10_000) -> None:
        self._exists = exists
        self._cache: TTLMap[str, str] = TTLMap(hit_ttl, max_entries)
        self._miss_ttl = miss_ttl

    async def resolve(self, team: str, user: str) -> str:
        candidate = tenant_namespace_name(team, user)
        cached = self._cache.get(candidate)
        if cached is not None:
            return cached
        found = await self._exists(candidate)
        result = candidate if found else DEFAULT_NAMESPACE
        self._cache.put(candidate, result, None if found else self._miss_ttl)
        return result
