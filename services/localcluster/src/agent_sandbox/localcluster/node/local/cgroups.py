"""Resource limits for ``local`` sandboxes through cgroup v1 (the hybrid layout of this machine).

Enforced where the controller hierarchy is mounted and writable (checked at
start): ``resources.limits.memory`` → ``memory.limit_in_bytes`` (and
``memory.memsw.limit_in_bytes`` when swap accounting exists, so swap does not
dodge the limit; an OOM kill is reported as reason ``OOMKilled``),
``resources.limits.cpu`` → ``cpu.cfs_quota_us`` over a 100 ms period,
``resources.requests.cpu`` → ``cpu.shares``, and the node setting
``pids_limit`` → ``pids.max`` for every container. Each container's cgroup is
created below the node process's own cgroup (``.../agentsandbox/<id>``), so the
machine's accounting of the node still covers its sandboxes. On a machine with
only the cgroup v2 unified hierarchy no limit is applied (logged once at start).
"""

from __future__ import annotations

import contextlib
import pathlib
import re
from dataclasses import dataclass
from typing import Any

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
CFS_PERIOD_US = 100_000
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def parse_memory(value: Any) -> int | None:
    match = _QUANTITY.match(str(value).strip())
    if not match or (match.group(2) and match.group(2) not in _SUFFIX):
        return None
    return int(float(match.group(1)) * _SUFFIX.get(match.group(2), 1))


def parse_cpu(value: Any) -> float | None:
    text = str(value).strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int | None = None
    cpu_quota: float | None = None  # cores
    cpu_shares: int | None = None
    pids: int | None = None

    @classmethod
    def from_container(cls, container: dict[str, Any], pids: int | None) -> Limits:
        res = container.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        cpu_req = parse_cpu(req["cpu"]) if "cpu" in req else None
        return cls(
            memory_bytes=parse_memory(lim["memory"]) if "memory" in lim else None,
            cpu_quota=parse_cpu(lim["cpu"]) if "cpu" in lim else None,
            cpu_shares=max(2, int(cpu_req * 1024)) if cpu_req else None,
            pids=pids,
        )

    def files(self) -> dict[str, list[tuple[str, str]]]:
        """Controller → (file, value) writes, in order."""
        out: dict[str, list[tuple[str, str]]] = {}
        if self.memory_bytes:
            out["memory"] = [("memory.limit_in_bytes", str(self.memory_bytes)),
                             ("memory.memsw.limit_in_bytes", str(self.memory_bytes))]
        cpu = []
        if self.cpu_quota:
            cpu += [("cpu.cfs_period_us", str(CFS_PERIOD_US)),
                    ("cpu.cfs_quota_us", str(max(1000, int(self.cpu_quota * CFS_PERIOD_US))))]
        if self.cpu_shares:
            cpu.append(("cpu.shares", str(self.cpu_shares)))
        if cpu:
            out["cpu"] = cpu
        if self.pids:
            out["pids"] = [("pids.max", str(self.pids))]
        return out


class CgroupV1:
    """Per-container cgroups below the node's own cgroup, for the writable v1 controllers."""

    def __init__(self, root: pathlib.Path = CGROUP_ROOT, own: pathlib.Path = pathlib.Path("/proc/self/cgroup")
                 ) -> None:
        self.bases: dict[str, pathlib.Path] = {}
        paths = {}
        for line in own.read_text().splitlines() if own.exists() else []:
            _, ctrls, path = line.split(":", 2)
            for ctrl in ctrls.split(","):
                paths[ctrl] = path
        for ctrl in CONTROLLERS:
            if ctrl not in paths:
                continue
            base = root / ctrl / paths[ctrl].lstrip("/") / "agentsandbox"
            try:
                base.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            self.bases[ctrl] = base

    @property
    def enforced(self) -> tuple[str, ...]:
        return tuple(self.bases)

    def create(self, name: str, limits: Limits) -> list[pathlib.Path]:
        """Create ``name`` in each controller, write the limits; the ``cgroup.procs`` files to join."""
        procs = []
        for ctrl, writes in limits.files().items():
            base = self.bases.get(ctrl)
            if base is None:
                continue
            group = base / name
            group.mkdir(exist_ok=True)
            for fname, value in writes:
                target = group / fname
                if target.exists():
                    target.write_text(value)
            procs.append(group / "cgroup.procs")
        return procs

    def oom_killed(self, name: str) -> bool:
        base = self.bases.get("memory")
        control = base / name / "memory.oom_control" if base else None
        if control is None or not control.exists():
            return False
        with contextlib.suppress(OSError):
            for line in control.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip() != "0":
                    return True
        return False

    def remove(self, name: str) -> None:
        for base in self.bases.values():
            with contextlib.suppress(FileNotFoundError, OSError):
                (base / name).rmdir()

    def remove_all(self) -> None:
        for base in self.bases.values():
            for child in base.iterdir() if base.exists() else []:
                with contextlib.suppress(OSError):
                    child.rmdir()
