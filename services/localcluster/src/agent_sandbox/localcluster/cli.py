"""``agent-sandbox localcluster``: serve the embedded control plane (and a node agent) until signalled.

Prints ``LOCALCLUSTER_URL=<http url>`` and ``KUBECONFIG=<path>`` on stdout once the
server listens (plain HTTP on ``--listen``, HTTPS on ``--listen-tls``); the kubeconfig
lives in ``--state-dir`` (a temporary directory when none is given, in which
case nothing persists). Fault flags set the initial fault injection; change it
at run time with ``PUT /localcluster/v1/faults`` (see ``apiserver.faults``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

import uvloop
from pydantic import ValidationError

from agent_sandbox.common import gctuning
from agent_sandbox.common.logging import configure_logging

from .apiserver.faults import FaultConfig
from .app import DEFAULT_CRD_DIR, NODE_KINDS, LocalCluster, serve


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port in {value!r}")
    return host, number


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "localcluster", help="run the embedded Kubernetes-compatible control plane",
        description="Serve a Kubernetes-compatible API (and a node agent) on this machine.")
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 6443), metavar="HOST:PORT",
                        help="address to listen on (port 0 = ephemeral; default 127.0.0.1:6443)")
    parser.add_argument("--listen-tls", type=_listen, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="HTTPS listener the kubeconfig points at (default 127.0.0.1:0 = ephemeral)")
    parser.add_argument("--node", choices=NODE_KINDS, default="sim", help="node agent to run (default sim)")
    parser.add_argument("--node-name", default="localcluster-node", help="name of the node agent's Node")
    parser.add_argument("--state-dir", type=pathlib.Path, help="persist state, token and kubeconfig here")
    parser.add_argument("--sqlite-synchronous", choices=("normal", "full"), default="normal",
                        help="with --state-dir, writes are answered once committed; 'normal' (default) survives "
                             "the process being killed, 'full' also a power loss (one fsync per commit)")
    parser.add_argument("--crd-dir", type=lambda v: pathlib.Path(v) if v else None, default=DEFAULT_CRD_DIR,
                        help="load every CustomResourceDefinition YAML in this directory at start "
                             "('' = none; default: the repository's deploy/crds)")
    parser.add_argument("--event-log-size", type=int, default=10_000, help="watch replay window (events)")
    parser.add_argument("--watch-queue-size", type=int, default=20_000,
                        help="events buffered per watch before a slow watcher is dropped")
    parser.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between BOOKMARK events")
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="shut down when the process that started this one exits (tests, benchmarks)")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--fault-latency-read-ms", type=float, default=0.0)
    faults.add_argument("--fault-latency-write-ms", type=float, default=0.0)
    faults.add_argument("--fault-latency-watch-ms", type=float, default=0.0)
    faults.add_argument("--fault-conflict-probability", type=float, default=0.0)
    faults.add_argument("--fault-error-probability", type=float, default=0.0)
    faults.add_argument("--fault-error-status", type=int, default=503)
    faults.add_argument("--fault-watch-drop-probability", type=float, default=0.0)
    faults.add_argument("--fault-watch-drop-after-events", type=int, default=None)
    faults.add_argument("--fault-commit-error-probability", type=float, default=0.0)
    parser.set_defaults(func=run_command)


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    latency = {"read": args.fault_latency_read_ms, "write": args.fault_latency_write_ms,
               "watch": args.fault_latency_watch_ms}
    return FaultConfig(
        latency_ms={k: v for k, v in latency.items() if v},
        conflict_probability=args.fault_conflict_probability,
        error_probability=args.fault_error_probability,
        error_status=args.fault_error_status,
        watch_drop_probability=args.fault_watch_drop_probability,
        watch_drop_after_events=args.fault_watch_drop_after_events,
        commit_error_probability=args.fault_commit_error_probability,
    )


def run_command(args: argparse.Namespace) -> int:
    """The subcommand's ``func``: serve on uvloop, whose faster I/O loop matters for the request hot path.

    The store holds many long-lived dicts: the collector is tuned as in every server of ours
    (:mod:`agent_sandbox.common.gctuning`; with a smaller young generation, since most of what the
    server allocates lives on for a while), the heap frozen once the cluster serves, and garbage collected
    while the server is idle, so that claim bursts rarely meet a collection.
    """
    gctuning.tune(young=gctuning.SHORT_PAUSES_YOUNG)
    try:
        return uvloop.run(run(args))
    except KeyboardInterrupt:
        return 130


async def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        faults = faults_from_args(args)
    except ValidationError as exc:
        print(f"invalid fault flags: {exc}")
        return 2
    host, port = args.listen
    cluster = LocalCluster(state_dir=args.state_dir, crd_dir=args.crd_dir, node=args.node,
                           node_name=args.node_name, faults=faults, host=host, port=port,
                           tls_port=args.listen_tls[1],
                           event_log_size=args.event_log_size, watch_queue_size=args.watch_queue_size,
                           bookmark_interval=args.bookmark_interval,
                           sqlite_synchronous="FULL" if args.sqlite_synchronous == "full" else "NORMAL",
                           collect_when_idle=True)
    try:
        await serve(cluster, exit_with_parent=args.exit_with_parent)
    except RuntimeError as exc:
        print(f"localcluster: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m agent_sandbox.localcluster.cli [flags]``: this subcommand alone, without loading the
    other services' entry points (used by :class:`~agent_sandbox.localcluster.app.LocalClusterProcess`)."""
    parser = argparse.ArgumentParser(prog="agent-sandbox")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["localcluster", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
