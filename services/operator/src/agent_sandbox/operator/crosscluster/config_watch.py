"""Keep the cluster directory in step with the ConfigMap ``agentsandbox-clusters``.

An informer over the ConfigMaps of the operator's namespace (a handful of objects) feeds the directory
on every change of the one that matters. The informer lists, watches, resumes a dropped watch and
relists after ``410 Gone`` by itself, so forwarding recovers from an API-server outage without help;
an invalid document is logged and the last valid configuration stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from agent_sandbox.common.clusters import CONFIGMAP_NAME, ClusterConfigError
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.crosscluster.directory import ClusterDirectory
from agent_sandbox.operator.kube.client import KubeClient
from agent_sandbox.operator.kube.informer import Informer, object_key

log = get_logger(__name__)


def configmaps_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


class ClusterConfigWatch:
    def __init__(self, client: KubeClient, directory: ClusterDirectory, namespace: str,
                 name: str = CONFIGMAP_NAME) -> None:
        self.directory = directory
        self._key = f"{namespace}/{name}"
        self.informer = Informer(client, configmaps_path(namespace), kind="ConfigMap")
        self.informer.add_handler(self._on_event)
        self._task: asyncio.Task[None] | None = None

    def _on_event(self, _event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        obj = new if new is not None else old
        if obj is None or object_key(obj) != self._key:
            return
        try:
            self.directory.apply_configmap(new)
        except ClusterConfigError as exc:
            log.warning("ignoring invalid cluster configuration; keeping the previous one", error=str(exc))
            return
        log.info("cluster configuration loaded", clusters=[c["id"] for c in self.directory.listing()])

    def start(self) -> None:
        self._task = asyncio.create_task(self.informer.run(), name="informer:clusters")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
