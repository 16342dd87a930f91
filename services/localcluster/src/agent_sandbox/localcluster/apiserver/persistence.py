"""Optional SQLite persistence with group commit: a write is answered only once it is on disk.

The store reports every committed write to :meth:`SqlitePersistence.record`; the HTTP shell awaits
:meth:`SqlitePersistence.wait_durable` with the request's resourceVersion before answering. One
background task commits as soon as anything is pending, with no fixed delay; writes that arrive while
a commit (or a checkpoint) runs, or before the task's next turn on the loop, simply form the next batch
(see :mod:`.groupcommit`). The resourceVersion counter
is saved with every batch so versions keep increasing across restarts.

Where a commit runs: with ``NORMAL`` a commit only copies a few pages into the kernel's page cache
(about 0.1 ms for a batch), less than a round trip to a thread, so it runs on the event loop (measured
on 2 shared cores, PATCH through HTTP: c=1 p50 0.44 ms on the loop vs 0.55 ms through a thread; c=64
8,000-9,000 vs 4,000-7,500 PATCH/s). Everything that can wait on the disk runs on
one dedicated thread instead: ``FULL`` commits (fsync), opening, closing, and the WAL checkpoints, which
SQLite would otherwise run inside a commit with an fsync of the database file.

Checkpoints are manual (``wal_autocheckpoint=0``) and run on a second connection of the thread. A
checkpoint takes 6-13 ms (two fsyncs); commits waiting for it held a claim burst's answers that long.
So once ``CHECKPOINT_ROWS`` rows were written since the last one, a checkpoint starts at the first
pause of ``CHECKPOINT_QUIET_S`` in the writes and runs alongside the commits that follow. It copies
the frames that existed when it began; the WAL starts over at the first write after one has caught
up completely. A stream of writes without pauses gets a checkpoint the commits wait for (nothing is
appended meanwhile, so it completes) every ``CHECKPOINT_ROWS_MAX`` rows, and so does a WAL that
concurrent checkpoints let grow past ``WAL_FRAMES_LIMIT``: the WAL stays bounded.

Durability (``synchronous``, WAL journal):

* ``NORMAL`` (default): a commit is written to the WAL file before the writer is answered, without an
  fsync. It survives the API server process dying in any way (SIGKILL, OOM kill, crash): the kernel
  holds the written pages. A power loss or kernel crash can lose the last commits (never corrupt the
  database).
* ``FULL``: the WAL is fsynced on every commit (once per batch); also survives power loss.

A failing commit (disk full, I/O error) is logged and its writers get an error instead of a success;
the batch stays pending and the next commit retries it, with a backoff while the failure lasts.

Watch events are delivered after the commit as with kube-apiserver: watch streams await
:meth:`wait_committed` before sending (and bookmarks carry :attr:`committed_rv`), so no watcher acts on
a write that a crash then loses. Reads (get/list) serve memory and can show a write whose commit is
still running, as a read of an object being written would.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from agent_sandbox.common.logging import get_logger

from .groupcommit import Batch, CommitError, GroupCommit
from .store import Key

log = get_logger(__name__)

Synchronous = Literal["NORMAL", "FULL"]
T = TypeVar("T")
RETRY_MIN_S = 0.1
RETRY_MAX_S = 2.0
CHECKPOINT_ROWS = 500  # rows since the last checkpoint that make one due at the next pause
CHECKPOINT_QUIET_S = 0.005  # a pause in the writes this long starts a due checkpoint
CHECKPOINT_ROWS_MAX = 1000  # ...and without a pause, commits wait for one (most rows dirty a 4 KB page)
#: A concurrent checkpoint finding the WAL longer than this (frames) makes commits wait for the next one.
WAL_FRAMES_LIMIT = 2000
WRITE_BUSY_TIMEOUT_S = 0.1  # no other connection writes; never let a lock wait stall the event loop for long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqlitePersistence:
    def __init__(self, path: pathlib.Path, synchronous: Synchronous = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.fault: Callable[[], bool] | None = None  # fault injection: True = fail this commit
        self._db: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None  # used on the thread only
        self._thread: ThreadPoolExecutor | None = None
        self._commits = GroupCommit()
        self._task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[int] | None = None
        self._wakeup = asyncio.Event()

    @property
    def committed_rv(self) -> int:
        """The highest resourceVersion known to be on disk."""
        return self._commits.committed_rv

    async def open(self) -> tuple[int, list[tuple[str, bytes]]]:
        """Open (creating) the database; return the saved counter and every stored object."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="localcluster-sqlite")
        try:
            rv, rows = await self._call(self._open_sync)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
        self._commits = GroupCommit(rv)
        return rv, rows

    def _open_sync(self) -> tuple[int, list[tuple[str, bytes]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN ... COMMIT in _write_sync).
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=WRITE_BUSY_TIMEOUT_S)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        rows = [(str(r[0]), bytes(r[1])) for r in db.execute("SELECT resource, data FROM objects ORDER BY resource")]
        self._db = db
        self._checkpointer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        return int(row[0]) if row else 0, rows

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the database thread."""
        if self._thread is None:
            raise CommitError("persistence is closed")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="localcluster-persistence")

    def record(self, resource: str, key: Key, raw: bytes | None, rv: int) -> None:
        self._commits.record((resource, key), raw, rv)
        self._wakeup.set()

    async def wait_durable(self, rv: int) -> None:
        """Return once every write up to ``rv`` is committed; :class:`CommitError` if its commit failed."""
        await self._commits.wait(rv)

    async def wait_committed(self, rv: int) -> None:
        """Like :meth:`wait_durable` but waits through failed commits (their retries) until closed."""
        while True:
            try:
                await self._commits.wait(rv)
                return
            except CommitError:
                if self._commits.closed:
                    raise

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        rows_since_checkpoint = 0
        while True:
            due = rows_since_checkpoint >= CHECKPOINT_ROWS and self._checkpoint_task is None
            try:
                await asyncio.wait_for(self._wakeup.wait(), CHECKPOINT_QUIET_S if due else None)
            except TimeoutError:  # a pause in the writes: start the due checkpoint alongside the next commits
                rows_since_checkpoint = 0
                self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoint())
                continue
            self._wakeup.clear()
            batch = self._commits.take()
            if batch is None:
                continue
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._commits.failed(batch, "the API server is shutting down")
                raise
            except Exception as exc:  # disk full, I/O error, ...: fail these writers, keep the batch, retry
                self._commits.failed(batch, f"could not save to {self.path.name}: {exc}")
                log.error("persistence commit failed; writers get an error, retrying", error=str(exc),
                          resource_version=batch.rv, pending_objects=self._commits.pending_count,
                          retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                self._wakeup.set()
            else:
                self._commits.succeeded(batch)
                delay = RETRY_MIN_S
                rows_since_checkpoint += len(batch.items)
                if self._wal_too_long() or (rows_since_checkpoint >= CHECKPOINT_ROWS_MAX
                                            and self._checkpoint_task is None):
                    rows_since_checkpoint = 0
                    await self._checkpoint()  # nothing is appended meanwhile: the next write starts the WAL over

    def _wal_too_long(self) -> bool:
        """Whether the last checkpoint alongside the commits has finished and found the WAL too long."""
        task = self._checkpoint_task
        if task is None or not task.done():
            return False
        self._checkpoint_task = None
        return not task.cancelled() and task.result() > WAL_FRAMES_LIMIT

    async def _checkpoint(self) -> int:
        """Copy the WAL into the database file on the thread; returns the WAL's length in frames (0: failed)."""
        try:
            return await self._call(self._checkpoint_sync)
        except Exception as exc:  # not fatal: the WAL grows until the next checkpoint succeeds
            log.warning("WAL checkpoint failed; retrying later", error=str(exc))
            return 0

    def _checkpoint_sync(self) -> int:
        if self._checkpointer is None:
            return 0
        _busy, frames, _copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)

    async def _write(self, batch: Batch, *, on_loop: bool = True) -> None:
        fail = self.fault is not None and self.fault()  # rolled here: the injector is not thread-safe
        if on_loop and self.synchronous == "NORMAL":
            self._write_sync(batch.items, batch.rv, fail)  # no fsync: page-cache writes (see module doc)
        else:
            await self._call(self._write_sync, batch.items, batch.rv, fail)

    def _write_sync(self, items: dict[tuple[str, Key], bytes | None], rv: int, fail: bool) -> None:
        db = self._db
        if db is None:
            raise CommitError("persistence is closed")
        upserts = [(r, k[0], k[1], raw) for (r, k), raw in items.items() if raw is not None]
        deletes = [(r, k[0], k[1]) for (r, k), raw in items.items() if raw is None]
        try:
            db.execute("BEGIN")
            if upserts:
                db.executemany(
                    "INSERT INTO objects(resource, namespace, name, data) VALUES (?,?,?,?) "
                    "ON CONFLICT(resource, namespace, name) DO UPDATE SET data=excluded.data", upserts)
            if deletes:
                db.executemany("DELETE FROM objects WHERE resource=? AND namespace=? AND name=?", deletes)
            db.execute("INSERT INTO meta(key, value) VALUES ('rv', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(rv),))
            if fail:
                raise sqlite3.OperationalError("injected fault: commit failed")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        """Stop the commit task, commit what is left (a clean shutdown loses nothing), close the file."""
        for task in (self._task, self._checkpoint_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._checkpoint_task = None
        if self._thread is None:
            return
        batch = self._commits.take()
        if batch is not None:
            try:
                await self._write(batch, on_loop=False)  # queued behind a checkpoint the cancel interrupted
            except Exception as exc:
                self._commits.failed(batch, f"could not save to {self.path.name}: {exc}")
                log.error("final persistence commit failed", error=str(exc), resource_version=batch.rv)
            else:
                self._commits.succeeded(batch)
        self._commits.close()
        await self._call(self._close_sync)
        self._thread.shutdown(wait=False)  # idle now: the close above was its last job
        self._thread = None

    def _close_sync(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None
