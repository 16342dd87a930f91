"""Start envd, the fake control plane and E2B SDK drivers for tests and benchmarks.

envd runs as root in its own mount namespace with a private copy of ``/etc`` and a
tmpfs ``/home``: it creates the ``user`` account the way it does in a sandbox,
without touching the host's accounts. Each E2B SDK version lives in its own venv
under ``~/.cache/agent-sandbox/e2b-sdk/<version>`` (versions cannot share one),
created with ``uv`` on first use and reused afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
SDK_CACHE = Path(os.environ.get("AGENT_SANDBOX_SDK_CACHE", Path.home() / ".cache/agent-sandbox/e2b-sdk"))
SDK_VERSIONS = ("2.20.3", "2.46.4", "2.63.0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, deadline_s: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {deadline_s}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Envd:
    proc: subprocess.Popen
    url: str
    scratch: Path

    def close(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.scratch, ignore_errors=True)


def start_envd(command: list[str] | None = None, env: dict[str, str] | None = None) -> Envd:
    """envd (``command``, default this Python's ``-m agent_sandbox.envd``) on a free loopback port.

    As root it runs with isolated accounts (private ``/etc`` copy, tmpfs ``/home``).
    """
    port = free_port()
    listen = f"127.0.0.1:{port}"
    argv = [*(command or [sys.executable, "-m", "agent_sandbox.envd"]), "--listen", listen]
    scratch = Path(tempfile.mkdtemp(prefix="envd-test-"))
    if os.geteuid() == 0 and shutil.which("unshare"):
        shutil.copytree("/etc", scratch / "etc", symlinks=True)
        script = (
            f"mount --bind {scratch}/etc /etc && mount -t tmpfs -o mode=755 tmpfs /home && exec \"$@\""
        )
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "envd", *argv]
    proc_env = {**os.environ, "AGENT_SANDBOX_LOG_LEVEL": "warning", **(env or {})}
    proc = subprocess.Popen(argv, env=proc_env, stdin=subprocess.DEVNULL)
    url = f"http://{listen}"
    try:
        wait_http(f"{url}/health", proc=proc)
    except Exception:
        stop(proc)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Envd(proc=proc, url=url, scratch=scratch)



@pytest.fixture(scope="module")
def envd() -> Iterator[Envd]:
    """A real envd for one test module (conftests re-export this fixture)."""
    server = start_envd()
    yield server
    server.close()

@dataclass
class ControlPlane:
    proc: subprocess.Popen
    url: str
    token: str

    def close(self) -> None:
        stop(self.proc)


def start_control_plane(envd_url: str, envd_version: str = "0.5.7") -> ControlPlane:
    token = secrets.token_hex(16)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "envd_fake_control_plane.py"), "--envd-url", envd_url, "--token", token,
         "--envd-version", envd_version],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        stop(proc)
        raise RuntimeError(f"fake control plane did not start: {line!r}")
    return ControlPlane(proc=proc, url=f"http://127.0.0.1:{line}", token=token)


def sdk_python(version: str) -> Path:
    """The Python of a venv holding ``e2b==version``, created on first use."""
    venv = SDK_CACHE / version
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run(
        [str(python), "-c", "import e2b"], capture_output=True, check=False
    ).returncode == 0:
        return python
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv.parent.mkdir(parents=True, exist_ok=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([uv, "venv", "-q", "--allow-existing", "-p", base_python, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), f"e2b=={version}"], check=True)
    return python


def sdk_env(control_plane: ControlPlane, envd_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env.update({
        "E2B_API_KEY": "e2b_" + "0" * 40,
        "E2B_API_URL": control_plane.url,
        "E2B_SANDBOX_URL": envd_url,
    })
    return env


def run_driver(python: Path, scenarios: str, env: dict[str, str], timeout: float = 180.0) -> dict:
    """Run scenarios (comma-separated) of ``envd_sdk_driver.py`` under an SDK venv; ``{scenario: result}``."""
    result = subprocess.run(
        [str(python), str(HERE / "envd_sdk_driver.py"), scenarios],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise AssertionError(
            f"driver {scenarios} failed (rc={result.returncode})\nstdout:\n{result.stdout[-4000:]}\n"
            f"stderr:\n{result.stderr[-4000:]}"
        )
    return json.loads(lines[-1])


def connect_envelope(*messages: dict) -> bytes:
    """Connect streaming request body: one data envelope (flag 0, big-endian length) per JSON message."""
    encoded = [json.dumps(m).encode() for m in messages]
    return b"".join(b"\x00" + len(e).to_bytes(4, "big") + e for e in encoded)


def connect_call(base_url: str, method: str, message: dict | list[dict], headers: dict[str, str] | None = None,
                 stream: bool = False, timeout: float = 10.0) -> tuple[int, list[tuple[int, dict]]]:
    """One Connect-JSON call without an SDK: (HTTP status, [(envelope flag, message)]).

    ``stream`` uses the streaming protocol; a list of messages is a client stream.
    """
    content_type = "application/connect+json" if stream else "application/json"
    if stream:
        body = connect_envelope(*(message if isinstance(message, list) else [message]))
    else:
        body = json.dumps(message).encode()
    request = urllib.request.Request(
        f"{base_url}/{method}", data=body, method="POST",
        headers={"content-type": content_type, "connect-protocol-version": "1", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, [(0, json.loads(exc.read() or b"{}"))]
    if not stream:
        return status, [(0, json.loads(data))]
    envelopes = []
    offset = 0
    while offset < len(data):
        flag, size = data[offset], int.from_bytes(data[offset + 1:offset + 5], "big")
        envelopes.append((flag, json.loads(data[offset + 5:offset + 5 + size])))
        offset += 5 + size
    return status, envelopes


def busybox_rootfs(root: Path) -> Path:
    """A minimal image without Python or bash: static busybox plus relative applet links."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox (Debian busybox-static) is not installed")
    for sub in ("bin", "etc", "proc", "dev", "tmp", "root", "home", "mnt/agentsandbox"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([str(root / "bin" / "busybox"), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


def run_in_image(rootfs: Path, bundle: Path, env: dict[str, str]) -> subprocess.Popen:
    """The bundle's tini + entrypoint in ``rootfs`` (bubblewrap), as a Pod's main command would run."""
    argv = ["bwrap", "--bind", str(rootfs), "/", "--ro-bind", str(bundle), "/mnt/agentsandbox",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--die-with-parent", "--clearenv", "--setenv", "PATH", "/bin"]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    argv += ["--", "/mnt/agentsandbox/tini", "-g", "--", "/bin/sh", "/mnt/agentsandbox/agent-sandbox-entrypoint.sh"]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
