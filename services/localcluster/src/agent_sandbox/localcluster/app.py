"""Run the embedded control plane: in-process for tests, or as a subprocess.

Stable Python API (used by the fixtures of every area)::

    from agent_sandbox.localcluster.app import LocalCluster, LocalClusterProcess

    async with LocalCluster() as cluster:            # in-process, 127.0.0.1:<ephemeral>
        cluster.url          # "http://127.0.0.1:PORT" (plain HTTP; send "Authorization: Bearer <token>")
        cluster.tls_url      # "https://127.0.0.1:PORT2" (same API; certificate signed by cluster.ca_file)
        cluster.kubeconfig   # pathlib.Path of a kubeconfig: tls_url + CA + bearer token (kubectl needs TLS:
                             # client-go sends tokens only over https)
        cluster.token        # the bearer token
        cluster.ca_file      # pathlib.Path of the CA certificate (PEM)
        cluster.state_dir    # its state directory (a temp dir unless given)
        cluster.server       # the ApiServer (registry, store) for white-box checks
        await cluster.set_faults({"conflict_probability": 0.1})   # see apiserver.faults

    LocalCluster(state_dir=None, crd_dir=DEFAULT_CRD_DIR, node="none", node_name="localcluster-node",
                 faults=None, port=0, tls_port=0, persist=None, event_log_size=10_000, watch_queue_size=20_000,
                 bookmark_interval=5.0, sqlite_synchronous="NORMAL", collect_when_idle=False)
        collect_when_idle: the process's garbage is collected at its quiet moments
        (common.gctuning.IdleCollector; the command turns it on).
        persist defaults to True when state_dir is given (SQLite ``state_dir/state.db``); writes are answered
        once committed, sqlite_synchronous="FULL" adds an fsync per commit (see apiserver.persistence).
        node: "none" (default here), "sim" or "local" — started with node.run_node after listening.

    async with LocalClusterProcess(state_dir=path, node="none") as proc:   # `agent-sandbox localcluster`
        proc.url, proc.tls_url, proc.kubeconfig, proc.token, proc.process
        await proc.stop()    # SIGTERM + wait (clean shutdown flushes persistence); __aexit__ does it too

The same :func:`serve` is what the ``agent-sandbox localcluster`` command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import shutil
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import yaml
from aiohttp import ClientSession

from agent_sandbox.common import gctuning
from agent_sandbox.common.logging import get_logger

from .apiserver.faults import FaultConfig
from .apiserver.httpserver import HttpServer
from .apiserver.kubeconfig import load_or_create_token, write_kubeconfig
from .apiserver.persistence import SqlitePersistence, Synchronous
from .apiserver.podexec import ExecRunner
from .apiserver.podlogs import LogReader
from .apiserver.server import MAX_BODY_BYTES, ApiServer
from .apiserver.tls import ensure_certificates, server_context

log = get_logger(__name__)

_REPO_CRDS = pathlib.Path(__file__).resolve().parents[5] / "deploy" / "crds"
TLS_PORT_FILE = "tls-port"
DEFAULT_CRD_DIR: pathlib.Path | None = _REPO_CRDS if _REPO_CRDS.is_dir() else None
NODE_KINDS = ("sim", "local", "none")


def _load_run_node() -> Any:
    try:
        from .node import run_node
    except ImportError as exc:
        raise RuntimeError(f"the node agent is not available ({exc}); start with --node none") from exc
    return run_node


async def _supervise_node(kind: str, kubeconfig: pathlib.Path, node_name: str,
                          state_dir: pathlib.Path | None,
                          register_logs: Callable[[str, LogReader | None], None],
                          register_exec: Callable[[str, ExecRunner | None], None]) -> None:
    """Run the node agent, restarting it with backoff if it fails."""
    run_node = _load_run_node()
    delay = 0.5
    while True:
        try:
            await run_node(kind, kubeconfig, node_name, state_dir, register_logs, register_exec)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("node agent failed; restarting", node=node_name, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


class LocalCluster:
    """The embedded API server (and optionally a node agent) running in this event loop."""

    def __init__(self, *, state_dir: pathlib.Path | str | None = None,
                 crd_dir: pathlib.Path | str | None = DEFAULT_CRD_DIR, node: str = "none",
                 node_name: str = "localcluster-node", faults: FaultConfig | dict[str, Any] | None = None,
                 host: str = "127.0.0.1", port: int = 0, tls_port: int = 0, persist: bool | None = None,
                 event_log_size: int = 10_000, watch_queue_size: int = 20_000,
                 bookmark_interval: float = 5.0, sqlite_synchronous: Synchronous = "NORMAL",
                 collect_when_idle: bool = False) -> None:
        if node not in NODE_KINDS:
            raise ValueError(f"node must be one of {NODE_KINDS}")
        self._given_state_dir = pathlib.Path(state_dir) if state_dir is not None else None
        self.crd_dir = pathlib.Path(crd_dir) if crd_dir is not None else None
        self.node = node
        self.node_name = node_name
        self._faults = faults if isinstance(faults, FaultConfig) else FaultConfig.model_validate(faults or {})
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.persist = persist if persist is not None else state_dir is not None
        self._event_log_size = event_log_size
        self._watch_queue_size = watch_queue_size
        self._bookmark_interval = bookmark_interval
        self._sqlite_synchronous = sqlite_synchronous
        self._idle_collector = gctuning.IdleCollector(self._busy) if collect_when_idle else None
        self.state_dir: pathlib.Path = self._given_state_dir or pathlib.Path()
        self.url = ""
        self.tls_url = ""
        self.token = ""
        self.kubeconfig = pathlib.Path()
        self.ca_file = pathlib.Path()
        self.server: ApiServer | None = None
        self._http: HttpServer | None = None
        self._node_task: asyncio.Task[None] | None = None
        self._own_state_dir = False

    async def start(self) -> None:
        if self.node != "none":
            _load_run_node()  # fail before listening if the agent is missing
        if self._given_state_dir is None:
            self.state_dir = pathlib.Path(tempfile.mkdtemp(prefix="localcluster-"))
            self._own_state_dir = True
        else:
            self.state_dir = self._given_state_dir
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self.token = load_or_create_token(self.state_dir)
        self.ca_file, cert_file, key_file = ensure_certificates(self.state_dir)
        persistence = (SqlitePersistence(self.state_dir / "state.db", self._sqlite_synchronous)
                       if self.persist else None)
        server = ApiServer(token=self.token, crd_dir=self.crd_dir, persistence=persistence, faults=self._faults,
                           event_log_size=self._event_log_size, watch_queue_size=self._watch_queue_size,
                           bookmark_interval=self._bookmark_interval)
        await server.start()
        self.server = server
        self._http = http = HttpServer(server.handle, server.streams, max_body=MAX_BODY_BYTES,
                                       on_idle=self._idle_collector.poke if self._idle_collector else None)
        port = await http.listen(self.host, self.port)
        tls_port = await self._listen_tls(http, server_context(cert_file, key_file))
        if self._given_state_dir is not None:
            (self.state_dir / TLS_PORT_FILE).write_text(str(tls_port))
        server.server_address = f"{self.host}:{tls_port}"
        self.url = f"http://{self.host}:{port}"
        self.tls_url = f"https://{self.host}:{tls_port}"
        self.kubeconfig = write_kubeconfig(self.state_dir, self.tls_url, self.token, self.ca_file.read_bytes())
        log.info("localcluster serving", url=self.url, kubeconfig=str(self.kubeconfig), node=self.node)
        if self.node != "none":
            self._node_task = asyncio.get_running_loop().create_task(
                _supervise_node(self.node, self.kubeconfig, self.node_name,
                                self.state_dir / "node" if self._given_state_dir else None,
                                server.pod_logs.register, server.pod_exec.register),
                name=f"localcluster-node-{self.node_name}")

    async def _listen_tls(self, http: HttpServer, ssl_context: ssl.SSLContext) -> int:
        """Listen for HTTPS; with a state dir and no fixed port, reuse the port of the previous run.

        The kubeconfig names the TLS port, so keeping it stable lets clients that hold
        the kubeconfig (node agents, the operator, a user's kubectl) reconnect after a restart.
        """
        port = self.tls_port
        remembered = self.state_dir / TLS_PORT_FILE
        if port == 0 and self._given_state_dir is not None and remembered.is_file():
            with contextlib.suppress(ValueError):
                port = int(remembered.read_text().strip())
        try:
            return await http.listen(self.host, port, ssl_context)
        except OSError:
            if port == self.tls_port:
                raise
            log.warning("previous TLS port is taken; listening on a new one", port=port)
            return await http.listen(self.host, self.tls_port, ssl_context)

    def _busy(self) -> bool:
        return self._http is not None and self._http.busy

    async def stop(self) -> None:
        if self._idle_collector is not None:
            self._idle_collector.close()
        if self._node_task is not None:
            self._node_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._node_task
            self._node_task = None
        if self.server is not None:
            await self.server.stop_streams()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    async def set_faults(self, faults: FaultConfig | dict[str, Any]) -> FaultConfig:
        config = faults if isinstance(faults, FaultConfig) else FaultConfig.model_validate(faults)
        assert self.server is not None, "cluster not started"
        self.server.faults.config = config
        return config

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


async def serve(cluster: LocalCluster, *, exit_with_parent: bool = False) -> None:
    """Run ``cluster`` until SIGTERM/SIGINT (or, with ``exit_with_parent``, until the process that started
    this one is gone), printing ``LOCALCLUSTER_URL=<http url>`` and then ``KUBECONFIG=<path>`` once it serves."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = _watch_parent(loop, stop) if exit_with_parent else None
    try:
        async with cluster:
            gctuning.freeze_startup_heap()  # the loaded store and the imports: out of every later collection
            print(f"LOCALCLUSTER_URL={cluster.url}", flush=True)
            print(f"KUBECONFIG={cluster.kubeconfig}", flush=True)
            await stop.wait()
            log.info("localcluster shutting down")
    finally:
        if parent is not None:
            loop.remove_reader(parent)
            os.close(parent)


def _watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> int | None:
    """Set ``stop`` when this process's parent exits (a killed test run or benchmark would otherwise leave
    its API server running): a pidfd of the parent turns readable then. Returns the fd to close."""
    parent = os.getppid()
    try:
        fd = os.pidfd_open(parent)
    except OSError as exc:  # a kernel before 5.3: the parent's exit goes unnoticed
        log.warning("cannot watch the parent process", parent_pid=parent, error=str(exc))
        return None

    def gone() -> None:
        log.warning("the process that started this API server is gone; shutting down", parent_pid=parent)
        loop.remove_reader(fd)
        stop.set()

    loop.add_reader(fd, gone)
    return fd


class LocalClusterProcess:
    """``agent-sandbox localcluster`` in a child process (for restart and crash tests); it shuts down when
    this process exits, however that happens."""

    def __init__(self, *, state_dir: pathlib.Path | str, port: int = 0,
                 crd_dir: pathlib.Path | str | None = DEFAULT_CRD_DIR, node: str = "none",
                 node_name: str = "localcluster-node", extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, startup_timeout: float = 30.0) -> None:
        self.state_dir = pathlib.Path(state_dir)
        self.port = port
        self.crd_dir = crd_dir
        self.node = node
        self.node_name = node_name
        self.extra_args = list(extra_args)
        self.env = env
        self.startup_timeout = startup_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.tls_url = ""
        self.token = ""
        self.kubeconfig = pathlib.Path()
        self._drain: asyncio.Task[None] | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "agent_sandbox.localcluster.cli",
               "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(self.state_dir),
               "--node", self.node, "--node-name", self.node_name, "--exit-with-parent"]
        cmd += ["--crd-dir", str(self.crd_dir) if self.crd_dir is not None else ""]
        return cmd + self.extra_args

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        stderr = (self.state_dir / "localcluster.log").open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=asyncio.subprocess.PIPE, stderr=stderr,
                env={**os.environ, **(self.env or {})})
        finally:
            stderr.close()
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(self.startup_timeout):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise RuntimeError(f"localcluster exited with {await self.process.wait()}; see "
                                           f"{self.state_dir / 'localcluster.log'}")
                    text = line.decode().strip()
                    if text.startswith("LOCALCLUSTER_URL="):
                        self.url = text.split("=", 1)[1]
                    elif text.startswith("KUBECONFIG="):
                        self.kubeconfig = pathlib.Path(text.split("=", 1)[1])
                        break
        except BaseException:
            await self.stop()
            raise
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.tls_url = config["clusters"][0]["cluster"]["server"]
        self.token = config["users"][0]["user"]["token"]
        self._drain = asyncio.get_running_loop().create_task(self._drain_stdout())

    async def _drain_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while await self.process.stdout.readline():
            pass

    async def healthy(self) -> bool:
        async with ClientSession() as session, session.get(f"{self.url}/readyz") as resp:
            return resp.status == 200

    async def stop(self, grace_s: float = 15.0) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None
        self.process = None
        return proc.returncode

    async def kill(self) -> None:
        """Stop without a clean shutdown (SIGKILL)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
        await self.stop()

    async def __aenter__(self) -> LocalClusterProcess:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
