"""Node agents of the embedded control plane: ``sim`` (timers) and ``local`` (bubblewrap sandboxes).

A node agent is a kubelet that talks to any Kubernetes API server over HTTP
with kubernetes_asyncio: it registers a Node, binds and runs the Pods, and
reports their status exactly as a kubelet would, so the operator code is the
same against the embedded control plane and a real cluster.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Callable

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_kube_config

from agent_sandbox.localcluster.apiserver.podexec import ExecRunner
from agent_sandbox.localcluster.apiserver.podlogs import LogReader
from agent_sandbox.localcluster.node.kubelet import Kubelet
from agent_sandbox.localcluster.node.runtime import Runtime, RuntimeEvents
from agent_sandbox.localcluster.node.settings import LocalSettings, SimSettings, load_node_settings
from agent_sandbox.localcluster.node.timers import TimerQueue

NODE_KINDS = ("sim", "local")

RegisterLogs = Callable[[str, LogReader | None], None]
RegisterExec = Callable[[str, ExecRunner | None], None]


async def run_node(kind: str, kubeconfig: pathlib.Path, node_name: str, state_dir: pathlib.Path | None,
                   register_logs: RegisterLogs | None = None, register_exec: RegisterExec | None = None) -> None:
    """Run the ``kind`` node agent named ``node_name`` against the API server in ``kubeconfig`` until cancelled.

    ``state_dir`` holds the node's settings file (``sim.yaml``/``local.yaml``) and,
    for ``local``, the sandboxes' files (a temporary directory when None).
    ``register_logs(node_name, reader)`` lets an API server in the same process read
    the ``local`` containers' output (``reader`` None when the agent stops);
    ``register_exec(node_name, runner)`` likewise serves its pods' ``pods/exec``.
    """
    if kind not in NODE_KINDS:
        raise ValueError(f"unknown node kind {kind!r}; expected one of {', '.join(NODE_KINDS)}")
    settings = load_node_settings(kind, state_dir)
    config = Configuration()
    await load_kube_config(config_file=str(kubeconfig), client_configuration=config)

    def factory(events: RuntimeEvents, timers: TimerQueue) -> Runtime:
        runtime: Runtime
        if isinstance(settings, SimSettings):
            from agent_sandbox.localcluster.node.sim import SimRuntime

            runtime = SimRuntime(events, timers, settings)
        else:
            assert isinstance(settings, LocalSettings)
            assert state_dir is not None
            from agent_sandbox.localcluster.node.local.runtime import LocalRuntime

            runtime = LocalRuntime(events, timers, settings, state_dir)
            if register_logs is not None:
                register_logs(node_name, runtime.read_log)
        if register_exec is not None:
            register_exec(node_name, runtime.exec)
        return runtime

    scratch = None
    if kind == "local" and state_dir is None:
        # Nothing to keep across runs: sandboxes live in a directory removed on exit.
        scratch = state_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"agent-sandbox-{node_name}-"))
    try:
        async with ApiClient(config) as api:
            await Kubelet(api, node_name, settings, factory).run()
    finally:
        if register_logs is not None:
            register_logs(node_name, None)
        if register_exec is not None:
            register_exec(node_name, None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
