"""The README's start command, end to end: ``scripts/up`` → READY → E2B SDK through Envoy → ``down``.

The SDK sees only ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY`` from the printed
exports: no other configuration, no patching. The last test stops the stack with
``agent-sandbox down`` and proves nothing of it is left: no process (services or sandboxes) and
no bound port.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from stack_harness import AGENT_SANDBOX, NEEDS_LOCAL_NODE, UpProcess, bound, descendants, run_sdk_driver, still_alive

pytestmark = [NEEDS_LOCAL_NODE, pytest.mark.timeout(600)]

SDK_VERSIONS = ("2.20.3", "2.46.4", "2.63.0")
SCENARIOS = "first_command,lifecycle,commands,pty,files,errors,async,async_lifecycle"


def kubectl(up: UpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": up.exports["KUBECONFIG"]}
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_ready_exports_and_status(stack: UpProcess) -> None:
    assert set(stack.exports) == {"E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "AGENT_SANDBOX_URL",
                                  "AGENT_SANDBOX_API_KEY", "KUBECONFIG"}
    assert stack.exports["E2B_API_KEY"][4:] == stack.exports["AGENT_SANDBOX_API_KEY"][4:]
    status = stack.status()
    assert status["running"] and status["healthy"], status
    again = subprocess.run([str(AGENT_SANDBOX), "status", "--state-dir", str(stack.state_dir), "--exports"],
                           capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    assert again == [line for line in stack.stdout_lines if line.startswith("export ")]
    assert set(status["services"]) == {"localcluster", "extproc", "operator", "envoy"}
    creds = stack.state_dir / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    secrets = json.loads(creds.read_text())
    logs = [p for p in (stack.state_dir / "logs").iterdir()] + [stack.stderr_path]
    for log in logs:
        text = log.read_text(errors="replace")
        for name, value in secrets.items():
            assert value[4:] not in text, f"{name} leaked into {log.name}"


def test_kubectl_sees_the_warm_base_pool(stack: UpProcess) -> None:
    result = kubectl(stack, "get", "sbp", "base", "-o", "json")
    assert result.returncode == 0, result.stderr
    pool = json.loads(result.stdout)
    assert pool["status"]["idleReplicas"] >= 2
    pods = kubectl(stack, "get", "pods", "-l", "agentsandbox.io/sandbox-pool=base", "-o", "name")
    assert len(pods.stdout.split()) >= 2
    assert kubectl(stack, "get", "sbt", "base").returncode == 0


def test_services_refuse_calls_without_credentials(stack: UpProcess) -> None:
    import urllib.error
    import urllib.request

    for url in (f"{stack.exports['AGENT_SANDBOX_URL']}/v1/sandboxes", f"{stack.exports['E2B_API_URL']}/sandboxes"):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(url, timeout=10)
        assert exc.value.code == 401, url


@pytest.mark.parametrize("version", SDK_VERSIONS)
def test_e2b_sdk_through_envoy(stack: UpProcess, sdk_pythons: dict[str, Path], version: str) -> None:
    r = run_sdk_driver(sdk_pythons[version], SCENARIOS, stack.sdk_env())
    assert r["first_command"]["exit_codes"] == [0], "create returned only when the first command works"
    lc = r["lifecycle"]
    assert lc["id_has_cluster"] and lc["first_command"] == "lc", lc
    assert lc["listed"] and lc["info"] == {"id": True, "template": "base", "metadata": "stack-test"}, lc
    assert lc["timeout_moves_end"] and lc["is_running"] is True, lc
    if version != "2.20.3":  # 2.20 sends no E2b-Sandbox-Id after Sandbox.connect(id): nothing can route it
        assert lc["connect"] == "connected", lc
    assert (lc["kill"], lc["kill_again"], lc["is_running_after"], lc["listed_after"]) == (True, False, False, False), lc
    assert lc["run_after_kill"] is not None and not lc["run_after_kill"].startswith("returned"), lc
    assert lc["connect_after_kill"] is not None and not lc["connect_after_kill"].startswith("returned"), lc
    c = r["commands"]
    assert c["echo"] == {"stdout": "hello\n", "stderr": "oops\n", "exit_code": 0}
    assert c["nonzero"] == {"type": "CommandExitException", "exit_code": 3}
    assert c["env"] == "c-r" and (c["whoami"], c["whoami_root"]) == ("user", "root")
    assert c["bg_alive_after_disconnect"] and c["kill"] and c["timeout_killed"] and c["stdin"] == "from stdin\n"
    assert r["pty"] == {"output_has_result": True, "initial_size": True, "resized": True, "killed": True}
    f = r["files"]
    assert f["read_text"] == "hello file" and f["read_bytes"] == [0, 1, 255]
    assert f["make_dir"] == [True, False] and f["after_rename"] == [False, True] and f["after_remove"] is False
    assert ["w.txt", "create"] in f["watch"]
    assert r["errors"]["read_missing"] == "FileNotFoundException"
    assert r["async"]["run"] == "async" and r["async"]["read"] == "async data" and r["async"]["kill"] is True
    assert r["async_lifecycle"] == {"run": "async-stack", "listed": True, "kill": True, "is_running_after": False}


def test_sandboxes_cannot_read_the_stacks_secrets(stack: UpProcess, sdk_pythons: dict[str, Path]) -> None:
    """Sandboxes run on the host root as root: the stack's state dir (admin key, tokens) is hidden from them."""
    creds = json.loads((stack.state_dir / "credentials.json").read_text())
    env = {**stack.sdk_env(), "STACK_STATE_DIR": str(stack.state_dir)}
    r = run_sdk_driver(sdk_pythons["2.63.0"], "peek", env)["peek"]
    assert r["listing"] == [], r
    assert "No such file" in r["read"], r
    for value in creds.values():
        assert str(value) not in r["read"]


def test_long_streaming_command(stack: UpProcess, sdk_pythons: dict[str, Path]) -> None:
    """One command printing a line a second for two minutes streams through Envoy as it runs."""
    seconds = int(os.environ.get("STACK_STREAM_SECONDS", "120"))
    env = {**stack.sdk_env(), "STACK_STREAM_SECONDS": str(seconds)}
    r = run_sdk_driver(sdk_pythons["2.63.0"], "stream", env, timeout=seconds + 120)["stream"]
    assert r["exit_code"] == 0 and r["lines"] == seconds and r["last"] == f"tick {seconds}", r
    assert r["first_arrival"] < 5, "output arrives while the command runs, not at its end"
    assert r["max_gap"] < 5, r


def test_crashed_service_is_restarted(stack: UpProcess) -> None:
    before = stack.status()["services"]["extproc"]
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    after = before
    while time.monotonic() < deadline:
        after = stack.status()["services"]["extproc"]
        if after["pid"] not in (None, before["pid"]) and after["healthy"]:
            break
        time.sleep(0.5)
    assert after["pid"] != before["pid"] and after["healthy"] and after["restarts"] == before["restarts"] + 1, after
    assert "extproc exited with code" in stack.stderr_tail(), "the crash is reported on up's stderr"


def test_down_stops_everything(stack: UpProcess) -> None:
    assert stack.proc is not None
    tree = descendants(stack.proc.pid)
    services = stack.status()["services"]
    assert any(b"bwrap" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid, _ in tree
               if Path(f"/proc/{pid}/cmdline").exists()), "sandboxes run below up"
    ports = [port for svc in services.values() for port in svc["ports"].values()]
    result = subprocess.run([str(AGENT_SANDBOX), "down", "--state-dir", str(stack.state_dir)],
                            capture_output=True, text=True, timeout=150, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.proc.wait(30) == 0
    assert still_alive(tree) == []
    assert [p for p in ports if bound("127.0.0.1", p)] == []
    assert not (stack.state_dir / "run" / "envoy-admin.sock").exists() or not bound_unix(
        stack.state_dir / "run" / "envoy-admin.sock")
    assert stack.status() == {"running": False, "healthy": False, "pid": None, "state_dir": str(stack.state_dir),
                              "services": {}}


def bound_unix(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        return sock.connect_ex(str(path)) == 0
