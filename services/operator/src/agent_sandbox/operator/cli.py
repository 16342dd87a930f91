"""``agent-sandbox operator``: run the operator until SIGTERM/SIGINT.

The API flags are accepted now and served once the HTTP APIs are added; the
command line is the stable interface of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from agent_sandbox.common.logging import configure_logging, get_logger
from agent_sandbox.common.settings import SettingsError, load_settings
from agent_sandbox.operator.app import Operator
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
    parser.add_argument("--no-leader-elect", dest="leader_elect", action="store_false", default=None,
                        help="run controllers without a Lease (single replica only)")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    configure_logging()
    flags = {k: getattr(args, k, None) for k in OperatorSettings.model_fields}
    try:
        settings = load_settings(OperatorSettings, flags)
    except SettingsError as exc:
        log.error("invalid settings", error=str(exc))
        return 2
    dataplane = None
    if settings.extproc_url:
        from agent_sandbox.extproc.client import ControlPlaneClient

        dataplane = ControlPlaneClient(settings.extproc_url, settings.admin_key)
    operator = Operator(settings, dataplane=dataplane)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await operator.start()
        await stop.wait()
    finally:
        await operator.stop()
    return 0
