"""Resilient list+watch of Kubernetes objects as raw JSON dicts.

Every cache extproc keeps (pods, the cluster ConfigMap, API-key Secrets) is fed
by :class:`Informer`: list, then watch from the list's resourceVersion with
bookmarks; a watch that times out is resumed from the last resourceVersion; a
410 Gone, a connection error or an API server that went away triggers a
relist after a capped backoff, forever, while the cache keeps serving the last
known state. Objects stay raw dicts (no model deserialisation per event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.common.logging import get_logger

from . import metrics

log = get_logger(__name__)

Obj = dict[str, Any]


async def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, or the in-cluster service account when none is given."""
    conf = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
    else:
        config.load_incluster_config(client_configuration=conf)
    return client.ApiClient(conf)


class _RawWatch(watch.Watch):
    """A watch that yields raw dicts: no model type, so no deserialisation."""

    def get_return_type(self, func: object) -> None:  # type: ignore[override]
        return None


class Informer:
    def __init__(
        self,
        name: str,
        list_func: Callable[..., Awaitable[Any]],
        *,
        on_replace: Callable[[list[Obj]], None],
        on_upsert: Callable[[Obj], None],
        on_delete: Callable[[Obj], None],
        watch_timeout: int = 240,
        max_backoff: float = 5.0,
        **list_kwargs: Any,
    ) -> None:
        self.name = name
        self._list = list_func
        self._kwargs = list_kwargs
        self._on_replace = on_replace
        self._on_upsert = on_upsert
        self._on_delete = on_delete
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self._restarts = metrics.WATCH_RESTARTS.labels(name)

    async def _relist(self) -> str:
        resp = await self._list(**self._kwargs, _preload_content=False, _request_timeout=30)
        try:
            body = orjson.loads(await resp.read())
        finally:
            resp.release()
        if not isinstance(body, dict) or "items" not in body:
            raise ApiException(status=getattr(resp, "status", 0), reason=f"unexpected list answer for {self.name}")
        self._on_replace(body.get("items") or [])
        self.synced.set()
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def _watch(self, resource_version: str) -> str:
        """Watch until the server ends the stream; returns the last resourceVersion seen."""
        async with _RawWatch() as w:
            stream = w.stream(
                self._list,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout,
                _request_timeout=self.watch_timeout + 30,
                **self._kwargs,
            )
            async for event in stream:
                kind = event.get("type")
                obj = event.get("object")
                if not isinstance(obj, dict):
                    continue
                if kind in ("ADDED", "MODIFIED"):
                    self._on_upsert(obj)
                elif kind == "DELETED":
                    self._on_delete(obj)
            return str(w.resource_version or resource_version)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                rv = await self._relist()
                backoff = 0.2
                while True:
                    rv = await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch expired, relisting", resource=self.name)
                    self._restarts.inc()
                    continue
                log.warning("watch failed", resource=self.name, status=exc.status, reason=str(exc.reason)[:200])
            except Exception as exc:
                log.warning("watch failed", resource=self.name, error=f"{type(exc).__name__}: {exc}"[:300])
            self._restarts.inc()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
