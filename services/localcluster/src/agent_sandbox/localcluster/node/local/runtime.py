"""The ``local`` runtime: every container is a real bubblewrap sandbox on this machine.

Layout below the node's state directory::

    local.yaml            settings (optional)      images.yaml   image map (optional, see .rootfs)
    ipam.json             pod uid → podIP (127.77.0.0/16 by default; all of 127/8 reaches lo), each
                          address leased machine-wide (:mod:`.addresses`): other local nodes share lo
    bundle/               mounted read-only at /mnt/agentsandbox (envd's build_bundle, when installed)
    pods/<uid>/<cid16>/   upper/ work/ merged/ (the container's overlay), pid (bwrap + init pids), log

Each container gets a fresh writable layer, as a container restart does on a
real node. The container's command is the pod spec's ``command`` + ``args``
(default ``/bin/sh /mnt/agentsandbox/agent-sandbox-entrypoint.sh``); its env is
the image env, the spec env, ``AGENT_SANDBOX_POD_IP`` and
``AGENT_SANDBOX_ENVD_LISTEN=<podIP>:49983``. Stop = SIGTERM to the command,
SIGKILL to the sandbox's init (and so to every process in its pid namespace)
after the grace period. Limits: see :mod:`.cgroups`.

bwrap exits as soon as the command's exit status is known, which orphans the
sandbox's init for a moment; the node makes itself a child subreaper
(``PR_SET_CHILD_SUBREAPER``) and reaps that init itself, so no zombie or
stray process outlives a container even where the machine's pid 1 does not
reap (as on this build machine).

Node restart policy: **clean up**. Sandboxes die with the node
(``--die-with-parent``); on start the node kills whatever a pid file still
names (checked against ``/proc/<pid>/cmdline``), removes every pod directory
and cgroup, and the kubelet then restarts the containers of pods that still
exist (restartCount + 1, ``lastState.terminated.reason = Unknown``) with the
same podIP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from typing import Any

from agent_sandbox.common.logging import get_logger
from agent_sandbox.common.vocabulary import ENVD_MOUNT_PATH, ENVD_PORT
from agent_sandbox.localcluster.apiserver.podexec import ExecCall, ExecError
from agent_sandbox.localcluster.node.container import Start
from agent_sandbox.localcluster.node.execproc import run_exec
from agent_sandbox.localcluster.node.images import image_id
from agent_sandbox.localcluster.node.ipam import IpAllocator, port_is_free
from agent_sandbox.localcluster.node.local.addresses import DEFAULT_DIRECTORY, AddressLeases
from agent_sandbox.localcluster.node.local.cgroups import CgroupV1, Limits
from agent_sandbox.localcluster.node.local.rootfs import ImageNotFound, Rootfs, load_image_map, resolve
from agent_sandbox.localcluster.node.local.sandbox import CAPABILITY_MASK, SandboxSpec, build_argv, container_env
from agent_sandbox.localcluster.node.runtime import PodRecord, Runtime, RuntimeEvents
from agent_sandbox.localcluster.node.settings import LocalSettings
from agent_sandbox.localcluster.node.timers import TimerQueue

log = get_logger(__name__)

ENTRYPOINT = "agent-sandbox-entrypoint.sh"
DEFAULT_COMMAND = ["/bin/sh", f"{ENVD_MOUNT_PATH}/{ENTRYPOINT}"]
STARTUP_TIMEOUT = 10.0
ENTER = pathlib.Path(__file__).with_name("enter.py")
PR_SET_CHILD_SUBREAPER = 36


class Sandbox:
    """One running container: its process and the pids that end it."""

    def __init__(self, uid: str, container: str, cid: str, directory: pathlib.Path) -> None:
        self.uid, self.container, self.cid, self.dir = uid, container, cid, directory
        self.proc: asyncio.subprocess.Process | None = None
        self.init_pid: int | None = None
        self.pid_ns: int | None = None
        self.env: dict[str, str] = {}
        self.workdir = "/"
        self.cgroup_procs: list[pathlib.Path] = []
        self._entry_pid: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopper: asyncio.Task[None] | None = None
        self.stopping = False

    def command_pid(self) -> int | None:
        """The container command: the child of bwrap's init inside the sandbox."""
        if self.init_pid is None:
            return None
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.init_pid:
                    return int(stat.parent.name)
        return None

    def entry_pid(self) -> int | None:
        """A process of the finished sandbox to enter through (exec): a child of bwrap's init.

        Not the init itself: bwrap reports it while it is still building the sandbox (mounts,
        ``pivot_root``), and it starts the command only once that is done.
        """
        if self._entry_pid is not None and _parent(self._entry_pid) == self.init_pid:
            return self._entry_pid
        self._entry_pid = self.command_pid()
        return self._entry_pid

    def kill(self) -> None:
        for pid in (self.init_pid, self.proc.pid if self.proc else None):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class LocalRuntime(Runtime):
    kind = "local"
    name = "bwrap"
    version = "unknown"  # read from `bwrap --version` at open
    keeps_containers = False

    def __init__(self, events: RuntimeEvents, timers: TimerQueue, settings: LocalSettings,
                 state_dir: pathlib.Path) -> None:
        self._events = events
        self._timers = timers
        self._settings = settings
        self.state_dir = state_dir.resolve()
        self.pods_dir = self.state_dir / "pods"
        self.bundle = (settings.bundle_dir or self.state_dir / "bundle").resolve()
        self._image_map_path = settings.image_map or self.state_dir / "images.yaml"
        self._ipam: IpAllocator | None = None
        self._leases = AddressLeases(settings.address_leases_dir or DEFAULT_DIRECTORY)
        self._cgroups: CgroupV1 | None = None
        self._sandboxes: dict[str, Sandbox] = {}  # container id -> sandbox

    # ---- node lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)
        if self._settings.bundle_dir is None:
            await asyncio.to_thread(self._build_bundle)

    def _open_sync(self) -> None:
        if shutil.which(self._settings.bwrap) is None:
            raise RuntimeError(f"{self._settings.bwrap!r} not found: install the Debian package bubblewrap")
        words = subprocess.run([self._settings.bwrap, "--version"], capture_output=True, text=True,
                               check=False).stdout.split()
        self.version = words[-1] if words else "unknown"
        if not _become_subreaper():
            log.warning("cannot become a child subreaper; ended sandboxes may leave zombies to pid 1")
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self._cleanup_previous_run()
        self._ipam = IpAllocator(self._settings.pod_cidr, persist=self.state_dir / "ipam.json",
                                 is_free=self._take_address)
        self._cgroups = CgroupV1() if self._settings.cgroups else None
        if self._cgroups is not None:
            self._cgroups.remove_all()
        log.info("local node ready", state_dir=str(self.state_dir), bundle=str(self.bundle),
                 cgroups=list(self._cgroups.enforced) if self._cgroups else [])

    def _cleanup_previous_run(self) -> None:
        for pidfile in self.pods_dir.glob("*/*/pid"):
            with contextlib.suppress(OSError, ValueError):
                pids = json.loads(pidfile.read_text())
                for pid in (pids.get("init"), pids.get("bwrap")):
                    cmdline = pathlib.Path(f"/proc/{pid}/cmdline")
                    if pid and cmdline.exists() and b"bwrap" in cmdline.read_bytes():
                        os.kill(int(pid), signal.SIGKILL)
                        log.warning("killed a sandbox left from a previous run", pid=pid)
        for child in self.pods_dir.iterdir():
            shutil.rmtree(child, ignore_errors=True)

    def _build_bundle(self) -> None:
        try:
            from agent_sandbox.envd.bundle import build_bundle
        except ImportError:
            self.bundle.mkdir(parents=True, exist_ok=True)
            log.warning("envd bundle unavailable (agent_sandbox.envd.bundle missing); /mnt/agentsandbox is empty",
                        bundle=str(self.bundle))
            return
        build_bundle(self.bundle)

    async def close(self) -> None:
        sandboxes = list(self._sandboxes.values())
        for sb in sandboxes:
            sb.stopping = True
            sb.kill()
        tasks = [sb.task for sb in sandboxes if sb.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self._settings.stop_timeout)
        await asyncio.to_thread(self._remove_all)
        self._leases.close()

    def _remove_all(self) -> None:
        for child in self.pods_dir.iterdir() if self.pods_dir.exists() else []:
            shutil.rmtree(child, ignore_errors=True)
        if self._cgroups is not None:
            self._cgroups.remove_all()

    def assign_ip(self, pod: PodRecord, reported: str | None) -> str:
        """The pod's address, leased machine-wide (see :mod:`.addresses`) so no other node serves on it."""
        assert self._ipam is not None
        current = self._ipam.get(pod.uid)
        if current and self._leases.claim(current):
            return current
        if current:  # persisted before a restart, but another node has taken it since
            self._ipam.release(pod.uid)
        if reported and reported != current and self._leases.claim(reported):
            if self._ipam.reserve(pod.uid, reported):
                return reported
            self._leases.release(reported)
        return self._ipam.allocate(pod.uid)

    def _take_address(self, ip: str) -> bool:
        """Allocation probe: lease ``ip``, and give it back if something outside any node serves on it."""
        if not self._leases.claim(ip):
            return False
        if not self._port_free(ip):
            self._leases.release(ip)
            return False
        return True

    _port_free = staticmethod(port_is_free(ENVD_PORT))

    # ---- images ----------------------------------------------------------------------------

    def pull(self, pod: PodRecord, container: str, image: str, token: int) -> None:
        try:
            rootfs = resolve(image, load_image_map(self._image_map_path))
        except (ImageNotFound, ValueError) as exc:
            message = f'Failed to pull image "{image}": {exc}'
            self._timers.call_later(0, lambda: self._events.pull_failed(pod.uid, container, token, message))
            return
        iid = image_id(image, rootfs.digest)
        self._timers.call_later(0, lambda: self._events.pulled(pod.uid, container, token, iid))

    # ---- containers ------------------------------------------------------------------------

    def start(self, pod: PodRecord, container: str, action: Start) -> None:
        sb = Sandbox(pod.uid, container, action.container_id, self.pods_dir / pod.uid / action.container_id[:16])
        self._sandboxes[sb.cid] = sb
        sb.task = asyncio.get_running_loop().create_task(self._run(pod, sb, action.image))

    def _find(self, pod_uid: str, container: str) -> Sandbox | None:
        return next((sb for sb in self._sandboxes.values() if sb.uid == pod_uid and sb.container == container), None)

    async def read_log(self, pod_uid: str, container: str) -> bytes:
        """The running container's output so far (stdout and stderr); empty once it has exited."""
        sb = self._find(pod_uid, container)
        return b"" if sb is None else await asyncio.to_thread(_read_log, sb.dir / "log")

    async def exec(self, call: ExecCall) -> int:
        """Run ``call``'s command inside the running container (see :mod:`.enter`); its exit code."""
        sb = self._find(call.pod_uid, call.options.container)
        if sb is None or sb.init_pid is None or sb.stopping:
            raise ExecError(f'container "{call.options.container}" is not running on this node')
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while (target := await asyncio.to_thread(sb.entry_pid)) is None:
            if loop.time() > deadline or sb.stopping:
                raise ExecError(f'container "{call.options.container}" has no running process to exec into')
            await asyncio.sleep(0.02)
        argv = [sys.executable, "-I", "-S", str(ENTER), str(target), sb.workdir,
                ":".join(str(p) for p in sb.cgroup_procs), f"{CAPABILITY_MASK:x}",
                "1" if call.options.tty else "0", "--", *call.options.command]
        return await run_exec(argv, call, env=sb.env, stop_signal=signal.SIGTERM)

    async def _run(self, pod: PodRecord, sb: Sandbox, image: str) -> None:
        try:
            await self._launch(pod, sb, image)
        except Exception as exc:
            log.warning("sandbox start failed", pod=pod.key, container=sb.container, error=str(exc))
            sb.kill()
            if sb.proc is not None:
                await sb.proc.wait()
            await asyncio.to_thread(self._cleanup_container, sb)
            self._sandboxes.pop(sb.cid, None)
            self._events.start_failed(sb.uid, sb.container, sb.cid, str(exc)[:500])
            return
        self._events.started(sb.uid, sb.container, sb.cid)
        assert sb.proc is not None
        code = await sb.proc.wait()
        exit_code = code if code >= 0 else 128 - code
        await self._reap_init(sb)
        oom = self._cgroups is not None and self._cgroups.oom_killed(self._cgroup_name(sb))
        await asyncio.to_thread(self._cleanup_container, sb)
        self._sandboxes.pop(sb.cid, None)
        self._events.exited(sb.uid, sb.container, sb.cid, exit_code, "OOMKilled" if oom else None)

    async def _launch(self, pod: PodRecord, sb: Sandbox, image: str) -> None:
        rootfs = await asyncio.to_thread(resolve, image, load_image_map(self._image_map_path))
        read_fd, write_fd = os.pipe()
        try:
            argv = await asyncio.to_thread(self._prepare, pod, sb, rootfs, write_fd)
            log_file = await asyncio.to_thread(_open_log, sb.dir / "log")
            try:
                sb.proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,), start_new_session=True)
            finally:
                log_file.close()
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        info = await _read_info(read_fd)
        if "child-pid" not in info:
            tail = await asyncio.to_thread(_tail, sb.dir / "log")
            raise RuntimeError(f"sandbox did not start: {tail or 'no output'}")
        sb.init_pid = int(info["child-pid"])
        sb.pid_ns = info.get("pid-namespace")
        await asyncio.to_thread((sb.dir / "pid").write_text, json.dumps(
            {"bwrap": sb.proc.pid, "init": sb.init_pid, "pid-namespace": sb.pid_ns}))

    def _prepare(self, pod: PodRecord, sb: Sandbox, rootfs: Rootfs, info_fd: int) -> list[str]:
        spec_c = pod.container_spec(sb.container)
        for sub in ("upper", "work", "merged"):
            (sb.dir / sub).mkdir(parents=True, exist_ok=True)
        procs: list[pathlib.Path] = []
        if self._cgroups is not None:
            limits = Limits.from_container(spec_c, self._settings.pids_limit)
            procs = self._cgroups.create(self._cgroup_name(sb), limits)
        ip = pod.pod_ip or ""
        env = container_env(rootfs.env, spec_c, {
            "AGENT_SANDBOX_POD_IP": ip,
            "AGENT_SANDBOX_ENVD_LISTEN": f"{ip}:{ENVD_PORT}",
            "HOSTNAME": pod.name[:63],
            "KUBERNETES_POD_NAME": pod.name,
            "KUBERNETES_NAMESPACE": pod.namespace,
        }, {"metadata.name": pod.name, "metadata.namespace": pod.namespace, "metadata.uid": pod.uid,
            "status.podIP": ip, "status.hostIP": pod.facts.host_ip, "spec.nodeName": pod.spec.get("nodeName", "")})
        command = [*(spec_c.get("command") or DEFAULT_COMMAND), *(spec_c.get("args") or [])]
        sb.env, sb.workdir, sb.cgroup_procs = env, str(spec_c.get("workingDir") or "/"), procs
        spec = SandboxSpec(
            lower=rootfs.path, upper=sb.dir / "upper", work=sb.dir / "work", merged=sb.dir / "merged",
            bundle=self.bundle, mount_path=ENVD_MOUNT_PATH, hostname=pod.name, command=command, env=env,
            workdir=sb.workdir, host_root=rootfs.is_host,
            masked=(self.state_dir, *self._settings.masked_paths),
            cgroup_procs=tuple(procs),
        )
        return build_argv(spec, info_fd, self._settings.bwrap)

    async def _reap_init(self, sb: Sandbox) -> None:
        """bwrap is gone; make sure its init (and so the whole pid namespace) is dead and reaped.

        Only then may the kubelet hear that the container exited: the next container of this pod
        reuses the pod IP and envd's port, so a start while the old tree lives would hand the old
        tenant's envd to the next one. A namespace that refuses to die keeps the container
        ``stopping`` (the operator replaces a pod stuck there) rather than being reported gone.
        """
        if sb.init_pid is None:
            return
        loop = asyncio.get_running_loop()
        warn_at = loop.time() + self._settings.stop_timeout
        delay = 0.01
        while not _reaped(sb.init_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(sb.init_pid, signal.SIGKILL)
            if warn_at and loop.time() >= warn_at:
                log.warning("sandbox init did not go away; still waiting", pid=sb.init_pid)
                warn_at = 0.0
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _cgroup_name(self, sb: Sandbox) -> str:
        return f"{sb.uid}-{sb.cid[:12]}"

    def _cleanup_container(self, sb: Sandbox) -> None:
        shutil.rmtree(sb.dir, ignore_errors=True)
        if self._cgroups is not None:
            self._cgroups.remove(self._cgroup_name(sb))

    def stop(self, pod: PodRecord, container: str, container_id: str, grace: float) -> None:
        sb = self._sandboxes.get(container_id)
        if sb is None or sb.stopping:
            return
        sb.stopping = True
        sb.stopper = asyncio.get_running_loop().create_task(self._stop(sb, grace))

    async def _stop(self, sb: Sandbox, grace: float) -> None:
        pid = await asyncio.to_thread(sb.command_pid)
        if pid is not None and grace > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if sb.task is not None:
                await asyncio.wait([sb.task], timeout=grace)
        if sb.task is None or not sb.task.done():
            sb.kill()  # once the task is done its pids are reaped and may belong to someone else

    async def release(self, pod: PodRecord) -> None:
        for sb in [s for s in self._sandboxes.values() if s.uid == pod.uid]:
            sb.stopping = True
            sb.kill()
            if sb.task is not None:
                await asyncio.wait([sb.task], timeout=self._settings.stop_timeout)
        await asyncio.to_thread(shutil.rmtree, self.pods_dir / pod.uid, True)
        if self._ipam is not None:
            ip = self._ipam.get(pod.uid)
            self._ipam.release(pod.uid)
            if ip:
                self._leases.release(ip)


def _parent(pid: int) -> int | None:
    try:
        return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _reaped(pid: int) -> bool:
    """Reap ``pid`` if it is our exited child (never blocks); True once it no longer exists."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:  # not ours to reap: done once it is gone
        return not os.path.exists(f"/proc/{pid}")


def _become_subreaper() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _open_log(path: pathlib.Path) -> Any:
    return path.open("ab")


def _read_log(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


async def _read_info(fd: int) -> dict[str, Any]:
    """bwrap's ``--info-fd`` JSON (child pid, namespaces); empty when the sandbox never came up."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb"))
    try:
        data = await asyncio.wait_for(reader.read(), STARTUP_TIMEOUT)
    except TimeoutError:
        data = b""
    finally:
        transport.close()
    try:
        return json.loads(data) if data.strip() else {}
    except ValueError:
        return {}


def _tail(path: pathlib.Path, limit: int = 400) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""
