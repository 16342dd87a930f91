"""Host-name resolution for cross-cluster gateways.

Envoy's ORIGINAL_DST cluster needs an ``IP:port``, so extproc resolves the
gateway host itself. Pushed ``hostAliases`` win over DNS (clusters whose
gateway names only resolve inside the hub network); answers are cached so the
request path normally does no resolution, and a stale answer is kept when DNS
fails rather than failing the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

DEFAULT_TTL = 30.0


class ResolveError(OSError):
    """The gateway host has no address."""


class Resolver:
    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = 1024) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._aliases: dict[str, str] = {}
        self._cache: dict[str, tuple[str, float]] = {}

    def set_aliases(self, aliases: dict[str, str]) -> None:
        self._aliases = dict(aliases)

    def cached(self, host: str, now: float) -> str | None:
        """An address known without I/O: an IP literal, an alias, or an unexpired cache entry."""
        alias = self._aliases.get(host.lower())
        if alias is not None:
            return alias
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            pass
        hit = self._cache.get(host)
        if hit is not None and hit[1] > now:
            return hit[0]
        return None

    async def resolve(self, host: str, now: float) -> str:
        known = self.cached(host, now)
        if known is not None:
            return known
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), 5.0)
        except (OSError, TimeoutError) as exc:
            stale = self._cache.get(host)
            if stale is not None:
                return stale[0]
            raise ResolveError(f"cannot resolve {host}: {exc}") from exc
        if not infos:
            raise ResolveError(f"cannot resolve {host}: no addresses")
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        address = str(infos[0][4][0])
        if len(self._cache) >= self.max_entries and host not in self._cache:
            del self._cache[next(iter(self._cache))]
        self._cache[host] = (address, now + self.ttl)
        return address


def format_hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
