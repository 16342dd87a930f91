"""Entry point of one extproc worker process (started by :mod:`agent_sandbox.extproc.workers`).

Reads its configuration as one JSON line on stdin, prints ``ready`` on stdout
once its caches have synced, and stops when stdin closes (the supervisor went
away) or on SIGTERM. Runs on uvloop, like ``python -m agent_sandbox.extproc``.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
import uvloop

from agent_sandbox.common.logging import configure_logging, get_logger
from agent_sandbox.common.settings import load_settings

from .app import serve
from .settings import ExtprocSettings

log = get_logger(__name__)


async def _main() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = orjson.loads(await reader.readline())
    settings = load_settings(ExtprocSettings, config["settings"])
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def watch_parent() -> None:
        await reader.read()
        stop.set()

    parent = asyncio.create_task(watch_parent())

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    try:
        await serve(settings, stop=stop, control_address=config["control_address"],
                    control_key=config["control_key"], reuse_port=True, on_ready=ready)
    finally:
        parent.cancel()
    return 0


def main() -> int:
    configure_logging()
    return uvloop.run(_main())


if __name__ == "__main__":
    sys.exit(main())
