"""Watch-fed in-memory cache of one resource type (an informer).

Every decision of the operator reads this cache instead of the API server:
the claim path pops pods from it, the reconciler lists a pool's pods from an
index. It lists once, then watches from the list's resourceVersion; a dropped
stream resumes from the last seen version, a ``410 Gone`` (the server forgot
that version, e.g. after a restart) triggers a full relist whose differences
are delivered as ordinary events, and any other failure backs off and
retries forever. Handlers are synchronous and must only enqueue work.

``lag_s`` delays every watch event by a fixed time, in order: a real
informer lags 50-300 ms behind the API server, and the claim path's
correctness (reservations, the resourceVersion CAS, expectations) must hold
under that lag — stress tests and benchmarks turn it up to prove it.

``set_gate`` installs a gate the watch loop passes before an event: the pod
informer holds events back while claim writes are in flight, so a burst's own
watch echoes are applied after its answers rather than between them. Nothing
on the claim path needs those echoes (a claimed pod stays reserved until its
event arrives). A hold lasts at most ``hold_s`` and is followed by as long
without holds, so under a steady stream of claims events still flow (at most
``hold_s`` late) and the backlog drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.kube.client import KubeClient, KubeError

Obj = dict[str, Any]
Handler = Callable[[str, Obj | None, Obj | None], None]
IndexFunc = Callable[[Obj], list[str]]

log = get_logger(__name__)


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else meta.get("name", "")


class Informer:
    def __init__(self, client: KubeClient, path: str, *, kind: str,
                 label_selector: str | None = None, watch_timeout_s: int = 300,
                 max_backoff_s: float = 10.0, lag_s: float = 0.0) -> None:
        self._client = client
        self._path = path
        self.kind = kind
        self._selector = label_selector
        self._watch_timeout = watch_timeout_s
        self._max_backoff = max_backoff_s
        self._store: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._handlers: list[Handler] = []
        self._waiters: dict[str, list[tuple[Callable[[Obj | None], bool], asyncio.Future[Obj | None]]]] = {}
        self._rv = ""
        self._lag = lag_s
        self._lagged: deque[tuple[float, str, Obj]] = deque()
        self._lag_wake = asyncio.Event()
        self._gate: Callable[[], Awaitable[None] | None] | None = None
        self._gate_hold_s = 0.0
        self._gate_open_until = 0.0
        self.synced = asyncio.Event()
        self.relists = 0

    # ---- configuration -------------------------------------------------------------------
    def set_gate(self, gate: Callable[[], Awaitable[None] | None], hold_s: float) -> None:
        """Before applying a watch event, await ``gate()`` (for at most ``hold_s``) when it returns an
        awaitable; None means go on."""
        self._gate = gate
        self._gate_hold_s = hold_s

    async def _pass_gate(self) -> None:
        loop = asyncio.get_running_loop()
        if self._gate is None or loop.time() < self._gate_open_until:
            return
        hold = self._gate()
        if hold is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hold, self._gate_hold_s)
        self._gate_open_until = loop.time() + self._gate_hold_s

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._indexers[name] = func
        idx: dict[str, set[str]] = {}
        for key, obj in self._store.items():
            for value in func(obj):
                idx.setdefault(value, set()).add(key)
        self._indexes[name] = idx

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    # ---- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self._store.get(key)

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indexes[name].get(value) or ()
        return [self._store[k] for k in keys if k in self._store]

    def items(self) -> list[Obj]:
        return list(self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    async def wait_for(self, key: str, predicate: Callable[[Obj | None], bool], timeout_s: float) -> Obj | None:
        """Wait until the cached object at ``key`` satisfies ``predicate``; TimeoutError otherwise."""
        current = self._store.get(key)
        if predicate(current):
            return current
        fut: asyncio.Future[Obj | None] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.setdefault(key, []).append(entry)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(entry)
                if not waiters:
                    del self._waiters[key]

    async def wait_seen(self, written: Obj, timeout_s: float) -> None:
        """Return once the cache holds ``written`` (the object a write answered) or something newer, or the
        object is gone — so a read after one's own write sees it. Gives up quietly after ``timeout_s``."""
        target = (written.get("metadata") or {}).get("resourceVersion")

        def seen(obj: Obj | None) -> bool:
            return obj is None or _version_at_least((obj.get("metadata") or {}).get("resourceVersion"), target)

        with contextlib.suppress(TimeoutError):
            await self.wait_for(object_key(written), seen, timeout_s)

    # ---- cache maintenance ---------------------------------------------------------------
    def _index(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._indexers.items():
            old_values = func(old) if old is not None else []
            new_values = func(new) if new is not None else []
            if old_values == new_values:
                continue  # the common case (a status or annotation change): nothing to move
            idx = self._indexes[name]
            before, after = set(old_values), set(new_values)
            for value in before - after:
                keys = idx.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[value]
            for value in after - before:
                idx.setdefault(value, set()).add(key)

    def _apply(self, event_type: str, obj: Obj) -> None:
        key = object_key(obj)
        old = self._store.get(key)
        if event_type == "DELETED":
            if old is None:
                return
            del self._store[key]
            new: Obj | None = None
        else:
            self._store[key] = obj
            new = obj
            event_type = "MODIFIED" if old is not None else "ADDED"
        self._index(key, old, new)
        for handler in self._handlers:
            try:
                handler(event_type, old, new)
            except Exception:  # a handler bug must not kill the cache
                log.exception("informer handler failed", kind=self.kind, key=key)
        for predicate, fut in list(self._waiters.get(key) or ()):
            if not fut.done() and predicate(new):
                fut.set_result(new)

    async def _relist(self) -> None:
        self._lagged.clear()  # the listing supersedes events still waiting out their lag
        listing = await self._client.list(self._path, label_selector=self._selector)
        fresh = {object_key(o): o for o in listing.get("items") or []}
        for key in [k for k in self._store if k not in fresh]:
            self._apply("DELETED", self._store[key])
        for obj in fresh.values():
            old = self._store.get(object_key(obj))
            if old is None or (old.get("metadata") or {}).get("resourceVersion") != (
                    obj.get("metadata") or {}).get("resourceVersion"):
                self._apply("MODIFIED", obj)
        self._rv = (listing.get("metadata") or {}).get("resourceVersion", "")
        self.relists += 1
        self.synced.set()

    async def _apply_lagged(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._lagged:
                self._lag_wake.clear()
                await self._lag_wake.wait()
                continue
            due, event_type, obj = self._lagged[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            self._lagged.popleft()
            self._apply(event_type, obj)

    async def run(self) -> None:
        """List, then watch forever; cancel the task to stop."""
        applier = asyncio.create_task(self._apply_lagged()) if self._lag > 0 else None
        try:
            await self._watch_forever()
        finally:
            if applier is not None:
                applier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await applier

    async def _watch_forever(self) -> None:
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async for event in self._client.watch(self._path, resource_version=self._rv,
                                                      timeout_s=self._watch_timeout,
                                                      label_selector=self._selector):
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self._rv = rv
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        await self._pass_gate()
                        if self._lag > 0:
                            self._lagged.append((asyncio.get_running_loop().time() + self._lag,
                                                 event["type"], obj))
                            self._lag_wake.set()
                        else:
                            self._apply(event["type"], obj)
                    failures = 0
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.gone:
                    need_list = True
                    continue
                failures += 1
                log.warning("watch failed", kind=self.kind, error=str(exc))
            except Exception as exc:
                failures += 1
                log.warning("watch failed", kind=self.kind, error=repr(exc))
            if failures:
                delay = min(self._max_backoff, 0.2 * 2 ** min(failures, 10)) * random.uniform(0.8, 1.2)
                await asyncio.sleep(delay)
                if failures >= 3:
                    need_list = True


def _version_at_least(current: str | None, target: str | None) -> bool:
    """Whether ``current`` is ``target`` or later. Resource versions are numeric on every API server we
    talk to (etcd revisions, our own counter); anything else is compared for equality only."""
    if current == target:
        return True
    try:
        return int(current or "") >= int(target or "")
    except ValueError:
        return False
