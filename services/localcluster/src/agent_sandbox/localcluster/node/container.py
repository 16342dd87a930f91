"""One container's life on a node, as a pure state machine.

Both node agents (``sim`` and ``local``) must report container status exactly
like a kubelet, and the subtle parts — when restartCount moves, which image the
status shows during an in-place swap, ErrImagePull vs ImagePullBackOff,
CrashLoopBackOff timing — are the same whether the container is a timer or a
bubblewrap process. So the decisions live here, without I/O: every event
(spec image changed, image pulled, container started/exited, timer fired,
shutdown) returns the :class:`Action` list the runtime must carry out, and
:meth:`ContainerMachine.status` renders ``status.containerStatuses[i]``.

Rules (kubelet behaviour the operator relies on, behaviour.md §7):

* A spec image change stops the running container and starts one from the new
  image in place. Until the new container runs, the status keeps the old
  ``image``/``imageID``/``containerID``; when it runs all three change and
  ``restartCount`` increments.
* ``restartCount`` = containers created for this name minus one.
* Pull failure → ``ErrImagePull``, shortly after ``ImagePullBackOff`` until the
  back-off expires and the pull is retried.
* Exit under ``restartPolicy: Always`` (or ``OnFailure`` with a non-zero code)
  → restart, at once the first time, then with ``CrashLoopBackOff``.
* A failed start is a terminated container with reason ``StartError`` (exit
  128), as containerd reports it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent_sandbox.localcluster.node.backoff import Backoff, go_duration
from agent_sandbox.localcluster.node.timefmt import parse_rfc3339, rfc3339


class Phase(StrEnum):
    PULLING = "pulling"
    PULL_BACKOFF = "pull-backoff"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASH_BACKOFF = "crash-backoff"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Pull:
    image: str
    token: int


@dataclass(frozen=True, slots=True)
class Start:
    container_id: str
    image: str
    image_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    container_id: str
    grace: float


@dataclass(frozen=True, slots=True)
class Wake:
    """Call :meth:`ContainerMachine.timer` with ``token`` after ``delay`` seconds."""

    delay: float
    token: int


Action = Pull | Start | Stop | Wake


@dataclass(slots=True)
class Instance:
    """One created container (the runtime's unit): what the status reports about it."""

    container_id: str
    image: str
    image_id: str
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    crash_backoff_base: float = 10.0
    crash_backoff_cap: float = 300.0
    pull_backoff_base: float = 10.0
    pull_backoff_cap: float = 300.0
    #: How long ErrImagePull shows before the status turns to ImagePullBackOff.
    err_image_pull_display: float = 1.0


def new_container_id() -> str:
    return secrets.token_hex(32)


class ContainerMachine:
    """Kubelet decisions for one container of one pod (see module docstring)."""

    def __init__(
        self,
        name: str,
        image: str,
        *,
        restart_policy: str = "Always",
        grace: float = 30.0,
        timing: Timing | None = None,
        pod_label: str = "",
        new_id: Callable[[], str] = new_container_id,
    ) -> None:
        timing = timing or Timing()
        self.name = name
        self.spec_image = image
        self.restart_policy = restart_policy
        self.grace = grace
        self.phase = Phase.PULLING
        self.instance: Instance | None = None
        self.pending: Instance | None = None
        self.created = 0
        self.last_terminated: dict[str, Any] | None = None
        self.terminated: dict[str, Any] | None = None
        self.waiting_reason = "ContainerCreating"
        self.waiting_message: str | None = None
        self._timing = timing
        self._crash = Backoff(timing.crash_backoff_base, timing.crash_backoff_cap)
        self._pull = Backoff(timing.pull_backoff_base, timing.pull_backoff_cap, immediate_first=False)
        self._pod_label = pod_label
        self._new_id = new_id
        self._token = 0
        self._timer_kind = ""
        self._pull_retry_wait = 0.0
        self._shutting_down = False

    # ---- events -------------------------------------------------------------------------------

    def begin(self) -> list[Action]:
        """First sync of a new pod: pull the spec image."""
        return self._pull_spec()

    def set_image(self, image: str) -> list[Action]:
        """The pod spec's image changed (the operator's in-place swap)."""
        if image == self.spec_image:
            return []
        self.spec_image = image
        self._crash.reset()
        self._pull.reset()
        if self._shutting_down or self.phase == Phase.TERMINATED:
            return []
        if self.phase in (Phase.PULLING, Phase.PULL_BACKOFF, Phase.CRASH_BACKOFF):
            return self._pull_spec()
        if self.phase == Phase.RUNNING:
            return self._stop()
        return []  # STARTING: checked when the start lands; STOPPING: the next pull uses the new image

    def pulled(self, token: int, image_id: str) -> list[Action]:
        if token != self._token or self.phase not in (Phase.PULLING, Phase.PULL_BACKOFF):
            return []
        self._pull.reset()
        self.phase = Phase.STARTING
        self.waiting_reason, self.waiting_message = "ContainerCreating", None
        self.pending = Instance(self._new_id(), self.spec_image, image_id)
        return [Start(self.pending.container_id, self.pending.image, image_id)]

    def pull_failed(self, token: int, message: str, now: float) -> list[Action]:
        if token != self._token or self.phase not in (Phase.PULLING, Phase.PULL_BACKOFF):
            return []
        self.phase = Phase.PULL_BACKOFF
        self.waiting_reason, self.waiting_message = "ErrImagePull", message
        wait = self._pull.next_wait(now)
        display = min(self._timing.err_image_pull_display, wait)
        self._pull_retry_wait = wait - display
        return [self._wake("show-pull-backoff", display)]

    def started(self, container_id: str, now: float) -> list[Action]:
        if self.phase != Phase.STARTING or self.pending is None or self.pending.container_id != container_id:
            return []
        self.instance, self.pending = self.pending, None
        self.instance.started_at = now
        self.created += 1
        self.phase = Phase.RUNNING
        self.terminated = None
        if self._shutting_down or self.instance.image != self.spec_image:
            return self._stop()
        return []

    def start_failed(self, container_id: str, message: str, now: float) -> list[Action]:
        if self.phase != Phase.STARTING or self.pending is None or self.pending.container_id != container_id:
            return []
        self.instance, self.pending = self.pending, None
        self.created += 1
        self.phase = Phase.RUNNING  # so exited() applies the restart policy to the failed start
        return self.exited(container_id, 128, "StartError", now, message=message)

    def exited(
        self, container_id: str, exit_code: int, reason: str | None, now: float, message: str | None = None
    ) -> list[Action]:
        if self.instance is None or self.instance.container_id != container_id:
            return []
        if self.phase not in (Phase.RUNNING, Phase.STOPPING):
            return []
        term: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": rfc3339(self.instance.started_at) if self.instance.started_at else None,
            "finishedAt": rfc3339(now),
            "containerID": f"containerd://{container_id}",
        }
        if message:
            term["message"] = message
        if self._shutting_down:
            self.phase, self.terminated = Phase.TERMINATED, term
            return []
        image_changed = self.phase == Phase.STOPPING
        if not image_changed and not self._restarts(exit_code):
            self.phase, self.terminated = Phase.TERMINATED, term
            return []
        self.last_terminated = term
        if image_changed:
            return self._pull_spec()
        wait = self._crash.next_wait(now)
        if wait <= 0:
            return self._pull_spec()
        self.phase = Phase.CRASH_BACKOFF
        self.waiting_reason = "CrashLoopBackOff"
        self.waiting_message = (
            f"back-off {go_duration(wait)} restarting failed container={self.name} pod={self._pod_label}"
        )
        return [self._wake("restart", wait)]

    def timer(self, token: int) -> list[Action]:
        if token != self._token:
            return []
        if self._timer_kind == "show-pull-backoff" and self.phase == Phase.PULL_BACKOFF:
            self.waiting_reason = "ImagePullBackOff"
            self.waiting_message = f'Back-off pulling image "{self.spec_image}"'
            return [self._wake("retry-pull", self._pull_retry_wait)]
        if self._timer_kind == "retry-pull" and self.phase == Phase.PULL_BACKOFF:
            self._token += 1
            return [Pull(self.spec_image, self._token)]
        if self._timer_kind == "restart" and self.phase == Phase.CRASH_BACKOFF:
            return self._pull_spec()
        return []

    def shutdown(self, grace: float | None = None) -> list[Action]:
        """Pod deletion or eviction: stop the container for good."""
        self._shutting_down = True
        if grace is not None:
            self.grace = grace
        self._token += 1  # cancels pending pulls and timers
        if self.phase == Phase.RUNNING:
            return self._stop()
        if self.phase in (Phase.PULLING, Phase.PULL_BACKOFF, Phase.CRASH_BACKOFF):
            self.phase = Phase.TERMINATED
            self.terminated = self.last_terminated or {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
            }
        return []  # STARTING stops once started; STOPPING ends in exited()

    def lost(self, now: float) -> list[Action]:
        """The runtime no longer has the running container (node restart): count it as dead."""
        if self.instance is None or self.phase not in (Phase.RUNNING, Phase.STOPPING):
            return []
        return self.exited(self.instance.container_id, 255, "Unknown", now)

    # ---- restore after a node restart --------------------------------------------------------

    def restore(self, status: dict[str, Any], alive: bool, now: float) -> list[Action]:
        """Resume from a previously reported ``containerStatuses[i]`` after a node restart.

        ``alive`` says the runtime still has the container the status names; a
        container that was running but is gone counts as exited (reason Unknown).
        """
        cid = str(status.get("containerID") or "").removeprefix("containerd://")
        self.created = int(status.get("restartCount") or 0) + (1 if cid else 0)
        last = (status.get("lastState") or {}).get("terminated")
        self.last_terminated = dict(last) if last else None
        state = status.get("state") or {}
        if cid:
            running = state.get("running") or {}
            self.instance = Instance(cid, status.get("image") or self.spec_image, status.get("imageID") or "",
                                     parse_rfc3339(running.get("startedAt")))
        if "running" in state and self.instance is not None:
            self.phase = Phase.RUNNING
            if not alive:
                return self.lost(now)
            return self._stop() if self.instance.image != self.spec_image else []
        terminated = state.get("terminated")
        if terminated and not self._restarts(int(terminated.get("exitCode") or 0)):
            self.phase, self.terminated = Phase.TERMINATED, dict(terminated)
            return []
        return self._pull_spec()

    # ---- status ----------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.phase == Phase.RUNNING

    @property
    def is_stopped(self) -> bool:
        return self.phase == Phase.TERMINATED

    @property
    def has_run(self) -> bool:
        return self.created > 0

    def status(self) -> dict[str, Any]:
        inst = self.instance
        out: dict[str, Any] = {
            "name": self.name,
            "image": inst.image if inst else self.spec_image,
            "imageID": inst.image_id if inst else "",
            "restartCount": max(0, self.created - 1),
            "started": self.phase in (Phase.RUNNING, Phase.STOPPING),
            "ready": self.phase == Phase.RUNNING,
        }
        if inst:
            out["containerID"] = f"containerd://{inst.container_id}"
        if self.phase in (Phase.RUNNING, Phase.STOPPING) and inst and inst.started_at is not None:
            out["state"] = {"running": {"startedAt": rfc3339(inst.started_at)}}
        elif self.phase == Phase.TERMINATED and self.terminated:
            out["state"] = {"terminated": _clean(self.terminated)}
        else:
            waiting: dict[str, Any] = {"reason": self.waiting_reason}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            out["state"] = {"waiting": waiting}
        out["lastState"] = {"terminated": _clean(self.last_terminated)} if self.last_terminated else {}
        return out

    # ---- helpers ---------------------------------------------------------------------------

    def _restarts(self, exit_code: int) -> bool:
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and exit_code != 0)

    def _pull_spec(self) -> list[Action]:
        self.phase = Phase.PULLING
        self.waiting_reason, self.waiting_message = "ContainerCreating", None
        self._token += 1
        return [Pull(self.spec_image, self._token)]

    def _stop(self) -> list[Action]:
        assert self.instance is not None
        self.phase = Phase.STOPPING
        return [Stop(self.instance.container_id, self.grace)]

    def _wake(self, kind: str, delay: float) -> Wake:
        self._token += 1
        self._timer_kind = kind
        return Wake(delay, self._token)


def _clean(term: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in term.items() if v is not None}
