"""Background, leader-only, create-only writes of finished-sandbox records (see :mod:`.history_objects`).

Every replica derives the same record from the same pod version, so only the
leader writes it; followers skip at once. A record never changes, so the write
is a create and ``409 AlreadyExists`` means someone already stored it. The pod
handler that derives records must not wait on the API server — a burst of a
thousand releases would otherwise hold up the watch that feeds claims — so
records go to a bounded queue drained by a few workers. When the queue is full
its oldest pending record is dropped and counted; the leader's repair pass
(:mod:`.history_sync`) writes it later from the in-memory store. Transient
errors (429, 5xx, connection trouble) are retried with backoff; a 401/403
waits for the next repair pass (RBAC may get fixed); the rest are refused for
good and remembered, so repair passes do not retry them forever.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiohttp

from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.kube.client import KubeClient, KubeError
from agent_sandbox.operator.lifecycle.history_metrics import HistoryMetrics
from agent_sandbox.operator.lifecycle.history_objects import history_path, record_key, to_configmap

log = get_logger(__name__)

DEFAULT_QUEUE_LIMIT = 10_000
DEFAULT_CONCURRENCY = 8
DEFAULT_ATTEMPTS = 6
DROP_LOG_EVERY = 1000


class PendingWrites:
    """Records waiting to be written, first in first out, at most ``limit``, one per object.

    A record already waiting is not queued twice; when full, the oldest waiting record makes room."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def push(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Queue ``record``; returns the record dropped to make room, if any."""
        key = record_key(record)
        if key in self._items:
            return None
        dropped = self._items.popitem(last=False)[1] if len(self._items) >= self.limit else None
        self._items[key] = record
        return dropped

    def pop(self) -> dict[str, Any] | None:
        return self._items.popitem(last=False)[1] if self._items else None

    def __len__(self) -> int:
        return len(self._items)


def transient(exc: BaseException) -> bool:
    """Whether a failed write is worth repeating: throttled, server-side or connection trouble."""
    if isinstance(exc, KubeError):
        return exc.status in (0, 429) or exc.status >= 500
    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


class HistoryWriter:
    def __init__(self, client: KubeClient, is_leader: Callable[[], bool], metrics: HistoryMetrics, *,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT, concurrency: int = DEFAULT_CONCURRENCY,
                 attempts: int = DEFAULT_ATTEMPTS, backoff_s: float = 0.2, max_backoff_s: float = 5.0) -> None:
        self._client = client
        self._is_leader = is_leader
        self._metrics = metrics
        self._pending = PendingWrites(queue_limit)
        self._concurrency = concurrency
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._dropped = 0
        #: Objects the API server refused for good (e.g. their namespace is gone), bounded like the queue.
        self._rejected: OrderedDict[str, None] = OrderedDict()

    def submit(self, record: dict[str, Any]) -> None:
        """Queue ``record`` for writing if this replica leads; never waits."""
        if not self._is_leader():
            self._metrics.writes.labels("skipped").inc()
            return
        if record_key(record) in self._rejected:
            return
        dropped = self._pending.push(record)
        if dropped is not None:
            self._metrics.writes.labels("dropped").inc()
            self._dropped += 1
            if self._dropped % DROP_LOG_EVERY == 1:  # the first of a burst, then one line per thousand
                log.warning("history write queue full: dropped the oldest pending record (the repair pass "
                            "writes it later)", sandbox_id=dropped.get("sandboxId"), limit=self._pending.limit,
                            dropped_total=self._dropped)
        self._metrics.pending.set(len(self._pending))
        self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Drain the queue with ``concurrency`` workers until cancelled (run while leading)."""
        await asyncio.gather(*(self._worker() for _ in range(self._concurrency)))

    async def _worker(self) -> None:
        while True:
            record = self._pending.pop()
            if record is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._metrics.pending.set(len(self._pending))
            result = await self._write(record)
            self._metrics.writes.labels(result).inc()

    async def _write(self, record: dict[str, Any]) -> str:
        body = to_configmap(record)
        path = history_path(record["namespace"])
        for attempt in range(self._attempts):
            if not self._is_leader():
                return "skipped"
            try:
                await self._client.create(path, body)
                return "written"
            except KubeError as exc:
                if exc.conflict:
                    return "exists"
                if exc.status in (401, 403):  # credentials or RBAC: may be fixed, the repair pass retries
                    log.warning("history write not allowed", namespace=record.get("namespace"),
                                status=exc.status, error=exc.message)
                    return "failed"
                if not transient(exc):
                    self._reject(record, exc)
                    return "rejected"
                error: BaseException = exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = exc
            delay = min(self._max_backoff_s, self._backoff_s * 2 ** attempt) * random.uniform(0.8, 1.2)
            log.info("history write failed, retrying", sandbox_id=record.get("sandboxId"), error=repr(error),
                     attempt=attempt + 1, retry_in_s=round(delay, 2))
            await asyncio.sleep(delay)
        log.warning("history write failed after retries", sandbox_id=record.get("sandboxId"),
                    attempts=self._attempts)
        return "failed"

    def _reject(self, record: dict[str, Any], exc: KubeError) -> None:
        log.warning("history write refused", sandbox_id=record.get("sandboxId"),
                    namespace=record.get("namespace"), status=exc.status, error=exc.message)
        self._rejected[record_key(record)] = None
        while len(self._rejected) > self._pending.limit:
            self._rejected.popitem(last=False)
