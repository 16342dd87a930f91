"""Writing one watch as a chunked JSON-lines HTTP stream.

The store fills a :class:`Watcher`'s buffer; this loop drains it in batches
(one socket write per batch, so fan-out over thousands of events stays cheap),
sends BOOKMARKs while idle when asked, ends at ``timeoutSeconds``, when the
client goes away, when the watcher is dropped for lagging, or when fault
injection says so. Table-format watches (``kubectl get -w``) send column
definitions only with the first event, as kube-apiserver does.

With persistence, each batch is held until its highest resourceVersion is
committed (``durable``): like kube-apiserver, which emits after the etcd commit,
a watcher never acts on a write that a crash could still lose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from . import tables
from .faults import FaultInjector
from .resources import ResourceType, served_bytes
from .watchers import Watcher

IDLE_CHECK_S = 5.0  # how often an idle stream checks that its client is still connected


@dataclass(frozen=True, slots=True)
class StreamOptions:
    timeout_s: int | None
    bookmarks: bool
    table: bool
    initial_end: int  # events before the "initial-events-end" bookmark (-1 = not requested)
    bookmark_interval: float


def bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return orjson.dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                       "metadata": meta}}) + b"\n"


async def stream(request: web.BaseRequest, response: web.StreamResponse, rt: ResourceType, watcher: Watcher,
                 current_rv: Callable[[], int], faults: FaultInjector, opts: StreamOptions,
                 durable: Callable[[int], Awaitable[None]] | None = None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + opts.timeout_s if opts.timeout_s and opts.timeout_s > 0 else None
    delivered = 0
    headers = True
    if opts.initial_end == 0:  # sendInitialEvents with nothing to send: mark the end at once
        await response.write(bookmark(rt, current_rv(), initial_end=True))
    while not watcher.dropped:
        if not watcher.pending:
            watcher.wakeup.clear()
            wait = opts.bookmark_interval if opts.bookmarks else IDLE_CHECK_S
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return
            try:
                await asyncio.wait_for(watcher.wakeup.wait(), wait)
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                if opts.bookmarks and not watcher.pending and (deadline is None or loop.time() < deadline):
                    await response.write(bookmark(rt, current_rv()))
                continue
        chunks = []
        drop = False
        initial_end = False
        batch_rv = 0  # the highest version in this batch (initial events come in key order, not version order)
        while watcher.pending and not drop and not initial_end:
            kind, obj, raw = watcher.pending.popleft()
            batch_rv = max(batch_rv, int(obj["metadata"]["resourceVersion"]))
            if opts.table:
                body = orjson.dumps(tables.table(rt, [obj], headers=headers, list_meta={
                    "resourceVersion": obj["metadata"]["resourceVersion"]}))
                headers = False
            else:
                body = served_bytes(rt, obj, raw)
            chunks.append(b'{"type":"' + kind.encode() + b'","object":' + body + b"}\n")
            delivered += 1
            initial_end = delivered == opts.initial_end
            drop = faults.drop_watch(delivered)
        if durable is not None:
            await durable(batch_rv)
        if initial_end:  # after the wait, so the bookmark's version covers every initial event
            chunks.append(bookmark(rt, current_rv(), initial_end=True))
        await response.write(b"".join(chunks))
        if drop:
            return
