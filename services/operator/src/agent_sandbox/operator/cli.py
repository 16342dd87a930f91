"""``agent-sandbox operator``: run the operator and its HTTP APIs until SIGTERM/SIGINT.

Controllers, the native API (``--api-listen``) and the E2B-compatible API
(``--e2b-listen``) run in one process, as in the reference design; the command
line is the stable interface of the process. Credentials come from the
environment (``AGENT_SANDBOX_ADMIN_KEY``, ``AGENT_SANDBOX_SECRET``) so they never
show in a process listing; the flags exist for development.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

import uvloop

from agent_sandbox.common import gctuning
from agent_sandbox.common.logging import configure_logging, get_logger
from agent_sandbox.common.settings import SettingsError, load_settings
from agent_sandbox.operator.api.startup import ApiServerSettings, start_api_servers
from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.durations import InvalidDuration, parse_duration
from agent_sandbox.operator.settings import OperatorSettings

log = get_logger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("operator", help="run the Agent Sandbox operator")
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster to manage")
    parser.add_argument("--cluster-id", dest="cluster_id", help="this cluster's id (in every sandbox id)")
    parser.add_argument("--api-listen", dest="api_listen", help="native API HOST:PORT")
    parser.add_argument("--e2b-listen", dest="e2b_listen", help="E2B-compatible API HOST:PORT")
    parser.add_argument("--metrics-listen", dest="metrics_listen", help="/metrics, /healthz, /readyz HOST:PORT")
    parser.add_argument("--admin-key", dest="admin_key", help="admin API key (also for the extproc control plane)")
    parser.add_argument("--extproc-url", dest="extproc_url", help="extproc control-plane HOST:PORT")
    parser.add_argument("--gateway-base-url", dest="gateway_base_url", help="data-plane base URL (endpoints, hooks)")
    parser.add_argument("--secret", dest="secret", help="JWT / envd-token secret (prefer AGENT_SANDBOX_SECRET)")
    parser.add_argument("--e2b-domain", dest="e2b_domain", help="domain returned in E2B create answers")
    parser.add_argument("--envd-url-template", dest="envd_url_template",
                        help="how the operator reaches envd, e.g. http://{pod_ip}:49983")
    parser.add_argument("--sandbox-history-ttl", dest="history_ttl_s", type=_duration_flag, metavar="DURATION",
                        help="how long finished sandboxes stay listed, e.g. 24h (default)")
    parser.add_argument("--dev", dest="dev_mode", action="store_true", default=None,
                        help="allow running without an admin key (development only; every caller is admin)")
    parser.add_argument("--no-leader-elect", dest="leader_elect", action="store_false", default=None,
                        help="run controllers without a Lease (single replica only)")
    parser.set_defaults(func=run_command)


def _duration_flag(value: str) -> float:
    try:
        return parse_duration(value)
    except InvalidDuration as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_command(args: argparse.Namespace) -> int:
    """The subcommand's ``func``: run on uvloop, whose event loop and TLS transport cost a fraction of the
    standard loop's per request — the claim path is a stream of small HTTPS writes to the API server."""
    gctuning.tune()
    try:
        return uvloop.run(run(args))
    except KeyboardInterrupt:
        return 130


async def run(args: argparse.Namespace) -> int:
    configure_logging()
    flags = {k: getattr(args, k, None) for k in OperatorSettings.model_fields}
    try:
        settings = load_settings(OperatorSettings, flags)
    except SettingsError as exc:
        log.error("invalid settings", error=str(exc))
        return 2
    if settings.api_listen and not settings.admin_key and not settings.dev_mode:
        log.error("refusing to start: the APIs need an admin key (AGENT_SANDBOX_ADMIN_KEY or --admin-key); "
                  "--dev runs them open for development")
        return 2
    dataplane = None
    if settings.extproc_url:
        from agent_sandbox.ctrlplane.client import ControlPlaneClient

        dataplane = ControlPlaneClient(settings.extproc_url, settings.admin_key)
    operator = Operator(settings, dataplane=dataplane)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    servers = None
    try:
        await operator.start()
        if settings.api_listen:
            servers = await start_api_servers(operator.client, api_settings(settings),
                                              sandboxes=operator.sandboxes, pools=operator.pool_service,
                                              clusters=operator.clusters,
                                              is_leader=lambda: operator.is_leader)
        gctuning.freeze_startup_heap()
        await stop.wait()
    finally:
        if servers is not None:
            await servers.stop()
        await operator.stop()
    return 0


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "0.0.0.0", int(port)


def api_settings(settings: OperatorSettings) -> ApiServerSettings:
    """The HTTP servers' settings from the operator's (one source of truth for flags and env)."""
    if settings.dev_mode and not settings.admin_key:
        log.warning("DEVELOPMENT MODE: the APIs accept callers without credentials as administrators")
    api_host, api_port = _split(settings.api_listen or "0.0.0.0:8080")
    e2b = _split(settings.e2b_listen) if settings.e2b_listen else None
    return ApiServerSettings(
        admin_key=settings.admin_key or "", secret=settings.secret or "", envd_secret=settings.secret or "",
        dev_mode=settings.dev_mode, local_cluster_id=settings.cluster_id, api_host=api_host, api_port=api_port,
        e2b_host=e2b[0] if e2b else "0.0.0.0", e2b_port=e2b[1] if e2b else None,
        e2b_domain=settings.e2b_domain, envd_url_template=settings.envd_url_template,
        idempotency_namespace=settings.lease_namespace)
