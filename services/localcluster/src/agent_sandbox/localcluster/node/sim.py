"""The ``sim`` runtime: containers are timers, for scale tests with thousands of pods.

Nothing runs; pulls, starts, crashes and evictions are entries in the node's
:class:`~.timers.TimerQueue`, so 10,000 pods cost a few dicts and one task.
Status is still exactly kubelet-shaped (the shared :mod:`.container` machine),
with a stable ``sha256`` digest per normalised image reference (or a
configured one, to model two tags of one image).

Behaviour per image reference (settings ``images`` rules, first glob match;
env ``AGENT_SANDBOX_SIM_*`` or ``<state_dir>/sim.yaml``, see :mod:`.settings`):
``pull_delay`` / ``start_delay`` (default: settings ``pull_delay`` /
``start_delay``), ``pull_error`` (message; the default rule fails
``*:pullerror``), ``crash_exit_code`` + ``crash_after`` (default rule:
``*:crash`` exits 1 after ``crash_after`` seconds), ``evict_after``, ``digest``.
An image already pulled on the node starts without the pull delay.

Run-time injection per pod, through pod annotations (read on every change):

* ``sim.agentsandbox.io/pull-error``: glob of image references whose pull fails
  in this pod (``"true"`` or ``"*"``: every image).
* ``sim.agentsandbox.io/pull-delay``, ``sim.agentsandbox.io/start-delay``: seconds.
* ``sim.agentsandbox.io/stop-delay``: seconds a stopped container takes to exit
  (a process slow to honour SIGTERM; at most the grace period). Meanwhile its
  status stays ``running`` and not ready, as a kubelet reports a container it
  is killing — the window in which in-place swap completion must not fire.
* ``sim.agentsandbox.io/crash``: exit code (1-255); every running container of
  the pod exits with it ``sim.agentsandbox.io/crash-after`` seconds (default
  settings ``crash_after``) after it started or after the annotation appeared.
* ``sim.agentsandbox.io/evict``: ``"true"`` evicts the pod now (phase Failed,
  reason Evicted); ``sim.agentsandbox.io/evict-message`` overrides the message.

A stopped container (image swap, deletion) exits 0: the simulated process
honours SIGTERM.

``pods/exec`` (so post-start exec hooks and ``kubectl exec`` can be tested
against thousands of simulated pods): there is no container to enter, so the
command runs **on the node's host**, as the node's user, in a scratch
directory of its own container (``$HOME`` and the working directory; created
at the first exec, removed with the pod; a restarted container gets a fresh
one). Its ``PATH`` is the node's, its exit code and output are real, and it is
killed when its container stops. Files written there are visible to later
execs into the same container only — enough to observe a hook's effect. The
sim node is a test fixture: whoever may exec into its pods may run commands
as the node's user. After a node restart the sim node keeps every container its
pod's status reports as running (there is nothing that could have died).
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import pathlib
import shutil
import tempfile
from collections import OrderedDict
from typing import Any

from agent_sandbox.localcluster.apiserver.podexec import ExecCall, ExecError
from agent_sandbox.localcluster.node.container import Start
from agent_sandbox.localcluster.node.execproc import run_exec
from agent_sandbox.localcluster.node.images import default_digest, image_id
from agent_sandbox.localcluster.node.ipam import IpAllocator
from agent_sandbox.localcluster.node.runtime import PodRecord, Runtime, RuntimeEvents
from agent_sandbox.localcluster.node.settings import ImageRule, SimSettings
from agent_sandbox.localcluster.node.timers import TimerQueue

ANN_PREFIX = "sim.agentsandbox.io/"
ANN_PULL_ERROR = ANN_PREFIX + "pull-error"
ANN_PULL_DELAY = ANN_PREFIX + "pull-delay"
ANN_START_DELAY = ANN_PREFIX + "start-delay"
ANN_STOP_DELAY = ANN_PREFIX + "stop-delay"
ANN_CRASH = ANN_PREFIX + "crash"
ANN_CRASH_AFTER = ANN_PREFIX + "crash-after"
ANN_EVICT = ANN_PREFIX + "evict"
ANN_EVICT_MESSAGE = ANN_PREFIX + "evict-message"
DEFAULT_EVICT_MESSAGE = "The node was low on resource: memory."
IMAGE_CACHE_SIZE = 10_000


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _exit_code(value: str | None) -> int | None:
    try:
        code = int(value) if value is not None else None
    except ValueError:
        return None
    return code if code is not None and 1 <= code <= 255 else None


class SimRuntime(Runtime):
    kind = "sim"
    name = "sim"
    version = "1.0.0"
    keeps_containers = True

    def __init__(self, events: RuntimeEvents, timers: TimerQueue, settings: SimSettings) -> None:
        self._events = events
        self._timers = timers
        self._settings = settings
        self._ipam = IpAllocator(settings.pod_cidr)
        self._pulled: OrderedDict[str, None] = OrderedDict()
        self._running: dict[str, dict[str, str]] = {}  # pod uid -> container -> container id
        self._crashing: set[str] = set()  # container ids with a crash timer
        self._evicting: set[str] = set()  # pod uids with an eviction timer
        self._execs: dict[str, set[asyncio.Task[Any]]] = {}  # container id -> running exec sessions
        self._scratch: pathlib.Path | None = None  # exec scratch root, made at the first exec
        # image -> (its rule, its imageID): settings are fixed, and glob matching and hashing are not free
        self._images: dict[str, tuple[ImageRule, str]] = {}
        self._default_rule = ImageRule(pattern="*")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        if self._scratch is not None:
            await asyncio.to_thread(shutil.rmtree, self._scratch, True)
            self._scratch = None

    async def exec(self, call: ExecCall) -> int:
        """Run ``call``'s command on the host in its container's scratch directory (see the module doc)."""
        container = call.options.container
        cid = (self._running.get(call.pod_uid) or {}).get(container)
        if cid is None:
            raise ExecError(f'container "{container}" is not running on this node')
        if self._scratch is None:
            self._scratch = pathlib.Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="agent-sandbox-sim-exec-"))
        workdir = self._scratch / call.pod_uid / cid[:16]
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(workdir), "PWD": str(workdir)}
        argv = ["setsid", "--ctty", *call.options.command] if call.options.tty else list(call.options.command)
        task = asyncio.current_task()
        assert task is not None
        sessions = self._execs.setdefault(cid, set())
        sessions.add(task)
        try:
            return await run_exec(argv, call, env=env, cwd=workdir)
        except FileNotFoundError:
            raise ExecError(f'"{call.options.command[0]}": executable file not found in $PATH') from None
        finally:
            sessions.discard(task)
            if not sessions and self._execs.get(cid) is sessions:
                del self._execs[cid]

    def assign_ip(self, pod: PodRecord, reported: str | None) -> str:
        if reported and self._ipam.reserve(pod.uid, reported, save=False):
            return reported
        return self._ipam.allocate(pod.uid)

    # ---- per image / per pod behaviour --------------------------------------------------------

    def _image(self, image: str) -> tuple[ImageRule, str]:
        known = self._images.get(image)
        if known is None:
            if len(self._images) >= IMAGE_CACHE_SIZE:
                self._images.clear()
            rule = self._settings.rule(image) or self._default_rule
            known = self._images[image] = (rule, image_id(image, rule.digest or default_digest(image)))
        return known

    def _rule(self, image: str) -> ImageRule:
        return self._image(image)[0]

    def _pull_error(self, pod: PodRecord, image: str) -> str | None:
        pattern = pod.annotations.get(ANN_PULL_ERROR)
        if pattern is not None and (pattern.lower() == "true" or fnmatch.fnmatchcase(image, pattern)):
            return "simulated registry error (pod annotation)"
        return self._rule(image).pull_error

    def _crash_plan(self, pod: PodRecord, image: str) -> tuple[int, float] | None:
        rule = self._rule(image)
        code = _exit_code(pod.annotations.get(ANN_CRASH)) or rule.crash_exit_code
        if code is None:
            return None
        after = _seconds(pod.annotations.get(ANN_CRASH_AFTER))
        return code, after if after is not None else (
            rule.crash_after if rule.crash_after is not None else self._settings.crash_after)

    # ---- runtime operations -------------------------------------------------------------------

    def pull(self, pod: PodRecord, container: str, image: str, token: int) -> None:
        rule = self._rule(image)
        error = self._pull_error(pod, image)
        delay = _seconds(pod.annotations.get(ANN_PULL_DELAY))
        if delay is None:
            delay = rule.pull_delay if rule.pull_delay is not None else self._settings.pull_delay
        if error is None and image in self._pulled:
            self._pulled.move_to_end(image)
            delay = 0.0
        uid = pod.uid
        if error is not None:
            message = f'Failed to pull image "{image}": {error}'
            self._timers.call_later(delay, lambda: self._events.pull_failed(uid, container, token, message))
        else:
            self._timers.call_later(delay, lambda: self._on_pulled(uid, container, image, token))

    def _on_pulled(self, uid: str, container: str, image: str, token: int) -> None:
        self._pulled[image] = None
        self._pulled.move_to_end(image)
        while len(self._pulled) > IMAGE_CACHE_SIZE:
            self._pulled.popitem(last=False)
        self._events.pulled(uid, container, token, self._image(image)[1])

    def start(self, pod: PodRecord, container: str, action: Start) -> None:
        rule = self._rule(action.image)
        delay = _seconds(pod.annotations.get(ANN_START_DELAY))
        if delay is None:
            delay = rule.start_delay if rule.start_delay is not None else self._settings.start_delay
        self._timers.call_later(delay, lambda: self._on_started(pod, container, action))

    def _on_started(self, pod: PodRecord, container: str, action: Start) -> None:
        self._running.setdefault(pod.uid, {})[container] = action.container_id
        self._events.started(pod.uid, container, action.container_id)
        self._schedule_faults(pod)

    def stop(self, pod: PodRecord, container: str, container_id: str, grace: float) -> None:
        delay = min(_seconds(pod.annotations.get(ANN_STOP_DELAY)) or 0.0, grace)
        self._timers.call_later(delay, lambda: self._on_exit(pod.uid, container, container_id, 0, None))

    def _on_exit(self, uid: str, container: str, container_id: str, code: int, reason: str | None) -> None:
        running = self._running.get(uid) or {}
        if running.get(container) != container_id:
            return
        del running[container]
        self._crashing.discard(container_id)
        for task in self._execs.pop(container_id, set()):
            task.cancel()  # its processes die with the container
        self._events.exited(uid, container, container_id, code, reason)

    def pod_updated(self, pod: PodRecord) -> None:
        if pod.released or pod.frozen:
            return
        if pod.machines and pod.uid not in self._running:
            # Adopted after a node restart: the containers its status reports as running keep running.
            self._running[pod.uid] = {
                m.name: m.instance.container_id for m in pod.machines.values() if m.is_running and m.instance
            }
        self._schedule_faults(pod)

    def _schedule_faults(self, pod: PodRecord) -> None:
        uid = pod.uid
        if pod.annotations.get(ANN_EVICT, "").lower() == "true" and uid not in self._evicting:
            self._evicting.add(uid)
            message = pod.annotations.get(ANN_EVICT_MESSAGE) or DEFAULT_EVICT_MESSAGE
            self._timers.call_later(0, lambda: self._events.evict(uid, message))
        for container, cid in (self._running.get(uid) or {}).items():
            m = pod.machines.get(container)
            image = m.instance.image if m and m.instance else ""
            rule = self._rule(image)
            if rule.evict_after is not None and uid not in self._evicting:
                self._evicting.add(uid)
                self._timers.call_later(rule.evict_after, lambda: self._events.evict(uid, DEFAULT_EVICT_MESSAGE))
            plan = self._crash_plan(pod, image)
            if plan is None or cid in self._crashing:
                continue
            self._crashing.add(cid)
            code, after = plan
            self._timers.call_later(
                after, lambda c=container, i=cid, x=code: self._on_exit(uid, c, i, x, "Error"))

    async def release(self, pod: PodRecord) -> None:
        self._ipam.release(pod.uid)
        for cid in (self._running.pop(pod.uid, None) or {}).values():
            self._crashing.discard(cid)
        self._evicting.discard(pod.uid)
        if self._scratch is not None:
            await asyncio.to_thread(shutil.rmtree, self._scratch / pod.uid, True)
