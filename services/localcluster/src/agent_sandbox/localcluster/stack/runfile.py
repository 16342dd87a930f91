"""What a running ``up`` tells ``status`` and ``down``: a lock and a run record in ``<state>/run``.

* ``up.lock`` — held (``flock``) by the running ``up`` for its whole life, so a second ``up`` on
  the same state dir refuses to start, and ``down`` knows ``up`` has exited once it can take the
  lock (the kernel drops it when the process dies, however it dies).
* ``stack.json`` — ``up``'s pid, the user-facing URLs and, per service, pid, ports, health endpoint and restart count;
  rewritten whenever a service (re)starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

LOCK_FILE = "up.lock"
RUN_FILE = "stack.json"


class ServiceRecord(BaseModel):
    pid: int | None
    argv0: str
    ports: dict[str, int]
    health_url: str
    health_socket: str | None = None
    restarts: int = 0
    log: str


class RunRecord(BaseModel):
    pid: int
    state_dir: str
    #: The user-facing URLs (fields of :class:`~.plan.Endpoints`).
    endpoints: dict[str, str]
    services: dict[str, ServiceRecord] = {}


class AlreadyRunning(RuntimeError):
    """Another ``up`` holds this state directory."""


@contextlib.contextmanager
def hold_lock(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"agent-sandbox up is already running with this state directory "
                                 f"({run_dir.parent}); stop it with `agent-sandbox down`") from None
        yield
    finally:
        os.close(fd)


def is_locked(run_dir: Path) -> bool:
    """True while an ``up`` holds the lock of ``run_dir``."""
    path = run_dir / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_record(run_dir: Path, record: RunRecord) -> None:
    tmp = run_dir / f".{RUN_FILE}.tmp"
    tmp.write_text(record.model_dump_json(indent=2) + "\n")
    os.replace(tmp, run_dir / RUN_FILE)


def read_record(run_dir: Path) -> RunRecord | None:
    path = run_dir / RUN_FILE
    try:
        data: Any = json.loads(path.read_text())
        return RunRecord.model_validate(data)
    except (OSError, ValueError):
        return None


def remove_record(run_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run_dir / RUN_FILE).unlink()


def process_matches(pid: int, argv0: str) -> bool:
    """True if ``pid`` is alive and still runs ``argv0`` (a recycled pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if status and status[0] == "Z":
        return False
    return argv0.encode() in cmdline[:2]  # a console script runs as `python <script> ...`
