"""The ``pods/exec`` wire rules, without I/O: query options, subprotocol, channel frames, exit Status.

Real clients (kubectl 1.30+, client-go, kubernetes_asyncio's ``WsApiClient``)
speak the Kubernetes remote-command protocol over a WebSocket: every binary
message starts with one channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error,
4 resize — and the error channel carries one ``Status`` at the end (``Success``,
or ``Failure`` with reason ``NonZeroExitCode`` and the code as the message of
cause ``ExitCode``), after which the server closes. ``v5.channel.k8s.io`` is
``v4`` plus channel 255, on which the client half-closes one of its streams
(``[255, 0]`` = end of stdin); kubectl offers v5 first and falls back to v4.
Keeping these rules here lets unit tests pin them and lets the WebSocket shell
(:mod:`.podexec`) stay a thin pump.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .podlogs import pick_container

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)

_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """One exec request: what to run where, and which streams the client attaches."""

    container: str
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _flag(query: Any, name: str) -> bool:
    value = query.get(name)
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid value for {name}: {value!r} is not a boolean")


def parse_options(query: Any, pod: dict[str, Any]) -> ExecOptions:
    """Options of an exec request on ``pod`` (a multidict query); ValueError with the reason when invalid."""
    command = tuple(query.getall("command", []))
    if not command or not command[0]:
        raise ValueError("you must specify at least one command for the container")
    stdin, stdout, stderr, tty = (_flag(query, n) for n in ("stdin", "stdout", "stderr", "tty"))
    if not (stdin or stdout or stderr):
        raise ValueError("you must specify at least one of stdin, stdout, stderr")
    if tty and stderr:
        raise ValueError("tty and stderr cannot both be true (a terminal merges stderr into stdout)")
    container = pick_container(pod, query.get("container"))
    return ExecOptions(container, command, stdin, stdout, stderr, tty)


def runnable_problem(pod: dict[str, Any], container: str) -> str | None:
    """Why ``container`` of ``pod`` cannot take an exec now, or None when it is running."""
    name = (pod.get("metadata") or {}).get("name", "")
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return f"cannot exec into a container in a completed pod; current phase is {phase}"
    if not (pod.get("spec") or {}).get("nodeName"):
        return f"pod {name} does not have a host assigned"
    for st in status.get("containerStatuses") or []:
        if st.get("name") == container and (st.get("state") or {}).get("running") is not None:
            return None
    return f'container "{container}" in pod "{name}" is not running'


def choose_protocol(header: str) -> str | None:
    """The subprotocol to answer for a ``Sec-WebSocket-Protocol`` offer (the client's order), or None."""
    offered = [p.strip() for p in header.split(",") if p.strip()]
    return next((p for p in offered if p in PROTOCOLS), None)


def frame(channel: int, data: bytes) -> bytes:
    return bytes((channel,)) + data


def exit_status(code: int, command: tuple[str, ...]) -> bytes:
    """The error-channel ``Status`` for a command that exited with ``code``."""
    if code == 0:
        return orjson.dumps({"metadata": {}, "status": "Success"})
    return orjson.dumps({
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command [{' '.join(command)}], "
                   f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    })


def error_status(message: str) -> bytes:
    """The error-channel ``Status`` for an exec that could not run at all."""
    return orjson.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                         "code": 500})


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """``(columns, rows)`` from a resize message (``{"Width": w, "Height": h}``); None when malformed."""
    try:
        body = orjson.loads(data)
        width, height = int(body["Width"]), int(body["Height"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if not (0 < width < 65536 and 0 < height < 65536):
        return None
    return width, height
