"""Run one command in a sandbox through envd and collect its output (``POST /v1/sandboxes/{id}/exec``).

``process.Process/Start`` without a PTY streams stdout/stderr chunks and an end event with the exit
code; the Connect deadline makes envd kill the command when ``timeout_s`` passes. A command that
does not finish in time answers exit code 124 (the ``timeout(1)`` convention) with what it printed.
"""

from __future__ import annotations

import asyncio
import base64

import aiohttp

from agent_sandbox.common.errors import ApiError
from agent_sandbox.operator.api.envd_access import EnvdAccess
from agent_sandbox.operator.api.envd_connect import PROCESS_SERVICE, STREAM_CONTENT_TYPE, envelope, process_events
from agent_sandbox.operator.podview import Pod, sandbox_id

TIMED_OUT_EXIT_CODE = 124
MAX_OUTPUT_BYTES = 4 * 1024 * 1024


async def run_command(envd: EnvdAccess, pod: Pod, command: str, timeout_s: int) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``sh -c command`` in the sandbox of ``pod``."""
    headers = {**envd.headers(sandbox_id(pod)), "Connect-Protocol-Version": "1",
               "Content-Type": STREAM_CONTENT_TYPE, "Connect-Timeout-Ms": str(timeout_s * 1000)}
    body = envelope({"process": {"cmd": "/bin/sh", "args": ["-c", command]}, "stdin": False})
    out = {"stdout": bytearray(), "stderr": bytearray()}
    exit_code = TIMED_OUT_EXIT_CODE
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        async with asyncio.timeout(timeout_s + 5), envd.session.post(
                envd.base_url(pod) + PROCESS_SERVICE + "/Start", data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=5)) as resp:
            if resp.status != 200:
                raise ApiError(502, f"envd refused the command ({resp.status})", code="EnvdError")
            async for event in process_events(resp.content):
                for stream, chunk in (event.get("data") or {}).items():
                    if stream in out and len(out[stream]) < MAX_OUTPUT_BYTES:
                        out[stream] += base64.b64decode(chunk)
                end = event.get("end")
                if end is not None and (end.get("exited") or loop.time() < deadline):
                    exit_code = int(end.get("exitCode", 0))
    except TimeoutError:
        pass
    except aiohttp.ClientError as exc:
        raise ApiError(502, "envd of the sandbox is unreachable", code="EnvdUnreachable") from exc
    return exit_code, out["stdout"].decode(errors="replace"), out["stderr"].decode(errors="replace")
