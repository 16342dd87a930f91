"""``agent-sandbox up``: start the whole system on this machine, print ``READY`` and the exports, run until signalled.

Steps (one progress line each on stderr): lock the state dir → credentials → Envoy config →
localcluster (control plane + ``local`` node) → extproc → operator → Envoy → namespaces, the
``base`` template and pool, the user's API key → the pool's warm sandboxes → ``READY``. Then
``READY`` and ``export NAME=VALUE`` lines go to stdout (flushed), and the services are supervised
until SIGINT/SIGTERM (or ``agent-sandbox down``), when they stop in reverse order: Envoy,
operator, extproc, and last the control plane, whose node kills every sandbox on the way out.

Restart semantics (same state dir): the control plane's SQLite keeps pools, templates and API
keys, and ``credentials.json`` keeps the secrets, so the exports stay valid (with fixed ports).
Sandboxes that were running are **cleanly recycled**: the ``local`` node cleans up on start like a
rebooted node (their processes ended with it), the kubelet restarts the containers of the pods
that still exist, and the operator returns those pods to the pool as idle; their ids are gone
(the E2B SDK gets "not found"), no pod leaks.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from agent_sandbox.localcluster.stack import bootstrap, envoyconf
from agent_sandbox.localcluster.stack.credentials import Credentials, load_or_create, write_private
from agent_sandbox.localcluster.stack.plan import Layout, ServiceSpec, endpoints, export_lines, plan
from agent_sandbox.localcluster.stack.runfile import RunRecord, ServiceRecord, hold_lock, remove_record, write_record
from agent_sandbox.localcluster.stack.settings import Ports, StackSettings
from agent_sandbox.localcluster.stack.supervisor import Supervised

#: Seconds each service gets to stop after SIGTERM (the control plane flushes state and kills sandboxes).
STOP_GRACE_S = {"localcluster": 40.0}
DEFAULT_STOP_GRACE_S = 15.0


def resolve_ports(ports: Ports, pick: Callable[[], int]) -> Ports:
    """Replace every ``0`` by a port from ``pick`` (a free ephemeral port)."""
    return Ports(**{name: value or pick() for name, value in ports.model_dump().items()})


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def busy_ports(host: str, ports: Ports) -> list[str]:
    """``name:port`` of every configured port something else already listens on."""
    busy = []
    for name, port in ports.model_dump().items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(f"{name}:{port}")
    return busy


def agent_sandbox_command() -> str:
    """The ``agent-sandbox`` console script of this installation (next to this Python, else on PATH)."""
    beside = Path(sys.executable).with_name("agent-sandbox")
    found = str(beside) if beside.exists() else shutil.which("agent-sandbox")
    if not found:
        raise RuntimeError("the agent-sandbox command is not installed (run scripts/setup)")
    return found


class Progress:
    def __init__(self, err: TextIO) -> None:
        self._err = err

    def __call__(self, line: str) -> None:
        print(f"[up] {line}", file=self._err, flush=True)


class Stack:
    """The stack's supervised services, started in order and stopped in reverse."""

    def __init__(self, settings: StackSettings, err: TextIO = sys.stderr) -> None:
        self.settings = settings
        self.layout = Layout(settings.state_dir)
        self.progress = Progress(err)
        self.services: list[Supervised] = []

    def _record(self, _changed: Supervised | None = None) -> None:
        record = RunRecord(pid=os.getpid(), state_dir=str(self.layout.root),
                           endpoints=asdict(endpoints(self.settings)), services={
            s.spec.name: ServiceRecord(pid=s.pid, argv0=s.spec.argv[0], ports=s.spec.ports,
                                       health_url=s.spec.health.url, health_socket=s.spec.health.unix_socket,
                                       restarts=s.restarts, log=str(s.log_path))
            for s in self.services})
        write_record(self.layout.run, record)

    async def _start_service(self, spec: ServiceSpec) -> None:
        svc = Supervised(spec, self.layout.logs, report=self.progress, on_started=self._record)
        self.services.append(svc)
        await svc.start(self.settings.ready_timeout_s)
        ports = ", ".join(f"{name} {self.settings.host}:{port}" for name, port in spec.ports.items())
        self.progress(f"{spec.name} ready (pid {svc.pid}; {ports})")

    async def start(self, creds: Credentials) -> None:
        s, layout = self.settings, self.layout
        envoy = envoyconf.envoy_binary()
        write_private(layout.envoy_config, envoyconf.render(s, creds, layout.envoy_admin_socket))
        for spec in plan(s, creds, layout, agent_sandbox_command(), envoy):
            self.progress(f"starting {spec.name}")
            await self._start_service(spec)
        api = await bootstrap.kube_client(layout.kubeconfig)
        try:
            for what in await bootstrap.ensure_objects(api, s.pool):
                self.progress(f"created {what}")
            ends = endpoints(s)
            if await bootstrap.import_api_key(ends.api, creds.admin_key, creds.api_key, s.pool.namespace):
                self.progress(f"registered the user's API key (user {bootstrap.LOCAL_USER}, "
                              f"namespace {s.pool.namespace})")
            await bootstrap.wait_pool_warm(
                api, s.pool, s.ready_timeout_s,
                lambda n: self.progress(f"pool {s.pool.name}: {n}/{s.pool.replicas} warm sandboxes"))
        finally:
            await api.close()

    async def stop(self) -> None:
        for svc in reversed(self.services):
            code = await svc.stop(STOP_GRACE_S.get(svc.spec.name, DEFAULT_STOP_GRACE_S))
            self.progress(f"{svc.spec.name} stopped" + (f" (exit code {code})" if code else ""))
        remove_record(self.layout.run)


async def run_up(settings: StackSettings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    progress = Progress(err)
    layout = Layout(settings.state_dir)
    for directory in (layout.root, layout.run, layout.logs):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o700)
    with hold_lock(layout.run):
        settings = settings.model_copy(update={"ports": resolve_ports(settings.ports,
                                                                       lambda: free_port(settings.host))})
        busy = busy_ports(settings.host, settings.ports)
        if busy:
            progress(f"ports already in use: {', '.join(busy)} (another stack? set them with flags or --config)")
            return 1
        progress(f"state directory {layout.root}")
        creds, created = load_or_create(layout.root)
        progress("credentials " + ("generated" if created else "loaded") + f" ({layout.root}/credentials.json)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stack = Stack(settings, err)
        starting = loop.create_task(stack.start(creds))
        stopping = loop.create_task(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and starting.exception() is None:
                print("READY", file=out)
                for line in export_lines(endpoints(settings), creds, layout.kubeconfig):
                    print(line, file=out)
                out.flush()
                progress("ready; Ctrl-C or `agent-sandbox down` stops everything")
                await stopping
                code = 0
            elif starting.done():
                progress(f"start-up failed: {starting.exception()}")
                code = 1
            else:
                progress("interrupted during start-up")
                code = 130
        finally:
            starting.cancel()
            stopping.cancel()
            await asyncio.gather(starting, stopping, return_exceptions=True)
            progress("stopping")
            await stack.stop()
            progress("stopped")
        return code
