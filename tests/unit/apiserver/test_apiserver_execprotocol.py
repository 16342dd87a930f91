"""The pods/exec wire rules: which requests are refused and why, subprotocol choice, exit Status shapes."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes_asyncio.stream import WsApiClient
from multidict import MultiDict

from agent_sandbox.localcluster.apiserver import execprotocol as xp
from agent_sandbox.localcluster.apiserver.podexec import PodExecRunners

RUNNING = {"name": "main", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}


def pod(phase: str = "Running", node: str | None = "n1", statuses: list | None = None) -> dict:
    return {"metadata": {"name": "p"},
            "spec": {"nodeName": node, "containers": [{"name": "main"}]},
            "status": {"phase": phase, "containerStatuses": [RUNNING] if statuses is None else statuses}}


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def test_options_keep_command_order_and_flags() -> None:
    opts = xp.parse_options(q(("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("stdout", "true"),
                              ("stderr", "1"), ("stdin", "False")), pod())
    assert opts == xp.ExecOptions("main", ("sh", "-c", "echo hi"), stdin=False, stdout=True, stderr=True, tty=False)


@pytest.mark.parametrize(("query", "message"), [
    ([("stdout", "true")], "at least one command"),
    ([("command", ""), ("stdout", "true")], "at least one command"),
    ([("command", "ls")], "at least one of stdin, stdout, stderr"),
    ([("command", "ls"), ("stdout", "yes")], "stdout: 'yes' is not a boolean"),
    ([("command", "ls"), ("stdout", "true"), ("stderr", "true"), ("tty", "true")], "tty and stderr"),
    ([("command", "ls"), ("stdout", "true"), ("container", "side")], "container side is not valid"),
])
def test_bad_options_say_why(query: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        xp.parse_options(q(*query), pod())


def test_runnable_problem() -> None:
    assert xp.runnable_problem(pod(), "main") is None
    assert "completed pod; current phase is Succeeded" in (xp.runnable_problem(pod("Succeeded"), "main") or "")
    assert xp.runnable_problem(pod(node=None), "main") == "pod p does not have a host assigned"
    waiting = [{"name": "main", "state": {"waiting": {"reason": "ErrImagePull"}}}]
    assert xp.runnable_problem(pod("Pending", statuses=waiting), "main") == 'container "main" in pod "p" is not running'
    assert xp.runnable_problem(pod(statuses=[]), "main") is not None


def test_protocol_follows_the_clients_preference() -> None:
    assert xp.choose_protocol("v5.channel.k8s.io, v4.channel.k8s.io") == xp.V5
    assert xp.choose_protocol("v4.channel.k8s.io,v5.channel.k8s.io") == xp.V4
    assert xp.choose_protocol("channel.k8s.io, v4.channel.k8s.io") == xp.V4
    assert xp.choose_protocol("base64.channel.k8s.io") is None
    assert xp.choose_protocol("") is None


def test_exit_status_is_what_clients_parse() -> None:
    ok = xp.exit_status(0, ("true",))
    assert json.loads(ok) == {"metadata": {}, "status": "Success"}
    assert WsApiClient.parse_error_data(ok) == 0
    failed = json.loads(xp.exit_status(42, ("sh", "-c", "exit 42")))
    assert failed["reason"] == "NonZeroExitCode" and failed["status"] == "Failure"
    assert failed["message"].endswith("error executing command [sh -c exit 42], exit code 42")  # Go's %v
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "42"}]
    assert WsApiClient.parse_error_data(json.dumps(failed)) == 42
    assert json.loads(xp.error_status("container gone"))["message"] == "container gone"


def test_frames_and_resize() -> None:
    assert xp.frame(xp.STDERR, b"x") == b"\x02x"
    assert xp.parse_resize(b'{"Width": 80, "Height": 24}') == (80, 24)
    for bad in (b"{}", b"not json", b'{"Width": 0, "Height": 24}', b'{"Width": "a", "Height": 1}', b"[1]"):
        assert xp.parse_resize(bad) is None


async def test_runners_registry_ends_a_stopped_nodes_sessions() -> None:
    async def runner(_call: object) -> int:
        return 0

    runners = PodExecRunners(max_sessions=2)
    runners.register("n1", runner)  # type: ignore[arg-type]
    assert runners.get("n1") is runner and runners.get("n2") is None
    session = asyncio.get_running_loop().create_task(asyncio.sleep(60))
    runners.track("n1", session)  # type: ignore[arg-type]
    assert runners.active == 1
    runners.register("n1", None)  # the agent stops: its sessions end, its runner is gone
    with pytest.raises(asyncio.CancelledError):
        await session
    assert runners.get("n1") is None and runners.active == 0
