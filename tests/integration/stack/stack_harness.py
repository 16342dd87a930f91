"""Run the README's start command as a user would and look at what it leaves behind.

:class:`UpProcess` starts ``scripts/up --state-dir DIR --config FILE`` (every port 0, so stacks
never collide), waits for ``READY`` and parses the ``export`` lines; :meth:`UpProcess.stop` sends
SIGINT like Ctrl-C. :func:`descendants` snapshots the whole process tree under ``up`` (services
and every sandbox process) so a test can prove none of it outlives the stack. Also used by
``bench/ttfc`` (it puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
AGENT_SANDBOX = ROOT / ".venv" / "bin" / "agent-sandbox"
EPHEMERAL_PORTS = {name: 0 for name in ("cluster", "api", "e2b", "envoy", "extproc", "control", "extproc_health",
                                        "operator_metrics")}
NEEDS_LOCAL_NODE = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"),
                                      reason="the local node needs root and bubblewrap")
E2B_VARS = ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY")


def write_config(path: Path, replicas: int = 2, **extra: object) -> Path:
    path.write_text(json.dumps({"ports": EPHEMERAL_PORTS, "pool": {"replicas": replicas}, **extra}))
    return path


@dataclass
class UpProcess:
    state_dir: Path
    config: Path
    command: tuple[str, ...] = (str(ROOT / "scripts" / "up"),)
    proc: subprocess.Popen | None = None
    exports: dict[str, str] = field(default_factory=dict)
    stdout_lines: list[str] = field(default_factory=list)
    ready_s: float = 0.0

    @property
    def stderr_path(self) -> Path:
        return self.state_dir.parent / f"{self.state_dir.name}-up.stderr"

    def start(self, within: float = 240.0) -> UpProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("E2B_", "AGENT_SANDBOX_"))}
        started = time.monotonic()
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [*self.command, "--state-dir", str(self.state_dir), "--config", str(self.config)],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buffer = b""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.2)
            chunk = os.read(fd, 65536) if readable else b""
            if chunk:
                buffer += chunk
                self.stdout_lines = buffer.decode().splitlines()
                exports = [ln for ln in self.stdout_lines if ln.startswith("export ")]
                if "READY" in self.stdout_lines and len(exports) >= 6:
                    self.exports = dict(shlex.split(ln)[1].split("=", 1) for ln in exports)
                    self.ready_s = time.monotonic() - started
                    return self
            elif readable or self.proc.poll() is not None:
                break
        code = self.proc.poll()
        self.stop()
        raise AssertionError(f"up did not print READY (exit code {code}); stdout={buffer!r}\n"
                             f"stderr tail:\n{self.stderr_tail()}")

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def sdk_env(self) -> dict[str, str]:
        """A clean environment with only the three E2B variables the user pastes from the exports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("E2B_", "AGENT_SANDBOX_"))}
        env.update({name: self.exports[name] for name in E2B_VARS})
        return env

    def status(self) -> dict:
        result = subprocess.run([str(AGENT_SANDBOX), "status", "--state-dir", str(self.state_dir), "--json"],
                                capture_output=True, text=True, timeout=30, check=False)
        return json.loads(result.stdout)

    def stop(self, within: float = 120.0) -> int | None:
        """Ctrl-C (SIGINT), then wait; SIGKILL only if it hangs (the test then fails on the return code)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(within)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live, non-zombie process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> set[tuple[int, int]]:
    """Every live process below ``root`` as (pid, start time), so a recycled pid is not mistaken for ours."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = st
    found: set[tuple[int, int]] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in table.items():
            if ppid == parent and (pid, start) not in found:
                found.add((pid, start))
                frontier.append(pid)
    return found


def still_alive(processes: set[tuple[int, int]]) -> list[str]:
    alive = []
    for pid, start in processes:
        st = _stat(pid)
        if st is not None and st[1] == start:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{pid}: {cmd[:200]}")
    return alive


def bound(host: str, port: int) -> bool:
    """True if something still listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def run_sdk_driver(python: Path, scenarios: str, env: dict[str, str], timeout: float = 300.0) -> dict:
    """Run ``stack_sdk_driver.py`` scenarios under an SDK venv; ``{scenario: result}``."""
    result = subprocess.run([str(python), str(HERE / "stack_sdk_driver.py"), scenarios], env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise AssertionError(f"driver {scenarios} failed (rc={result.returncode})\nstdout:\n{result.stdout[-4000:]}"
                             f"\nstderr:\n{result.stderr[-4000:]}")
    return json.loads(lines[-1])


def envd_harness() -> object:
    """The envd tests' harness module (per-version SDK venvs), imported from its folder."""
    sys.path.insert(0, str(HERE.parent / "envd"))
    import envd_harness

    return envd_harness
