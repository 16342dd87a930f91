"""Enter a running sandbox and run one command there (the ``local`` node's ``pods/exec``).

Usage (run as a script by the node, ``python -I -S enter.py``; standard library only)::

    enter.py <sandbox pid> <workdir> <cgroup.procs files, ':'-separated> <capabilities, hex mask> <tty 0|1> \
             -- <command...>

A kubelet's exec joins the container, it does not start a new one: same root
filesystem, namespaces, environment (passed in by the node), cgroups and
privileges. So this helper joins the cgroups the container was launched into,
``setns``es into the ipc, uts, net, cgroup, pid and mount namespaces of a
process of the sandbox (a child of its init), ``chroot``s into its root, and takes the container's
privileges the way bwrap gives them: the capability mask as permitted,
effective, inheritable and ambient sets, that process's bounding set, and
``no_new_privs`` (which is what stops root from regaining every capability
on ``execve``) — so the command has the container's privileges, not the node's. Joining a pid namespace applies to
children only, hence the fork; the helper stays outside, forwards signals and
exits with the command's status (128 + signal when killed by one). SIGTERM to
the helper kills the command and the helper reaps it: a command whose parent
(outside the sandbox's pid namespace) died unreaped would stay a zombie that
no one in the sandbox can reap, and the sandbox's init waits for it when the
container stops. The command
dies with the helper (``PR_SET_PDEATHSIG``) and with the sandbox (its pid
namespace). A missing executable exits 127, as a shell reports it. Nothing may be
imported after the ``chroot``: the image's root has no Python library.
"""

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import termios

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
NAMESPACES = ("ipc", "uts", "net", "cgroup", "pid", "mnt")  # mnt last: it changes what paths mean
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522

libc = ctypes.CDLL(None, use_errno=True)


def fail(message: str, code: int = 126) -> None:
    os.write(2, f"agent-sandbox exec: {message}\n".encode())
    os._exit(code)


def prctl(option: int, arg: int, arg2: int = 0) -> None:
    if libc.prctl(option, arg, arg2, 0, 0) != 0:
        fail(f"prctl({option}, {arg}): {os.strerror(ctypes.get_errno())}")


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def take_capabilities(mask: int, bounding: int, last_cap: int) -> None:
    """Bounding set as the init's; ``mask`` as permitted, effective, inheritable and ambient; no_new_privs."""
    for cap in range(last_cap + 1):
        if not bounding >> cap & 1:
            prctl(PR_CAPBSET_DROP, cap)
    data = (CapData * 2)(*[CapData(word, word, word) for word in (mask & 0xFFFFFFFF, mask >> 32)])
    if libc.capset(ctypes.byref(CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
        fail(f"capset: {os.strerror(ctypes.get_errno())}")
    for cap in range(last_cap + 1):
        if mask >> cap & 1:
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def enter(pid: str, procs: str, mask: int) -> None:
    status = dict(line.split(":", 1) for line in read(f"/proc/{pid}/status").splitlines() if ":" in line)
    bounding = int(status["CapBnd"].strip(), 16)
    last_cap = int(read("/proc/sys/kernel/cap_last_cap"))
    fds = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY) for ns in NAMESPACES if os.path.exists(f"/proc/{pid}/ns/{ns}")]
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    for path in filter(None, procs.split(":")):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    for fd in fds:
        if libc.setns(fd, 0) != 0:
            fail(f"setns: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    take_capabilities(mask, bounding, last_cap)


def run(command: list[str], workdir: str, tty: bool) -> None:
    """In the forked child: become the command."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    try:
        os.chdir(workdir)
    except OSError:
        os.chdir("/")
    if tty:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    try:
        execute(command)
    except FileNotFoundError:
        fail(f'"{command[0]}": executable file not found in $PATH', 127)
    except OSError as exc:
        fail(f'"{command[0]}": {exc.strerror}', 126)


def execute(command: list[str]) -> None:
    """``execvp`` by hand: os.execvp imports modules lazily, and the image's root has no Python library."""
    name, env = command[0], dict(os.environ)
    if "/" in name:
        os.execve(name, command, env)
    denied: OSError | None = None
    for directory in env.get("PATH", os.defpath).split(":"):
        try:
            os.execve(f"{directory or '.'}/{name}", command, env)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:
            denied = exc
    raise denied or FileNotFoundError(name)


def main(argv: list[str]) -> None:
    if len(argv) < 8 or argv[6] != "--":
        fail("usage: enter.py <pid> <workdir> <procs> <capabilities> <tty> -- <command...>", 2)
    pid, workdir, procs, mask, tty, command = argv[1], argv[2], argv[3], int(argv[4], 16), argv[5] == "1", argv[7:]
    try:
        enter(pid, procs, mask)
    except OSError as exc:
        fail(f"cannot enter the container: {exc}")
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)  # until the handlers know the child
    child = os.fork()
    if child == 0:
        run(command, workdir, tty)
    def forward(sig: int, _frame: object) -> None:
        # SIGTERM (the session ended early) kills the command; the helper still reaps it before leaving.
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL if sig == signal.SIGTERM else sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    _, wait_status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main(sys.argv)
