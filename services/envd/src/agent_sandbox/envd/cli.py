"""``agent-sandbox envd``: run envd here (``--listen``) or build the injectable bundle (``bundle --out``).

Registering must stay cheap: the heavy modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve on (env AGENT_SANDBOX_ENVD_LISTEN, default 0.0.0.0:49983)")
    parser.add_argument("--default-user", metavar="NAME",
                        help="user commands run as unless a request names one (default 'user')")
    commands = parser.add_subparsers(dest="envd_command", metavar="COMMAND")
    bundle = commands.add_parser("bundle", help="build the relocatable envd bundle for /mnt/agentsandbox")
    bundle.add_argument("--out", required=True, type=Path, help="directory to fill (created or updated)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("envd", help="the in-sandbox daemon (E2B envd protocol)")
    add_arguments(parser)
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    if getattr(args, "envd_command", None) == "bundle":
        from .bundle import build_bundle

        build_bundle(args.out)
        print(args.out)
        return 0
    from .config import ConfigError, load_config
    from .server import serve

    try:
        config = load_config(args.listen, args.default_user)
    except ConfigError as exc:
        print(f"agent-sandbox envd: {exc}", file=sys.stderr)
        return 2
    return await serve(config)
