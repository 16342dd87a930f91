"""``Idempotency-Key`` on create, within one replica: duplicates arriving here share one attempt.

This is the fast path in front of the cluster-wide records of ``key_reservations`` (which make the
guarantee hold across replicas and restarts): duplicates that land on the same replica wait on the
first one's future instead of polling the apiserver, and a repeat within the TTL is answered from
memory. Entries are keyed by caller scope and key, remember a fingerprint of the request body (reusing
a key for a different request is a 409), and hold the in-flight result as a future. A failed or
cancelled first attempt leaves no entry, so the caller's retry makes a fresh attempt. Bounded and
expiring (10 min by default, the TTL of the cluster-wide records too).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import orjson

from agent_sandbox.common.errors import bad_request, conflict
from agent_sandbox.operator.ttlmap import TTLMap

T = TypeVar("T")
HEADER = "Idempotency-Key"
MAX_KEY_LEN = 255


def fingerprint(body: object) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LEN or not key.isascii() or not key.isprintable():
        raise bad_request(f"{HEADER} must be 1-{MAX_KEY_LEN} printable ASCII characters")
    return key


class IdempotencyStore(Generic[T]):
    def __init__(self, ttl: float = 600.0, max_entries: int = 10_000) -> None:
        self._entries: TTLMap[tuple[str, str], tuple[str, asyncio.Future[T]]] = TTLMap(ttl, max_entries)

    async def run(self, scope: str, key: str, request_fingerprint: str, produce: Callable[[], Awaitable[T]]) -> T:
        slot = (scope, check_key(key))
        while True:
            entry = self._entries.get(slot)
            if entry is None:
                return await self._produce(slot, request_fingerprint, produce)
            if entry[0] != request_fingerprint:
                raise conflict(f"{HEADER} was already used for a different request")
            future = entry[1]
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if not future.cancelled():
                    raise
                # The first attempt failed or was abandoned: make our own attempt.

    async def _produce(self, slot: tuple[str, str], request_fingerprint: str,
                       produce: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._entries.put(slot, (request_fingerprint, future))
        try:
            result = await produce()
        except BaseException:
            current = self._entries.get(slot)
            if current is not None and current[1] is future:
                self._entries.discard(slot)
            future.cancel()
            raise
        future.set_result(result)
        return result
