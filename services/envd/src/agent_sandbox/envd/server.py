"""Run envd: configure, create the default user, serve HTTP/1.1 with uvicorn (h11)."""

from __future__ import annotations

import asyncio

from agent_sandbox.common.logging import configure_logging, get_logger

from . import ENVD_VERSION
from .app import EnvdApp
from .config import EnvdConfig
from .state import EnvdState
from .users import ensure_user

log = get_logger(__name__)

# Clients pool connections for minutes (E2B SDK: 300 s); closing idle ones sooner races their reuse.
KEEPALIVE_SECONDS = 330


async def serve(config: EnvdConfig) -> int:
    import uvicorn

    configure_logging()
    state = EnvdState(access_token=config.access_token, default_user=config.default_user)
    await asyncio.to_thread(ensure_user, state.default_user)
    server = uvicorn.Server(
        uvicorn.Config(
            EnvdApp(state), host=config.host, port=config.port, http="h11", ws="none", lifespan="on",
            log_config=None, access_log=False, timeout_keep_alive=KEEPALIVE_SECONDS, server_header=False,
        )
    )
    log.info("envd_starting", listen=f"{config.host}:{config.port}", version=ENVD_VERSION,
             token_configured=config.access_token is not None)
    await server.serve()
    return 0 if server.started else 1
