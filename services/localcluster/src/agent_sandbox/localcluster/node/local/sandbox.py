"""The command line that turns one container into a bubblewrap sandbox (pure).

bubblewrap 0.8 (Debian 12) has no ``--overlay`` options, so the writable layer
is a kernel overlay mounted by ``unshare --mount`` in a private mount namespace
just before ``exec bwrap``: the mount exists only inside the sandbox and
disappears with it, even if the node is killed. The chain
``unshare → sh → bwrap`` keeps one pid (each step ``exec``s), so bwrap's
parent is the node and ``--die-with-parent`` ends the sandbox with the node.

Isolation: own pid, mount, ipc, uts (hostname = pod name) and, where the
kernel allows, cgroup namespaces; fresh ``/proc`` and ``/dev``; the network
namespace is the host's (each pod has its own loopback address as podIP).
bwrap's own init is pid 1 and reaps zombies (like ``docker run --init``); the
container command is its child, so SIGTERM reaches the command and a SIGKILL
to the init ends every process of the sandbox. Capabilities are cut to
Docker's default set minus ``MKNOD`` and ``NET_RAW`` (no ``SYS_ADMIN``: no
remounts, no escaping the overlay). For the host root, ``/tmp`` is a private
tmpfs and the node's state directory is masked, so a sandbox cannot read
another sandbox's files through the host root.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

# Docker's default capabilities without MKNOD and NET_RAW (the network namespace is shared), by bit number.
CAPABILITY_BITS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6,
    "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_CHROOT": 18, "CAP_SETFCAP": 31,
    "CAP_AUDIT_WRITE": 29,
}
CAPABILITIES = tuple(CAPABILITY_BITS)
CAPABILITY_MASK = sum(1 << bit for bit in CAPABILITY_BITS.values())
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# $1 lower, $2 upper, $3 work, $4 merged, $5 ':'-separated cgroup.procs files; then the bwrap argv.
_LAUNCH = (
    'lower=$1 upper=$2 work=$3 merged=$4 procs=$5; shift 5; '
    'IFS=:; for f in $procs; do echo $$ > "$f" || exit 125; done; unset IFS; '
    'mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged" || exit 125; '
    'exec "$@"'
)


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    lower: pathlib.Path
    upper: pathlib.Path
    work: pathlib.Path
    merged: pathlib.Path
    bundle: pathlib.Path
    mount_path: str
    hostname: str
    command: list[str]
    env: dict[str, str]
    workdir: str = "/"
    host_root: bool = False
    masked: tuple[pathlib.Path, ...] = ()
    cgroup_procs: tuple[pathlib.Path, ...] = field(default_factory=tuple)


def build_argv(spec: SandboxSpec, info_fd: int, bwrap: str = "bwrap") -> list[str]:
    """``info_fd``: an inherited pipe on which bwrap reports the sandbox init's pid and namespaces."""
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", _LAUNCH, "sandbox-launch",
        str(spec.lower), str(spec.upper), str(spec.work), str(spec.merged),
        ":".join(str(p) for p in spec.cgroup_procs),
        bwrap,
        "--bind", str(spec.merged), "/",
        "--proc", "/proc",
        "--dev", "/dev",
    ]
    if spec.host_root:
        argv += ["--tmpfs", "/tmp"]
        for path in spec.masked:
            argv += ["--tmpfs", str(path)]
    argv += [
        "--dir", spec.mount_path,
        "--ro-bind", str(spec.bundle), spec.mount_path,
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", spec.hostname[:63] or "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
    ]
    for cap in CAPABILITIES:
        argv += ["--cap-add", cap]
    argv += ["--chdir", spec.workdir or "/", "--clearenv"]
    for key, value in spec.env.items():
        argv += ["--setenv", key, value]
    argv += ["--info-fd", str(info_fd), "--", *spec.command]
    return argv


def container_env(image_env: dict[str, str], container: dict[str, object], extra: dict[str, str],
                  field_values: dict[str, str]) -> dict[str, str]:
    """Image ENV, then the container's ``env`` (``value`` and ``fieldRef``), then the node's variables."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", **image_env}
    for item in container.get("env") or []:  # type: ignore[attr-defined]
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            env[name] = str(item.get("value") or "")
        elif (ref := ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")) in field_values:
            env[name] = field_values[ref]
    env.update(extra)
    return env
