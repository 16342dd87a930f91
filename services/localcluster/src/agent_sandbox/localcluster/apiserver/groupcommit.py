"""Group-commit bookkeeping: which write waits for which commit (pure state, no I/O).

A write must not be acknowledged before it is durable: if the operator's claim of pod X is answered
201 and then lost in a crash, X is idle again after the restart and goes to a second tenant. So every
mutating request waits for the commit that carries its resourceVersion. Commits are serial and each
one takes everything recorded so far, so writes that arrive while a commit runs form the next batch
(group commit: no fixed delay, one transaction and one sync for many writers) and a committed
version implies every lower version is committed too.

The pending map keeps only the latest bytes per object (``None`` = deleted), so it is bounded by the
number of objects however long the disk stays unavailable. Each waiter has a future of its own, listed
with the batch in flight or the next one (so the lists are bounded by the requests waiting): a commit
wakes every waiter directly, and a cancelled waiter cancels only its own future. A shared future
behind ``asyncio.shield`` would wake each waiter one loop pass later, through the shield's callback,
and every write's answer waits for that. A failed batch fails its waiters (their outcome is unknown,
as after a kube-apiserver timeout) and goes back into the pending map under any newer writes, so the
next commit retries it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .store import Key

Item = tuple[str, Key]  # (storage key of the resource, (namespace, name))


class CommitError(Exception):
    """The commit carrying a write failed (or persistence is closed): the write is not known to be durable."""


@dataclass(slots=True)
class Batch:
    rv: int  # every write with resourceVersion <= rv is in this batch or an earlier one
    items: dict[Item, bytes | None]
    waiters: list[asyncio.Future[None]]


class GroupCommit:
    def __init__(self, committed_rv: int = 0) -> None:
        self.committed_rv = committed_rv
        self.recorded_rv = committed_rv
        self.closed = False
        self._pending: dict[Item, bytes | None] = {}
        self._inflight: Batch | None = None
        self._next: list[asyncio.Future[None]] = []  # waiters for the next batch

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def record(self, item: Item, raw: bytes | None, rv: int) -> None:
        self._pending[item] = raw
        self.recorded_rv = rv

    def take(self) -> Batch | None:
        """Start a commit of everything recorded so far (None when there is nothing to commit)."""
        if self._inflight is not None:
            raise RuntimeError("a commit is already in flight")
        if not self._pending and self.recorded_rv == self.committed_rv:
            return None
        batch = Batch(self.recorded_rv, self._pending, self._next)
        self._next = []
        self._pending = {}
        self._inflight = batch
        return batch

    def succeeded(self, batch: Batch) -> None:
        self._inflight = None
        self.committed_rv = max(self.committed_rv, batch.rv)
        for waiter in batch.waiters:
            if not waiter.done():  # (cancelled)
                waiter.set_result(None)

    def failed(self, batch: Batch, message: str) -> None:
        self._inflight = None
        for item, raw in batch.items.items():
            self._pending.setdefault(item, raw)  # a newer write of the same object wins
        _fail(batch.waiters, message)

    def close(self, message: str = "persistence is closed") -> None:
        self.closed = True
        _fail(self._next, message)
        self._next = []

    async def wait(self, rv: int) -> None:
        """Return once ``rv`` is committed; raise :class:`CommitError` if the commit carrying it fails.

        A version never recorded here (a dry run, a read) is clamped to the last recorded one.
        """
        rv = min(rv, self.recorded_rv)
        while rv > self.committed_rv:
            if self.closed:
                raise CommitError("persistence is closed")
            inflight = self._inflight
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (inflight.waiters if inflight is not None and rv <= inflight.rv else self._next).append(waiter)
            await waiter


def _fail(waiters: list[asyncio.Future[None]], message: str) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(CommitError(message))
