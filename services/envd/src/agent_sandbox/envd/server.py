"""Run envd: configure, create the default user, serve HTTP/1.1 with uvicorn (h11)."""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

from agent_sandbox.common.logging import configure_logging, get_logger

from . import ENVD_VERSION
from .app import EnvdApp
from .config import EnvdConfig
from .state import EnvdState
from .users import ensure_user

log = get_logger(__name__)

# Clients pool connections for minutes (E2B SDK: 300 s); closing idle ones sooner races their reuse.
KEEPALIVE_SECONDS = 330
# Open process streams only end with their process; on shutdown give them this long, then cancel.
GRACEFUL_SHUTDOWN_SECONDS = 1.0


def _quiet_server(app: EnvdApp, config: EnvdConfig) -> Any:
    """A uvicorn server without its 10 Hz housekeeping tick.

    uvicorn wakes every 100 ms to refresh the ``Date`` header and poll for exit; in
    thousands of idle sandboxes that is pure waste. This server sleeps until a
    request or a signal arrives (and sends no ``Date`` header, which HTTP allows).
    """
    import uvicorn

    class QuietServer(uvicorn.Server):
        def __init__(self, server_config: uvicorn.Config) -> None:
            super().__init__(server_config)
            self._stop = asyncio.Event()
            self._loop: asyncio.AbstractEventLoop | None = None

        async def main_loop(self) -> None:
            self._loop = asyncio.get_running_loop()
            await self.on_tick(0)
            if not self.should_exit:
                await self._stop.wait()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # Runs from a signal handler while the loop may sleep in epoll: wake it through its self-pipe.
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)

    return QuietServer(uvicorn.Config(
        app, host=config.host, port=config.port, http="h11", ws="none", lifespan="on", log_config=None,
        access_log=False, timeout_keep_alive=KEEPALIVE_SECONDS, server_header=False, date_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    ))


async def serve(config: EnvdConfig) -> int:
    configure_logging()
    state = EnvdState(access_token=config.access_token, default_user=config.default_user)
    await asyncio.to_thread(ensure_user, state.default_user)
    server = _quiet_server(EnvdApp(state), config)
    log.info("envd_starting", listen=f"{config.host}:{config.port}", version=ENVD_VERSION,
             token_configured=config.access_token is not None)
    await server.serve()
    return 0 if server.started else 1
