"""How an exec post-start hook judges the error-channel Status the API server sends at the end."""

from __future__ import annotations

import json

import pytest

from agent_sandbox.operator.lifecycle.hooks import HookError, check_exec_status

SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()


def failure(code: int) -> bytes:
    return json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "message": "x",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}).encode()


def test_success_passes() -> None:
    check_exec_status(SUCCESS, b"whatever it printed")


def test_non_zero_exit_fails_with_code_and_output_tail() -> None:
    with pytest.raises(HookError, match=r"command exited with code 3: cannot write /data"):
        check_exec_status(failure(3), b"cannot write /data\n")


def test_other_failures_and_missing_status_fail() -> None:
    internal = json.dumps({"status": "Failure", "reason": "InternalError", "message": "container gone"}).encode()
    with pytest.raises(HookError, match="container gone"):
        check_exec_status(internal, b"")
    with pytest.raises(HookError, match="without an exit status"):
        check_exec_status(None, b"partial")
    with pytest.raises(HookError, match="unreadable status"):
        check_exec_status(b"\xffgarbage", b"")
