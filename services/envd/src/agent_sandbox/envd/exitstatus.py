"""Render a child's wait status the way upstream envd (Go) reports it.

The SDK shows ``status``/``error`` strings to users and branches on
``exit_code``; upstream derives them from Go's ``os.ProcessState``
(``"exit status 1"``, ``"signal: killed"``, exit code -1 when signalled), so we
reproduce those exact strings.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

# Go's syscall.Signal.String() texts for the signals a sandbox process commonly dies of.
_GO_SIGNAL_NAMES = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
}


@dataclass(frozen=True, slots=True)
class ExitStatus:
    exit_code: int
    exited: bool
    status: str

    @property
    def error(self) -> str | None:
        """Upstream sets ``error`` for anything but a clean exit."""
        return None if self.exited and self.exit_code == 0 else self.status


def from_wait_status(wait_status: int) -> ExitStatus:
    """Translate an ``os.waitpid`` status into the end-event fields."""
    if os.WIFEXITED(wait_status):
        code = os.WEXITSTATUS(wait_status)
        return ExitStatus(exit_code=code, exited=True, status=f"exit status {code}")
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        name = _GO_SIGNAL_NAMES.get(sig, f"signal {sig}")
        core = " (core dumped)" if os.WCOREDUMP(wait_status) else ""
        return ExitStatus(exit_code=-1, exited=False, status=f"signal: {name}{core}")
    return ExitStatus(exit_code=-1, exited=False, status=f"unknown wait status {wait_status:#x}")
