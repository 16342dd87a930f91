"""The `agent-sandbox` console command.

Subcommands are contributed by the installed service distributions through the
``agent_sandbox.commands`` entry-point group, so a container that installs only
one service gets only that service's subcommand, and the command grows as
services are added without this module knowing about them.

An entry point names a callable ``register(subparsers) -> None`` that adds one
sub-parser and sets ``func`` (an ``async`` or plain callable taking the parsed
``argparse.Namespace`` and returning an exit code) as its default.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "agent_sandbox.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-sandbox",
        description="Agent Sandbox: Kubernetes-native sandboxes for AI agents.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except Exception as exc:  # one broken service must not take the other subcommands down
            print(f"agent-sandbox: subcommand {ep.name!r} is unavailable: {exc}", file=sys.stderr)
            continue
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result = func(args)
    if inspect.isawaitable(result):
        try:
            result = asyncio.run(result)
        except KeyboardInterrupt:
            return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
