"""Durable sandbox history: every replica reads it back, the leader repairs and ages it out.

The in-memory store (:mod:`.history`) is filled at once from pod events, but a
replica started after a sandbox ended — a restart, a rolling update — never
saw those events. So every replica also watches the history ConfigMaps
(:mod:`.history_objects`) and loads each into its store: at start-up (the
informer's first list) and on every later event. The stored copy wins over a
locally derived one, so all replicas serve the same record; a deleted object
(aged out, or removed by hand) leaves every store too.

While leading, a replica drains the write queue (:mod:`.history_writer`) and
runs a periodic pass that (1) re-submits records its store holds but the API
server does not — writes dropped from a full queue, failed past their retries,
or lost with a previous leader — and (2) deletes objects older than the TTL,
then the oldest beyond the record cap. Each pass is bounded; a sweep that
deleted its full share is followed by another at once, so a backlog is worked
off without one pass holding everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.kube.client import KubeClient, KubeError
from agent_sandbox.operator.kube.informer import Informer
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.history_metrics import HistoryMetrics
from agent_sandbox.operator.lifecycle.history_objects import (
    HISTORY_SELECTOR,
    Removal,
    from_configmap,
    history_path,
    missing_records,
    remaining_ttl,
    sweep_plan,
)
from agent_sandbox.operator.lifecycle.history_writer import HistoryWriter
from agent_sandbox.operator.timeutil import now_utc

log = get_logger(__name__)

#: Objects deleted, and records re-submitted, per pass at most.
PASS_LIMIT = 500
DELETE_CONCURRENCY = 8
#: A record is re-submitted only once it ended this long ago (its first write has had its chance).
REPAIR_GRACE_S = 10.0


def pass_interval(ttl_s: float) -> float:
    """Seconds between passes: a tenth of the TTL, within 0.5 s - 60 s."""
    return min(60.0, max(0.5, ttl_s / 10))


class HistorySync:
    def __init__(self, client: KubeClient, store: HistoryStore, writer: HistoryWriter, metrics: HistoryMetrics,
                 *, ttl_s: float, lag_s: float = 0.0, now: Callable[[], datetime] = now_utc) -> None:
        self._client = client
        self._store = store
        self._writer = writer
        self._metrics = metrics
        self._ttl = ttl_s
        self._now = now
        self.informer = Informer(client, history_path(), kind="ConfigMap", label_selector=HISTORY_SELECTOR,
                                 lag_s=lag_s)
        self.informer.add_handler(self.on_event)

    def on_event(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None:
            gone = from_configmap(old) if old is not None else None
            if gone is not None:
                self._store.discard(gone["namespace"], gone["sandboxId"])
            return
        record = from_configmap(new)
        if record is None:
            log.warning("ignoring a malformed sandbox history object",
                        name=(new.get("metadata") or {}).get("name"),
                        namespace=(new.get("metadata") or {}).get("namespace"))
            return
        left = remaining_ttl(record, self._now(), self._ttl)
        if left > 0 and self._store.get(record["namespace"], record["sandboxId"]) != record:
            self._store.put(record, ttl_s=left)

    async def lead(self) -> None:
        """While leading (cancel to stop): write queued records, repair and sweep periodically."""
        await asyncio.gather(self._writer.run(), self._maintain())

    async def _maintain(self) -> None:
        await self.informer.synced.wait()
        while True:
            busy = False
            try:
                if not len(self._writer):  # with writes still queued, "missing" mostly means "pending"
                    self.repair()
                busy = await self.sweep() >= PASS_LIMIT
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next pass tries again
                log.warning("history maintenance pass failed", error=repr(exc))
            await asyncio.sleep(0.05 if busy else pass_interval(self._ttl))

    def repair(self) -> int:
        """Re-submit records the API server lacks; returns how many."""
        missing = missing_records(self._store.records(), lambda key: self.informer.get(key) is not None,
                                  self._now(), ttl_s=self._ttl, grace_s=REPAIR_GRACE_S, limit=PASS_LIMIT)
        for record in missing:
            self._writer.submit(record)
        if missing:
            log.info("re-submitting sandbox history records missing from the API server", count=len(missing))
        return len(missing)

    async def sweep(self) -> int:
        """Delete expired objects, then the oldest beyond the cap; returns how many are gone."""
        plan = sweep_plan(self.informer.items(), self._now(), self._ttl, self._store.max_records, PASS_LIMIT)
        gate = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def remove(item: Removal) -> None:
            async with gate:
                try:
                    await self._client.delete(history_path(item.namespace, item.name))
                except KubeError as exc:
                    if not exc.not_found:
                        raise
                self._metrics.deleted.labels(item.reason).inc()

        results = await asyncio.gather(*(remove(item) for item in plan), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            log.warning("history sweep could not delete some objects", failed=len(errors), error=repr(errors[0]))
        return len(plan) - len(errors)
