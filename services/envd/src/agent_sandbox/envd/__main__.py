"""``python -m agent_sandbox.envd``: run envd without the ``agent-sandbox`` command (the bundle's launcher)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="envd", description="Agent Sandbox envd")
    add_arguments(parser)
    try:
        return asyncio.run(run(parser.parse_args()))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
