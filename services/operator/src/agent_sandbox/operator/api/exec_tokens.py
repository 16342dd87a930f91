"""Single-use terminal tokens (behaviour.md §23): 30 s, bound to one sandbox, consumed on first use.

A browser cannot send ``X-API-Key`` on a WebSocket upgrade, so the API key buys a short-lived token
that rides in the URL instead. Consuming a token removes it whatever the outcome, so a leaked URL is
worth nothing after the first attempt. Tokens live in process memory, bounded; the worker that issued
a token is the one that serves the terminal (the hub dials the worker named in the URL).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_sandbox.common.errors import unauthorized
from agent_sandbox.operator.ttlmap import TTLMap

EXEC_TOKEN_TTL = 30.0


@dataclass(frozen=True, slots=True)
class ExecGrant:
    sandbox_id: str
    namespace: str
    pod_name: str
    containers: tuple[str, ...] = ()


class ExecTokenStore:
    def __init__(self, ttl: float = EXEC_TOKEN_TTL, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._tokens: TTLMap[str, ExecGrant] = TTLMap(ttl, max_entries, clock)

    def issue(self, grant: ExecGrant) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens.put(token, grant)
        return token

    def consume(self, token: str | None, sandbox_id: str) -> ExecGrant:
        """The grant of ``token`` if it is live and for ``sandbox_id``; 401 otherwise. Always single use."""
        grant = self._tokens.pop(token) if token else None
        if grant is None or grant.sandbox_id != sandbox_id:
            raise unauthorized("invalid or expired exec token")
        return grant
