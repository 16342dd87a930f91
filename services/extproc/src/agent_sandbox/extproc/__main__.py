"""``python -m agent_sandbox.extproc ARGS`` = ``agent-sandbox extproc ARGS``, without loading other services."""

from __future__ import annotations

import argparse
import sys

from .cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-sandbox")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["extproc", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
