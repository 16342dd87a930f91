"""``agent-sandbox status`` and ``agent-sandbox down``: look at / stop the stack of a state directory.

``status --exports`` prints the same ``export`` lines ``up`` printed after READY, so another shell
can ``eval "$(agent-sandbox status --exports)"``.

Both work from ``<state>/run`` (see :mod:`.runfile`). ``down`` sends SIGTERM to ``up`` and waits
until its lock is free, so the ordered shutdown (sandboxes killed, state flushed) has finished
when it returns. If ``up`` is gone but a service it started survived (``up`` killed with SIGKILL
and the service ignoring its parent-death signal), ``down`` stops that service itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any, TextIO

from agent_sandbox.localcluster.stack.credentials import load_or_create
from agent_sandbox.localcluster.stack.plan import Endpoints, Health, Layout, export_lines
from agent_sandbox.localcluster.stack.runfile import (
    RunRecord,
    is_locked,
    process_matches,
    read_record,
    remove_record,
)
from agent_sandbox.localcluster.stack.supervisor import probe

DOWN_TIMEOUT_S = 90.0
KILL_GRACE_S = 10.0


async def service_status(record: RunRecord) -> dict[str, dict[str, Any]]:
    async def one(name: str) -> tuple[str, dict[str, Any]]:
        svc = record.services[name]
        alive = svc.pid is not None and process_matches(svc.pid, svc.argv0)
        healthy = alive and await probe(Health(svc.health_url, svc.health_socket))
        return name, {"pid": svc.pid if alive else None, "ports": svc.ports, "healthy": healthy,
                      "restarts": svc.restarts, "log": svc.log}

    return dict(await asyncio.gather(*(one(name) for name in record.services)))


def exports(layout: Layout, out: TextIO, err: TextIO) -> int:
    """Print the running stack's ``export`` lines (for ``eval``); 3 when it is not running."""
    record = read_record(layout.run)
    if not (is_locked(layout.run) and record is not None):
        print(f"agent-sandbox is not running (state directory {layout.root})", file=err)
        return 3
    creds, _ = load_or_create(layout.root)
    for line in export_lines(Endpoints(**record.endpoints), creds, layout.kubeconfig):
        print(line, file=out)
    return 0


async def status(layout: Layout, out: TextIO, as_json: bool = False) -> int:
    """Exit code 0 when ``up`` runs and every service is healthy, 1 when something is unhealthy, 3 when stopped."""
    record = read_record(layout.run)
    running = is_locked(layout.run) and record is not None
    services = await service_status(record) if running and record is not None else {}
    healthy = running and bool(services) and all(s["healthy"] for s in services.values())
    if as_json:
        print(json.dumps({"running": running, "healthy": healthy, "pid": record.pid if running and record else None,
                          "state_dir": str(layout.root), "services": services}), file=out)
    elif not running:
        print(f"not running (state directory {layout.root})", file=out)
    else:
        assert record is not None
        print(f"agent-sandbox up: pid {record.pid}, state directory {layout.root}", file=out)
        print(f"{'SERVICE':<14}{'PID':<9}{'HEALTHY':<9}{'RESTARTS':<10}PORTS", file=out)
        for name, s in services.items():
            ports = ", ".join(f"{k}={v}" for k, v in s["ports"].items())
            print(f"{name:<14}{s['pid'] or '-'!s:<9}{'yes' if s['healthy'] else 'no':<9}{s['restarts']:<10}{ports}",
                  file=out)
    if not running:
        return 3
    return 0 if healthy else 1


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def _wait(cond: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.1)
    return bool(cond())


async def down(layout: Layout, out: TextIO, wait_s: float = DOWN_TIMEOUT_S) -> int:
    record = read_record(layout.run)
    if is_locked(layout.run):
        if record is None:
            print("agent-sandbox up is starting; try again in a moment", file=out)
            return 1
        print(f"stopping agent-sandbox up (pid {record.pid})", file=out)
        _signal(record.pid, signal.SIGTERM)
        if not await _wait(lambda: not is_locked(layout.run), wait_s):
            print(f"agent-sandbox up (pid {record.pid}) did not stop within {wait_s:.0f}s", file=out)
            return 1
    elif record is None:
        print(f"not running (state directory {layout.root})", file=out)
        return 0
    leftovers = [(name, svc.pid, svc.argv0) for name, svc in (record.services.items() if record else [])
                 if svc.pid is not None and process_matches(svc.pid, svc.argv0)]
    for name, pid, _ in leftovers:
        print(f"stopping leftover {name} (pid {pid})", file=out)
        _signal(pid, signal.SIGTERM)
    for name, pid, argv0 in leftovers:
        if not await _wait(lambda p=pid, a=argv0: not process_matches(p, a), KILL_GRACE_S):
            print(f"killing {name} (pid {pid})", file=out)
            _signal(pid, signal.SIGKILL)
    remove_record(layout.run)
    print("stopped", file=out)
    return 0
