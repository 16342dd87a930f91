"""The ``up``, ``down`` and ``status`` subcommands of ``agent-sandbox``.

Settings: flags over ``AGENT_SANDBOX_STACK_*`` environment over ``--config FILE`` over defaults
(:mod:`.settings`); a port or pool flag overrides that one value and keeps the rest of the
file's ``ports``/``pool`` mapping.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agent_sandbox.common.settings import SettingsError, load_settings

from .settings import PoolSettings, Ports, StackSettings, default_state_dir

STATE_DIR_ENV = "AGENT_SANDBOX_STACK_STATE_DIR"
PORT_FLAGS = tuple(Ports.model_fields)
POOL_FLAGS = ("image", "idle_image", "replicas")


def _state_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None,
                        help=f"state directory (default: ${STATE_DIR_ENV}, else ./.state in a checkout of "
                             "this repository, else ~/.local/state/agent-sandbox)")


def register_up(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up", help="run the whole system on this machine (control plane, node, operator, extproc, Envoy)",
        description="Start everything on this machine, print READY and the export lines, run until Ctrl-C.")
    _state_dir_arg(up)
    up.add_argument("--config", type=Path, help="YAML/JSON settings file (ports, pool, host, ...)")
    up.add_argument("--host", help="loopback address every service binds (default 127.0.0.1)")
    ports = up.add_argument_group("ports (0 = a free port)")
    for name in PORT_FLAGS:
        ports.add_argument(f"--{name.replace('_', '-')}-port", dest=f"port_{name}", type=int, metavar="PORT",
                           help=Ports.model_fields[name].description)
    pool = up.add_argument_group("default pool")
    pool.add_argument("--pool-image", dest="pool_image", help="image of the default pool (default host)")
    pool.add_argument("--pool-idle-image", dest="pool_idle_image", help="idle image (default agent-sandbox/idle)")
    pool.add_argument("--pool-replicas", dest="pool_replicas", type=int, help="warm sandboxes (default 2)")
    up.set_defaults(func=run_up_command)


def register_down(subparsers: Any) -> None:
    down = subparsers.add_parser("down", help="stop the stack started by `agent-sandbox up`")
    _state_dir_arg(down)
    down.set_defaults(func=run_down_command)


def register_status(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="show what the stack runs (per service: pid, ports, healthy)")
    _state_dir_arg(status)
    output = status.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--exports", action="store_true",
                        help="print the export lines of the running stack (eval \"$(agent-sandbox status --exports)\")")
    status.set_defaults(func=run_status_command)


def _state_dir(args: argparse.Namespace) -> Path:
    """``--state-dir``, else ``AGENT_SANDBOX_STACK_STATE_DIR``, else :func:`default_state_dir`."""
    given = args.state_dir or os.environ.get(STATE_DIR_ENV)
    return (Path(given) if given else default_state_dir(Path.cwd())).expanduser().resolve()


def settings_from_args(args: argparse.Namespace) -> StackSettings:
    """Flags over environment over config file; port/pool flags override single keys."""
    flags = {"state_dir": _state_dir(args), "host": args.host}
    settings = load_settings(StackSettings, flags, args.config)
    port_flags = {n: getattr(args, f"port_{n}") for n in PORT_FLAGS if getattr(args, f"port_{n}") is not None}
    pool_flags = {n: getattr(args, f"pool_{n}") for n in POOL_FLAGS if getattr(args, f"pool_{n}") is not None}
    try:
        return settings.model_copy(update={
            "ports": Ports(**{**settings.ports.model_dump(), **port_flags}),
            "pool": PoolSettings(**{**settings.pool.model_dump(), **pool_flags}),
        })
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc


async def run_up_command(args: argparse.Namespace) -> int:
    from agent_sandbox.common.logging import configure_logging

    from .credentials import CredentialsError
    from .runfile import AlreadyRunning
    from .up import run_up

    configure_logging()
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"agent-sandbox up: {exc}", file=sys.stderr)
        return 2
    try:
        return await run_up(settings)
    except (AlreadyRunning, CredentialsError, PermissionError) as exc:
        print(f"agent-sandbox up: {exc}", file=sys.stderr)
        return 1


async def run_down_command(args: argparse.Namespace) -> int:
    from .control import down
    from .plan import Layout

    return await down(Layout(_state_dir(args)), sys.stdout)


async def run_status_command(args: argparse.Namespace) -> int:
    from .control import exports, status
    from .plan import Layout

    layout = Layout(_state_dir(args))
    if args.exports:
        return exports(layout, sys.stdout, sys.stderr)
    return await status(layout, sys.stdout, as_json=args.json)
