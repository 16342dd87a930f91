"""The contract between the kubelet shell and a container runtime (``sim`` or ``local``).

The kubelet decides (via :mod:`.container`); the runtime does. Runtime calls
return at once and report outcomes later through :class:`RuntimeEvents`, so a
``sim`` runtime can serve thousands of pods from one timer heap and a ``local``
runtime can run each sandbox's start/stop in the background.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_sandbox.localcluster.apiserver.podexec import ExecCall
from agent_sandbox.localcluster.node.container import ContainerMachine, Start
from agent_sandbox.localcluster.node.podstatus import PodFacts


@dataclass(slots=True, eq=False)
class PodRecord:
    """Everything the node keeps about one pod bound to it."""

    uid: str
    namespace: str
    name: str
    spec: dict[str, Any]
    annotations: dict[str, str]
    facts: PodFacts
    machines: dict[str, ContainerMachine] = field(default_factory=dict)
    deleting: bool = False
    gone: bool = False
    frozen: bool = False
    released: bool = False
    delete_sent: bool = False
    last_written: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_ip(self) -> str | None:
        return self.facts.pod_ip

    def container_spec(self, name: str) -> dict[str, Any]:
        return next((c for c in self.spec.get("containers") or [] if c.get("name") == name), {})

    def all_stopped(self) -> bool:
        return all(m.is_stopped for m in self.machines.values())


class RuntimeEvents(Protocol):
    def pulled(self, uid: str, container: str, token: int, image_id: str) -> None: ...
    def pull_failed(self, uid: str, container: str, token: int, message: str) -> None: ...
    def started(self, uid: str, container: str, container_id: str) -> None: ...
    def start_failed(self, uid: str, container: str, container_id: str, message: str) -> None: ...
    def exited(self, uid: str, container: str, container_id: str, exit_code: int,
               reason: str | None = None, message: str | None = None) -> None: ...
    def evict(self, uid: str, message: str) -> None: ...


class Runtime(ABC):
    kind: str  # the node kind: "sim" or "local"
    name: str  # the runtime in Node.status.nodeInfo.containerRuntimeVersion
    version: str
    #: After a node restart, do containers that a pod's status reports as running still run?
    keeps_containers: bool

    @abstractmethod
    async def open(self) -> None:
        """Prepare (and clean up after a previous run of) the node's state."""

    @abstractmethod
    async def close(self) -> None:
        """The node agent stops: end whatever must not outlive it."""

    @abstractmethod
    def assign_ip(self, pod: PodRecord, reported: str | None) -> str:
        """The pod's IP: keep ``reported`` (from its status) when still valid, else allocate."""

    @abstractmethod
    def pull(self, pod: PodRecord, container: str, image: str, token: int) -> None: ...

    @abstractmethod
    def start(self, pod: PodRecord, container: str, action: Start) -> None: ...

    @abstractmethod
    def stop(self, pod: PodRecord, container: str, container_id: str, grace: float) -> None: ...

    def pod_updated(self, pod: PodRecord) -> None:  # noqa: B027 - optional hook
        """The pod's annotations changed (run-time fault injection reads them)."""

    @abstractmethod
    async def exec(self, call: ExecCall) -> int:
        """Run a ``pods/exec`` command in a running container; its exit code (ExecError: cannot run)."""

    @abstractmethod
    async def release(self, pod: PodRecord) -> None:
        """Every container of ``pod`` stopped for good: free its IP and files."""
