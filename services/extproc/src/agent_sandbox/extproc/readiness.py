"""Is the ExtProc listener serving? A cheap probe behind ``/readyz``.

"Caches synced" alone says nothing about the path Envoy uses: a worker can be
stopped or wedged, or its listener gone, while the flag stays set, and Envoy
(``failure_mode_allow: false``) then fails every request. The probe connects to
the ExtProc port the way Envoy does and waits for the server's HTTP/2 SETTINGS
frame, which :mod:`.h2grpc` sends from ``connection_made``: only a process whose
event loop accepts connections answers it (the kernel alone completes the TCP
handshake, even for a stopped process). One connection and nine bytes per probe,
no gRPC call, so it needs no credential and costs the data plane nothing.
"""

from __future__ import annotations

import asyncio
import contextlib

from .h2grpc import SETTINGS

PROBE_TIMEOUT = 1.0

#: Wildcard listen addresses are probed over loopback.
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def probe_target(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) of a listen address -> where to connect to reach it."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    return _LOOPBACK.get(host, host), int(port)


async def extproc_answers(listen: str) -> bool:
    """True when the ExtProc listener at ``listen`` accepts a connection and speaks HTTP/2 first."""
    host, port = probe_target(listen)
    writer = None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            header = await reader.readexactly(9)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return header[3] == SETTINGS
