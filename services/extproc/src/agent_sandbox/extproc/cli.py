"""``agent-sandbox extproc``: the data-plane routing service for Envoy.

Kept import-light on purpose: the console command loads every subcommand's
module to build its parser, and prometheus_client must not be imported before
``PROMETHEUS_MULTIPROC_DIR`` is set for a multi-worker run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "extproc",
        help="run the Envoy ExternalProcessor that routes sandbox traffic",
        description="Envoy ExtProc routing by sandbox id, plus the control-plane gRPC for the operator.",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account)")
    p.add_argument("--listen", help="ExtProc gRPC address host:port (default 127.0.0.1:9002)")
    p.add_argument("--control-listen", help="control-plane gRPC address host:port (default 127.0.0.1:9003)")
    p.add_argument("--health-listen", help="health/metrics HTTP address host:port (default 127.0.0.1:8081)")
    p.add_argument("--workers", type=int, help="worker processes sharing the ExtProc port (default 1)")
    p.add_argument("--admin-key", help="admin key for the control plane (env AGENT_SANDBOX_ADMIN_KEY)")
    p.add_argument("--dev", action="store_true", default=None, help="allow running without an admin key")
    p.add_argument("--cluster-id", help="this cluster's id; enables cross-cluster forwarding")
    p.add_argument("--enable-auth", action="store_true", default=None,
                   help="require x-api-key (admin or tenant key) on data-plane requests")
    p.add_argument("--check-envd-token", action="store_true", default=None,
                   help="require the sandbox's X-Access-Token on envd traffic (needs AGENT_SANDBOX_SECRET)")
    p.add_argument("--apikey-namespace", help="namespace of API-key Secrets and the cluster ConfigMap")
    p.add_argument("--clusters-configmap-name", help="ConfigMap holding clusters.yaml")
    p.add_argument("--config", help="YAML/JSON settings file")
    p.set_defaults(func=main)


FLAG_FIELDS = ("kubeconfig", "listen", "control_listen", "health_listen", "workers", "admin_key", "dev",
               "cluster_id", "enable_auth", "check_envd_token", "apikey_namespace", "clusters_configmap_name")


def main(args: argparse.Namespace) -> int:
    """Run on uvloop: the ExtProc transport is per-request socket I/O in one thread, where the
    libuv loop costs measurably less CPU than the stdlib loop (bench/dataplane)."""
    import uvloop

    try:
        return uvloop.run(run(args))
    except KeyboardInterrupt:
        return 130


async def run(args: argparse.Namespace) -> int:
    from agent_sandbox.common.logging import configure_logging, get_logger
    from agent_sandbox.common.settings import SettingsError, load_settings

    from .settings import ExtprocSettings

    configure_logging()
    log = get_logger("agent_sandbox.extproc")
    try:
        settings = load_settings(ExtprocSettings, {f: getattr(args, f, None) for f in FLAG_FIELDS}, args.config)
    except SettingsError as exc:
        print(f"agent-sandbox extproc: {exc}", file=sys.stderr)
        return 2
    if not settings.admin_key_value():
        log.warning("!!! DEV MODE: the control plane and /metrics accept calls WITHOUT credentials !!!")
    from kubernetes_asyncio.config import ConfigException

    from .kube import api_client

    try:  # fail fast and readably on a bad kubeconfig, before any worker starts
        await (await api_client(settings.kubeconfig)).close()
    except (ConfigException, OSError) as exc:
        print(f"agent-sandbox extproc: cannot load Kubernetes configuration: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.workers == 1:
            return await _run_single(settings, stop)
    except OSError as exc:  # e.g. a port already in use
        print(f"agent-sandbox extproc: {exc}", file=sys.stderr)
        return 1
    runtime_dir = Path(tempfile.mkdtemp(prefix="agent-sandbox-extproc-"))
    try:
        metrics_dir = runtime_dir / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        from .workers import run_supervisor

        await run_supervisor(settings, stop, runtime_dir)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
    return 0


async def _run_single(settings: Any, stop: asyncio.Event) -> int:
    from .app import serve
    from .health import start_health
    from .readiness import extproc_answers

    synced = False

    def mark_synced() -> None:
        nonlocal synced
        synced = True

    async def ready() -> bool:
        return synced and await extproc_answers(settings.listen)

    health = None
    if settings.health_listen:
        health = await start_health(settings.health_listen, ready, settings.admin_key_value())
    try:
        await serve(settings, stop=stop, control_address=settings.control_listen,
                    control_key=settings.admin_key_value(), reuse_port=False, on_ready=mark_synced)
    finally:
        if health is not None:
            await health.cleanup()
    return 0
