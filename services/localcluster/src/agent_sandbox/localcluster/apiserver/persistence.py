"""Optional SQLite persistence with write-behind batching.

The store reports every committed write to :meth:`SqlitePersistence.record`,
which only remembers the latest bytes per object (so the pending map is bounded
by the number of objects). A background task flushes the batch in one
transaction every ``interval`` seconds; ``close()`` flushes what is left, so a
clean shutdown loses nothing. The resourceVersion counter is saved with every
batch so versions keep increasing across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib

import aiosqlite

from agent_sandbox.common.logging import get_logger

from .store import Key

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqlitePersistence:
    def __init__(self, path: pathlib.Path, interval: float = 0.05) -> None:
        self.path = path
        self.interval = interval
        self._db: aiosqlite.Connection | None = None
        self._pending: dict[tuple[str, Key], bytes | None] = {}
        self._rv = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    async def open(self) -> tuple[int, list[tuple[str, bytes]]]:
        """Open (creating) the database; return the saved counter and every stored object."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(_SCHEMA)
        async with self._db.execute("SELECT value FROM meta WHERE key='rv'") as cur:
            row = await cur.fetchone()
        rv = int(row[0]) if row else 0
        async with self._db.execute("SELECT resource, data FROM objects ORDER BY resource") as cur:
            rows = [(str(r[0]), bytes(r[1])) for r in await cur.fetchall()]
        self._rv = rv
        return rv, rows

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="localcluster-persistence")

    def record(self, resource: str, key: Key, raw: bytes | None, rv: int) -> None:
        self._pending[(resource, key)] = raw
        self._rv = rv
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.interval)
            self._wakeup.clear()
            try:
                await self.flush()
            except (aiosqlite.Error, OSError) as exc:
                log.error("persistence flush failed; retrying", error=str(exc))
                self._wakeup.set()
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        if not self._pending or self._db is None:
            return
        batch, self._pending = self._pending, {}
        upserts = [(r, k[0], k[1], raw) for (r, k), raw in batch.items() if raw is not None]
        deletes = [(r, k[0], k[1]) for (r, k), raw in batch.items() if raw is None]
        try:
            if upserts:
                await self._db.executemany(
                    "INSERT INTO objects(resource, namespace, name, data) VALUES (?,?,?,?) "
                    "ON CONFLICT(resource, namespace, name) DO UPDATE SET data=excluded.data", upserts)
            if deletes:
                await self._db.executemany("DELETE FROM objects WHERE resource=? AND namespace=? AND name=?",
                                           deletes)
            await self._db.execute("INSERT INTO meta(key, value) VALUES ('rv', ?) "
                                   "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(self._rv),))
            await self._db.commit()
        except BaseException:
            # Keep the batch (newer writes win) so the next flush retries it.
            for item, raw in batch.items():
                self._pending.setdefault(item, raw)
            raise

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._db is not None:
            await self.flush()
            await self._db.close()
            self._db = None
